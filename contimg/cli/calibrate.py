"""``contimg calibrate``: solve bandpass and gains on a calibrator chunk and register the set."""

from __future__ import annotations

from pathlib import Path

from contimg.cli._child import run_child_job
from contimg.core.settings import Layout


def add_arguments(parser) -> None:
    """Add the options of ``contimg calibrate`` to ``parser``."""
    parser.add_argument("ms", type=Path)
    parser.add_argument("--out", required=True, type=Path, help="folder for the tables (and caltables.json)")
    parser.add_argument("--calibrator", default=None, help="VLA name; default: the brightest transiting in the chunk")
    parser.add_argument("--refant", default=None, help="0-based antenna ids in preference order, comma-separated")
    parser.add_argument(
        "--reference-catalog",
        type=Path,
        default=None,
        help="CSV (ra_deg,dec_deg,flux_jy[,spectral_index]) or VizieR table of the field: its sources join the model",
    )
    parser.add_argument("--no-register", action="store_true", help="do not add the set to the catalogue's registry")


def run(args) -> int:
    """Solve on the calibrator chunk in a CASA child job and register the set (unless ``--no-register``); 0 on success.

    A failed job raises ChildJobError with its last error line.
    """
    from contimg.calibrate.report import CalibrateReport
    from contimg.catalogue import connect
    from contimg.catalogue.registry import register_report
    from contimg.childjobs.report import read_report

    layout = Layout.from_env().ensure()
    report_path = layout.scratch / f"calibrate-{args.out.name}.json"
    job_args = [args.ms, "--out", args.out, "--report", report_path]
    if args.calibrator:
        job_args += ["--calibrator", args.calibrator]
    if args.refant:
        job_args += ["--refant", args.refant]
    if args.reference_catalog:
        job_args += ["--reference-catalog", args.reference_catalog]
    run_child_job("calibrate", job_args, layout)  # a failure surfaces as the job's last error line
    if args.no_register:
        return 0
    solved = CalibrateReport.from_dict(read_report(report_path))
    conn = connect(layout.catalogue)
    try:
        status = register_report(conn, solved, window_key=args.ms.stem, source_ms=str(args.ms))
    finally:
        conn.close()
    print(f"registered {solved.set_name} ({status}) in {layout.catalogue}")
    return 0
