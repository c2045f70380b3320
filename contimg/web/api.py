"""The JSON routes (``/api/...``), documented at ``/docs``.

Queries come from :mod:`contimg.catalogue.queries` (the ones behind ``contimg status|products|qa``) and
:mod:`contimg.catalogue.web_queries`; this module only validates parameters and shapes answers. A
missing catalogue gives empty answers, never an error: the service may start before the pipeline.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from datetime import date as date_type
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contimg.catalogue import queries as q
from contimg.catalogue import web_queries as wq
from contimg.catalogue.db import catalogue_url, redact
from contimg.ops.diskguard import check_free_space, min_free_gb_from_env
from contimg.web.files import file_url

__all__ = ["router", "WINDOW_PATTERN", "DATE_PATTERN", "status_info", "json_response", "check_date"]

WINDOW_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"  # a 5-minute window key, YYYY-MM-DDTHH:MM (UTC)
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
REPROCESS_TIMEOUT_S = 300.0  # `contimg reprocess` loads the Dagster definitions, then submits one backfill
MAX_LIMIT = 5000

router = APIRouter(prefix="/api", tags=["api"])
bearer = HTTPBearer(auto_error=False, description="CONTIMG_API_TOKEN")

Window = Annotated[
    str, Path(pattern=WINDOW_PATTERN, description="window key, YYYY-MM-DDTHH:MM (UTC)", examples=["2026-01-25T00:05"])
]
DateParam = Annotated[str | None, Query(pattern=DATE_PATTERN, description="UTC date, YYYY-MM-DD")]


def _finite(value):
    """JSON has no NaN or infinity: such floats (e.g. an rms of an all-flagged image) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def json_response(payload, status_code: int = 200) -> JSONResponse:
    """``payload`` as a JSON response, with NaN and infinities turned into null."""
    return JSONResponse(_finite(jsonable_encoder(payload)), status_code=status_code)


def check_date(text: str) -> str:
    """``text`` if it is a real calendar date ``YYYY-MM-DD``.

    Raises
    ------
    ValueError
        If it is not (the app turns this into a 422 with the message).
    """
    try:
        date_type.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"bad date {text!r}: expected a calendar date YYYY-MM-DD") from err
    return text


def status_info(con, layout, n_failures: int = 10) -> dict:
    """What ``contimg status --json`` says (same queries), over a cursor; ``con`` None means no catalogue yet."""
    guard = check_free_space([layout.products, layout.scratch], min_free_gb_from_env())
    info = {
        "catalogue": redact(url) if (url := catalogue_url()) else str(layout.catalogue),
        "catalogue_exists": con is not None,
        "free_disk_gb": {k: round(v, 2) for k, v in guard.free_gb.items()},
        "disk_guard": {"hold": guard.hold, "reason": guard.reason, "last_event": None},
    }
    if con is None:
        return {
            **info,
            "range": None,
            "groups_by_state": {},
            "backlog": {"n_chunks": 0, "by_state": {}, "oldest_window": None},
            "last_image": None,
            "active_calibration": None,
            "recent_failures": [],
        }
    lo, hi = q.resolve_range(con, None, None)
    info["disk_guard"]["last_event"] = q.last_guard_event(con)
    cal = q.active_calibration(con, datetime.now(UTC))
    if cal is not None:
        # beside the age now: how old the set was for the newest data (what matters when the stream lags)
        newest_mjd = wq.newest_ms_mid_mjd(con)
        cal["age_h_at_newest_data"] = None if newest_mjd is None else round((newest_mjd - cal["transit_mjd"]) * 24.0, 3)
    return {
        **info,
        "range": {"since": lo, "until": hi},
        "groups_by_state": q.groups_by_state(con, lo, hi),
        "backlog": q.backlog(con),
        "last_image": q.last_image(con),
        "active_calibration": cal,
        "recent_failures": q.recent_failures(con, lo, hi, n_failures),
    }


@router.get("/status", summary="Chunks by state (last 24 h of data), backlog, last image, calibration, failures, disk")
def get_status(request: Request, failures: Annotated[int, Query(ge=0, le=1000)] = 10) -> JSONResponse:
    def compute():
        with request.app.state.reader.cursor() as con:
            return jsonable_encoder(status_info(con, request.app.state.settings.layout, failures))

    return json_response(request.app.state.cache.get(("status", failures), compute))


@router.get("/products", summary="Current product files, by UTC date and type")
def get_products(
    request: Request,
    date: DateParam = None,
    type: Annotated[str | None, Query(description="ms, caltable, image or mosaic")] = None,
) -> JSONResponse:
    if date is not None:
        check_date(date)
    with request.app.state.reader.cursor() as con:
        rows = [] if con is None else q.products(con, date, type)
    products = request.app.state.settings.layout.products
    for r in rows:
        r["url"] = file_url(products, r["path"]) if str(r["path"]).endswith((".png", ".fits", ".json")) else None
    return json_response(rows)


@router.get("/qa", summary="QA figures of the current images in [since, until) (default: the last 24 h of data)")
def get_qa(
    request: Request,
    since: Annotated[str | None, Query(description="YYYY-MM-DD[THH:MM], UTC")] = None,
    until: Annotated[str | None, Query(description="YYYY-MM-DD[THH:MM], UTC, exclusive")] = None,
) -> JSONResponse:
    with request.app.state.reader.cursor() as con:
        if con is None:
            for t in (since, until):
                if t:
                    q.parse_utc(t)
            return json_response({"since": since, "until": until, "images": []})
        lo, hi = q.resolve_range(con, since, until)
        return json_response({"since": lo, "until": hi, "images": q.qa_rows(con, lo, hi)})


@router.get("/qa/thumbs", summary="Thumbnails (PNG URLs) and QA of a night's images (default: the newest night)")
def get_thumbs(request: Request, date: DateParam = None) -> JSONResponse:
    if date is not None:
        check_date(date)
    products = request.app.state.settings.layout.products
    with request.app.state.reader.cursor() as con:
        if con is None:
            return json_response({"date": date, "thumbs": []})
        date = date or wq.newest_date(con)
        rows = wq.night_thumbs(con, date) if date else []
    for r in rows:
        r["png_url"] = file_url(products, r["png_path"])
        r["chunk_url"] = f"/chunk/{r['window_key']}"
    return json_response({"date": date, "thumbs": rows})


@router.get("/groups/{window}", summary="Everything about one chunk: files, MS, calibration, image, QA, timings, runs")
def get_group(request: Request, window: Window) -> JSONResponse:
    q.parse_utc(window)  # a real time, not only the shape (422 otherwise)
    settings = request.app.state.settings
    with request.app.state.reader.cursor() as con:
        detail = None if con is None else wq.group_detail(con, window)
    if detail is None:
        raise HTTPException(status_code=404, detail=f"no chunk {window} in the catalogue")
    detail["dagster_runs"] = [{"run_id": r, "url": settings.run_url(r)} for r in detail["run_ids"]]
    detail["dagster_run_url"] = detail["dagster_runs"][0]["url"] if detail["dagster_runs"] else None
    products = settings.layout.products
    for im in detail["images"]:
        im["urls"] = {k: file_url(products, im.get(k)) for k in ("image_path", "pbcor_path", "pb_path", "png_path")}
    return json_response(detail)


@router.get("/ms_index", summary="Measurement sets with their chunk's stage, newest first")
def get_ms_index(
    request: Request,
    stage: Annotated[str | None, Query(description=", ".join(wq.GROUP_STATES))] = None,
    status: Annotated[str | None, Query(description=", ".join(wq.MS_STATUSES))] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> JSONResponse:
    with request.app.state.reader.cursor() as con:
        if con is None:
            _check_choice(stage, wq.GROUP_STATES, "stage")
            _check_choice(status, wq.MS_STATUSES, "MS status")
            return json_response([])
        return json_response(wq.ms_index(con, stage, status, limit))


def _check_choice(value, choices, what):
    if value is not None and value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose from {', '.join(choices)}")


@router.get("/calibrator_matches", summary="Calibrator transits found in chunks and the sets solved on them")
def get_calibrator_matches(request: Request) -> JSONResponse:
    with request.app.state.reader.cursor() as con:
        return json_response([] if con is None else wq.calibrator_matches(con))


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """401 unless the request carries ``Authorization: Bearer <CONTIMG_API_TOKEN>`` (and the token is set)."""
    token = request.app.state.settings.api_token
    given = credentials.credentials if credentials is not None else ""
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status_code=401,
            detail="a valid bearer token (CONTIMG_API_TOKEN) is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.post(
    "/reprocess/{window}",
    summary="Re-run one chunk through Dagster (as `contimg reprocess WINDOW --json`)",
    dependencies=[Depends(require_token)],
)
def post_reprocess(window: Window) -> JSONResponse:
    if not re.fullmatch(WINDOW_PATTERN, window):  # checked again here: the value becomes a child's argument
        raise ValueError(f"bad window {window!r}: expected YYYY-MM-DDTHH:MM")
    q.parse_utc(window)
    cmd = [sys.executable, "-m", "contimg.cli", "reprocess", window, "--json"]  # an argument list: no shell
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=REPROCESS_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise HTTPException(
            status_code=504, detail=f"contimg reprocess {window} took over {REPROCESS_TIMEOUT_S:g} s"
        ) from err
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        message = lines[-1] if lines else f"exit code {proc.returncode}"
        # exit code 1: the command refused the window (unknown window, no chunk recorded): the caller's to fix
        raise HTTPException(status_code=422 if proc.returncode == 1 else 500, detail=message)
    result = json_object_in(proc.stdout)
    if result is None:
        raise HTTPException(status_code=500, detail="contimg reprocess printed no JSON")
    return json_response(result)


def json_object_in(text: str) -> dict | None:
    """The first JSON object that starts a line of ``text``.

    ``contimg reprocess --json`` prints one object, but the Dagster code server it starts logs to the same
    stdout, before and after it.
    """
    decoder = json.JSONDecoder()
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                obj, _ = decoder.raw_decode(text, offset)
                if isinstance(obj, dict):
                    return obj
            except ValueError:
                pass
        offset += len(line)
    return None
