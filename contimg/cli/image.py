"""``contimg image``: apply calibration and make the quick continuum image of one MS (a CASA child job)."""

from __future__ import annotations

from pathlib import Path

from contimg.cli._child import run_child_job
from contimg.core.config import SettingsError
from contimg.core.settings import Layout


def add_arguments(parser) -> None:
    """Add the options of ``contimg image`` to ``parser``."""
    parser.add_argument("ms", type=Path, help="the chunk's Measurement Set")
    parser.add_argument(
        "--out", required=True, help="output prefix: PREFIX.fits, PREFIX.pbcor.fits, PREFIX.pb.fits, PREFIX.png"
    )
    parser.add_argument(
        "--caltables",
        default=None,
        help="a folder of caltables written by `contimg calibrate` (applied in its apply order), "
        "a caltable set name in the registry, or a comma-separated list of tables in apply order",
    )
    parser.add_argument("--imager", choices=["wsclean", "tclean"], default=None)
    parser.add_argument("--config", default=None, help="JSON overrides of contimg.image.rules.ImagingConfig")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument(
        "--reference-catalog",
        type=Path,
        default=None,
        help="a reference catalogue (CSV ra_deg,dec_deg,flux_jy[,spectral_index] or a VizieR-format table) to "
        "cross-match the image's sources with: flux scale, astrometry, completeness, reliability and a grade "
        "(default: CONTIMG_REFERENCE_CATALOG, if set)",
    )


def caltables_from(arg: str | None, catalogue_path: Path | None = None) -> tuple[list[str], str | None]:
    """Tables in apply order and the set name, from a `contimg calibrate` folder, a list, or a registry set name."""
    if not arg:
        return [], None
    path = Path(arg)
    if not path.exists() and "," not in arg and catalogue_path is not None and Path(catalogue_path).exists():
        from contimg.catalogue.db import connect
        from contimg.catalogue.registry import set_table_paths

        conn = connect(catalogue_path)
        try:
            paths = set_table_paths(conn, arg)
        finally:
            conn.close()
        if paths:
            return paths, arg
    if path.is_dir() and (path / "caltables.json").exists():
        import json

        info = json.loads((path / "caltables.json").read_text())
        tables = sorted(info["tables"], key=lambda t: t["order"])
        return [str(path / t["name"]) for t in tables], info.get("set_name")
    tables = [t for t in arg.split(",") if t]
    missing = [t for t in tables if not Path(t).exists()]
    if missing:
        raise FileNotFoundError(f"caltable(s) not found: {', '.join(missing)}")
    return tables, None


def check_ms(ms: Path) -> None:
    """Refuse a path that is not a Measurement Set before a child job is started on it.

    Raises
    ------
    FileNotFoundError
        If nothing is at ``ms``.
    ValueError
        If ``ms`` is not a casacore table folder (no ``table.dat`` in it).
    """
    if not ms.exists():
        raise FileNotFoundError(f"no Measurement Set at {ms}")
    if not (ms / "table.dat").is_file():
        raise ValueError(f"{ms} is not a Measurement Set (expected a casacore table folder with table.dat)")


def run(args) -> int:
    """Image the MS in a CASA child job, with the calibration tables given; 0 on success.

    Raises
    ------
    SettingsError
        If ``--config`` holds a value that is not allowed.
    """
    from contimg.image.rules import ImagingConfig

    check_ms(args.ms)
    if args.config:
        try:
            ImagingConfig.from_json(args.config)
        except SettingsError as err:
            raise SettingsError("--config", args.config, err.allowed, err.problem) from None
    reference = args.reference_catalog
    if reference is None:
        from contimg.core.config import read

        reference = read("CONTIMG_REFERENCE_CATALOG")
    if reference is not None:  # a bad catalogue is refused before the child job starts, naming file and column
        from contimg.core.refcat import read_reference_catalog

        read_reference_catalog(reference)
    layout = Layout.from_env()
    tables, calset = caltables_from(args.caltables, layout.catalogue)
    argv = ["--out", args.out]
    for t in tables:
        argv += ["--caltable", t]
    if calset:
        argv += ["--calset", calset]
    if args.imager:
        argv += ["--imager", args.imager]
    if args.config:
        argv += ["--config", args.config]
    if args.report:
        argv += ["--report", str(args.report)]
    if reference is not None:
        argv += ["--reference-catalog", str(Path(reference).absolute())]
    return run_child_job("image", [args.ms, *argv], layout)
