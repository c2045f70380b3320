"""Child job: apply calibration and make the quick continuum image of one chunk (casatools only).

    python -m contimg.image.job CHUNK.ms --out PREFIX [--caltable T ...] [--calset NAME]
           [--window KEY] [--imager wsclean|tclean] [--config JSON] [--report R.json]
           [--reference-catalog FILE]

Writes PREFIX.fits (Stokes I, Jy/beam), PREFIX.pbcor.fits, PREFIX.pb.fits (the chunk's effective
primary beam), PREFIX.sources.fits (the source list) and PREFIX.png, plus PREFIX.image when tclean
made it. Every product is written under a temporary name and renamed only when all of them exist; a
failure leaves none behind. The report (``--report`` and/or Dagster Pipes) is a
contimg.image.report.ImageReport.

The job's modules, in the order they run: ``msread`` (what the MS and tables hold),
``imaging_copy`` (the calibrated, averaged copy; its arrays are ``contimg.image.parts``),
``workers`` (the processes that read, average and write it), ``imagers`` (WSClean, tclean),
``publish`` (QA, primary beam, FITS, PNG); ``make`` puts them in order.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from contimg.childjobs.report import report
from contimg.image.job.errors import ImagingError

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the job with ``argv`` (default: the command line); 0 on success, 1 when the chunk cannot be imaged."""
    parser = argparse.ArgumentParser(prog="python -m contimg.image.job", description=__doc__.splitlines()[0])
    parser.add_argument("ms")
    parser.add_argument("--out", required=True)
    parser.add_argument("--caltable", action="append", default=[], help="in apply order")
    parser.add_argument("--calset", default=None)
    parser.add_argument("--window", default=None)
    parser.add_argument("--imager", choices=["wsclean", "tclean"], default=None)
    parser.add_argument("--config", default=None, help="JSON overrides of ImagingConfig")
    parser.add_argument("--report", default=None)
    parser.add_argument(
        "--reference-catalog", default=None, help="CSV or VizieR table to cross-match the sources with (science QA)"
    )
    args = parser.parse_args(argv)
    from contimg.childjobs.memory import keep_freed_memory, numpy_small_pages

    # before numpy's import, the big arrays and the worker processes
    numpy_small_pages()
    keep_freed_memory()
    from contimg.image.job.make import make_image
    from contimg.image.rules import ImagingConfig

    cfg = ImagingConfig.from_json(args.config)
    if args.imager:
        cfg = replace(cfg, imager=args.imager)
    if args.reference_catalog:  # a bad catalogue fails before the chunk is imaged, naming file and column
        from contimg.core.refcat import read_reference_catalog

        try:
            read_reference_catalog(args.reference_catalog)
        except (FileNotFoundError, ValueError) as err:
            print(f"image: error: {err}", file=sys.stderr)
            return 1
    try:
        made = make_image(args.ms, args.out, args.caltable, args.calset, args.window, cfg, args.reference_catalog)
    except ImagingError as err:
        print(f"image: error: {err}", file=sys.stderr)
        return 1
    for w in made.warnings:
        print(f"WARNING: {w}")
    print(
        f'wrote {made.image} ({made.imager}, {made.size_px} px at {made.cell_arcsec:.2f}"), '
        f"rms {made.rms_jy * 1e3:.2f} mJy/beam (expected {made.expected_rms_jy * 1e3:.2f}), "
        f"peak {made.peak_jy:.3f} Jy/beam, {made.n_sources_5sigma} sources > 5 sigma"
    )
    if made.science_qa is not None:
        sq = made.science_qa
        print(
            f"science QA {made.science_grade}: flux ratio {sq['flux_ratio']}, completeness {sq['completeness']}, "
            f"reliability {sq['reliability']}; {'; '.join(sq['problems']) or 'no problems'}"
        )
    report(made.to_dict(), args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
