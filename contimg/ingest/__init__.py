"""Ingest: subband file names grouped into chunks, and the sensor's scan of the ingest folder."""
