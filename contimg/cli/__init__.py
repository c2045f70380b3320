"""The ``contimg`` command: every stage by hand on paths, and the operator's views of the catalogue.

Each subcommand lives in ``contimg/cli/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen one is imported, so ``contimg status`` stays light.

Two commands drive a Dagster instance (``demo`` runs the stream, ``reprocess`` submits backfills): they live
on the Dagster side, in ``contimg_assets/instance/``, and are named here by module path only, so the engine
never imports Dagster (the layer test checks imports, not strings).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "simulate": "write DSA-110 UVH5 subband files of a simulated sky (and truth.json)",
    "convert": "convert one chunk's subband files to a Measurement Set",
    "calibrate": "solve bandpass and gain tables on a calibrator chunk",
    "image": "apply calibration and make the quick continuum image with QA",
    "mosaic": "primary-beam-weighted mosaic of images",
    "status": "pipeline status from the catalogue",
    "products": "list products by date and type",
    "qa": "per-image QA figures",
    "reprocess": "re-run chunks through Dagster",
    "cleanup": "housekeeping: scratch, old measurement sets",
    "demo": "run the whole stream on simulated data",
    "serve": "the monitoring API and the morning QA pages (read-only web service)",
}


# where a command's module lives when it is not contimg.cli.<name>
COMMAND_MODULES = {
    "reprocess": "contimg_assets.instance.reprocess",
    "demo": "contimg_assets.instance.demo",
}


def command_module(name: str) -> str:
    """Import path of the module implementing command ``name``."""
    return COMMAND_MODULES.get(name, f"contimg.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contimg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, helptext in COMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name = argv[0]
    try:
        module = importlib.import_module(command_module(name))
    except ModuleNotFoundError as err:
        if err.name == command_module(name):
            print(f"contimg {name}: not available in this build", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"contimg {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"contimg {name}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
