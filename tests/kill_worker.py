"""A process that makes lifecycle state changes in a loop, to be killed with SIGKILL.

Usage: python kill_worker.py DB PHOTO_DIR VEHICLES. Vehicle i is seen twice, 70 s apart, at
its own spot; every third confirmed report is then marked uploaded, as the uploader would.
The workload is deterministic (same photo bytes, same times), so a restarted worker replays
it: steps already done are found in the store and change nothing.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.config import StoreConfig
from edge_agent.lifecycle import Lifecycle, SceneVerdict
from edge_agent.results import Box, GeoPoint
from edge_agent.store.records import Sighting
from edge_agent.store.store import Store
from gotcha_contracts.rules import DEFAULT_RULES

T0 = datetime(2026, 11, 26, 1, 0, 0, tzinfo=UTC)


class SameScene:
    """Every pair is the same scene with the vehicle in place (the test is about crashes)."""

    def compare_bytes(self, a: bytes | None, b: bytes | None) -> SceneVerdict:
        return SceneVerdict(0.9, a == b, False, "same scene" if a == b else "differs")


def plate(i: int) -> str:
    return f"{100 + i}가{1000 + i}"


def spot(i: int) -> GeoPoint:
    return GeoPoint(37.50 + i * 0.001, 127.0, 5.0)  # about 110 m between spots


def photo(i: int, k: int) -> bytes:
    return (f"vehicle {i} photo {k} ".encode() * 20000)[:300_000]


def main(db: str, photo_dir: str, vehicles: int) -> None:
    clock = T0 + timedelta(hours=1)
    store = Store.open(StoreConfig(path=Path(db), photo_dir=Path(photo_dir)),
                       clock=lambda: clock)
    lc = Lifecycle(store, DEFAULT_RULES, "sidewalk", SameScene(), clock=lambda: clock)
    for i in range(vehicles):
        for k in (0, 1):
            sha = store.put_photo(photo(i, k))
            s = Sighting(device_id="dev-kill", photo_sha256=sha,
                         captured_at=T0 + timedelta(seconds=10 * i + 70 * k), plate=plate(i),
                         plate_raw=plate(i), char_confidences=(0.95,) * len(plate(i)),
                         plate_box=Box(10, 10, 50, 20), location=spot(i),
                         vehicle_box=Box(0, 0, 100, 100), scene_signature=f"scene-{i}".encode())
            decision = lc.record(s)
            print(json.dumps(decision.to_dict()), flush=True)
        if i % 3 == 0 and decision.report_id:
            report = store.report(decision.report_id)
            if report.state == "confirmed":
                store.mark_uploading(report.report_id)
                store.mark_uploaded(report.report_id)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
