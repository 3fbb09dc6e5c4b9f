"""The soak in short (scripts/soak.py --photos 200): the agent on real photos with its broker
and S3 restarted under it and one SIGKILL; nothing lost, nothing doubled, nothing growing."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, need, shared_path


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_short_soak(tmp_path: Path, models_dir: Path) -> None:
    need(shutil.which("mosquitto") is not None, "mosquitto binary is not installed")
    scenes = shared_path("data/scenes")
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--photos", "200",
         "--workdir", str(tmp_path / "work"), "--models", str(models_dir),
         "--scenes", str(scenes), "--json-out", str(out)],
        capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["problems"] == []
    assert summary["store"]["confirmed"] == summary["expected"]["confirmed"] > 20
    assert summary["store"]["uploaded"] == summary["store"]["confirmed"]
    # nothing grows without bound: open files and threads stay flat, memory settles
    assert summary["max_open_files"] < 64 and summary["max_threads"] < 40
    assert summary["rss_growth_mib"] is not None and summary["rss_growth_mib"] < 60


def _soak_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # as when run: its helpers sit beside it
    spec = importlib.util.spec_from_file_location("soak", REPO / "scripts" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_growth_is_measured_within_each_agent_process(monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    """The SIGKILL starts a fresh agent whose warm-up is no leak; a leak in either process is."""
    rss_growth = _soak_module(monkeypatch).rss_growth
    warm = [150.0, 300.0, 330.0, 335.0, 336.0, 335.0, 337.0, 336.0, 336.0, 337.0, 336.0, 336.0]
    killed_then_heavier = [{"pid": 1, "rss_mib": v} for v in warm] + \
        [{"pid": 2, "rss_mib": v + 80.0} for v in warm]
    assert rss_growth(killed_then_heavier) == 1.0
    leaking = [{"pid": 2, "rss_mib": 300.0 + 10.0 * k} for k in range(12)]
    assert rss_growth([{"pid": 1, "rss_mib": v} for v in warm] + leaking) == 60.0
    assert rss_growth([{"pid": 1, "rss_mib": 300.0}] * 7) is None  # too few samples to say
