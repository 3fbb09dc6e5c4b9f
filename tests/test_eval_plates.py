"""`gotcha eval plates`: label loading, the figures, and the command's JSON (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_path
from typer.testing import CliRunner

from edge_agent.cli.main import app
from edge_agent.errors import BadInputError
from edge_agent.evaluation.plates import (
    NOTHING,
    confused_characters,
    load_labelled_crops,
    plate_format,
)
from edge_agent.plates.alignment import edit_distance


@pytest.mark.parametrize(("a", "b", "d"), [
    ("", "", 0), ("12가3456", "12가3456", 0), ("12가3456", "12나3456", 1),
    ("서울12가3456", "12가3456", 2), ("", "abc", 3), ("abc", "acb", 2),
])
def test_edit_distance(a: str, b: str, d: int) -> None:
    assert edit_distance(a, b) == d


@pytest.mark.parametrize(("expected", "read", "pairs"), [
    ("12가3456", "12가3456", []),
    ("12가3456", "12나3458", [("가", "나"), ("6", "8")]),
    ("서울12가3456", "세종12가3456", [("서", "세"), ("울", "종")]),
    ("서울12가3456", "12가3456", [("서", NOTHING), ("울", NOTHING)]),
    ("12가3456", "112가3456", [(NOTHING, "1")]),
])
def test_confused_characters(expected: str, read: str, pairs: list[tuple[str, str]]) -> None:
    assert confused_characters(expected, read) == pairs


def test_formats_come_from_the_plate_grammar() -> None:
    assert plate_format("서울42다3311") == "regional"
    assert plate_format("13고2060") == "private-2digit"
    assert plate_format("not a plate") == "unparsed"


def test_both_sets_given_twice_or_found_below_a_parent() -> None:
    set_a, set_b = shared_path("data/plates/set-a"), shared_path("data/plates/set-b")
    both = load_labelled_crops([set_a, set_b])
    assert len(both) == 26
    below = load_labelled_crops([set_a.parent])  # set-c and any later set are found too
    assert sorted(c.path for c in below if c.path.parent in (set_a, set_b)) == \
        sorted(c.path for c in both)
    assert any(c.text == "서울42다3311" for c in both)


def test_bad_folders_are_named_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"no labels\.csv"):
        load_labelled_crops([tmp_path])
    (tmp_path / "labels.csv").write_text("file,plate_text\nmissing.jpg,12가3456\n",
                                         encoding="utf-8")
    with pytest.raises(BadInputError, match="missing"):
        load_labelled_crops([tmp_path])
    (tmp_path / "labels.csv").write_text("name,text\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="header"):
        load_labelled_crops([tmp_path])


def test_eval_plates_json_with_peer() -> None:
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (dev dependency) not installed")
    set_a, set_b = shared_path("data/plates/set-a"), shared_path("data/plates/set-b")
    peer_dir = shared_path("peers/kr-tinylpr")
    result = CliRunner().invoke(app, ["eval", "plates", str(set_a), str(set_b), "--json",
                                      "--peer", "--peer-dir", str(peer_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["plates"] == 26
    ours, peer = report["readers"]
    assert ours["name"] == "gotcha-kr-plate-crnn" and peer["name"] == "kr-tinylpr"
    for reader in (ours, peer):
        assert reader["plates"] == 26
        assert reader["exact_accuracy"] == pytest.approx(reader["exact"] / 26, abs=1e-4)
        assert len(reader["misreads"]) == 26 - reader["exact"]
        assert sum(f["plates"] for f in reader["by_format"].values()) == 26
        assert 0 < reader["ms_per_plate"] < 1000
    assert ours["char_accuracy"] > peer["char_accuracy"]
    # where our time goes: every crop is read at least once, the views only for would-be evidence
    assert 0 < ours["model_ms_per_plate"] < ours["ms_per_plate"]
    assert 1 + 3 * ours["sure"] / 26 <= ours["model_inputs_per_plate"] < 30
    assert peer["model_ms_per_plate"] is None and peer["model_inputs_per_plate"] is None
    # the sure rule: ours has one (the [plates] evidence rule), the peer none
    assert report["sure_rule"]["check_views"] is True
    assert 0 < ours["sure"] <= 26 and 0 <= ours["sure_wrong"] <= ours["sure"]
    assert peer["sure"] is None and peer["sure_wrong"] is None
    for reader in (ours, peer):
        wrong_chars = sum(row["count"] for row in reader["confusion"])
        assert (wrong_chars == 0) == (reader["exact"] == 26)
        for row in reader["confusion"]:
            assert row["expected"] != row["read"] and row["count"] >= 1
    for misread in ours["misreads"]:
        assert 0.0 <= misread["confidence"] <= 1.0 and isinstance(misread["sure"], bool)
        assert misread["sure"] or misread["unsure_reason"]
    sure_wrong = sum(1 for m in ours["misreads"] if m["sure"])
    assert sure_wrong == ours["sure_wrong"]


def test_eval_plates_table_and_errors(tmp_path: Path) -> None:
    set_b = shared_path("data/plates/set-b")
    result = CliRunner().invoke(app, ["eval", "plates", str(set_b)])
    assert result.exit_code == 0, result.output
    assert "exact match" in result.stdout and "regional" in result.stdout
    assert "sure reads (evidence)" in result.stdout and "sure but wrong" in result.stdout
    assert "of which model runs" in result.stdout and "inputs)" in result.stdout
    bad = CliRunner().invoke(app, ["eval", "plates", str(tmp_path)])
    assert bad.exit_code == 2
    assert "no labels.csv" in bad.output


def test_every_eval_command_has_help() -> None:
    result = CliRunner().invoke(app, ["eval", "plates", "--help"])
    assert result.exit_code == 0
    for option in ("--json", "--peer", "--peer-dir", "--model", "--threads"):
        assert option in result.stdout
