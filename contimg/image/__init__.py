"""Imaging: everything the image job uses apart from CASA.

Rules (cell, size, noise, smearing), the calibrated imaging copy's arrays (parts, applycal, bda,
weighting) and gridding, the primary beam, QA, FITS provenance, thumbnails and the image job's
report (report.ImageReport). The CASA child job that uses them is the package ``job``.
"""
