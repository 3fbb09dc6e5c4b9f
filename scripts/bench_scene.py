"""Milliseconds per scene comparison on this machine: median and p95.

Pairs are real: PKLot frames of one fixed camera (a parking space as the vehicle box) and
re-shot copies of street photos. Reported per pair:
  compare            compare() of two stored signatures (what the lifecycle does per candidate)
  signature          signature() of one photo (done once per photo, when it arrives)
  new photo + compare  one signature plus one compare (the cost a second photo adds)
  both + compare     two signatures plus one compare (nothing stored beforehand)
  signature (model)  the embedding model's bare inference time inside one signature (its
                     ModelRunner's clock; embedding mode only)
with the configured embedding model and in geometry-only mode.

    .venv/bin/python scripts/bench_scene.py [--data ../shared/data] [--rounds 60] [--threads 1]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import load_config
from edge_agent.evaluation.scene_pairs import (
    camera_move,
    light_change,
    read_occupancy,
    resize_for_generation,
)
from edge_agent.results import Box
from edge_agent.vision.scene import SceneMatcher


def _pairs(data: Path, count: int, rng: np.random.Generator) -> list[tuple]:
    """(image a, box a, image b, box b) from PKLot frame pairs and re-shot street photos."""
    pairs = []
    for folder in sorted((data / "fixed").glob("pklot-*")):
        xmls = sorted(folder.glob("*.xml"))
        for xa, xb in pairwise(xmls):
            ia = cv2.imread(str(xa.with_suffix(".jpg")))
            ib = cv2.imread(str(xb.with_suffix(".jpg")))
            spaces = read_occupancy(xa)
            for space in list(spaces)[:: max(1, len(spaces) // 4)]:
                pairs.append((ia, spaces[space][0], ib, spaces[space][0]))
    for photo in sorted((data / "scenes" / "korea-a").glob("*.jpg"))[:count]:
        image, _ = resize_for_generation(cv2.imread(str(photo)))
        h, w = image.shape[:2]
        box = Box(w * 0.3, h * 0.35, w * 0.7, h * 0.85)
        moved = cv2.warpPerspective(image, camera_move((w, h), rng), (w, h))
        pairs.append((image, box, light_change(moved, rng), box))
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order[:count]]


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2),
            "p95": round(float(np.percentile(values, 95)), 2), "n": len(values)}


def _bare_ms(matcher: SceneMatcher) -> float:
    """Bare inference ms of the embedding model so far (its runner's clock; 0 without one)."""
    return matcher.embedder.runner.clock.total_ms if matcher.embedder is not None else 0.0


def bench(matcher: SceneMatcher, pairs: list[tuple], rounds: int) -> dict[str, dict[str, float]]:
    sig_ms, cmp_ms, new_ms, both_ms, bare_ms = [], [], [], [], []
    for i in range(rounds):
        ia, ba, ib, bb = pairs[i % len(pairs)]
        t0, m0 = time.perf_counter(), _bare_ms(matcher)
        sa = matcher.signature(ia, ba)
        t1, m1 = time.perf_counter(), _bare_ms(matcher)
        sb = matcher.signature(ib, bb)
        t2, m2 = time.perf_counter(), _bare_ms(matcher)
        matcher.compare(sa, sb)
        t3 = time.perf_counter()
        sig_ms += [(t1 - t0) * 1000, (t2 - t1) * 1000]
        bare_ms += [m1 - m0, m2 - m1]
        cmp_ms.append((t3 - t2) * 1000)
        new_ms.append((t3 - t1) * 1000)
        both_ms.append((t3 - t0) * 1000)
    report = {"compare": _stats(cmp_ms), "signature": _stats(sig_ms),
              "new photo + compare": _stats(new_ms), "both + compare": _stats(both_ms)}
    if matcher.embedder is not None:
        report["signature (model)"] = _stats(bare_ms)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent
                        / "shared" / "data", help="the ../shared/data folder")
    parser.add_argument("--rounds", type=int, default=60, help="pairs timed per mode")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime and OpenCV threads "
                        "(1 = one core, as on a small device or a busy host; 0 = all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    config = load_config(None)
    config.models.intra_op_threads = args.threads
    if args.threads:
        cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(3)
    pairs = _pairs(args.data, 40, rng)
    if not pairs:
        print(f"no pairs found under {args.data}", file=sys.stderr)
        return 2
    results = {}
    modes = [("embedding", config.models.scene_embedder), ("geometry only", None)]
    for mode, model in modes:
        if mode == "embedding" and not model:
            continue
        config.models.scene_embedder = model
        matcher = SceneMatcher.from_config(config)
        bench(matcher, pairs, 5)  # warm caches and thread pools
        results[mode] = bench(matcher, pairs, args.rounds)
    report = {"rounds": args.rounds, "threads": args.threads, "ms": results,
              "model": modes[0][1], "load_average": list(os.getloadavg()),
              "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.rounds} pairs per mode, {args.threads or 'all'} thread(s), {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'mode':<14} {'measure':<20} {'median ms':>10} {'p95 ms':>8}")
    for mode, rows in results.items():
        for name, s in rows.items():
            print(f"{mode:<14} {name:<20} {s['median']:>10.2f} {s['p95']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
