"""``contimg convert``: one chunk's subband files -> one Measurement Set (runs the CASA-side child job)."""

from __future__ import annotations

from pathlib import Path

from contimg.cli._child import run_child_job
from contimg.core.settings import Layout


def add_arguments(parser) -> None:
    """Add the options of ``contimg convert`` to ``parser``."""
    parser.add_argument("files", nargs="+", type=Path, help="the chunk's *_sbNN.hdf5 files")
    parser.add_argument("--out", required=True, type=Path, help="the Measurement Set to write")
    parser.add_argument("--report", type=Path, default=None, help="write the job's metrics here (JSON)")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="build the MS here (same file system as --out) before renaming it into place",
    )


def run(args) -> int:
    """Convert the chunk's subband files in a CASA child job; 0 on success.

    Raises
    ------
    FileNotFoundError
        If a subband file does not exist.
    """
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"subband file(s) not found: {', '.join(missing)}")
    layout = Layout.from_env()
    argv = [*args.files, "--out", args.out]
    if args.report:
        argv += ["--report", str(args.report)]
    if args.scratch:
        argv += ["--scratch", str(args.scratch)]
    return run_child_job("convert", argv, layout)
