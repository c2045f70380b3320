import gc
import sys

import pytest

from contimg.core.settings import Layout


@pytest.fixture
def layout(tmp_path, monkeypatch) -> Layout:
    """A complete, empty directory layout under tmp_path, also exported through the environment."""
    root = tmp_path / "contimg"
    monkeypatch.setenv("CONTIMG_ROOT", str(root))
    for var in ("CONTIMG_INGEST_DIR", "CONTIMG_PRODUCTS_DIR", "CONTIMG_SCRATCH_DIR", "CONTIMG_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return Layout.from_env().ensure()


@pytest.fixture(autouse=True)
def no_dagster_instance_left_entered():
    """Fail the test that leaves a DagsterInstance entered (``with``) but never exited.

    Entering an instance sets Dagster's process-wide "current defs-state storage" (a ContextVar, in
    ``dagster._core.storage.defs_state.base``); exiting resets it to what it was before. An instance
    entered and never exited -- e.g. by ``build_schedule_context(instance=<persistent instance>)``
    used without ``with``, whose ``.instance`` opens one from the ref -- is exited when it is
    garbage-collected, after the test's own instance was disposed, and so restores that dead
    instance's storage. Every later ``materialize()`` then fails in ``DefinitionsLoadContext`` with
    "Attempted to resolve undefined DagsterInstance weakref" (or "unable to open database file"),
    far from the test at fault. Collecting garbage here makes it show up in the test that caused it.
    """
    yield
    if "dagster" not in sys.modules:
        return
    from dagster._core.storage.defs_state import base as defs_state

    gc.collect()
    leaked = defs_state.DefsStateStorage.get()
    if leaked is not None:
        defs_state._current_storage.set(None)  # keep the rest of the suite independent of this test
        pytest.fail(
            f"this test left a DagsterInstance entered (current defs-state storage {leaked!r}); "
            "close instances and build_*_context(...) contexts with `with`"
        )
