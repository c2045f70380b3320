"""The child jobs' worker pool helpers (contimg.childjobs.pool): real spawned processes, no CASA."""

import os
from pathlib import Path

import pytest

from contimg.childjobs.pool import pool_with_scratch, spawned_pool


def _write_pid(folder: str) -> int:
    Path(folder, f"{os.getpid()}.pid").write_text("x")
    return os.getpid()


def test_the_workers_are_other_processes_and_the_scratch_goes_after_success(tmp_path):
    pool = spawned_pool(2, None)
    with pool_with_scratch(pool, tmp_path / "out.ms", ".scratch-") as scratch:
        assert Path(scratch).parent == tmp_path
        pids = {pool.submit(_write_pid, scratch).result() for _ in range(4)}
        assert os.getpid() not in pids
        assert len(list(Path(scratch).glob("*.pid"))) == len(pids)
    assert not Path(scratch).exists()


def test_an_error_shuts_the_pool_and_removes_the_scratch(tmp_path):
    pool = spawned_pool(1, None)
    with pytest.raises(ValueError, match="in the block"):
        with pool_with_scratch(pool, tmp_path / "out.ms", ".scratch-") as scratch:
            pool.submit(_write_pid, scratch).result()
            raise ValueError("in the block")
    assert not Path(scratch).exists()
    with pytest.raises(RuntimeError):  # shut down: no worker can be given more to write
        pool.submit(_write_pid, str(tmp_path))
