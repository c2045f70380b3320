# casaconfig site configuration for contimg's CASA child processes.
# Selected by CASASITECONFIG (see contimg/casa_env.py). It makes `import casatools` work with no
# network: measures come from the installed `casadata` package and nothing is auto-updated.
# CASA's cache and log go under CONTIMG_CASA_STATE_DIR so a child writes nothing outside the
# project's state folders.
import importlib.util as _ilu
import os as _os

_casadata = _ilu.find_spec("casadata")
measurespath = _os.path.join(_os.path.dirname(_casadata.origin), "__data__")
measures_auto_update = False
data_auto_update = False
skipnetworkcheck = True
user_site = False
nogui = True
agg = True

_state = _os.environ.get("CONTIMG_CASA_STATE_DIR")
if _state:
    cachedir = _os.path.join(_state, "casa-cache")
    startupfile = _os.path.join(_state, "casa-startup.py")
    logfile = _os.path.join(_state, "casa.log")
