import pytest

from contimg.settings import Layout


@pytest.fixture
def layout(tmp_path, monkeypatch) -> Layout:
    """A complete, empty directory layout under tmp_path, also exported through the environment."""
    root = tmp_path / "contimg"
    monkeypatch.setenv("CONTIMG_ROOT", str(root))
    for var in ("CONTIMG_INGEST_DIR", "CONTIMG_PRODUCTS_DIR", "CONTIMG_SCRATCH_DIR", "CONTIMG_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return Layout.from_env().ensure()
