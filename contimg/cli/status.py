"""contimg status: chunks by state over a time range, backlog, last image, calibration, failures, free disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from contimg.catalogue import queries as q
from contimg.catalogue.db import catalogue_url, redact
from contimg.core.settings import Layout
from contimg.ops.diskguard import check_free_space, min_free_gb_from_env
from contimg.ops.tables import render_table, to_json


def add_arguments(parser) -> None:
    """Add the options of ``contimg status`` to ``parser``."""
    parser.add_argument("--since", help="start of the range (UTC, YYYY-MM-DD[THH:MM]); default: 24 h before --until")
    parser.add_argument("--until", help="end of the range (exclusive); default: just after the newest chunk")
    parser.add_argument("--failures", type=int, default=10, help="how many recent failures to list (default 10)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def collect(layout: Layout, since: str | None, until: str | None, n_failures: int = 10) -> dict:
    """Everything ``contimg status`` shows, as one dict (the ``--json`` output).

    Before anything was processed (no catalogue yet) it describes an empty platform: no chunks, no
    images, no calibration, no failures (``catalogue_exists`` false), and the free disk as it is.

    Raises
    ------
    ValueError
        If ``since``/``until`` do not parse or are not in order.
    RuntimeError
        If the catalogue exists but cannot be read.
    """
    url = catalogue_url()  # cluster mode: the catalogue is a Postgres database, made on first connection
    exists = bool(url) or layout.catalogue.exists()
    with q.reading(layout.catalogue, missing_ok=True, url=url) as con:
        lo, hi = q.resolve_range(con, since, until)
        guard = check_free_space([layout.products, layout.scratch], min_free_gb_from_env())
        return {
            "catalogue": redact(url) if url else str(layout.catalogue),
            "catalogue_exists": exists,
            "range": {"since": lo, "until": hi},
            "groups_by_state": q.groups_by_state(con, lo, hi),
            "backlog": q.backlog(con),
            "last_image": q.last_image(con),
            "active_calibration": q.active_calibration(con, datetime.now(UTC)),
            "recent_failures": q.recent_failures(con, lo, hi, n_failures),
            "free_disk_gb": {k: round(v, 2) for k, v in guard.free_gb.items()},
            "disk_guard": {"hold": guard.hold, "reason": guard.reason, "last_event": q.last_guard_event(con)},
        }


def run(args) -> int:
    """Print the platform's status (:func:`collect`) as text or JSON; 0."""
    info = collect(Layout.from_env(), args.since, args.until, args.failures)
    if args.json:
        print(to_json(info))
        return 0
    r = info["range"]
    made = "" if info["catalogue_exists"] else " (not made yet: nothing processed)"
    print(f"catalogue {info['catalogue']}{made}\nchunks {r['since']} .. {r['until']} (UTC, end exclusive)\n")
    states = [{"state": k, "chunks": v} for k, v in info["groups_by_state"].items()]
    print(render_table(states, ["state", "chunks"], empty="no chunks in this range"))
    b = info["backlog"]
    print(
        f"\nbacklog: {b['n_chunks']} chunk(s) in flight"
        + (f", oldest {b['oldest_window']} {json.dumps(b['by_state'])}" if b["n_chunks"] else "")
    )
    li = info["last_image"]
    print(
        "last image: "
        + (
            f"{li['window_key']} ({li['status']}, rms {li['rms_jy']:.3g} Jy) {li['image_path']}"
            if li and li["rms_jy"] is not None
            else (f"{li['window_key']} ({li['status']})" if li else "none")
        )
    )
    cal = info["active_calibration"]
    if cal is None:
        print("calibration: no usable calibration set in the catalogue")
    else:
        cover = {True: "", False: " (does NOT cover the newest MS)", None: ""}[cal["covers_latest_ms"]]
        print(
            f"calibration: set {cal['set_name']} ({cal['calibrator']}, transit {cal['window_key']}), "
            f"age {cal['age_h']:.1f} h{cover}"
        )
    print("\nrecent failures:")
    print(render_table(info["recent_failures"], ["kind", "window_key", "reason", "path"], empty="  none"))
    print("\nfree disk: " + ", ".join(f"{p}: {gb:.1f} GB" for p, gb in info["free_disk_gb"].items()))
    print(("HOLD: " if info["disk_guard"]["hold"] else "") + info["disk_guard"]["reason"])
    return 0
