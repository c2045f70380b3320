"""Physical constants, in a module that imports nothing.

Worker processes import it without paying for astropy and scipy (1.2 s through contimg.core.beam).
"""

C_M_S = 299_792_458.0  # speed of light in vacuum, m/s (exact)
