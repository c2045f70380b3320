"""The calibrate child job: ``python -m contimg.calibrate.job ...`` (CASA / casacore run only in this process)."""
