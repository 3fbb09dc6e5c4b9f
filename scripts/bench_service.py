#!/usr/bin/env python3
"""`gotcha serve` under load: requests/s and latency of POST /process_metadata, and memory.

Starts the service as its own process (`gotcha serve --port 0`, real models, an API key),
sends a few warm-up requests, then runs ``--clients`` concurrent clients (default 8), each
with its own keep-alive connection, posting the photo again and again for ``--seconds``
(default 60). Reports requests/s, p50/p95/max latency, every non-200 answer as an error, and
the server's resident memory after the models loaded, after warm-up, at the end and at its
peak (VmHWM). The default capacity (service.workers 2 + queue 8) admits 8 clients, so the run
must end with zero errors.

usage: .venv/bin/python scripts/bench_service.py [--seconds 60] [--clients 8]
       [--photo PATH] [--model-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PHOTO = REPO.parent / "shared" / "data" / "scenes" / "e2e-dev" / "서울31아7471.jpg"
KEY = "bench-key-0123456789"


def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


def start_server(model_dir: str | None) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "GOTCHA_SERVICE__API_KEYS": json.dumps([KEY]),
           "PYTHONPATH": str(REPO)}
    if model_dir:
        env["GOTCHA_MODEL_DIR"] = model_dir
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stderr is not None
    for _ in range(200):
        line = proc.stderr.readline()
        if not line:
            break
        if "listening on " in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep it drained
            return proc, line.split("listening on ", 1)[1].split(" ", 1)[0]
    proc.kill()
    raise SystemExit("the service did not start; run gotcha serve by hand to see why")


def post(conn: http.client.HTTPConnection, photo: bytes) -> int:
    conn.request("POST", "/process_metadata?name=bench.jpg", body=photo,
                 headers={"Content-Type": "image/jpeg", "X-API-Key": KEY})
    response = conn.getresponse()
    response.read()
    return response.status


def client(url: str, photo: bytes, until: float, latencies: list[float],
           errors: list[str]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            status = post(conn, photo)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
            continue
        if status == 200:
            latencies.append(time.perf_counter() - start)
        else:
            errors.append(f"HTTP {status}")
    conn.close()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else (values[0] if values else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--model-dir", default=os.environ.get("GOTCHA_MODEL_DIR"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    photo = args.photo.read_bytes()
    proc, url = start_server(args.model_dir)
    try:
        memory = {"loaded": rss_mb(proc.pid)}
        parts = urlsplit(url)
        warm = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        statuses = [post(warm, photo) for _ in range(args.warmup)]
        warm.close()
        if any(s != 200 for s in statuses):
            raise SystemExit(f"warm-up failed: {statuses}")
        memory["warm"] = rss_mb(proc.pid)
        latencies: list[float] = []
        errors: list[str] = []
        started = time.monotonic()
        until = started + args.seconds
        threads = [threading.Thread(target=client, args=(url, photo, until, latencies, errors))
                   for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        memory["end"] = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    figures = {
        "photo": args.photo.name, "photo_bytes": len(photo), "clients": args.clients,
        "seconds": round(elapsed, 1), "requests": len(latencies), "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "rss_mb": {"after_load": memory["loaded"]["VmRSS"], "after_warmup":
                   memory["warm"]["VmRSS"], "end": memory["end"]["VmRSS"],
                   "peak": memory["end"]["VmHWM"]},
    }
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
