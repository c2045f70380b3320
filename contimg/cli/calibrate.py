"""``contimg calibrate``: solve bandpass and gains on a calibrator chunk and register the set."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from contimg.childjobs.env import casa_child_env, child_command
from contimg.core.settings import Layout


def add_arguments(parser) -> None:
    parser.add_argument("ms", type=Path)
    parser.add_argument("--out", required=True, type=Path, help="folder for the tables (and caltables.json)")
    parser.add_argument("--calibrator", default=None, help="VLA name; default: the brightest transiting in the chunk")
    parser.add_argument("--refant", default=None, help="0-based antenna ids in preference order, comma-separated")
    parser.add_argument("--no-register", action="store_true", help="do not add the set to the catalogue's registry")


def run(args) -> int:
    from contimg.catalogue import connect
    from contimg.catalogue.registry import register_set

    layout = Layout.from_env().ensure()
    report = layout.scratch / f"calibrate-{args.out.name}.json"
    argv = child_command("calibrate", args.ms, "--out", args.out, "--report", report)
    if args.calibrator:
        argv += ["--calibrator", args.calibrator]
    if args.refant:
        argv += ["--refant", args.refant]
    rc = subprocess.call(argv, env=casa_child_env(layout.casa_state))
    if rc != 0 or args.no_register:
        return rc
    m = json.loads(report.read_text())
    conn = connect(layout.catalogue)
    try:
        register_set(conn, set_name=m["set_name"], window_key=args.ms.stem, calibrator=m["calibrator"],
                     source_ms=str(args.ms), transit_mjd=m["plan"]["transit_mjd"], tables=m["tables"],
                     status="active" if m["quality_ok"] else "failed", refant=str(m["refant"]),
                     solver_version=m["solver_version"], solver_params=m["solver_params"],
                     quality={t["type"]: t["quality"] for t in m["tables"]}, reason="; ".join(m["problems"]) or None)
    finally:
        conn.close()
    print(f"registered {m['set_name']} ({'active' if m['quality_ok'] else 'failed'}) in {layout.catalogue}")
    return 0
