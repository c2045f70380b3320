"""contimg cleanup: housekeeping by hand (scratch, temporaries, measurement sets past retention).

``--dry-run`` lists what would be deleted and what is kept on purpose. Stale-group recovery needs the
Dagster run states and runs in the scheduled ``housekeeping_job``; see ``contimg/ops/housekeeping.py``.
"""

from __future__ import annotations

import sqlite3

from contimg.catalogue import connect
from contimg.core.settings import Layout
from contimg.ops.housekeeping import HousekeepingSettings, apply_plan, make_plan
from contimg.ops.tables import human_bytes, render_table, to_json


def add_arguments(parser) -> None:
    """Add the options of ``contimg cleanup`` to ``parser``."""
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted; change nothing")
    parser.add_argument("--show-kept", action="store_true", help="also list the measurement sets kept and why")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    """Run the housekeeping (or show what it would do) and print what it did; 1 if a step failed, else 0."""
    layout = Layout.from_env()
    try:
        conn = connect(layout.catalogue, create=False)
    except sqlite3.DatabaseError as err:
        raise RuntimeError(f"cannot read the catalogue {layout.catalogue} ({err})") from err
    try:
        plan = make_plan(layout, conn, HousekeepingSettings.from_env())
        out = plan.to_dict()
        out["dry_run"] = bool(args.dry_run)
        errors = []
        if not args.dry_run:
            _done, errors = apply_plan(plan, conn)
            out["errors"] = [msg for _, msg in errors]
    finally:
        conn.close()
    if args.json:
        print(to_json(out))
    else:
        verb = "would delete" if args.dry_run else "deleted"
        rows = [
            {
                "action": a["action"],
                "window_key": a["window_key"],
                "size": human_bytes(a["size_bytes"]),
                "path": a["path"],
                "reason": a["reason"],
            }
            for a in out["actions"]
        ]
        print(render_table(rows, ["action", "window_key", "size", "path", "reason"], empty="nothing to do"))
        print(f"{verb} {len(rows)} item(s), {human_bytes(out['bytes_to_free'])}")
        if args.show_kept:
            print(
                render_table(
                    [{"window_key": a["window_key"], "reason": a["reason"], "path": a["path"]} for a in out["kept"]],
                    ["window_key", "reason", "path"],
                    empty="nothing kept",
                )
            )
        for note in out["notes"]:
            print(f"note: {note}")
        for msg in out.get("errors", []):
            print(f"error: {msg}")
    return 1 if errors else 0
