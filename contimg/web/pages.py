"""The pages for people: the night (``/night/{date}``), one chunk (``/chunk/{window}``), calibration history.

Built from the same queries as the API; HTML from :mod:`contimg.web.html` (everything escaped), figures
from :mod:`contimg.web.plots` (PNG made here) or the pipeline's own PNGs under ``/files``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from contimg.catalogue import queries as q
from contimg.catalogue import web_queries as wq
from contimg.catalogue.mosaics import day_windows
from contimg.web import plots
from contimg.web.api import DATE_PATTERN, WINDOW_PATTERN, check_date
from contimg.web.files import file_url, resolve_product
from contimg.web.html import chunk_href, e, fmt, link, mjy, night_strip, page, table

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
DateStr = Annotated[str, Path(pattern=DATE_PATTERN)]
WindowStr = Annotated[str, Path(pattern=WINDOW_PATTERN)]


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


def _bandpass_url(products, tables: list[dict]) -> str | None:
    """The bandpass plot the calibrate job wrote beside a set's tables (``<set>.bandpass.png``), as a URL."""
    for t in tables:
        folder = FsPath(t["path"]).parent
        for png in sorted(folder.glob("*.bandpass.png")) if folder.is_dir() else []:
            url = file_url(products, str(png))
            if url:
                return url
    return None


@router.get("/")
def index(request: Request):
    with request.app.state.reader.cursor() as con:
        newest = wq.newest_date(con) if con is not None else None
    if newest:
        return RedirectResponse(f"/night/{newest}", status_code=307)
    return _html(
        page(
            "No data yet",
            '<p class="muted">The catalogue holds no chunk yet: nothing has been processed '
            f"(catalogue {e(request.app.state.settings.layout.catalogue)}).</p>",
        )
    )


@router.get("/night/{date}/rms.png")
def night_rms(request: Request, date: DateStr) -> Response:
    check_date(date)

    def compute() -> bytes:
        with request.app.state.reader.cursor() as con:
            rows = [] if con is None else wq.night_thumbs(con, date)
        return plots.rms_trend_png(date, rows)

    png = request.app.state.cache.get(("rms.png", date), compute)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/night/{date}")
def night(request: Request, date: DateStr) -> HTMLResponse:
    check_date(date)
    return _html(request.app.state.cache.get(("night", date), lambda: _night_page(request, date)))


def _night_page(request: Request, date: str) -> str:
    products = request.app.state.settings.layout.products
    with request.app.state.reader.cursor() as con:
        if con is None:
            windows, thumbs, calsets, mosaic, days = {}, [], [], None, []
        else:
            windows = wq.night_windows(con, date)
            thumbs = wq.night_thumbs(con, date)
            calsets = wq.night_calsets(con, date)
            mosaic = wq.current_mosaic(con, date)
            days = [r[0] for r in con.execute("SELECT date FROM status_per_day ORDER BY date DESC LIMIT 14").fetchall()]
    n_ok = sum(1 for t in thumbs if t["status"] == "ok")
    n_flag = sum(1 for t in thumbs if t["status"] == "flagged")
    n_failed = sum(1 for w in windows.values() if w["state"] == "failed")
    body = [
        '<nav class="days">nights: ' + " ".join(link(f"/night/{d}", d) for d in days) + "</nav>",
        f"<p>{len(windows)} of 288 windows seen; {n_ok} images ok, {n_flag} flagged, {n_failed} chunks failed.</p>",
        "<h2>Windows</h2>",
        night_strip(date, windows, day_windows(date)),
        "<h2>Image noise over the night</h2>",
        f'<img src="/night/{e(date)}/rms.png" alt="rms trend of {e(date)}" width="900" height="280">',
        "<h2>Images</h2>",
    ]
    figs = []
    for t in thumbs:
        url = file_url(products, t["png_path"])
        colour = "#2e9e44" if t["status"] == "ok" else "#f0a020"
        img = f'<img src="{e(url)}" alt="{e(t["window_key"])}">' if url else '<p class="muted">no PNG</p>'
        figs.append(
            f'<figure><a class="thumb" href="{e(chunk_href(t["window_key"]))}">{img}</a><figcaption>'
            f'<b>{e(t["window_key"][11:])}</b> <span class="badge" style="background:{colour}">'
            f"{e(t['status'])}</span><br>rms {mjy(t['rms_jy'])} mJy (x{fmt(_ratio(t), '.2g')} radiometer), "
            f"DR {fmt(t['dynamic_range'], '.0f')}, {fmt(t['n_sources'])} src</figcaption></figure>"
        )
    body.append(f'<div class="wall">{"".join(figs)}</div>' if figs else '<p class="muted">no images this night</p>')
    body.append("<h2>Calibration sets used</h2>")
    for c in calsets:
        c["set"] = link("/calibration#" + c["set_name"], c["set_name"])
    body.append(
        table(
            calsets,
            [
                ("set", "set"),
                ("calibrator", "calibrator"),
                ("calibrator_window", "transit window"),
                ("status", "status"),
                ("n_images", "images"),
                ("first_window", "first"),
                ("last_window", "last"),
            ],
            raw={"set"},
            empty="no calibrated images this night",
        )
    )
    body.append("<h2>Mosaic</h2>")
    if mosaic:
        png = file_url(products, mosaic["png_path"])
        fits_url = file_url(products, mosaic["path"])
        body.append(
            f"<p>{fmt(mosaic['n_images'])} images of {fmt(mosaic['n_possible'])} windows "
            f"(coverage {fmt(100 * (mosaic['coverage'] or 0), '.1f')} %), {link(fits_url, 'FITS')}</p>"
        )
        if png:
            body.append(
                f'<a href="{e(png)}"><img src="{e(png)}" alt="mosaic of {e(date)}" style="max-width:700px"></a>'
            )
    else:
        body.append('<p class="muted">no current mosaic for this night</p>')
    return page(f"Night of {date}", "".join(body))


def _ratio(row: dict):
    if row.get("rms_jy") is None or not row.get("expected_rms_jy"):
        return None
    return row["rms_jy"] / row["expected_rms_jy"]


@router.get("/chunk/{window}")
def chunk(request: Request, window: WindowStr) -> HTMLResponse:
    q.parse_utc(window)
    settings = request.app.state.settings
    products = settings.layout.products
    with request.app.state.reader.cursor() as con:
        d = None if con is None else wq.group_detail(con, window)
    if d is None:
        raise HTTPException(status_code=404, detail=f"no chunk {window} in the catalogue")
    g, im, cal = d["group"] or {}, d["current_image"], d["calibration"]
    body = [
        (
            f"<p>{link('/night/' + window[:10], 'night of ' + window[:10])} &middot; state <b>{e(g.get('state'))}</b>"
            f"{' &middot; calibrator ' + e(g['calibrator']) if g.get('calibrator') else ''}"
            f"{' &middot; error: ' + e(g['error']) if g.get('error') else ''}</p>"
        )
    ]
    runs = " ".join(link(settings.run_url(r), r[:8], title=r) for r in d["run_ids"])
    body.append(f"<p>Dagster runs: {runs or '<span class=muted>none recorded</span>'}</p>")
    body.append('<div class="cols">')
    if im:
        png = file_url(products, im["png_path"])
        body.append(
            f'<div><h2>Image</h2><a href="{e(png)}"><img src="{e(png)}" alt="image of {e(window)}" '
            f'width="420" height="420"></a></div>'
            if png
            else "<div><h2>Image</h2><p>no PNG</p></div>"
        )
        qa = [
            ("status", im["status"]),
            ("reason", im["reason"]),
            ("rms (mJy/beam)", mjy(im["rms_jy"])),
            ("radiometer rms (mJy/beam)", mjy(im["expected_rms_jy"])),
            ("rms / radiometer", fmt(_ratio(im), ".3g")),
            ("peak (Jy/beam)", fmt(im["peak_jy"])),
            ("dynamic range", fmt(im["dynamic_range"], ".0f")),
            ("sources > 5 sigma", fmt(im["n_sources"])),
            (
                "beam",
                (f'{fmt(im["bmaj_arcsec"], ".1f")}" x {fmt(im["bmin_arcsec"], ".1f")}" PA {fmt(im["bpa_deg"], ".0f")}'),
            ),
            ("flagged fraction", fmt(im["flagged_fraction"], ".3f")),
            ("imager", im["imager"]),
            ("calibration set", im["calset"] or "none (uncalibrated)"),
        ]
        body.append(
            "<div><h2>QA</h2>" + table([{"k": k, "v": v} for k, v in qa], [("k", "figure"), ("v", "value")]) + "</div>"
        )
        header = []
        fits_path = resolve_product(products, _rel(products, im["image_path"]))
        if fits_path is not None:
            try:
                header = plots.header_essentials(fits_path)
            except OSError as err:
                header = [{"key": "error", "value": str(err), "meaning": ""}]
        body.append(
            "<div><h2>FITS header</h2>"
            + table(
                header,
                [("key", "keyword"), ("value", "value"), ("readable", ""), ("meaning", "")],
                empty="no FITS image",
            )
            + "</div>"
        )
    else:
        body.append('<div><h2>Image</h2><p class="muted">no current image</p></div>')
    body.append("</div>")
    body.append("<h2>Calibration</h2>")
    if cal:
        bp = _bandpass_url(products, cal["tables"])
        body.append(
            f"<p>set {link('/calibration#' + cal['set_name'], cal['set_name'])} on {e(cal['calibrator'])} "
            f"(transit window {link(chunk_href(cal['window_key']), cal['window_key'])}), "
            f"status {e(cal['status'])}, "
            f"refant {e(cal['refant'])}</p>"
        )
        body.append(table(cal["tables"], [("apply_order", "order"), ("table_type", "type"), ("path", "path")]))
        if bp:
            body.append(f'<p><img src="{e(bp)}" alt="bandpass of {e(cal["set_name"])}" style="max-width:800px"></p>')
    else:
        body.append('<p class="muted">no calibration applied</p>')
    body.append("<h2>Stage timings</h2>")
    body.append(
        table(
            d["stage_timings"],
            [("stage", "stage"), ("seconds", "seconds"), ("created_at", "finished")],
            empty="no timings recorded",
        )
    )
    body.append("<h2>Files</h2>")
    prod_rows = []
    for version in d["images"]:
        for key in ("image_path", "pbcor_path", "pb_path", "png_path"):
            if version.get(key):
                prod_rows.append(
                    {
                        "what": f"{key[:-5]} ({version['status']})",
                        "file": link(file_url(products, version[key]), version[key]),
                    }
                )
    for ms in d["measurement_sets"]:
        prod_rows.append({"what": f"measurement set ({ms['status']})", "file": e(ms["path"])})
    body.append(table(prod_rows, [("what", "product"), ("file", "path")], raw={"file"}, empty="no products"))
    body.append(
        table(
            d["files"],
            [
                ("subband", "subband"),
                ("name", "file"),
                ("status", "status"),
                ("reason", "reason"),
                ("size_bytes", "bytes"),
            ],
            empty="no subband files recorded",
        )
    )
    return _html(page(f"Chunk {window}", "".join(body)))


def _rel(products, path: str | None) -> str:
    url = file_url(products, path)
    return url[len("/files/") :] if url else ""


@router.get("/calibration")
def calibration(request: Request) -> HTMLResponse:
    products = request.app.state.settings.layout.products
    with request.app.state.reader.cursor() as con:
        history = [] if con is None else wq.calibration_history(con)
        matches = [] if con is None else wq.calibrator_matches(con)
        tables = {h["set_name"]: wq.calibration_set(con, h["set_name"])["tables"] for h in history}
    rows = []
    for h in history:
        bp = _bandpass_url(products, tables.get(h["set_name"], []))
        rows.append(
            {
                **h,
                "set": f'<span id="{e(h["set_name"])}">{e(h["set_name"])}</span>',
                "valid": f"{_utc(h['valid_start_mjd'])} .. {_utc(h['valid_end_mjd'])}",
                "window": link(chunk_href(h["window_key"]), h["window_key"]),
                "bandpass": (f'<a href="{e(bp)}"><img src="{e(bp)}" alt="bandpass" width="240"></a>' if bp else "-"),
            }
        )
    body = [
        "<h2>Calibration sets (newest transit first)</h2>",
        table(
            rows,
            [
                ("set", "set"),
                ("calibrator", "calibrator"),
                ("window", "transit window"),
                ("transit_utc", "transit (UTC)"),
                ("valid", "valid (UTC)"),
                ("status", "status"),
                ("table_types", "tables"),
                ("refant", "refant"),
                ("n_images", "images"),
                ("reason", "reason"),
                ("bandpass", "bandpass"),
            ],
            raw={"set", "window", "bandpass"},
            empty="no calibration solved yet",
        ),
        "<h2>Calibrator transits found</h2>",
        table(
            [{**m, "window": link(chunk_href(m["window_key"]), m["window_key"])} for m in matches],
            [
                ("window", "window"),
                ("calibrator", "calibrator"),
                ("offset_deg", "offset (deg)"),
                ("pb_flux_jy", "apparent flux (Jy)"),
                ("set_name", "set"),
                ("set_status", "set status"),
            ],
            raw={"window"},
            empty="no calibrator transit found yet",
        ),
    ]
    return _html(page("Calibration history", "".join(body)))


def _utc(mjd: float | None) -> str:
    """``YYYY-MM-DD HH:MM`` (UTC) of an MJD."""
    if mjd is None:
        return "?"
    return (datetime(1970, 1, 1) + timedelta(days=mjd - q.MJD_UNIX_EPOCH)).strftime("%Y-%m-%d %H:%M")
