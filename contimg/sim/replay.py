"""Replay simulated chunks into an ingest folder the way the correlator delivers them.

Each correlator node writes ``<stamp>_sbNN_incomplete.hdf5`` and renames it when the file is
closed, so a reader never sees a half-written final name; nodes finish seconds apart. The demo
and the end-to-end test use this to make the stream's sensor meet realistic arrivals.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["chunks_in", "deliver_chunk", "replay"]

_STAMP_SB = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(\d{2})\.hdf5$")


def chunks_in(sim_dir: Path, tolerance_s: float = 60.0) -> list[list[Path]]:
    """The simulator's files grouped into chunks (stamps within ``tolerance_s``), in time order.

    Files whose names do not parse (fault drills) are attached to the chunk written just before them.
    """
    from datetime import datetime

    files = sorted(p for p in Path(sim_dir).iterdir() if p.suffix == ".hdf5")
    stamped, odd = [], []
    for p in files:
        m = _STAMP_SB.match(p.name)
        (stamped.append((datetime.fromisoformat(m.group(1)), p)) if m else odd.append(p))
    stamped.sort()
    chunks: list[list[Path]] = []
    first_of_chunk = None
    for t, p in stamped:
        if first_of_chunk is None or (t - first_of_chunk).total_seconds() > tolerance_s:
            chunks.append([])
            first_of_chunk = t
        chunks[-1].append(p)
    for i, p in enumerate(odd):  # misnamed files travel with some chunk
        if chunks:
            chunks[min(i, len(chunks) - 1)].append(p)
    return chunks


def deliver_chunk(
    files: Iterable[Path],
    ingest_dir: Path,
    *,
    jitter_s: float = 2.0,
    rng=None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Copy one chunk's files into ``ingest_dir`` as the correlator does: temporary name, then rename.

    Subbands arrive in random order with up to ``jitter_s`` between them.
    """
    rng = rng or random.Random(0)
    ingest_dir = Path(ingest_dir)
    ingest_dir.mkdir(parents=True, exist_ok=True)
    files = list(files)
    rng.shuffle(files)
    delivered = []
    for src in files:
        final = ingest_dir / src.name
        partial = ingest_dir / (src.name[: -len(".hdf5")] + "_incomplete.hdf5")
        shutil.copyfile(src, partial)
        os.replace(partial, final)
        delivered.append(final)
        if jitter_s > 0:
            sleep(rng.uniform(0, jitter_s))
    return delivered


def replay(
    sim_dir: Path,
    ingest_dir: Path,
    *,
    interval_s: float = 5.0,
    jitter_s: float = 1.0,
    seed: int = 0,
    on_chunk: Callable[[int, list[Path]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Deliver every chunk of ``sim_dir`` into ``ingest_dir``, one chunk every ``interval_s`` seconds.

    Returns the number of chunks delivered.
    """
    rng = random.Random(seed)
    chunks = chunks_in(sim_dir)
    for i, chunk in enumerate(chunks):
        t0 = time.monotonic()
        delivered = deliver_chunk(chunk, ingest_dir, jitter_s=jitter_s, rng=rng, sleep=sleep)
        if on_chunk:
            on_chunk(i, delivered)
        if i + 1 < len(chunks):
            sleep(max(0.0, interval_s - (time.monotonic() - t0)))
    return len(chunks)
