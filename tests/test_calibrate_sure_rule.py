"""scripts/calibrate_sure_rule.py: the rule it chooses on set-c is the one the device ships,
and on set-a + set-b (not used to choose it) it lets no misread through."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import shared_path

from edge_agent.config import PlatesConfig

REPO = Path(__file__).resolve().parent.parent


def test_the_shipped_rule_is_the_one_chosen_on_set_c() -> None:
    set_a, set_b, set_c = (shared_path(f"data/plates/{name}")
                           for name in ("set-a", "set-b", "set-c"))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate_sure_rule.py"),
                           "--fit", str(set_c), "--report", str(set_a), str(set_b), "--json"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    shipped = PlatesConfig()
    assert doc["chosen"] == {"evidence_floor": shipped.evidence_floor,
                             "max_dissent": shipped.max_dissent}
    assert doc["fit"]["sure_wrong"] == 0
    assert doc["report"]["sure_wrong"] == 0 and doc["report"]["sure"] >= 20
    # the confidence floor alone, on the same held-out crops, does let misreads through
    assert doc["report_confidence_only"]["sure_wrong"] >= 1
    grid = doc["grid_on_fit"]
    assert all(row["evidence_floor"] >= 0.5 for row in grid)
    assert len(grid) == 10 * 5
