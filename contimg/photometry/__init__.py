"""Light curves: forced photometry at reference positions, daily points, variability search (issue #23).

``forced`` measures an image, ``reference`` reads the reference catalogue, ``daily`` combines one day's
measurements and normalises the flux scale, ``variability`` computes the statistics and flags candidates.
All pure numpy/astropy: no CASA, no Dagster.
"""
