"""Ingest: scan the ingest folder, classify files, decide which chunks are ready (no Dagster here).

``scan_tick`` is what the sensor runs every tick; ``assemble_group`` is what the ``subband_group``
asset runs for one window. Both record every file that is not taken (misnamed, duplicate, late,
corrupt, excluded) in the catalogue with its reason, so nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from contimg.catalogue.ingest import (
    get_group,
    group_start_stamps,
    known_file_paths,
    record_calibrator_transit,
    record_file,
    requested_groups,
    upsert_group,
)
from contimg.core.config import read
from contimg.ingest.grouping import FileEntry, Group, decide, group_files, is_temporary, parse_name, window_key

__all__ = [
    "IngestSettings",
    "TickResult",
    "ChunkRequest",
    "scan_tick",
    "assemble_group",
    "NoFilesError",
    "requested_before",
]


@dataclass(frozen=True)
class IngestSettings:
    """Ingest rules; each can be set from the environment (see :meth:`from_env`)."""

    tolerance_s: float = 60.0  # CONTIMG_GROUP_TOLERANCE_S
    grace_s: float = 600.0  # CONTIMG_GRACE_MINUTES (10)
    min_subbands: int = 12  # CONTIMG_MIN_SUBBANDS

    @classmethod
    def from_env(cls, environ=None) -> IngestSettings:
        """Read ``CONTIMG_GROUP_TOLERANCE_S``, ``CONTIMG_GRACE_MINUTES`` and ``CONTIMG_MIN_SUBBANDS``.

        Raises
        ------
        SettingsError
            If one is not allowed (see :data:`contimg.core.config.SETTINGS`).
        """
        return cls(
            tolerance_s=read("CONTIMG_GROUP_TOLERANCE_S", environ),
            grace_s=60.0 * read("CONTIMG_GRACE_MINUTES", environ),
            min_subbands=read("CONTIMG_MIN_SUBBANDS", environ),
        )


@dataclass
class ChunkRequest:
    """A request to process one chunk.

    It holds the chunk's window key, the run key (window and a digest of the files' names and
    sizes), the files' paths, and why it runs now.
    """

    window: str
    run_key: str
    files: list[str]
    reason: str


@dataclass
class TickResult:
    """What one sensor tick (:func:`scan_tick`) found.

    Attributes
    ----------
    requests : list of ChunkRequest
        The chunks to run now.
    waiting : dict
        Group start (ISO) -> why it waits.
    recorded : dict
        File status -> number of files recorded with it this tick.
    scanned : int
        Entries of the ingest folder looked at.
    cursor : dict
        The cursor for the next tick (file sizes seen, when each pending group was first seen).
    """

    requests: list[ChunkRequest] = field(default_factory=list)
    waiting: dict = field(default_factory=dict)  # group start iso -> reason
    recorded: dict = field(default_factory=dict)  # status -> count recorded this tick
    scanned: int = 0
    cursor: dict = field(default_factory=dict)


class NoFilesError(RuntimeError):
    """A window has no subband files."""


def _run_key(window: str, entries) -> str:
    digest = hashlib.sha1("|".join(f"{e.name}:{e.size}" for e in sorted(entries, key=lambda e: e.name)).encode())
    return f"{window}:{digest.hexdigest()[:12]}"


def _settled_starts(conn: sqlite3.Connection) -> list[datetime]:
    out = []
    for s in group_start_stamps(conn):
        try:
            out.append(datetime.fromisoformat(s))
        except (TypeError, ValueError):
            continue
    return out


def scan_tick(
    ingest_dir: Path, conn: sqlite3.Connection, cursor: dict, now: datetime, settings: IngestSettings = IngestSettings()
) -> TickResult:
    """One sensor tick: which chunks to request now, and what to record about the other files.

    The cursor carries file sizes seen last tick (stability) and when each pending group was first
    seen (grace period); the catalogue knows which files and chunks were handled already, so a
    restart with an empty cursor requests nothing twice.
    """
    ingest_dir = Path(ingest_dir)
    result = TickResult()
    prev_sizes = cursor.get("sizes", {})
    first_seen = dict(cursor.get("first_seen", {}))
    known = known_file_paths(conn)
    entries = []
    with os.scandir(ingest_dir) as it:
        for de in it:
            result.scanned += 1
            if not de.is_file() or is_temporary(de.name) or de.path in known:
                continue
            if parse_name(de.name) is None:
                if de.name.endswith((".hdf5", ".h5", ".uvh5")) or "_sb" in de.name:
                    record_file(
                        conn,
                        de.path,
                        de.name,
                        "misnamed",
                        "name does not parse as <YYYY-MM-DDTHH:MM:SS>_sbNN.hdf5 (NN 00-15)",
                    )
                    result.recorded["misnamed"] = result.recorded.get("misnamed", 0) + 1
                continue
            st = de.stat()
            entries.append(FileEntry(de.name, st.st_size, st.st_mtime))
    settled = _settled_starts(conn)
    sizes = {}
    for g in group_files(entries, settings.tolerance_s):
        key = g.start.isoformat()
        files = list(g.files.values()) + g.duplicates
        if any(abs((g.start - s).total_seconds()) <= settings.tolerance_s for s in settled):
            for e in files:
                record_file(
                    conn,
                    str(ingest_dir / e.name),
                    e.name,
                    "late",
                    f"arrived after chunk {window_key(g.start)} was handled",
                    window_key=g.window,
                    subband=parse_name(e.name)[1],
                    size_bytes=e.size,
                )
                result.recorded["late"] = result.recorded.get("late", 0) + 1
            continue
        for e in files:
            sizes[str(ingest_dir / e.name)] = e.size
        stable = all(prev_sizes.get(str(ingest_dir / e.name)) == e.size for e in files)
        seen = datetime.fromisoformat(first_seen.setdefault(key, now.isoformat()))
        decision = decide(
            g, stable=stable, first_seen=seen, now=now, grace_s=settings.grace_s, min_subbands=settings.min_subbands
        )
        if decision.action == "wait":
            result.waiting[key] = decision.reason
            continue
        first_seen.pop(key, None)
        if decision.action == "incomplete":
            upsert_group(
                conn,
                g.window,
                start_utc=key,
                state="incomplete",
                n_subbands=len(g.files),
                missing_subbands=g.missing,
                error=decision.reason,
            )
            for e in files:
                record_file(
                    conn,
                    str(ingest_dir / e.name),
                    e.name,
                    "excluded",
                    decision.reason,
                    window_key=g.window,
                    subband=parse_name(e.name)[1],
                    size_bytes=e.size,
                )
            result.recorded["excluded"] = result.recorded.get("excluded", 0) + len(files)
            continue
        _request(conn, ingest_dir, g, decision.reason, result)
    result.cursor = {"sizes": sizes, "first_seen": first_seen}
    return result


def _request(conn, ingest_dir: Path, g: Group, reason: str, result: TickResult) -> None:
    paths = [str(ingest_dir / g.files[sb].name) for sb in sorted(g.files)]
    run_key = _run_key(g.window, g.files.values())
    upsert_group(
        conn,
        g.window,
        start_utc=g.start.isoformat(),
        state="requested",
        n_subbands=len(g.files),
        missing_subbands=g.missing,
        files=paths,
        run_key=run_key,
        requested_at=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    for sb, e in g.files.items():
        record_file(
            conn, str(ingest_dir / e.name), e.name, "accepted", None, window_key=g.window, subband=sb, size_bytes=e.size
        )
    for e in g.duplicates:
        chosen = g.files[parse_name(e.name)[1]].name
        record_file(
            conn,
            str(ingest_dir / e.name),
            e.name,
            "duplicate",
            f"subband already provided by {chosen}",
            window_key=g.window,
            subband=parse_name(e.name)[1],
            size_bytes=e.size,
        )
        result.recorded["duplicate"] = result.recorded.get("duplicate", 0) + 1
    result.requests.append(ChunkRequest(g.window, run_key, paths, reason))


def requested_before(conn: sqlite3.Connection, cutoff: datetime) -> list[ChunkRequest]:
    """Groups still ``requested`` whose request is older than ``cutoff`` (aware datetime), oldest first.

    A chunk is marked requested (and its files known) while the sensor evaluates; the run is created
    by the daemon afterwards. If the daemon dies in between, no later scan requests the chunk again.
    The sensor re-requests these with the same run key when Dagster has no run for it (Dagster's run
    key de-duplication makes a repeat harmless).
    """
    out = []
    for window, run_key, files, requested_at in requested_groups(conn):
        try:
            when = datetime.fromisoformat(requested_at)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.astimezone()
        if when < cutoff:
            out.append(
                ChunkRequest(
                    window,
                    run_key,
                    json.loads(files) if files else [],
                    f"re-requested: requested at {requested_at}, no run found",
                )
            )
    return out


def calibrator_transit(paths: list[str], conn: sqlite3.Connection | None = None, window: str | None = None):
    """The brightest calibrator transiting during the chunk of ``paths`` (from one file's header), or None.

    Recorded in ``calibrator_transits`` when a connection is given.
    """
    from contimg.calibrate.transit import find_transits
    from contimg.convert.plan import ConversionError, read_subband

    for p in paths:
        try:
            head = read_subband(Path(p))
            break
        except (ConversionError, FileNotFoundError):
            continue
    else:
        return None
    half = head.integration_s / 2.0 / 86400.0
    start = float(head.time_jd.min()) - 2400000.5 - half
    end = float(head.time_jd.max()) - 2400000.5 + half
    transits = find_transits(start, end, head.pointing_dec_deg)
    if not transits:
        return None
    best = transits[0]
    if conn is not None and window is not None:
        record_calibrator_transit(
            conn,
            window,
            calibrator=best.calibrator.name,
            transit_mjd=best.transit_mjd,
            offset_deg=best.offset_deg,
            pb_flux_jy=best.pb_flux_jy,
        )
        upsert_group(conn, window, calibrator=best.calibrator.name)
    return best


def assemble_group(
    ingest_dir: Path, window: str, conn: sqlite3.Connection, settings: IngestSettings = IngestSettings()
) -> dict:
    """The files of ``window`` checked one by one; corrupt files are recorded and left out.

    Uses the files the sensor accepted for the window, or (a window materialized by hand) the
    ingest folder's files whose group starts in the window.

    Raises
    ------
    NoFilesError
        If the window has no subband files, or fewer than ``settings.min_subbands`` readable ones.
    """
    from contimg.convert.plan import ConversionError, read_subband

    group = get_group(conn, window)
    if group and group["files"]:
        paths = [Path(p) for p in group["files"]]
        start = group["start_utc"]
    else:
        entries = []
        if Path(ingest_dir).is_dir():
            with os.scandir(ingest_dir) as it:
                for de in it:
                    if de.is_file() and not is_temporary(de.name) and parse_name(de.name):
                        entries.append(FileEntry(de.name, de.stat().st_size, 0.0))
        matches = [g for g in group_files(entries, settings.tolerance_s) if g.window == window]
        if not matches:
            raise NoFilesError(f"no subband files for window {window} in {ingest_dir}")
        g = matches[0]
        paths = [Path(ingest_dir) / g.files[sb].name for sb in sorted(g.files)]
        start = g.start.isoformat()
    good, bad = {}, []
    for p in paths:
        stamp_sb = parse_name(p.name)
        try:
            info = read_subband(p)
            good[info.subband] = str(p)
        except (ConversionError, FileNotFoundError) as err:
            bad.append((str(p), str(err)))
            record_file(
                conn, str(p), p.name, "corrupt", str(err), window_key=window, subband=stamp_sb[1] if stamp_sb else None
            )
    missing = [sb for sb in range(16) if sb not in good]
    if not good or len(good) < min(settings.min_subbands, len(paths)):
        reason = (
            f"no readable subband files for window {window}"
            if not good
            else f"only {len(good)} readable subbands for window {window} (minimum {settings.min_subbands})"
        )
        upsert_group(
            conn, window, start_utc=start, state="failed", error=reason, n_subbands=len(good), missing_subbands=missing
        )
        raise NoFilesError(reason + ("; unreadable: " + "; ".join(r for _, r in bad) if bad else ""))
    files = [good[sb] for sb in sorted(good)]
    upsert_group(
        conn, window, start_utc=start, state="grouped", n_subbands=len(good), missing_subbands=missing, files=files
    )
    for sb, p in good.items():
        record_file(conn, p, Path(p).name, "accepted", None, window_key=window, subband=sb)
    return {
        "window": window,
        "files": files,
        "missing_subbands": missing,
        "corrupt": bad,
        "sizes": {p: Path(p).stat().st_size for p in files},
    }
