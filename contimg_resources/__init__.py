"""Dagster resources: the CASA child-job runner, the catalogue and the storage layout."""

from contimg_resources.casa_runner import CasaRunner
from contimg_resources.catalogue import Catalogue
from contimg_resources.storage import StorageLayout

__all__ = ["CasaRunner", "Catalogue", "StorageLayout"]
