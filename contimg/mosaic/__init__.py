"""The nightly primary-beam-weighted mosaic."""
