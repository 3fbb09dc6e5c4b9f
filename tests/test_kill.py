"""SIGKILL at random moments of lifecycle state changes: nothing lost, nothing confirmed
without its evidence, nothing confirmed twice (a real process, really killed)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.config import StoreConfig
from edge_agent.store.store import Store

WORKER = Path(__file__).with_name("kill_worker.py")
VEHICLES = 150  # enough work that no round can finish it inside the kill window
KILLS = 8


def start(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "g.db"),
                             str(tmp_path / "photos"), str(VEHICLES)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def check_invariants(store: Store) -> dict[str, int]:
    """What must hold after any crash; returns counts by report state."""
    db = store.db
    states = dict(db.execute("SELECT state, COUNT(*) FROM reports GROUP BY state").fetchall())
    for row in db.query("SELECT * FROM reports WHERE state IN ('confirmed', 'uploaded')"):
        rid = row["report_id"]
        outbox = list(db.query("SELECT * FROM outbox WHERE report_id = ?", (rid,)))
        assert len(outbox) == 1, f"confirmed report {rid} has no outbox row"
        assert (outbox[0]["state"] == "done") == (row["state"] == "uploaded"), rid
        sightings = store.report_sightings(rid)
        roles = sorted(s.role for s in sightings)
        assert roles == ["confirming", "first"], (rid, roles)
        for s in sightings:
            assert store.photos.verify(s.photo_sha256), f"{rid}: photo lost or torn"
        first, second = (store.sighting(row["first_sighting_id"]),
                         store.sighting(row["confirming_sighting_id"]))
        assert second.ts - first.ts >= 60, f"{rid} confirmed with less than the interval"
    # none confirmed twice: one report per plate and spot, one outbox row per report
    twice = db.execute("SELECT plate, COUNT(*) FROM reports WHERE state IN "
                       "('confirmed', 'uploaded') GROUP BY plate HAVING COUNT(*) > 1").fetchall()
    assert twice == [], twice
    orphans = db.execute("SELECT COUNT(*) FROM outbox o LEFT JOIN reports r USING (report_id) "
                         "WHERE r.state NOT IN ('confirmed', 'uploaded')").fetchone()[0]
    assert orphans == 0
    # every sighting row names a photo whose file is complete
    for row in db.query("SELECT DISTINCT photo_sha256 FROM sightings"):
        assert store.photos.verify(row["photo_sha256"])
    return states


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    cfg = StoreConfig(path=tmp_path / "g.db", photo_dir=tmp_path / "photos")
    killed = 0
    progress = []
    done = 0  # sightings recorded so far; a restarted worker first replays them
    for _ in range(KILLS):
        worker = start(tmp_path)
        assert worker.stdout is not None
        target = done + rng.randint(1, 8)  # die a few state changes into new work ...
        for _line in range(target):
            if not worker.stdout.readline():
                break
        time.sleep(rng.uniform(0.0, 0.05))  # ... at a random instant inside the next one
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            killed += 1
        _out, err = worker.communicate(timeout=60)
        assert worker.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
        with Store.open(cfg) as store:  # integrity check at start passes after every kill
            states = check_invariants(store)
            done = store.db["sightings"].count
        progress.append(sum(states.values()))
    assert killed == KILLS, "the worker finished before it could be killed"
    # after the crashes, one uninterrupted run finishes the workload: every vehicle has
    # exactly one report, confirmed (or uploaded), with nothing lost on the way
    worker = start(tmp_path)
    _out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err.decode()[-2000:]
    with Store.open(cfg) as store:
        states = check_invariants(store)
        assert states.get("candidate", 0) == 0 and states.get("expired", 0) == 0
        assert states.get("confirmed", 0) + states.get("uploaded", 0) == VEHICLES
        assert states.get("uploaded", 0) == len(range(0, VEHICLES, 3))
        assert store.db["outbox"].count == VEHICLES
        assert store.db["sightings"].count == 2 * VEHICLES
    assert progress == sorted(progress)  # work done before a kill is never undone
