"""contimg serve: the monitoring API and the morning QA pages (read-only) over the products catalogue.

Listens on loopback by default; put an authenticating reverse proxy in front to reach it from elsewhere.
Settings: ``CONTIMG_ROOT`` (and the per-folder overrides) locate the catalogue and products,
``CONTIMG_DAGSTER_URL`` is where run links point, ``CONTIMG_API_TOKEN`` enables ``POST /api/reprocess``.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_arguments(parser) -> None:
    """The ``contimg serve`` options: address and port (loopback by default), log level."""
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: loopback only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default warning: no line per request)",
    )


def run(args) -> int:
    """Serve the monitoring API and pages with uvicorn until interrupted; 0 on a clean stop."""
    import uvicorn

    from contimg.web import WebSettings, create_app

    if not 0 < args.port < 65536:
        raise ValueError(f"bad --port {args.port}: expected 1..65535")
    settings = WebSettings.from_env()
    print(
        f"contimg serve: http://{args.host}:{args.port}/ (API docs at /docs) over {settings.layout.catalogue}",
        flush=True,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
