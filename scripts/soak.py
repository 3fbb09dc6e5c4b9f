"""Soak the device agent: ``gotcha run --watch`` fed N real photos (scripts/soak_plan.py) with
its MQTT broker and its S3 restarted under it and one SIGKILL (then a restart), sampling its
RSS, open files, threads and database size; at the end every confirmed report must be in S3
exactly once and the heartbeat counters must match the store.

    python scripts/soak.py --photos 2000            # about 0.5-1 s a photo on a Pi-class CPU
    python scripts/soak.py --photos 200 --json-out soak.json

Needs mosquitto on PATH, moto[server], the models (``--models`` or $GOTCHA_MODEL_DIR) and
the shared scenes (``--scenes``). Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from soak_plan import calibrate, load_sources, make_plan  # noqa: E402
from soak_services import AgentProcess, Broker, HeartbeatListener, S3Server  # noqa: E402

DEVICE = "soak-01"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    shared = REPO.parent / "shared"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=2000)
    p.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    p.add_argument("--models", type=Path,
                   default=Path(os.environ.get("GOTCHA_MODEL_DIR", shared / "models")))
    p.add_argument("--scenes", type=Path, default=shared / "data" / "scenes")
    p.add_argument("--backlog", type=int, default=3, help="photos waiting in the folder")
    p.add_argument("--sample-s", type=float, default=2.0)
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--timeout-s", type=float, default=4 * 3600)
    return p.parse_args(argv)


def write_config(work: Path, args: argparse.Namespace, mqtt_port: int, s3_url: str) -> Path:
    path = work / "gotcha.toml"
    path.write_text(f"""
[device]
id = "{DEVICE}"
zone = "sidewalk"
[models]
dir = "{args.models}"
[store]
path = "{work / 'gotcha.db'}"
photo_dir = "{work / 'photos'}"
[upload]
backend = "s3"
bucket = "soak-reports"
region = "us-east-1"
endpoint_url = "{s3_url}"
blur_people = false
blur_other_plates = false
backoff_base_s = 0.2
backoff_max_s = 2.0
breaker_failures = 3
breaker_cooldown_s = 2.0
max_attempts = 2
[mqtt]
enabled = true
port = {mqtt_port}
heartbeat_s = 1.0
keepalive_s = 5
reconnect_max_s = 1.0
""", encoding="utf-8")
    return path


def store_counts(db: Path) -> dict[str, int]:
    """Reports by what they went through, read while no agent runs (or read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
        return {"reports": one("SELECT COUNT(*) FROM reports"),
                "confirmed": one("SELECT COUNT(*) FROM reports WHERE confirmed_at IS NOT NULL"),
                "uploaded": one("SELECT COUNT(*) FROM reports WHERE state = 'uploaded'"),
                "expired": one("SELECT COUNT(*) FROM reports WHERE state = 'expired'"),
                "candidates_left": one("SELECT COUNT(*) FROM reports WHERE state = 'candidate'"),
                "duplicates": one("SELECT SUM(duplicate_count) FROM reports"),
                "outbox_waiting": one("SELECT COUNT(*) FROM outbox WHERE state != 'done'")}
    finally:
        conn.close()


def sample(agent: AgentProcess, work: Path, fed: int, started: float) -> dict[str, Any]:
    proc = Path(f"/proc/{agent.pid}")
    row: dict[str, Any] = {"t_s": round(time.monotonic() - started, 1), "fed": fed,
                           "pid": agent.pid}
    try:
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines()
                      if ":" in line)
        row["rss_mib"] = round(int(status["VmRSS"].split()[0]) / 1024, 1)
        row["threads"] = int(status["Threads"])
        row["open_files"] = len(os.listdir(proc / "fd"))
    except (OSError, KeyError, ValueError):
        row.update(rss_mib=None, threads=None, open_files=None)
    db_bytes = sum(p.stat().st_size for p in work.glob("gotcha.db*") if p.is_file())
    row["db_kib"] = round(db_bytes / 1024)
    return row


def print_row(row: dict[str, Any]) -> None:
    print(f"{row['t_s']:>8} {row['fed']:>6} {row['rss_mib']!s:>8} {row['open_files']!s:>6} "
          f"{row['threads']!s:>7} {row['db_kib']:>8}", flush=True)


def check_s3(s3: S3Server, db: Path) -> list[str]:
    """Every confirmed report in S3 exactly once: its two photos and manifest, nothing else."""
    from gotcha_contracts.manifest import validate_manifest

    problems = []
    objects: dict[str, set[str]] = {}
    for key in s3.keys("soak-reports", f"reports/{DEVICE}/"):
        parts = key.split("/")
        objects.setdefault(parts[-2], set()).add(parts[-1])
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    stored = {r[0] for r in conn.execute("SELECT report_id FROM reports "
                                         "WHERE confirmed_at IS NOT NULL")}
    conn.close()
    if set(objects) != stored:
        problems.append(f"S3 holds {len(objects)} report(s), the store {len(stored)} confirmed: "
                        f"{len(set(objects) - stored)} unknown, {len(stored - set(objects))} "
                        "missing")
    seen: dict[tuple[str, str], str] = {}
    for report_id, names in objects.items():
        if names != {"photo-1.jpg", "photo-2.jpg", "manifest.json"}:
            problems.append(f"report {report_id} has {sorted(names)} in S3")
            continue
        manifest = validate_manifest(s3.get("soak-reports", next(
            k for k in s3.keys("soak-reports", f"reports/{DEVICE}/")
            if f"/{report_id}/manifest.json" in k)))
        first = (manifest.plate, manifest.photos[0].sha256)
        if first in seen:
            problems.append(f"reports {seen[first]} and {report_id}: one car uploaded twice")
        seen[first] = report_id
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gotcha-soak-"))
    (work / "watch").mkdir(parents=True, exist_ok=True)
    (work / "done").mkdir(exist_ok=True)
    os.environ.update({"AWS_ACCESS_KEY_ID": "soak", "AWS_SECRET_ACCESS_KEY": "soak",
                       "AWS_DEFAULT_REGION": "us-east-1", "GOTCHA_MODEL_DIR": str(args.models)})
    from edge_agent.config import load_config
    from edge_agent.inference.optional import usable_config

    candidates = load_sources([args.scenes / "e2e-dev", args.scenes / "korea-a"])
    # the models the agent process will run (it inherits GOTCHA_MODEL_DIR and GOTCHA_MODELS__*),
    # absent optional ones left out as it leaves them out
    cfg = usable_config(load_config(None, environ={k: v for k, v in os.environ.items()
                                                   if k.startswith("GOTCHA_MODEL")}))
    sources = {s.name: s for s in calibrate(candidates, cfg, plates_wanted=6, noise_wanted=4)}
    plan = make_plan(args.photos, list(sources.values()))
    expected = plan.expected()
    print(f"soak: {args.photos} photos from {len(sources)} sources "
          f"({', '.join(f'{n}: {s.plate}' for n, s in sources.items())}); expecting {expected}; "
          f"workdir {work}", flush=True)
    events = {"broker_restart": int(args.photos * 0.25), "kill": int(args.photos * 0.5),
              "s3_restart": int(args.photos * 0.7)}
    samples: list[dict[str, Any]] = []
    problems: list[str] = []
    heartbeats: dict[str, Any] = {}
    with Broker(work) as broker, S3Server() as s3:
        s3.create_bucket("soak-reports")
        config_path = write_config(work, args, broker.port, s3.endpoint_url)
        listener = HeartbeatListener(broker.port, DEVICE)
        agent = AgentProcess(config_path, work, REPO)
        agent.start()
        listener.wait_heartbeat(after=0, timeout_s=300)
        started = time.monotonic()
        pending: list[Path] = []  # dropped, not yet counted processed, in drop order
        run_base = 0  # processed count of the current run already moved out
        fed = 0
        last_sample = 0.0
        print(f"{'t_s':>8} {'fed':>6} {'rss_mib':>8} {'files':>6} {'threads':>7} "
              f"{'db_kib':>8}", flush=True)
        while fed < len(plan.shots) or pending:
            if time.monotonic() - started > args.timeout_s:
                problems.append(f"timed out with {len(pending)} photo(s) unprocessed")
                break
            done = listener.processed() - run_base
            for path in pending[:max(0, done)]:
                path.rename(work / "done" / path.name)
            pending = pending[max(0, done):]
            run_base += max(0, done)
            if fed < len(plan.shots) and (len(pending) < args.backlog
                                          or listener.silent_for() > 5):
                shot = plan.shots[fed]
                data = plan.photo_bytes(shot, sources, datetime.now(UTC))
                hidden = work / "watch" / f".{shot.index:05d}.part"
                hidden.write_bytes(data)
                target = work / "watch" / f"{shot.index:05d}-{shot.role}.jpg"
                os.replace(hidden, target)
                pending.append(target)
                fed += 1
                if fed == events["broker_restart"]:
                    broker.restart(pause_s=3.0)
                    print(f"-- mosquitto restarted at photo {fed}", flush=True)
                if fed == events["s3_restart"]:
                    s3.restart(pause_s=5.0)
                    print(f"-- S3 server restarted at photo {fed}", flush=True)
                if fed == events["kill"]:
                    time.sleep(0.5)  # let it be in the middle of a photo
                    heartbeats["before_kill"] = listener.last()
                    agent.kill()
                    baseline = store_counts(work / "gotcha.db")
                    heartbeats["baseline_store"] = baseline
                    print(f"-- agent SIGKILLed at photo {fed}; store then {baseline}", flush=True)
                    agent.start()
                    listener.reset_run()
                    run_base = 0
                    listener.wait_heartbeat(after=0, timeout_s=300)
            if time.monotonic() - last_sample >= args.sample_s:
                last_sample = time.monotonic()
                samples.append(sample(agent, work, fed, started))
                if len(samples) % 10 == 1:
                    print_row(samples[-1])
            time.sleep(0.05)
        # everything is in: wait for the uploads and the expiry sweep to settle
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = store_counts(work / "gotcha.db")
            settled = not heartbeat_problems({**heartbeats, "final": listener.last()}, counts)
            if counts["outbox_waiting"] == 0 and settled and \
                    counts["candidates_left"] <= expected["candidates_left"]:
                break
            time.sleep(1.0)
        samples.append(sample(agent, work, fed, started))
        print_row(samples[-1])
        agent.stop()
        heartbeats["final"] = listener.last()
        listener.close()
        final = store_counts(work / "gotcha.db")
        problems += check_s3(s3, work / "gotcha.db")
    for key in ("confirmed", "expired", "duplicates", "candidates_left"):
        if final[key] != expected[key]:
            problems.append(f"store {key} = {final[key]}, the plan expects {expected[key]}")
    if final["confirmed"] != final["uploaded"] or final["outbox_waiting"]:
        problems.append(f"not everything was uploaded: {final}")
    problems += heartbeat_problems(heartbeats, final)
    rss = [s["rss_mib"] for s in samples if s["rss_mib"]]
    growth = rss_growth(samples)
    summary = {"photos": args.photos, "expected": expected, "store": final,
               "heartbeats": heartbeats, "samples": samples, "rss_growth_mib": growth,
               "max_rss_mib": max(rss, default=None),
               "max_open_files": max((s["open_files"] or 0 for s in samples), default=None),
               "max_threads": max((s["threads"] or 0 for s in samples), default=None),
               "wall_s": round(time.monotonic() - started, 1), "problems": problems}
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("samples", "heartbeats")},
                     default=str), flush=True)
    for line in problems:
        print(f"PROBLEM: {line}", flush=True)
    print("soak: ok" if not problems else f"soak: {len(problems)} problem(s)", flush=True)
    return 0 if not problems else 1


def rss_growth(samples: list[dict[str, Any]]) -> float | None:
    """How far the agent's memory still grew once warm: per agent process (the SIGKILL starts a
    fresh one, whose warm-up is no growth), the peak of its last quarter of samples less the
    peak of its second; the largest over the processes with 8 samples or more (None if none).
    """
    by_process: dict[Any, list[float]] = {}
    for row in samples:
        if row["rss_mib"]:
            by_process.setdefault(row.get("pid"), []).append(row["rss_mib"])
    growths = []
    for rss in by_process.values():
        if len(rss) >= 8:
            quarter = len(rss) // 4
            growths.append(max(rss[-quarter:]) - max(rss[quarter:2 * quarter]))
    return max(growths) if growths else None


def heartbeat_problems(heartbeats: dict[str, Any], final: dict[str, int]) -> list[str]:
    """The restarted agent's last heartbeat counts exactly what the store gained since the
    SIGKILL; the killed one's last heartbeat counts no more than the store held then."""
    problems = []
    base, last, before = (heartbeats.get(k) for k in ("baseline_store", "final", "before_kill"))
    if not base or not last:
        return ["no heartbeat from the restarted agent" if base else "the agent was never "
                "killed (too few photos?)"]
    pairs = {"candidates": final["reports"] - base["reports"],
             "confirmed": final["confirmed"] - base["confirmed"],
             "uploaded": final["uploaded"] - base["uploaded"],
             "expired": final["expired"] - base["expired"]}
    for key, gained in pairs.items():
        if last.get(key) != gained:
            problems.append(f"heartbeat {key} = {last.get(key)}, the store gained {gained}")
    if last.get("outbox_depth") != final["outbox_waiting"]:
        problems.append(f"heartbeat outbox_depth = {last.get('outbox_depth')}, the store has "
                        f"{final['outbox_waiting']} waiting")
    if before:
        for key, held in (("confirmed", base["confirmed"]), ("candidates", base["reports"])):
            if before.get(key, 0) > held:
                problems.append(f"the killed agent's heartbeat said {key} = {before[key]}, "
                                f"more than the store's {held}")
    return problems


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
