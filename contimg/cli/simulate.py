"""``contimg simulate``: write simulated DSA-110 UVH5 chunks and truth.json."""

from __future__ import annotations

import shutil
from pathlib import Path


def add_arguments(parser) -> None:
    """The options of ``contimg simulate``."""
    parser.add_argument("--out", required=True, type=Path, help="folder for the UVH5 files and truth.json")
    parser.add_argument("--start", required=True, help="UTC start of the first chunk, ISO format")
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--antennas", type=int, default=96)
    parser.add_argument("--channels-per-subband", type=int, default=48)
    parser.add_argument("--integrations", type=int, default=24)
    parser.add_argument(
        "--dec", type=float, default=None, help="pointing declination (deg); default 55 or the calibrator's"
    )
    parser.add_argument(
        "--sky",
        default=None,
        help="CSV (ra_deg,dec_deg,flux_jy[,spectral_index,maj_arcsec,min_arcsec,pa_deg,name,lightcurve]) or 'counts' "
        "(a seeded realistic field from the 1.4 GHz source counts)",
    )
    parser.add_argument("--calibrator", default=None, help="VLA calibrator to transit in --transit-chunk")
    parser.add_argument("--transit-chunk", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-noise", action="store_true")
    parser.add_argument("--no-gains", action="store_true")
    parser.add_argument("--faults", default="", help="e.g. truncate@0:3,missing@1:7,duplicate@0:2,nan@2:5,badname@1:9")
    parser.add_argument("--delays", action="store_true", help="per-antenna, per-pol cable delays (seeded)")
    parser.add_argument("--max-delay-ns", type=float, default=10.0, help="delays uniform in +- this (ns; default 10)")
    parser.add_argument("--drift", action="store_true", help="gains drift in time (within and between chunks)")
    parser.add_argument("--rfi", action="store_true", help="narrowband RFI, broadband bursts and a dead input")
    parser.add_argument("--day-index", type=float, default=None, help="day at which the light curves are evaluated")
    parser.add_argument(
        "--lightcurve-epoch", default=None, help="UTC day 0 of the light curves (the day is then counted from it)"
    )


def check_arguments(args) -> None:
    """Refuse arguments that cannot simulate anything, before the output folder is made.

    Raises
    ------
    ValueError
        Naming the option, the value received and what is allowed.
    FileNotFoundError
        If ``--sky`` names no file.
    """
    from astropy.time import Time

    from contimg.sim.faults import parse_faults

    try:
        Time(args.start, scale="utc")
    except ValueError:
        raise ValueError(
            f"--start {args.start!r} is not a time; allowed: a UTC time in ISO format, e.g. 2026-01-25T00:00:00"
        ) from None
    for option, value, low in (
        ("--chunks", args.chunks, 1),
        ("--antennas", args.antennas, 3),
        ("--channels-per-subband", args.channels_per_subband, 1),
        ("--integrations", args.integrations, 1),
    ):
        if value < low:
            raise ValueError(f"{option} {value}: allowed: a whole number >= {low}")
    if not 0 <= args.transit_chunk < args.chunks:
        raise ValueError(f"--transit-chunk {args.transit_chunk}: allowed: 0 to --chunks - 1 ({args.chunks - 1})")
    if args.dec is not None and not -90.0 <= args.dec <= 90.0:
        raise ValueError(f"--dec {args.dec:g}: allowed: a declination from -90 to 90 deg")
    if args.sky is not None and args.sky != "counts" and not Path(args.sky).is_file():
        raise FileNotFoundError(f"--sky {args.sky}: no such file; allowed: a CSV file or 'counts'")
    if not 0.0 <= args.max_delay_ns <= 1000.0:
        raise ValueError(f"--max-delay-ns {args.max_delay_ns:g}: allowed: 0 to 1000 ns")
    if args.max_delay_ns != 10.0 and not args.delays:
        raise ValueError(f"--max-delay-ns {args.max_delay_ns:g} needs --delays")
    if args.day_index is not None and args.lightcurve_epoch is not None:
        raise ValueError(
            f"--day-index {args.day_index:g} and --lightcurve-epoch {args.lightcurve_epoch}: allowed: one of them"
        )
    if args.lightcurve_epoch is not None:
        try:
            Time(args.lightcurve_epoch, scale="utc")
        except ValueError:
            raise ValueError(
                f"--lightcurve-epoch {args.lightcurve_epoch!r} is not a time; allowed: a UTC time in ISO format"
            ) from None
    for fault in parse_faults(args.faults):
        if fault.chunk >= args.chunks:
            raise ValueError(
                f"--faults {args.faults!r}: {fault} names chunk {fault.chunk}; allowed: 0 to {args.chunks - 1}"
            )
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")


def run(args) -> int:
    """Simulate as the options say; print what was written."""
    from contimg.sim import read_sky_csv, simulate

    check_arguments(args)
    sky = "counts" if args.sky == "counts" else (read_sky_csv(Path(args.sky)) if args.sky else None)
    made_out = not args.out.exists()
    try:
        truth = simulate(
            args.out,
            args.start,
            n_chunks=args.chunks,
            n_antennas=args.antennas,
            n_chan_per_subband=args.channels_per_subband,
            n_integrations=args.integrations,
            dec_deg=args.dec,
            sky=sky,
            calibrator=args.calibrator,
            transit_chunk=args.transit_chunk,
            seed=args.seed,
            noise=not args.no_noise,
            gains=not args.no_gains,
            faults=args.faults,
            delays=args.delays,
            max_delay_ns=args.max_delay_ns,
            drift=args.drift,
            rfi=args.rfi,
            day_index=args.day_index,
            lightcurve_epoch=args.lightcurve_epoch,
        )
    except BaseException:
        if made_out:  # a failed simulation leaves no half-written folder of its own behind
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    n_files = sum(1 for _ in Path(args.out).glob("*.hdf5"))
    first = truth["chunks"][0]["start"]
    print(f"wrote {n_files} files for {args.chunks} chunk(s) to {args.out}; first chunk starts {first}")
    print(f"sky: {len(truth['sky'])} sources ({truth['sky_model']}) in {args.out / truth['sky_file']}")
    if truth["calibrator"]:
        cal = truth["calibrator"]
        print(
            f"calibrator {cal['name']} ({cal['flux_jy']} Jy) transits at {cal['transit_time']} "
            f"in chunk {cal['transit_chunk']}"
        )
    return 0
