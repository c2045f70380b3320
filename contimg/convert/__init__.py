"""Conversion: a chunk's 16 UVH5 subband files planned (headers only) and written as one Measurement Set."""
