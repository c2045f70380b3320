"""contimg: the DSA-110 streaming continuum-imaging engine (no Dagster in this package)."""

__version__ = "0.1.0"
