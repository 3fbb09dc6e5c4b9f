"""The rules a manifest names: a version and the values that differ from DEFAULT_RULES."""

from __future__ import annotations

import pytest

from gotcha_contracts.errors import ManifestError
from gotcha_contracts.rules import DEFAULT_RULES, Rules
from gotcha_contracts.rules_diff import (
    RULES_VERSION,
    parse_rules_block,
    rules_block,
    rules_overrides,
)


def test_default_rules_have_no_overrides() -> None:
    assert rules_block(DEFAULT_RULES) == {"version": RULES_VERSION, "overrides": {}}


def test_overrides_round_trip() -> None:
    rules = DEFAULT_RULES.with_overrides(min_interval_s={"other": 600.0, "hydrant": 90},
                                         radius_m=10.0, scene_threshold=0.6)
    block = rules_block(rules)
    assert block["overrides"] == {"min_interval_s": {"hydrant": 90.0, "other": 600.0},
                                  "radius_m": 10.0, "scene_threshold": 0.6}
    parsed, clean = parse_rules_block(block)
    assert parsed == rules and clean == block["overrides"]


def test_partial_interval_table_diffs_as_read() -> None:
    # a Rules listing only some zones falls back to default_min_interval_s for the others
    rules = Rules(min_interval_s={"other": 300.0}, default_min_interval_s=120.0)
    diff = rules_overrides(rules)
    assert diff["min_interval_s"] == {z: 120.0 for z in ("hydrant", "intersection_corner",
                                                         "bus_stop", "crosswalk", "school_zone",
                                                         "sidewalk")}
    parsed, _ = parse_rules_block({"version": RULES_VERSION, "overrides": diff})
    assert all(parsed.min_interval(z) == rules.min_interval(z) for z in rules.min_interval_s)


@pytest.mark.parametrize(("block", "fragment"), [
    ({"version": 9, "overrides": {}}, "not a rules version"),
    ({"version": True, "overrides": {}}, "not a rules version"),
    ({"version": 1}, "missing field(s) overrides"),
    ({"version": 1, "overrides": [], "x": 1}, "unknown field(s) x"),
    ({"version": 1, "overrides": []}, "must be an object"),
    ({"version": 1, "overrides": {"speed": 1}}, "unknown field(s) speed"),
    ({"version": 1, "overrides": {"min_interval_s": 60}}, "zone: seconds"),
    ({"version": 1, "overrides": {"min_interval_s": {"moon": 60}}}, "unknown zone(s) moon"),
    ({"version": 1, "overrides": {"min_interval_s": {"other": 0}}}, "out of range"),
    ({"version": 1, "overrides": {"radius_m": float("nan")}}, "radius_m"),
    ({"version": 1, "overrides": {"scene_threshold": 1.0}}, "not usable rules"),
    ({"version": 1, "overrides": {"max_interval_s": 10}}, "not usable rules"),
    ("rules", "must be an object"),
])
def test_bad_rules_blocks(block: object, fragment: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_rules_block(block)
    assert fragment in err.value.reason
