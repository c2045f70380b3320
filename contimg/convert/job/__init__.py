"""The convert child job: ``python -m contimg.convert.job ...`` (CASA / casacore run only in this process)."""
