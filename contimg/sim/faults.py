"""Fault drills for the simulator: the ways real correlator output goes wrong.

Syntax: ``kind@chunk:subband`` separated by commas, e.g. ``truncate@0:3,missing@1:7``.

| kind | effect |
| --- | --- |
| truncate | the file is cut in the middle of its data (an interrupted copy) |
| missing | the subband is never written |
| duplicate | a second copy of the subband arrives with a stamp 2 s later |
| nan | about 1% of the visibilities are NaN |
| badname | the file is named ``<stamp>_subbandNN.hdf5`` (does not parse) |
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["Fault", "FAULT_KINDS", "parse_faults", "apply_after_write"]

FAULT_KINDS = ("truncate", "missing", "duplicate", "nan", "badname")
_SPEC = re.compile(r"^(?P<kind>[a-z]+)@(?P<chunk>\d+):(?P<sb>\d+)$")


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind, chunk and subband."""

    kind: str
    chunk: int
    subband: int

    def as_dict(self) -> dict:
        """The fields as a dict (truth.json)."""
        return asdict(self)


def parse_faults(spec: str) -> list[Fault]:
    """Parse ``kind@chunk:subband[,...]``.

    Raises
    ------
    ValueError
        On an unknown kind or a malformed item, quoting it.
    """
    faults = []
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        m = _SPEC.match(item)
        if not m or m["kind"] not in FAULT_KINDS or not 0 <= int(m["sb"]) < 16:
            raise ValueError(f"bad fault {item!r}: expected kind@chunk:subband with kind in {', '.join(FAULT_KINDS)}")
        faults.append(Fault(m["kind"], int(m["chunk"]), int(m["sb"])))
    return faults


def apply_after_write(path: Path, kinds: set[str], rng) -> None:
    """Apply the faults that act on a written file (truncate, duplicate)."""
    if "duplicate" in kinds:
        stamp, rest = path.name.split("_", 1)
        later = (datetime.fromisoformat(stamp) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
        shutil.copyfile(path, path.with_name(f"{later}_{rest}"))
    if "truncate" in kinds:
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.truncate(int(size * 0.6))
        os.utime(path)
