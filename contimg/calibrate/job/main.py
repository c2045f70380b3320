"""Child job: solve bandpass and gain tables on a calibrator chunk (casatools/casatasks only).

    python -m contimg.calibrate.job CHUNK.ms --out DIR [--calibrator NAME] [--refant LIST]
           [--set-name NAME] [--no-rfi] [--solver reduced|casa] [--report R.json]

Reads the chunk's time span and pointing (``msread``), plans the solve (the calibrator transiting
in the chunk and its apparent flux, ``contimg.calibrate.plan``), then phases, flags and averages
at the calibrator (``average``) and solves B then G with CASA (``solve``), writing the tables,
their bandpass plot and ``caltables.json`` to DIR. The report is a
``contimg.calibrate.report.CalibrateReport``, published by ``contimg.childjobs.report.report``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contimg.calibrate.job.msread import time_span
from contimg.calibrate.job.solve import solve
from contimg.calibrate.solutions import CalibrationError
from contimg.childjobs.report import report

__all__ = ["main"]

DEFAULT_REFANTS = "103,104,105,106,107,108,102,0"  # 0-based; preferred reference antennas, in order


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m contimg.calibrate.job", description=__doc__.splitlines()[0])
    parser.add_argument("ms")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--calibrator", default=None, help="VLA name; default: the brightest one transiting in the chunk"
    )
    parser.add_argument("--refant", default=DEFAULT_REFANTS, help="0-based antenna ids in preference order")
    parser.add_argument("--set-name", default=None)
    parser.add_argument("--no-rfi", action="store_true")
    parser.add_argument(
        "--reference-catalog",
        default=None,
        help="the reference catalogue (contimg.core.refcat): the field's sources join the model",
    )
    parser.add_argument(
        "--solver",
        default="reduced",
        choices=("reduced", "casa"),
        help="reduced: the chunk summed per baseline, K, B and gains in numpy (default); "
        "casa: every step a CASA call on the binned MS (the previous path)",
    )
    parser.add_argument("--report", default=None)
    return parser


def main(argv=None) -> int:
    """Run the job; 0 on success (quality failures included: the report says so), 1 on a calibration error."""
    args = _parser().parse_args(argv)
    try:
        from contimg.calibrate.plan import plan_solve

        span = time_span(args.ms)
        if span["pointing_dec_deg"] is None:
            raise CalibrationError(f"{args.ms} has no CONTIMG_POINTING_DEC_DEG keyword (not made by contimg convert)")
        try:
            plan = plan_solve(span["start_mjd"], span["end_mjd"], span["pointing_dec_deg"], args.calibrator)
        except ValueError as err:
            raise CalibrationError(str(err)) from err
        field = None
        if args.reference_catalog:
            from contimg.core.refcat import ReferenceCatalogError, read_reference_catalog

            try:
                field = read_reference_catalog(args.reference_catalog)
            except ReferenceCatalogError as err:
                raise CalibrationError(str(err)) from err
        result = solve(
            args.ms,
            args.out,
            plan,
            refants=[int(a) for a in args.refant.split(",") if a],
            set_name=args.set_name or Path(args.out).name,
            rfi=not args.no_rfi,
            reference=field,
            pointing_dec_deg=span["pointing_dec_deg"],
            solver=args.solver,
        )
    except CalibrationError as err:
        print(f"calibrate: error: {err}", file=sys.stderr)
        return 1
    print(
        f"solved {[t.name for t in result.tables]} with refant {result.refant}; quality "
        f"{'ok' if result.quality_ok else 'FAILED: ' + '; '.join(result.problems)}"
    )
    report(result.to_dict(), args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
