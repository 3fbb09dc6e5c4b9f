"""Benchmark the vision pipeline on a folder of photos (default: the korea-a scenes).

Prints per-stage median and p95 wall time, photos/s, peak RSS, and the ratio of pipeline time
to the sum of bare model inference times (time inside onnxruntime's ``run``, read off each
model's ModelRunner clock by the pipeline): the glue around the models (decode excluded /
included) should cost little, goal <= 1.15.

    python scripts/bench_vision.py [--scenes DIR] [--repeat 2] [--json-out bench.json]
    python scripts/bench_vision.py --naive [--baseline-repo ../main] [--rounds 2]

``--naive`` also measures the original design's naive approach (PaddleOCR over each whole
photo, scripts/bench_naive.py) in the same run, and ``--baseline-repo`` another checkout's
pipeline (e.g. main, before a change): each in its own process (so each peak RSS is its own),
taking turns ``--rounds`` times so that a shared machine's load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
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


def photo_list(args: argparse.Namespace) -> list[Path]:
    photos = sorted(p for p in Path(args.scenes).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return photos[: args.limit] if args.limit else photos


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1),
            "p95": round(percentile(values, 95), 1),
            "mean": round(statistics.fmean(values), 1)}


def run_naive(args: argparse.Namespace) -> dict[str, object]:
    """PaddleOCR (det + cls + rec) over every whole photo; the same report keys as ``run``."""
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_naive import NAIVE_STAGES, NaiveOcr

    from edge_agent.io.photo import load_photo

    config = load_config(args.config)
    threads = args.threads if args.threads is not None else config.models.intra_op_threads
    start = time.perf_counter()
    engine = NaiveOcr(threads)
    load_s = time.perf_counter() - start
    photos = photo_list(args)
    for path in photos[: args.warmup]:
        engine.process(load_photo(path, config).image)
    stages: dict[str, list[float]] = {s: [] for s in NAIVE_STAGES}
    bare: dict[str, list[float]] = {s: [] for s in (*NAIVE_STAGES[1:-1], "total")}
    texts = 0
    wall_start = time.perf_counter()
    for _ in range(args.repeat):
        for path in photos:
            t0 = time.perf_counter()
            try:
                image = load_photo(path, config).image
            except GotchaError as exc:
                print(f"skipped {path.name}: {exc}", file=sys.stderr)
                continue
            t1 = time.perf_counter()
            found, stage_ms, bare_ms = engine.process(image)
            t2 = time.perf_counter()
            texts += len(found)
            stages["decode"].append((t1 - t0) * 1000.0)
            stages["total"].append((t2 - t0) * 1000.0)
            for name in stage_ms:
                stages[name].append(stage_ms[name])
                bare[name].append(bare_ms[name])
            bare["total"].append(sum(bare_ms.values()))
    wall_s = time.perf_counter() - wall_start
    done = len(stages["total"])
    if not done:
        raise SystemExit("no photo could be processed")
    bare_ms_all = sum(bare["total"])
    return {
        "mode": "naive", "photos": len(photos), "runs": done, "failed": len(photos) * args.repeat
        - done, "models": {"naive": "rapidocr_onnxruntime.RapidOCR() det+cls+rec, whole photo"},
        "threads": engine.threads, "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0], "model_load_s": round(load_s, 2),
        "text_lines_read": texts,
        "stages_ms": {s: summary(v) for s, v in stages.items()},
        "bare_inference_ms": {s: {"median": round(statistics.median(v), 1),
                                  "sum": round(sum(v), 1)} for s, v in bare.items()},
        "photos_per_s": round(done / wall_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "ratio_vision_to_bare": round((sum(stages["total"]) - sum(stages["decode"]))
                                      / bare_ms_all, 3) if bare_ms_all else None,
        "ratio_total_to_bare": round(sum(stages["total"]) / bare_ms_all, 3)
        if bare_ms_all else None,
    }


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
    photos = photo_list(args)
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
        "mode": "pipeline",
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
        "vision": {k: getattr(config.vision, k) for k in (
            "plate_search_top", "text_vehicle_side", "text_vehicle_zoom", "text_batch")},
        "stages_ms": {s: summary(v) for s, v in stages.items()},
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


def child_report(args: argparse.Namespace, mode: str, script: Path) -> dict[str, object]:
    """One measurement in its own process: ``script`` (this one, or another checkout's
    bench_vision.py for the baseline) with this run's photos and settings."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, str(script), "--scenes", str(args.scenes), "--repeat",
               str(args.repeat), "--warmup", str(args.warmup), "--limit", str(args.limit),
               "--json-out", str(out)]
        for flag, value in (("--config", args.config), ("--models-dir", args.models_dir),
                            ("--threads", args.threads), ("--plate-reader", args.plate_reader)):
            if value is not None:
                cmd += [flag, str(value)]
        if mode == "naive":
            cmd.append("--naive-only")
        env = dict(os.environ, PYTHONPATH=str(script.parent.parent))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"{mode} measurement failed ({script}): {tail[0]}")
        return json.loads(out.read_text(encoding="utf-8"))


def compare(args: argparse.Namespace) -> dict[str, object]:
    """Pipeline, naive and (optionally) baseline, each ``--rounds`` times, taking turns."""
    modes = {"pipeline": Path(__file__).resolve(), "naive": Path(__file__).resolve()}
    if args.baseline_repo:
        modes = {"baseline": Path(args.baseline_repo).resolve() / "scripts" / "bench_vision.py",
                 **modes}
    rounds: dict[str, list[dict[str, object]]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode, script in modes.items():
            rounds[mode].append(child_report(args, mode, script))
    merged = {mode: merge_rounds(reports) for mode, reports in rounds.items()}
    pipe, naive = merged["pipeline"], merged["naive"]
    return {
        **merged,
        "rounds": args.rounds,
        "speedup_vs_naive_median": round(naive["stages_ms"]["total"]["median"]  # type: ignore
                                         / pipe["stages_ms"]["total"]["median"], 2),  # type: ignore
        "per_round": rounds,
    }


def merge_rounds(reports: list[dict[str, object]]) -> dict[str, object]:
    """One report from several rounds: the median of each round's figure (peak RSS: the
    largest), so one round under a burst of load from elsewhere does not decide it."""
    def mid(get: object) -> float:
        return round(statistics.median(get(r) for r in reports), 2)  # type: ignore[operator]

    first = reports[0]
    out = dict(first)
    out["runs"] = sum(int(r["runs"]) for r in reports)  # type: ignore[call-overload]
    out["stages_ms"] = {s: {k: mid(lambda r, s=s, k=k: r["stages_ms"][s][k]) for k in row}
                        for s, row in first["stages_ms"].items()}  # type: ignore[union-attr]
    out["bare_inference_ms"] = {
        s: {"median": mid(lambda r, s=s: r["bare_inference_ms"][s]["median"])}
        for s in first["bare_inference_ms"]}  # type: ignore[union-attr]
    for key in ("photos_per_s", "ratio_vision_to_bare", "ratio_total_to_bare", "load_avg_1m"):
        out[key] = mid(lambda r, key=key: r[key] or 0.0)
    out["peak_rss_mb"] = max(float(r["peak_rss_mb"]) for r in reports)  # type: ignore[arg-type]
    return out


def print_comparison(report: dict[str, object]) -> None:
    modes = [m for m in ("baseline", "pipeline", "naive") if m in report]
    for mode in modes:
        print(f"== {mode}")
        print_table(report[mode])  # type: ignore[arg-type]
    print(f"{'':<26}" + "".join(f"{m:>12}" for m in modes))
    rows = [("median ms/photo", lambda r: r["stages_ms"]["total"]["median"]),
            ("p95 ms/photo", lambda r: r["stages_ms"]["total"]["p95"]),
            ("photos/s", lambda r: r["photos_per_s"]),
            ("peak RSS MB", lambda r: r["peak_rss_mb"]),
            ("pipeline / bare", lambda r: r["ratio_vision_to_bare"])]
    for label, get in rows:
        print(f"{label:<26}" + "".join(f"{get(report[m]):>12}" for m in modes))  # type: ignore
    print(f"naive / pipeline median time: {report['speedup_vs_naive_median']}x "
          f"(goal >= 4), {report['rounds']} round(s) taking turns")


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
    parser.add_argument("--naive", action="store_true", help="Also measure PaddleOCR over "
                        "each whole photo (the original design), each in its own process.")
    parser.add_argument("--naive-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-repo", type=Path, default=None, help="With --naive: also "
                        "measure this checkout's pipeline (e.g. main, before a change).")
    parser.add_argument("--rounds", type=int, default=1, help="With --naive: turns taken.")
    args = parser.parse_args(argv)
    try:
        measure = compare if args.naive else run_naive if args.naive_only else run
        report = measure(args)
    except GotchaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.naive:
        print_comparison(report)
    else:
        print_table(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
