"""``contimg convert``: one chunk's subband files -> one Measurement Set (runs the CASA-side child job)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from contimg.childjobs.env import casa_child_env, child_command
from contimg.core.settings import Layout


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="the chunk's *_sbNN.hdf5 files")
    parser.add_argument("--out", required=True, type=Path, help="the Measurement Set to write")
    parser.add_argument("--report", type=Path, default=None, help="write the job's metrics here (JSON)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="build the MS here (same file system as --out) before renaming it into place")


def run(args) -> int:
    layout = Layout.from_env()
    argv = child_command("convert", *args.files, "--out", args.out)
    if args.report:
        argv += ["--report", str(args.report)]
    if args.scratch:
        argv += ["--scratch", str(args.scratch)]
    return subprocess.call(argv, env=casa_child_env(layout.casa_state))
