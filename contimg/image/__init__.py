"""Imaging: rules (cell, size, noise, smearing), the calibrated imaging copy, weighting and gridding,
the primary beam, QA, FITS provenance and thumbnails."""
