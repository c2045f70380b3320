"""Load on `contimg serve`: concurrent clients on /api/status and the night page, with and without a writer.

    python benchmarks/web_load.py                       # 50 clients, 30 s per phase, a synthetic full night
    python benchmarks/web_load.py --clients 10 --seconds 10
    python benchmarks/web_load.py --root data           # over an existing layout (e.g. after `make demo`)

Loopback only (the server listens on 127.0.0.1, the clients talk to it there) and bounded: every phase stops
after ``--seconds``, the alternative after ``--alt-requests`` commands. Phases:

1. ``clients`` threads, each on its own keep-alive connection, alternate ``GET /api/status`` and
   ``GET /night/<date>`` as fast as answers come back (once with the answer cache, once without:
   ``CONTIMG_WEB_CACHE_S=0``);
2. the same while a writer process appends rows to ``stage_timings`` through the catalogue writer
   (:func:`contimg.catalogue.ingest.record_timing`, one short transaction each, every ``--write-interval`` s),
   as the pipeline does while people look at the pages;
3. the obvious alternative for the status: one ``contimg status --json`` process per request, one at a time.

Printed per phase and route: requests/s, median and p95 latency (target p95 < 200 ms), errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else: this script sends traffic to loopback only
P95_TARGET_MS = 200.0
SERVER_START_TIMEOUT_S = 60.0


def fill_synthetic_night(root: Path, date: str = "2026-01-25") -> str:
    """A layout at ``root`` with a full night (288 imaged chunks) in its catalogue, through the catalogue's writers."""
    from contimg.catalogue import connect
    from contimg.catalogue.images import record_image
    from contimg.catalogue.ingest import record_measurement_set, record_timing, upsert_group
    from contimg.catalogue.mosaics import day_windows
    from contimg.core.settings import Layout

    layout = Layout.under(root).ensure()
    conn = connect(layout.catalogue)
    for i, w in enumerate(day_windows(date)):
        upsert_group(conn, w, state="imaged", n_subbands=16, files=[])
        ms = str(layout.ms_path(w))
        record_measurement_set(
            conn,
            w,
            {
                "ms_path": ms,
                "n_rows": 10,
                "n_subbands_present": 16,
                "missing_subbands": [],
                "start_mjd": 61065.0 + i / 288,
                "mid_mjd": 61065.0 + (i + 0.5) / 288,
                "end_mjd": 61065.0 + (i + 1) / 288,
                "phase_center_ra_deg": 1.25 * i,
                "phase_center_dec_deg": 55.6,
                "pointing_dec_deg": 55.6,
                "flagged_fraction": 0.05,
                "checks": {},
            },
            size_bytes=10,
            run_id=f"run-{i}",
        )
        prefix = layout.image_prefix(w)
        record_image(
            conn,
            w,
            ms,
            {
                "image": f"{prefix}.fits",
                "pbcor": f"{prefix}.pbcor.fits",
                "pb": f"{prefix}.pb.fits",
                "png": f"{prefix}.png",
                "imager": "wsclean",
                "calibrated": True,
                "rms_jy": 1e-3 * (1 + (i % 7) / 10),
                "expected_rms_jy": 8e-4,
                "peak_jy": 0.5,
                "dynamic_range": 400.0,
                "n_sources_5sigma": 12,
                "bmaj_arcsec": 20.0,
                "bmin_arcsec": 12.0,
                "bpa_deg": 30.0,
                "cell_arcsec": 4.0,
                "size_px": 2048,
                "flagged_fraction": 0.05,
                "mid_mjd": 61065.0 + (i + 0.5) / 288,
            },
            status="ok" if i % 23 else "flagged",
            reason=None,
            run_id=f"run-{i}",
        )
        record_timing(conn, w, "image", 30.0 + i % 5, run_id=f"run-{i}")
    conn.close()
    return date


def writer_loop(root: Path, seconds: float, interval_s: float) -> None:
    """Append ``stage_timings`` rows through the catalogue writer for ``seconds``; print how many were written."""
    from contimg.catalogue import connect
    from contimg.catalogue.ingest import record_timing
    from contimg.core.settings import Layout

    conn = connect(Layout.under(root).catalogue)
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        record_timing(conn, "2026-01-25T12:00", "load_writer", 0.001 * n, detail={"n": n})
        n += 1
        time.sleep(interval_s)
    conn.close()
    print(json.dumps({"rows_written": n}), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(root: Path, cache_s: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "CONTIMG_ROOT": str(root),
        "CONTIMG_MIN_FREE_GB": "0",
        "PYTHONPATH": str(REPO),
        "CONTIMG_WEB_CACHE_S": str(cache_s),
    }
    for var in ("CONTIMG_INGEST_DIR", "CONTIMG_PRODUCTS_DIR", "CONTIMG_SCRATCH_DIR", "CONTIMG_STATE_DIR"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "contimg.cli", "serve", "--host", HOST, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/api/status")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("contimg serve did not start")


def hammer(port: int, paths: list[str], n_clients: int, seconds: float) -> dict[str, dict]:
    """``n_clients`` threads cycling through ``paths`` for ``seconds``; per path: latencies (s) and errors."""
    results = {p: {"lat": [], "errors": 0} for p in paths}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        i = k  # stagger the routes across clients
        local = {p: ([], 0) for p in paths}
        while time.monotonic() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            lat, err = local[path]
            if ok:
                lat.append(time.perf_counter() - t0)
            else:
                local[path] = (lat, err + 1)
        conn.close()
        with lock:
            for p, (lat, err) in local.items():
                results[p]["lat"].extend(lat)
                results[p]["errors"] += err

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.perf_counter() - t0
    for r in results.values():
        r["wall_s"] = wall
    return results


def summary(lat: list[float], errors: int, wall_s: float) -> dict:
    lat_ms = sorted(x * 1e3 for x in lat)
    p95 = statistics.quantiles(lat_ms, n=20)[-1] if len(lat_ms) >= 20 else (lat_ms[-1] if lat_ms else float("nan"))
    return {
        "requests": len(lat_ms),
        "req_per_s": len(lat_ms) / wall_s if wall_s else 0.0,
        "median_ms": statistics.median(lat_ms) if lat_ms else float("nan"),
        "p95_ms": p95,
        "errors": errors,
    }


def print_row(phase: str, route: str, s: dict) -> None:
    flag = "" if s["p95_ms"] < P95_TARGET_MS else "  (p95 over target)"
    print(
        f"{phase:<30} {route:<24} {s['req_per_s']:8.1f} req/s  median {s['median_ms']:7.1f} ms  "
        f"p95 {s['p95_ms']:7.1f} ms  errors {s['errors']}{flag}",
        flush=True,
    )


def alternative(root: Path, n_requests: int) -> dict:
    """``contimg status --json`` as one process per request, sequentially (what a script would do without the API)."""
    env = {**os.environ, "CONTIMG_ROOT": str(root), "CONTIMG_MIN_FREE_GB": "0", "PYTHONPATH": str(REPO)}
    lat, errors = [], 0
    t0 = time.perf_counter()
    for _ in range(n_requests):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "contimg.cli", "status", "--json"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode == 0:
            lat.append(time.perf_counter() - t)
        else:
            errors += 1
    return summary(lat, errors, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, help="an existing CONTIMG_ROOT (default: a synthetic full night in a temp dir)"
    )
    parser.add_argument("--date", help="night page date (default: the synthetic night, or the root's newest)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each loaded phase")
    parser.add_argument("--write-interval", type=float, default=0.01, help="seconds between the writer's rows")
    parser.add_argument(
        "--cache-s",
        type=float,
        default=1.0,
        help="CONTIMG_WEB_CACHE_S of the first server (a second one runs with the cache off)",
    )
    parser.add_argument("--alt-requests", type=int, default=10, help="`contimg status --json` runs for the alternative")
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)  # internal: be the writer process
    args = parser.parse_args(argv)
    if args.writer:
        writer_loop(args.writer, args.seconds, args.write_interval)
        return 0
    if not (0 < args.clients <= 200 and 0 < args.seconds <= 600 and 0 <= args.alt_requests <= 100):
        parser.error("bounded load only: 1..200 clients, up to 600 s per phase, up to 100 alternative runs")

    with tempfile.TemporaryDirectory(prefix="contimg-webload-") as tmp:
        root = args.root.absolute() if args.root else Path(tmp) / "contimg"
        date = args.date
        if args.root is None:
            t0 = time.perf_counter()
            date = fill_synthetic_night(root)
            print(f"synthetic night {date}: 288 chunks written in {time.perf_counter() - t0:.1f} s", flush=True)
        elif date is None:
            from contimg.catalogue.duck import open_duckdb
            from contimg.catalogue.web_queries import newest_date
            from contimg.core.settings import Layout

            date = newest_date(open_duckdb(Layout.under(root).catalogue))
        paths = ["/api/status", f"/night/{date}"]
        print(
            f"{args.clients} clients on 127.0.0.1, {args.seconds:g} s per phase, {os.cpu_count()} CPUs on this machine",
            flush=True,
        )
        for cache_s in (args.cache_s, 0.0):
            label = f"cache {cache_s:g} s" if cache_s else "cache off"
            server, port = start_server(root, cache_s)
            try:
                hammer(port, paths, min(args.clients, 4), 2.0)  # warm-up: imports, DuckDB attach, first figures
                res = hammer(port, paths, args.clients, args.seconds)
                for p in paths:
                    print_row(f"{label}, no writer", p, summary(res[p]["lat"], res[p]["errors"], res[p]["wall_s"]))
                writer = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--writer",
                        str(root),
                        "--seconds",
                        str(args.seconds + 2),
                        "--write-interval",
                        str(args.write_interval),
                    ],
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                    stdout=subprocess.PIPE,
                    text=True,
                )
                time.sleep(1.0)
                res = hammer(port, paths, args.clients, args.seconds)
                out, _ = writer.communicate(timeout=args.seconds + 60)
                for p in paths:
                    print_row(f"{label}, with a writer", p, summary(res[p]["lat"], res[p]["errors"], res[p]["wall_s"]))
                rows = json.loads(out.strip().splitlines()[-1])["rows_written"] if writer.returncode == 0 else "FAILED"
                print(f"{'':<30} writer: {rows} rows appended meanwhile (exit {writer.returncode})", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
        if args.alt_requests:
            print_row("alternative, sequential", "contimg status --json", alternative(root, args.alt_requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
