"""Benchmark the vision pipeline on a folder of photos (default: the korea-a scenes).

Prints per-stage median and p95 wall time, photos/s, peak RSS, and the ratio of pipeline time
to the sum of bare model inference times (time inside onnxruntime's ``run``, read off each
model's ModelRunner clock by the pipeline): the glue around the models (decode excluded /
included) should cost little, goal <= 1.15.

    python scripts/bench_vision.py [--scenes DIR] [--repeat 2] [--json-out bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.config import load_config  # noqa: E402
from edge_agent.errors import GotchaError  # noqa: E402
from edge_agent.vision.pipeline import STAGES, VisionPipeline  # noqa: E402

DEFAULT_SCENES = REPO.parent / "shared" / "data" / "scenes" / "korea-a"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if platform.system() == "Linux" else usage / 1024 / 1024


def run(args: argparse.Namespace) -> dict[str, object]:
    config = load_config(args.config)
    if args.models_dir:
        config.models.dir = args.models_dir
    if args.threads is not None:
        config.models.intra_op_threads = args.threads
    if args.plate_reader:
        config.models.plate_reader = args.plate_reader
    start = time.perf_counter()
    pipeline = VisionPipeline.from_config(config, with_reader=not args.no_reader)
    load_s = time.perf_counter() - start
    photos = sorted(p for p in Path(args.scenes).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.limit:
        photos = photos[: args.limit]
    for path in photos[: args.warmup]:  # first calls of each pass allocate; not measured
        pipeline.process_path(path)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    bare: dict[str, list[float]] = {s: [] for s in ("vehicle", "plate_locate", "plate_read",
                                                    "total")}
    failed = 0
    wall_start = time.perf_counter()
    for _ in range(args.repeat):
        for path in photos:
            try:
                _, result = pipeline.process_path(path)
            except GotchaError as exc:
                failed += 1
                print(f"skipped {path.name}: {exc}", file=sys.stderr)
                continue
            for stage in STAGES:
                stages[stage].append(result.timings_ms[stage])
            for stage in bare:
                bare[stage].append(result.inference_ms[stage])
    wall_s = time.perf_counter() - wall_start
    done = len(stages["total"])
    if not done:
        raise SystemExit("no photo could be processed")
    vision_ms = sum(stages["total"]) - sum(stages["decode"])
    bare_ms = sum(bare["total"])
    return {
        "photos": len(photos),
        "runs": done,
        "failed": failed,
        "models": {"vehicle_detector": config.models.vehicle_detector,
                   "plate_detector": config.models.plate_detector,
                   "plate_reader": None if args.no_reader else config.models.plate_reader},
        "threads": config.models.intra_op_threads,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "model_load_s": round(load_s, 2),
        "stages_ms": {s: {"median": round(statistics.median(v), 1),
                          "p95": round(percentile(v, 95), 1),
                          "mean": round(statistics.fmean(v), 1)} for s, v in stages.items()},
        "bare_inference_ms": {s: {"median": round(statistics.median(v), 1),
                                  "sum": round(sum(v), 1)} for s, v in bare.items()},
        "photos_per_s": round(done / wall_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "ratio_vision_to_bare": round(vision_ms / bare_ms, 3) if bare_ms else None,
        "ratio_total_to_bare": round(sum(stages["total"]) / bare_ms, 3) if bare_ms else None,
    }


def print_table(report: dict[str, object]) -> None:
    stages = report["stages_ms"]
    bare = report["bare_inference_ms"]
    print(f"{report['runs']} photo runs ({report['photos']} photos), models "
          f"{report['models']}, threads {report['threads'] or 'all'} of {report['cpu_count']} "
          f"cores, load avg {report['load_avg_1m']:.1f}")
    print(f"{'stage':<14}{'median ms':>11}{'p95 ms':>10}{'mean ms':>10}{'bare median':>13}")
    for stage, row in stages.items():  # type: ignore[union-attr]
        b = bare.get(stage)  # type: ignore[union-attr]
        shown = f"{b['median']:>13.1f}" if b else f"{'-':>13}"
        print(f"{stage:<14}{row['median']:>11.1f}{row['p95']:>10.1f}{row['mean']:>10.1f}{shown}")
    print(f"photos/s {report['photos_per_s']}   peak RSS {report['peak_rss_mb']} MB   "
          f"model load {report['model_load_s']} s")
    print(f"pipeline / bare inference: {report['ratio_vision_to_bare']} (decode excluded), "
          f"{report['ratio_total_to_bare']} (decode included); goal <= 1.15")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=DEFAULT_SCENES, help="Folder of photos.")
    parser.add_argument("--config", type=Path, default=None, help="Gotcha TOML config.")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="Folder with the model files (default: config / GOTCHA_MODEL_DIR).")
    parser.add_argument("--plate-reader", default=None, help="models.toml id of the reader.")
    parser.add_argument("--no-reader", action="store_true", help="Skip plate reading.")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
    parser.add_argument("--repeat", type=int, default=1, help="Passes over the photos.")
    parser.add_argument("--warmup", type=int, default=3, help="Unmeasured photos first.")
    parser.add_argument("--limit", type=int, default=0, help="Use only the first N photos.")
    parser.add_argument("--json-out", type=Path, default=None, help="Write the report as JSON.")
    args = parser.parse_args(argv)
    try:
        report = run(args)
    except GotchaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
