"""Only plate reads sure enough to be evidence become sightings ([plates] evidence_floor, the
size floor and the view check, edge_agent.plates.evidence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import shared_path
from pair_helpers import photo_pair, result_for

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.results import Box


def test_unsure_reads_are_never_recorded(tmp_path: Path, models_dir: Path) -> None:
    env = {"GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos"),
           "GOTCHA_MODEL_DIR": str(models_dir), "GOTCHA_PLATES__EVIDENCE_FLOOR": "0.5"}
    config = load_config(None, environ=env)
    source = shared_path("data/scenes/korea-a/4vehicles.jpg")
    a, b = photo_pair(source, config, datetime.now(UTC) - timedelta(minutes=10), 75)
    w, h = a.size
    vehicle = Box(w * 0.35, h * 0.45, w * 0.65, h * 0.85)
    with Agent.open(config) as agent:
        assert agent.handle(a, result_for(a, "12가3456", vehicle, confidence=0.3)) == []
        assert agent.store.outbox_depth() == 0
        first = agent.handle(a, result_for(a, "12가3456", vehicle, confidence=0.9))
        unsure_second = agent.handle(b, result_for(b, "12가3456", vehicle, confidence=0.49))
        disputed_second = agent.handle(b, result_for(b, "12가3456", vehicle, confidence=0.99,
                                                     dissent=3))
        too_small = agent.handle(b, result_for(b, "12가3456", vehicle, confidence=0.99,
                                               crop_size=(80, 20)))
        second = agent.handle(b, result_for(b, "12가3456", vehicle, dx=4, confidence=0.9))
    assert [d.action for d in first] == ["candidate"]
    assert unsure_second == []  # an unsure second photo confirms nothing
    assert disputed_second == []  # nor a confident one whose views read 가 otherwise
    assert too_small == []  # nor one from a crop too small to tell 가 from 거
    assert [d.action for d in second] == ["confirmed"]
