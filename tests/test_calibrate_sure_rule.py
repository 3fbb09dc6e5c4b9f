"""scripts/calibrate_sure_rule.py: the rule it chooses on the out-of-fold reads of set-c is the
one the device ships, and on set-a + set-b (neither trained on nor used to choose it) it lets no
misread through.

The reader is fine-tuned on set-c, so the rule is chosen on reads of set-c crops by models that
did not train on them (scripts/crossval_plate_reader.py wrote them to
models/gotcha-kr-plate-crnn.crossval.json: rightness, confidence, worst dissent, crop height).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import shared_path

from edge_agent.config import PlatesConfig

REPO = Path(__file__).resolve().parent.parent
OUT_OF_FOLD = REPO / "models" / "gotcha-kr-plate-crnn.crossval.json"


def test_the_shipped_rule_is_the_one_chosen_out_of_fold() -> None:
    set_a, set_b = (shared_path(f"data/plates/{name}") for name in ("set-a", "set-b"))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate_sure_rule.py"),
                           "--fit-reads", str(OUT_OF_FOLD), "--report", str(set_a), str(set_b),
                           "--json"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    shipped = PlatesConfig()
    assert doc["chosen"] == {"evidence_floor": shipped.evidence_floor,
                             "max_dissent": shipped.max_dissent,
                             "min_plate_px": shipped.min_plate_px}
    assert doc["fit"]["plates"] == 37 and doc["fit"]["sure_wrong"] == 0
    assert doc["report"]["sure_wrong"] == 0 and doc["report"]["sure"] >= 20
    # the confidence floor alone, on the same held-out crops, does let misreads through
    assert doc["report_confidence_only"]["sure_wrong"] >= 1
    grid = doc["grid_on_fit"]
    assert all(row["evidence_floor"] >= 0.5 for row in grid)
    assert len(grid) == 10 * 5 * 5


def test_reads_that_are_no_scored_reads_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "reads.json"
    bad.write_text('{"reads": [{"correct": true}]}', encoding="utf-8")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate_sure_rule.py"),
                           "--fit-reads", str(bad)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "not a file of scored reads" in done.stderr
    assert "crossval_plate_reader.py --scored" in done.stderr
