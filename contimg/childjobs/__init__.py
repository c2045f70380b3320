"""How child jobs run.

Their CASA environment and command line, the guard that ties them to their parent, fault drills,
and the report they hand back.
"""
