"""The image child job: ``python -m contimg.image.job ...`` (CASA / casacore run only in this process)."""
