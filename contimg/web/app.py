"""The application factory of ``contimg serve``.

Why FastAPI on uvicorn: it is the standard Python web stack for a small JSON service (Starlette and
uvicorn already come with dagster-webserver), it validates query parameters from type hints (a bad
parameter is a 422 with a message, not a traceback) and it writes the OpenAPI description of every
route itself, browsable at ``/docs``. Swagger UI is served from the installed ``swagger-ui-bundle``
package, so neither the docs nor the pages load anything from the network.

Everything is read-only except ``POST /api/reprocess/{window}``, which needs ``CONTIMG_API_TOKEN``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from contimg import __version__
from contimg.catalogue.db import catalogue_url
from contimg.core.config import read
from contimg.core.settings import Layout
from contimg.web.cache import MIN_AGE_S, AnswerCache
from contimg.web.reader import CatalogueReader

__all__ = ["WebSettings", "create_app", "DEFAULT_DAGSTER_URL"]

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class WebSettings:
    """What the service reads from the environment.

    ``dagster_url`` (``CONTIMG_DAGSTER_URL``) is where run links point; ``api_token``
    (``CONTIMG_API_TOKEN``) guards the one route that changes anything: unset, that route always answers 401.
    ``cache_s`` (``CONTIMG_WEB_CACHE_S``) is how long the status and night page may lag a writing pipeline
    (:mod:`contimg.web.cache`; 0 turns the cache off).
    """

    layout: Layout
    dagster_url: str = DEFAULT_DAGSTER_URL  # the same default as the setting's
    api_token: str | None = None
    cache_s: float = MIN_AGE_S

    @classmethod
    def from_env(cls, environ: dict | None = None) -> WebSettings:
        """The settings from ``environ`` (default ``os.environ``), checked by :mod:`contimg.core.config`."""
        return cls(
            layout=Layout.from_env(environ),
            dagster_url=read("CONTIMG_DAGSTER_URL", environ),
            api_token=read("CONTIMG_API_TOKEN", environ),
            cache_s=read("CONTIMG_WEB_CACHE_S", environ),
        )

    def run_url(self, run_id: str) -> str:
        """The Dagster UI's page of run ``run_id``."""
        return f"{self.dagster_url}/runs/{run_id}"


def _swagger_assets() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """The FastAPI application over ``settings.layout`` (default: :meth:`WebSettings.from_env`)."""
    from contimg.web import api, files, pages

    settings = settings or WebSettings.from_env()
    url = catalogue_url()  # cluster mode: the catalogue is in Postgres
    reader = CatalogueReader(settings.layout.catalogue, url=url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        reader.close()

    app = FastAPI(
        title="contimg monitoring API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        description="Read-only views of the DSA-110 continuum-imaging catalogue and products; "
        "the pages for people are at / (the newest night).",
    )
    app.state.settings = settings
    app.state.reader = reader
    app.state.cache = AnswerCache(None if url else settings.layout.catalogue, min_age_s=settings.cache_s)
    app.mount("/static/swagger", StaticFiles(directory=_swagger_assets()), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title}: docs",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    @app.exception_handler(ValueError)
    def bad_value(request: Request, err: ValueError) -> JSONResponse:
        # the engine's checks (times, ranges, choices) raise ValueError with a message that names the value
        return JSONResponse({"detail": str(err)}, status_code=422)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(files.router)
    return app
