"""``contimg demo``: simulate about an hour of sky with a calibrator transit early on, and run the
real stream over it (daemon, sensor, per-chunk runs, calibration, images, the day's mosaic).

It works in ``CONTIMG_ROOT`` (``./data`` from the Makefile) and refuses to touch a root that holds
anything but an earlier demo.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from contimg.core.settings import Layout

DEMO_MARKER = ".contimg-demo"


def add_arguments(parser) -> None:
    parser.add_argument("--chunks", type=int, default=12, help="5-minute chunks to simulate (12 = about an hour)")
    parser.add_argument("--antennas", type=int, default=24, help="antennas (96 = the full array)")
    parser.add_argument("--channels-per-subband", type=int, default=4)
    parser.add_argument("--integrations", type=int, default=24)
    parser.add_argument("--calibrator", default="0834+555", help="VLA calibrator that transits in the first chunk")
    parser.add_argument("--start", default="2026-01-25T00:00:00", help="earliest start (moved to the transit)")
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between chunk arrivals")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument("--seed", type=int, default=110)


def _prepare_root(layout: Layout) -> None:
    root_dirs = [layout.ingest, layout.products, layout.scratch, layout.state]
    marker = layout.state / DEMO_MARKER
    has_content = any(d.exists() and any(d.iterdir()) for d in root_dirs)
    if has_content and not marker.exists():
        raise RuntimeError(
            f"{layout.state.parent} holds data that the demo did not make; point CONTIMG_ROOT at an empty folder"
        )
    for d in root_dirs:
        if d.exists():
            shutil.rmtree(d)
    layout.ensure()
    marker.write_text("made by contimg demo; safe to delete\n")


def run(args) -> int:
    """Simulate, run the stream, print what it made.

    Raises
    ------
    ValueError
        If an argument cannot make a demo (checked before the root is touched).
    RuntimeError
        If the root holds data the demo did not make, or the stream did not finish cleanly.
    """
    from contimg.sim import simulate
    from contimg_assets.instance.stream import run_stream

    for option, value in (("--chunks", args.chunks), ("--interval", args.interval), ("--timeout", args.timeout)):
        if not value > 0:
            raise ValueError(f"{option} {value:g}: allowed: a number > 0")
    layout = Layout.from_env()
    _prepare_root(layout)
    sim_dir = layout.scratch / "correlator"
    print(
        f"simulating {args.chunks} chunks ({args.antennas} antennas, 16x{args.channels_per_subband} channels, "
        f"{args.integrations} integrations), gains and noise, with {args.calibrator} transiting in the first chunk ...",
        flush=True,
    )
    truth = simulate(
        sim_dir,
        args.start,
        n_chunks=args.chunks,
        n_antennas=args.antennas,
        n_chan_per_subband=args.channels_per_subband,
        n_integrations=args.integrations,
        calibrator=args.calibrator,
        transit_chunk=0,
        seed=args.seed,
    )
    date = truth["chunks"][0]["start"][:10]
    print(
        f"first chunk starts {truth['chunks'][0]['start']}; {args.calibrator} transits at "
        f"{truth['calibrator']['transit_time']}",
        flush=True,
    )
    env = {
        "CONTIMG_SENSOR_INTERVAL_S": "5",
        "CONTIMG_GRACE_MINUTES": "2",
        "CONTIMG_MIN_FREE_GB": "2",
        "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 2048, "pixels_per_beam": 3, "niter": 2000}',
        # the simulator's sky as the reference catalogue, as an NVSS extract would be for real data: the
        # calibration's field model, the science QA's cross-match and the subtraction of sources beyond
        # the image's edge (the calibrator, 2 deg out two chunks after its transit) all use it
        "CONTIMG_REFERENCE_CATALOG": str(sim_dir / truth["sky_file"]),
    }
    outcome = run_stream(
        sim_dir,
        layout,
        interval_s=args.interval,
        timeout_s=args.timeout,
        mosaic_dates=[date],
        env_extra=env,
        log=lambda m: print(m, flush=True),
    )
    print()
    subprocess.run([sys.executable, "-m", "contimg.cli", "status"], check=False)
    print("\nproducts:")
    for p in outcome.images:
        print(f"  {p}")
    if outcome.mosaic:
        print(f"  {outcome.mosaic}")
    print("\nOpen the Dagster UI on this instance with `make ui` (http://127.0.0.1:3000).")
    print(f"SQL over the catalogue: see docs/sql.md (catalogue: {layout.catalogue}).")
    if outcome.timed_out or not outcome.images:
        why = f"timed out after {args.timeout:g} s" if outcome.timed_out else "no image was made"
        raise RuntimeError(f"the stream did not finish cleanly ({why}); see the logs in {layout.logs}")
    return 0
