"""Housekeeping: retention rules (pure) and the actions that apply them, each recorded in the catalogue.

Rules
-----
- Scratch: every entry directly under the scratch directory whose newest modification (the entry or
  anything inside it) is older than ``scratch_max_age_s`` is deleted.
- Temporaries left in the products tree by an interrupted atomic write (``.<name>.tmp-*``, and
  ``.<name>.deleting-*`` left by an interrupted deletion) older than the same limit are deleted.
- Measurement sets (2-5 GB each, 288 a day): a current MS is kept when its chunk holds a calibrator
  transit, when its date is one of the ``ms_keep_days`` most recent UTC days, or when the chunk has no
  ``ok`` image yet; otherwise it is deleted and its catalogue row becomes ``deleted``.
- Stale groups: a group left in an in-flight state (requested, grouped, converted) with no update for
  ``stale_group_s`` and no active Dagster run for its window is marked ``failed`` with the reason, so
  that ``contimg status`` lists it and an operator can ``contimg reprocess`` it. (Upstream moved such
  groups back to pending; here re-running is a Dagster run, not a queue state.) Without knowledge of
  active runs (``active_windows=None``) this rule is skipped rather than guessing.

Every deletion and state change is a row of ``housekeeping_log``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from contimg.catalogue import ops as cat
from contimg.core.config import read
from contimg.core.settings import Layout

__all__ = [
    "HousekeepingSettings",
    "Action",
    "Plan",
    "ms_retention",
    "old_entries",
    "product_temporaries",
    "stale_groups",
    "make_plan",
    "apply_plan",
    "record_action",
    "IN_FLIGHT_STATES",
]

IN_FLIGHT_STATES = ("requested", "grouped", "converted")
TEMP_MARKERS = (".tmp-", ".deleting-")


@dataclass(frozen=True)
class HousekeepingSettings:
    """Retention settings; each can be set from the environment (see :meth:`from_env`)."""

    scratch_max_age_s: float = 86400.0  # CONTIMG_SCRATCH_MAX_AGE_H (upstream deleted stream_* dirs after 1 day)
    ms_keep_days: int = 2  # CONTIMG_MS_KEEP_DAYS: the N most recent UTC days of MS are kept
    stale_group_s: float = 6 * 3600.0  # CONTIMG_STALE_GROUP_H: in-flight groups untouched this long are stale
    run_retention_days: float = 30.0  # CONTIMG_RUN_RETENTION_DAYS: Dagster runs (and their event logs) kept

    @classmethod
    def from_env(cls, environ: dict | None = None) -> HousekeepingSettings:
        """The settings from the environment (hours and days converted as the fields need).

        Reads ``CONTIMG_SCRATCH_MAX_AGE_H``, ``CONTIMG_MS_KEEP_DAYS``, ``CONTIMG_STALE_GROUP_H`` and
        ``CONTIMG_RUN_RETENTION_DAYS``.

        Raises
        ------
        SettingsError
            If a setting is not a number or is negative (see :data:`contimg.core.config.SETTINGS`).
        """
        return cls(
            scratch_max_age_s=read("CONTIMG_SCRATCH_MAX_AGE_H", environ) * 3600,
            ms_keep_days=read("CONTIMG_MS_KEEP_DAYS", environ),
            stale_group_s=read("CONTIMG_STALE_GROUP_H", environ) * 3600,
            run_retention_days=read("CONTIMG_RUN_RETENTION_DAYS", environ),
        )


@dataclass(frozen=True)
class Action:
    """One housekeeping decision: what to do, to which path or window, and why."""

    action: str  # delete_scratch, delete_temporary, delete_ms, fail_stale_group; keep_* for kept items
    reason: str
    path: str | None = None
    window_key: str | None = None
    size_bytes: int | None = None

    def to_dict(self) -> dict:
        """The action as a dict keyed by field name."""
        return asdict(self)


@dataclass
class Plan:
    """What housekeeping would do (``actions``) and what it keeps on purpose (``kept``), with reasons."""

    actions: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The plan as a dict: actions, kept items, notes, and ``bytes_to_free`` (the actions' sizes summed)."""
        return {
            "actions": [a.to_dict() for a in self.actions],
            "kept": [a.to_dict() for a in self.kept],
            "notes": list(self.notes),
            "bytes_to_free": sum(a.size_bytes or 0 for a in self.actions),
        }


# ----------------------------------------------------------------------------------------- pure rules


def ms_retention(
    ms_rows: Iterable[dict], calibrator_windows: set, imaged_windows: set, today: date, keep_days: int
) -> tuple[list, list]:
    """Split current measurement sets into deletions and keeps.

    Parameters
    ----------
    ms_rows
        ``measurement_sets`` rows (``window_key``, ``path``, ``status``, ``size_bytes``); only ``current``
        rows are considered (superseded rows name the same path as the current one).
    calibrator_windows
        Window keys of chunks holding a calibrator transit (always kept).
    imaged_windows
        Window keys whose current image row has status ``ok``.
    today
        The current UTC date; the ``keep_days`` most recent dates (today included) are kept.
    keep_days
        Number of most recent UTC days of MS to keep whatever their state.

    Returns
    -------
    (deletions, kept)
        Lists of :class:`Action` (``delete_ms`` / ``keep_ms``) with reasons.
    """
    if keep_days < 0:
        raise ValueError(f"keep_days={keep_days} must be >= 0")
    first_kept_day = today - timedelta(days=keep_days - 1) if keep_days > 0 else today + timedelta(days=1)
    delete, keep = [], []
    for row in ms_rows:
        if row["status"] != "current":
            continue
        window = row["window_key"]
        common = dict(path=row["path"], window_key=window, size_bytes=row.get("size_bytes"))
        day = date.fromisoformat(window[:10])
        if window in calibrator_windows:
            keep.append(Action("keep_ms", "calibrator chunk", **common))
        elif day >= first_kept_day:
            keep.append(Action("keep_ms", f"within the {keep_days} most recent days (CONTIMG_MS_KEEP_DAYS)", **common))
        elif window not in imaged_windows:
            keep.append(Action("keep_ms", "not imaged yet (no ok image)", **common))
        else:
            delete.append(Action("delete_ms", f"imaged, not a calibrator chunk, older than {keep_days} days", **common))
    return delete, keep


def _newest_mtime(path: Path) -> float:
    """Newest modification time of ``path`` or anything inside it (an active work folder is young)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def old_entries(directory: Path, now_s: float, max_age_s: float, *, action: str = "delete_scratch") -> list:
    """Entries directly under ``directory`` untouched (recursively) for more than ``max_age_s`` seconds."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for entry in sorted(directory.iterdir()):
        age_s = now_s - _newest_mtime(entry)
        if age_s > max_age_s:
            out.append(
                Action(
                    action,
                    f"untouched for {age_s / 3600:.1f} h (limit {max_age_s / 3600:g} h)",
                    path=str(entry),
                    size_bytes=_size(entry),
                )
            )
    return out


def product_temporaries(products: Path, now_s: float, max_age_s: float, *, max_depth: int = 3) -> list:
    """Temporaries of interrupted atomic writes or deletions in the products tree, older than ``max_age_s``."""
    products = Path(products)
    out = []
    if not products.is_dir():
        return out
    base_depth = len(products.parts)
    for root, dirs, _files in os.walk(products):
        root_path = Path(root)
        if len(root_path.parts) - base_depth >= max_depth:
            dirs[:] = []
        names = [d for d in dirs] + _files
        for name in names:
            if name.startswith(".") and any(m in name for m in TEMP_MARKERS):
                entry = root_path / name
                age_s = now_s - _newest_mtime(entry)
                if age_s > max_age_s:
                    out.append(
                        Action(
                            "delete_temporary",
                            f"left by an interrupted write, untouched for {age_s / 3600:.1f} h",
                            path=str(entry),
                            size_bytes=_size(entry),
                        )
                    )
        dirs[:] = [
            d for d in dirs if not (d.startswith(".") and any(m in d for m in TEMP_MARKERS)) and not d.endswith(".ms")
        ]  # do not descend into MS tables or temporaries
    return out


def _parse_utc(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def stale_groups(group_rows: Iterable[dict], now: datetime, stale_s: float, active_windows: set) -> list:
    """Groups stuck in an in-flight state for more than ``stale_s`` seconds with no active run."""
    out = []
    for g in group_rows:
        if g["state"] not in IN_FLIGHT_STATES or g["window_key"] in active_windows:
            continue
        age_s = (now - _parse_utc(g["updated_at"])).total_seconds()
        if age_s > stale_s:
            out.append(
                Action(
                    "fail_stale_group",
                    f"stale: state '{g['state']}' unchanged for {age_s / 3600:.1f} h and no active run; "
                    f"re-run with `contimg reprocess {g['window_key']}`",
                    window_key=g["window_key"],
                )
            )
    return out


# ----------------------------------------------------------------------------------------- plan & apply


def make_plan(
    layout: Layout,
    conn: sqlite3.Connection,
    settings: HousekeepingSettings,
    *,
    now: datetime | None = None,
    active_windows: set | None = None,
) -> Plan:
    """Everything housekeeping would do now, with what it keeps and why (nothing is changed).

    Parameters
    ----------
    active_windows
        Partition keys of queued or running Dagster runs; None skips the stale-group rule.
    """
    now = now or datetime.now(UTC)
    now_s = now.timestamp()
    plan = Plan()
    plan.actions += old_entries(layout.scratch, now_s, settings.scratch_max_age_s)
    plan.actions += product_temporaries(layout.products, now_s, settings.scratch_max_age_s)
    delete, keep = ms_retention(
        cat.ms_rows(conn), cat.calibrator_windows(conn), cat.imaged_windows(conn), now.date(), settings.ms_keep_days
    )
    plan.actions += delete
    plan.kept += keep
    if active_windows is None:
        plan.notes.append("stale-group recovery skipped: Dagster run states not consulted")
    else:
        plan.actions += stale_groups(cat.group_rows(conn), now, settings.stale_group_s, active_windows)
    return plan


def record_action(conn: sqlite3.Connection, action: Action, *, run_id: str | None = None) -> None:
    """Append one row to ``housekeeping_log``."""
    cat.log_housekeeping(
        conn,
        action=action.action,
        path=action.path,
        window_key=action.window_key,
        size_bytes=action.size_bytes,
        reason=action.reason,
        run_id=run_id,
    )


def _remove(path: Path) -> None:
    """Delete a file or folder; a folder is first renamed aside so a half-deleted product never looks whole."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        aside = path.with_name(f".{path.name}.deleting-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(path, aside)
        shutil.rmtree(aside)
    else:
        path.unlink()


def apply_plan(plan: Plan, conn: sqlite3.Connection, *, run_id: str | None = None) -> tuple[list, list]:
    """Carry out the plan's actions, recording each in the catalogue.

    Returns
    -------
    (done, errors)
        Actions carried out, and ``(action, message)`` for those that failed (the rest still run).
    """
    done, errors = [], []
    for a in plan.actions:
        try:
            if a.action in ("delete_scratch", "delete_temporary"):
                _remove(Path(a.path))
            elif a.action == "delete_ms":
                _remove(Path(a.path))
                cat.mark_ms_deleted(conn, a.window_key, a.path)
            elif a.action == "fail_stale_group":
                cat.fail_stale_group(conn, a.window_key, a.reason)
            else:
                raise ValueError(f"unknown housekeeping action {a.action!r}")
        except OSError as err:
            errors.append((a, f"{a.action} {a.path or a.window_key}: {err}"))
            continue
        record_action(conn, a, run_id=run_id)
        done.append(a)
    return done, errors
