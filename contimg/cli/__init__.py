"""The ``contimg`` command: every stage by hand on paths, and the operator's views of the catalogue.

Each subcommand lives in ``contimg/cli/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; only the chosen one is imported, so ``contimg status`` stays light.

Two commands drive a Dagster instance (``demo`` runs the stream, ``reprocess`` submits backfills): they live
on the Dagster side, in ``contimg_assets/instance/``, and are named here by module path only, so the engine
never imports Dagster (the layer test checks imports, not strings).

Errors: :func:`main` is the one place that turns a failure into one line on stderr,
``contimg <command>: error: <what went wrong>``, and a non-zero exit (1; 2 for a wrong command line),
without a traceback. Every ``CONTIMG_*`` setting is checked before the command starts. With
``CONTIMG_DEBUG=1`` the error is raised again with its traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from contimg.core.config import Settings, SettingsError, read

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
    "photometry": "forced photometry of reference sources in primary-beam-corrected images",
    "variability": "daily light curves and the variability search from a photometry table",
    "catalogue-copy": "copy the SQLite catalogue into PostgreSQL (moving to cluster mode)",
}


# where a command's module lives when it is not contimg.cli.<name>
COMMAND_MODULES = {
    "reprocess": "contimg_assets.instance.reprocess",
    "demo": "contimg_assets.instance.demo",
    "catalogue-copy": "contimg.cli.catalogue_copy",
}


def command_module(name: str) -> str:
    """Import path of the module implementing command ``name``."""
    return COMMAND_MODULES.get(name, f"contimg.cli.{name}")


# Errors whose message says it all; any other kind is prefixed with its class name (a KeyError's message
# alone is just the key).
SELF_EXPLAINING = (ValueError, OSError, RuntimeError)
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``contimg image: error: ...``), exit status 2."""

    def error(self, message: str):
        """Exit with status 2 and the usage error on one stderr line, pointing to ``--help``."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_line(command: str, err: BaseException) -> str:
    """The one stderr line of a failed command: ``contimg COMMAND: error: MESSAGE``."""
    message = _one_line(err) or "(no message)"
    if not isinstance(err, SELF_EXPLAINING):
        message = f"{type(err).__name__}: {message} (CONTIMG_DEBUG=1 shows the traceback)"
    return f"contimg {command}: error: {message}"


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``contimg`` parser, listing the commands (each parses its own arguments)."""
    parser = argparse.ArgumentParser(prog="contimg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, helptext in COMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``contimg`` command; its exit status.

    Any error of the command (an engine error, a bad ``CONTIMG_*`` setting, a failed child job, an
    unreadable catalogue) becomes one line on stderr and exit status 1; a wrong command line exits 2.
    ``CONTIMG_DEBUG=1`` raises the error instead, with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    if argv[0] not in COMMANDS:
        print(
            f"contimg: error: unknown command {argv[0]!r}; allowed: {', '.join(COMMANDS)} (see contimg --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    name = argv[0]
    try:
        debug = read("CONTIMG_DEBUG")
    except SettingsError as err:
        print(error_line(name, err), file=sys.stderr)
        return EXIT_ERROR
    try:
        module = importlib.import_module(command_module(name))
    except ModuleNotFoundError as err:
        if err.name == command_module(name):
            print(f"contimg {name}: error: not available in this build", file=sys.stderr)
            return EXIT_USAGE
        raise
    parser = OneLineParser(prog=f"contimg {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        Settings.from_env()  # every setting checked before the command does anything
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"contimg {name}: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # the one place where any failure becomes one line (CONTIMG_DEBUG=1: traceback)
        if debug:
            raise
        print(error_line(name, err), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
