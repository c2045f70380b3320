"""Which files form a chunk, and when a chunk is ready: the ingest rules, as pure functions.

Correlator nodes stamp their own start times, so the 16 subbands of a chunk carry stamps a few
seconds apart; chunks start every 309.24 s. A group is the run of stamps within ``tolerance_s``
of its earliest stamp; its partition key is the 5-minute window holding that earliest stamp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from contimg.core.instrument import N_SUBBANDS

__all__ = [
    "FileEntry",
    "Group",
    "Decision",
    "parse_name",
    "is_temporary",
    "window_key",
    "window_start",
    "group_files",
    "decide",
    "TOLERANCE_S",
    "WINDOW_FMT",
]

NAME = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(?P<sb>\d{2})\.hdf5$")
WINDOW_FMT = "%Y-%m-%dT%H:%M"
TOLERANCE_S = 60.0  # subband stamps of one chunk spread by seconds; chunks are 309 s apart


@dataclass(frozen=True)
class FileEntry:
    """A file in the ingest folder: its name, size in bytes and modification time (POSIX seconds)."""

    name: str
    size: int
    mtime: float


@dataclass
class Group:
    """The files of one chunk: those chosen per subband and the duplicates left out.

    ``start`` is the earliest stamp (UTC, naive); ``files`` maps subband -> FileEntry chosen for the
    chunk; ``duplicates`` holds the FileEntry of files whose subband was already present.
    """

    start: datetime  # earliest stamp (UTC, naive)
    files: dict = field(default_factory=dict)  # subband -> FileEntry chosen for the chunk
    duplicates: list = field(default_factory=list)  # FileEntry for subbands already present

    @property
    def window(self) -> str:
        """The window key of the chunk's start, e.g. ``2026-01-25T00:05``."""
        return window_key(self.start)

    @property
    def missing(self) -> list[int]:
        """The subband indices (0-15) without a file, ascending."""
        return [sb for sb in range(N_SUBBANDS) if sb not in self.files]

    @property
    def complete(self) -> bool:
        """True when all 16 subbands have a file."""
        return not self.missing


@dataclass(frozen=True)
class Decision:
    """What to do with a group this tick (:func:`decide`).

    ``action`` is "wait", "run" or "incomplete"; ``reason`` says why.
    """

    action: str  # "wait", "run", "incomplete"
    reason: str


def parse_name(name: str) -> tuple[datetime, int] | None:
    """(stamp, subband) of a final subband file name, or None if it does not parse."""
    m = NAME.match(name)
    if not m or int(m["sb"]) >= N_SUBBANDS:
        return None
    try:
        return datetime.fromisoformat(m["stamp"]), int(m["sb"])
    except ValueError:
        return None


def is_temporary(name: str) -> bool:
    """Names of files still being written or copied: never taken, never reported."""
    return name.startswith(".") or "_incomplete" in name or name.endswith((".tmp", ".part", ".partial"))


def window_start(stamp: datetime) -> datetime:
    """The start of the 5-minute window holding ``stamp`` (minutes floored to a multiple of 5, seconds dropped)."""
    return stamp.replace(minute=stamp.minute - stamp.minute % 5, second=0, microsecond=0)


def window_key(stamp: datetime) -> str:
    """The 5-minute partition key holding ``stamp``: ``2026-01-25T00:05``."""
    return window_start(stamp).strftime(WINDOW_FMT)


def group_files(entries, tolerance_s: float = TOLERANCE_S) -> list[Group]:
    """Group parseable entries into chunks, sorted by start.

    A chunk takes the files within ``tolerance_s`` of its first stamp. The first file of a subband
    wins; later files of the same subband are duplicates.
    """
    parsed = sorted((p[0], p[1], e.name, e) for e in entries if (p := parse_name(e.name)))
    groups: list[Group] = []
    for stamp, sb, _, entry in parsed:
        if not groups or (stamp - groups[-1].start).total_seconds() > tolerance_s:
            groups.append(Group(start=stamp))
        g = groups[-1]
        if sb in g.files:
            g.duplicates.append(entry)
        else:
            g.files[sb] = entry
    return groups


def decide(
    group: Group, *, stable: bool, first_seen: datetime, now: datetime, grace_s: float, min_subbands: int
) -> Decision:
    """What the sensor does with a group this tick.

    A complete group whose file sizes did not change since the last tick runs. After the grace
    period (counted from when the group was first seen) a group runs with what it has if at least
    ``min_subbands`` are present, else it is given up as incomplete.
    """
    if group.complete:
        return Decision("run", "complete") if stable else Decision("wait", "files still growing")
    waited = (now - first_seen).total_seconds()
    if waited < grace_s:
        return Decision("wait", f"{len(group.files)}/16 subbands, waiting for the rest ({waited:.0f}/{grace_s:.0f} s)")
    if len(group.files) >= min_subbands:
        if not stable:
            return Decision("wait", "files still growing")
        return Decision(
            "run", f"grace period over: running with {len(group.files)}/16 subbands, missing {group.missing}"
        )
    return Decision(
        "incomplete",
        f"only {len(group.files)}/16 subbands after {grace_s:.0f} s (minimum {min_subbands}); missing {group.missing}",
    )


def utcnow() -> datetime:
    """Naive UTC now (stamps in file names are naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def older_than(stamp: datetime, now: datetime, days: float) -> bool:
    return now - stamp > timedelta(days=days)
