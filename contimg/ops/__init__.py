"""Operations: catalogue queries behind the operator commands, housekeeping rules and the free-disk guard.

Light by design (no CASA, pyuvdata or Dagster imports): ``contimg status`` must start fast.
"""
