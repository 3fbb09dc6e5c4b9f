"""The report lifecycle on a real SQLite store, fed constructed sightings.

The scene comparison is SCENE's module; here a small comparer over readable signatures
(scene name + where the vehicle stands) stands in, so each fault case states exactly what
the matcher would say. test_agent.py-style runs with the real matcher are in test_demo.py.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import StoreConfig
from edge_agent.lifecycle import Lifecycle, SceneVerdict, one_char_match
from edge_agent.plates.text import interpret_read
from edge_agent.results import Box, GeoPoint
from edge_agent.store.records import Sighting
from edge_agent.store.store import Store
from gotcha_contracts.rules import DEFAULT_RULES, reporting_deadline

T0 = datetime(2026, 11, 26, 1, 0, 0, tzinfo=UTC)  # 10:00 KST, a Thursday
HERE = GeoPoint(37.5665, 126.9780, 5.0)
NEAR = GeoPoint(37.56652, 126.97802, 5.0)  # about 3 m away
FAR = GeoPoint(37.5710, 126.9780, 5.0)  # about 500 m away


class ReadableScenes:
    """Signatures are JSON {scene, vehicle_x}: same scene + vehicle within 5 px = match."""

    def compare_bytes(self, a: bytes | None, b: bytes | None) -> SceneVerdict:
        if a is None or b is None:
            return SceneVerdict(0.0, False, None, "no signature")
        sa, sb = json.loads(a), json.loads(b)
        if sa["scene"] != sb["scene"]:
            return SceneVerdict(0.05, False, None, "different background")
        if abs(sa["vehicle_x"] - sb["vehicle_x"]) > 5:
            return SceneVerdict(0.8, True, True, "vehicle moved against the background")
        return SceneVerdict(0.9, True, False, "same background, vehicle in place")


class World:
    """A store + lifecycle with a clock a few minutes after the photos."""

    def __init__(self, tmp_path: Path, zone: str = "sidewalk") -> None:
        self.now = T0 + timedelta(minutes=10)
        cfg = StoreConfig(path=tmp_path / "g.db", photo_dir=tmp_path / "photos")
        self.store = Store.open(cfg, clock=lambda: self.now)
        self.lc = Lifecycle(self.store, DEFAULT_RULES, zone, ReadableScenes(),
                            clock=lambda: self.now)

    def see(self, seconds: float, plate: str = "12가3456", device: str = "dev-a",
            where: GeoPoint | None = HERE, scene: str = "street-1", vehicle_x: int = 100,
            confs: tuple[float, ...] | None = None, at: datetime | None = None):
        data = os.urandom(64)
        sha = self.store.put_photo(data)
        s = Sighting(device_id=device, photo_sha256=sha,
                     captured_at=at or T0 + timedelta(seconds=seconds), plate=plate,
                     plate_raw=plate, char_confidences=confs or (0.97,) * len(plate),
                     plate_box=Box(40, 60, 90, 75), location=where,
                     vehicle_box=Box(vehicle_x, 20, vehicle_x + 120, 90),
                     scene_signature=json.dumps({"scene": scene,
                                                 "vehicle_x": vehicle_x}).encode())
        return self.lc.record(s)

    def states(self) -> dict[str, str]:
        return {r.report_id: r.state for r in self.store.list_reports()}


@pytest.fixture()
def world(tmp_path: Path):
    w = World(tmp_path)
    yield w
    w.store.close()


def test_two_photos_70s_apart_confirm_with_outbox(world: World) -> None:
    first = world.see(0)
    assert first.action == "candidate"
    second = world.see(70)
    assert (second.action, second.report_id) == ("confirmed", first.report_id)
    report = world.store.report(first.report_id)  # type: ignore[arg-type]
    assert report.state == "confirmed"
    assert report.first_seen_at == T0 and report.confirmed_at == T0 + timedelta(seconds=70)
    assert report.deadline == reporting_deadline(T0)
    assert report.scene_score == pytest.approx(0.9)
    assert world.store.outbox_item(report.report_id).state == "pending"  # type: ignore[union-attr]
    roles = [s.role for s in world.store.report_sightings(report.report_id)]
    assert roles == ["first", "confirming"]


def test_seen_again_too_early_is_a_duplicate_then_confirms(world: World) -> None:
    first = world.see(0)
    early = world.see(30)
    assert (early.action, early.report_id) == ("duplicate", first.report_id)
    assert "before the 60 s minimum" in early.reason
    assert world.see(61).action == "confirmed"


def test_other_zone_needs_five_minutes(tmp_path: Path) -> None:
    w = World(tmp_path, zone="other")
    w.see(0)
    assert w.see(120).action == "duplicate"
    w.now = T0 + timedelta(minutes=20)
    assert w.see(301).action == "confirmed"


def test_third_photo_after_confirmation_is_a_duplicate(world: World) -> None:
    first = world.see(0)
    world.see(70)
    third = world.see(200)
    assert (third.action, third.report_id) == ("duplicate", first.report_id)
    report = world.store.report(first.report_id)  # type: ignore[arg-type]
    assert report.duplicate_count == 1 and report.state == "confirmed"
    assert world.store.db["outbox"].count == 1


def test_same_photo_recorded_twice_changes_nothing(world: World) -> None:
    world.see(0)
    second = world.see(70)
    again = world.lc.record(world.store.sighting(second.sighting_id))
    assert again.action == "already_recorded"
    assert world.store.db["outbox"].count == 1
    assert world.store.db["sightings"].count == 2


def test_out_of_order_photos_keep_evidence_times_honest(world: World) -> None:
    later = world.see(100)
    earlier = world.see(0)  # arrives second, taken 100 s before
    assert (earlier.action, earlier.report_id) == ("confirmed", later.report_id)
    report = world.store.report(later.report_id)  # type: ignore[arg-type]
    assert report.first_seen_at == T0  # photo 1 is the earlier photo
    assert report.confirmed_at == T0 + timedelta(seconds=100)
    assert report.first_sighting_id == earlier.sighting_id
    assert report.confirming_sighting_id == later.sighting_id


def test_out_of_order_photos_too_close_never_confirm(world: World) -> None:
    world.see(100)
    assert world.see(50).action == "duplicate"  # |t2 - t1| = 50 s < 60 s
    assert "confirmed" not in world.states().values()


def test_two_devices_interleaved_have_separate_lifecycles(world: World) -> None:
    a1 = world.see(0, device="dev-a")
    b1 = world.see(10, device="dev-b")
    assert b1.action == "candidate" and b1.report_id != a1.report_id  # never dev-a's report
    a2 = world.see(70, device="dev-a")
    b2 = world.see(80, device="dev-b")
    assert (a2.action, a2.report_id) == ("confirmed", a1.report_id)
    assert (b2.action, b2.report_id) == ("confirmed", b1.report_id)
    assert world.store.report(a1.report_id).device_id == "dev-a"  # type: ignore[arg-type]
    assert world.store.report(b1.report_id).device_id == "dev-b"  # type: ignore[arg-type]


def test_clock_jump_forward_beyond_max_interval_never_confirms(world: World) -> None:
    first = world.see(0)
    world.now = T0 + timedelta(days=1, minutes=5)
    jumped = world.see(DEFAULT_RULES.max_interval_s + 3600)
    assert jumped.action == "candidate" and jumped.report_id != first.report_id
    assert world.states()[first.report_id] == "expired"  # type: ignore[index]


def test_clock_jump_backwards_absurdly_never_confirms(world: World) -> None:
    first = world.see(0)
    back = world.see(-DEFAULT_RULES.max_interval_s - 600)
    assert back.action == "candidate" and back.report_id != first.report_id
    assert "over the" in back.reason
    assert "confirmed" not in world.states().values()


@pytest.mark.parametrize("at, why", [
    (T0 + timedelta(days=3), "in the future"),
    (datetime(2000, 1, 1, tzinfo=UTC), "before 2015"),
])
def test_absurd_capture_time_is_kept_but_unmatched(world: World, at: datetime,
                                                   why: str) -> None:
    world.see(0)
    odd = world.see(0, at=at)
    assert odd.action == "unmatched" and why in odd.reason
    assert odd.report_id is None
    assert world.store.sighting(odd.sighting_id).note == odd.reason


def test_no_location_is_unmatched(world: World) -> None:
    decision = world.see(0, where=None)
    assert decision.action == "unmatched" and "no location" in decision.reason
    assert world.store.db["reports"].count == 0


def test_one_unsure_character_off_confirms_with_the_sure_read(world: World) -> None:
    confs = (0.97, 0.97, 0.97, 0.97, 0.97, 0.97, 0.35)  # last digit unsure in photo 2
    first = world.see(0, plate="12가3456")
    second = world.see(70, plate="12가3458", confs=confs)
    assert (second.action, second.report_id) == ("confirmed", first.report_id)
    report = world.store.report(first.report_id)  # type: ignore[arg-type]
    assert (report.plate, report.plate_alt) == ("12가3456", "12가3458")


def test_unsure_first_read_takes_the_sure_second_plate(world: World) -> None:
    unsure = (0.97, 0.4, 0.97, 0.97, 0.97, 0.97, 0.97)
    first = world.see(0, plate="17가3456", confs=unsure)
    second = world.see(70, plate="12가3456")
    assert second.action == "confirmed"
    assert world.store.report(first.report_id).plate == "12가3456"  # type: ignore[arg-type]


def test_two_confident_different_plates_are_never_one_report(world: World) -> None:
    first = world.see(0, plate="12가3456")
    other = world.see(70, plate="12가3458")
    assert other.action == "candidate" and other.report_id != first.report_id
    assert "confirmed" not in world.states().values()


def test_one_char_rule_table() -> None:
    def s(plate: str, confs: tuple[float, ...]) -> Sighting:
        return Sighting("d", "a" * 64, T0, plate, plate, confs, Box(0, 0, 1, 1), HERE)

    sure, unsure_last = (0.95,) * 7, (0.95,) * 6 + (0.3,)
    assert one_char_match(s("12가3456", sure), s("12가3458", unsure_last), 0.6, 0.8) == \
        ("12가3456", "12가3458")
    assert one_char_match(s("12가3456", sure), s("12가3458", sure), 0.6, 0.8) is None
    assert one_char_match(s("12가3456", unsure_last), s("12가3458", unsure_last),
                          0.6, 0.8) is None  # both unsure: no read to trust
    assert one_char_match(s("12가3456", sure), s("12가3478", (0.3,) * 7), 0.6, 0.8) is None
    assert one_char_match(s("12가3456", sure), s("123가3456", (0.3,) * 8), 0.6, 0.8) is None


def _read(tokens: tuple[str, ...], confs: tuple[float, ...]) -> tuple[str, tuple[float, ...]]:
    """(plate, per-character confidences) as the reader derives them from its tokens."""
    read = interpret_read(tokens, confs)
    assert read.valid and read.text is not None
    return read.text, read.char_confidences


def test_region_plate_unsure_letter_and_another_sure_digit_are_two_reports(
        world: World) -> None:
    """서울12가3456 with one unsure letter, then 서울12가3457, whose differing last digit both
    reads are sure of: two plates. The region name is one token, so lining the token
    confidences up character by character ran off the end and gave every character the weakest
    value, and the two merged into one report."""
    plate, confs = _read(("서울", *"12가3456"), (0.97, 0.97, 0.97, 0.55, 0.97, 0.97, 0.97, 0.97))
    other, sure = _read(("서울", *"12가3457"), (0.97,) * 8)
    first = world.see(0, plate=plate, confs=confs)
    second = world.see(70, plate=other, confs=sure)
    assert second.action == "candidate" and second.report_id != first.report_id
    assert "confirmed" not in world.states().values()


def test_region_plate_one_unsure_digit_off_confirms_with_the_sure_read(world: World) -> None:
    plate, sure = _read(("서울", *"12가3456"), (0.97,) * 8)
    other, unsure_last = _read(("서울", *"12가3458"), (0.97,) * 7 + (0.55,))
    first = world.see(0, plate=plate, confs=sure)
    second = world.see(70, plate=other, confs=unsure_last)
    assert (second.action, second.report_id) == ("confirmed", first.report_id)
    report = world.store.report(first.report_id)  # type: ignore[arg-type]
    assert (report.plate, report.plate_alt) == ("서울12가3456", "서울12가3458")


def test_one_char_rule_with_and_without_a_region() -> None:
    def s(tokens: tuple[str, ...], confs: tuple[float, ...]) -> Sighting:
        plate, per_char = _read(tokens, confs)
        return Sighting("d", "a" * 64, T0, plate, plate, per_char, Box(0, 0, 1, 1), HERE)

    sure = (0.95,) * 8
    # the region token's confidence is each of its characters': 경남 unsure vs 경북 sure
    assert one_char_match(s(("경남", *"12가3456"), (0.5, *sure[1:])),
                          s(("경북", *"12가3456"), sure), 0.6, 0.8) == \
        ("경북12가3456", "경남12가3456")
    # unsure letter, but the reads differ in a digit both are sure of
    assert one_char_match(s(("서울", *"12가3456"), (0.95, 0.95, 0.95, 0.5, *sure[4:])),
                          s(("서울", *"12가3457"), sure), 0.6, 0.8) is None
    assert one_char_match(s(tuple("12가3456"), (0.95, 0.95, 0.5, *sure[3:7])),
                          s(tuple("12가3457"), sure[:7]), 0.6, 0.8) is None
    assert one_char_match(s(tuple("12가3456"), sure[:7]),
                          s(tuple("12가3457"), (0.95,) * 6 + (0.5,)), 0.6, 0.8) == \
        ("12가3456", "12가3457")
    # a region read on one photo and missed on the other: different lengths, different plates
    assert one_char_match(s(("서울", *"12가3456"), sure),
                          s(tuple("12가3456"), sure[:7]), 0.6, 0.8) is None


def test_rows_recorded_with_one_confidence_per_token_count_as_their_weakest() -> None:
    """Sightings stored before one confidence per character have one per token (a region name
    one): such a list does not line up with the plate, so every character gets the weakest."""
    old = Sighting("d", "a" * 64, T0, "서울12가3456", "서울12가3456",
                   (0.97, 0.97, 0.97, 0.55, 0.97, 0.97, 0.97, 0.97), Box(0, 0, 1, 1), HERE)
    plate, sure = _read(("서울", *"12가3457"), (0.97,) * 8)
    new = Sighting("d", "a" * 64, T0, plate, plate, sure, Box(0, 0, 1, 1), HERE)
    assert one_char_match(new, old, 0.6, 0.8) == ("서울12가3457", "서울12가3456")


def test_vehicle_moved_a_few_metres_starts_a_new_candidate(world: World) -> None:
    first = world.see(0, vehicle_x=100)
    moved = world.see(70, where=NEAR, vehicle_x=160)
    assert moved.action == "candidate" and moved.report_id != first.report_id
    report = world.store.report(first.report_id)  # type: ignore[arg-type]
    assert report.state == "expired" and "vehicle moved" in (report.expired_reason or "")
    # the new position is then confirmed by its own second photo
    assert world.see(140, where=NEAR, vehicle_x=160).report_id == moved.report_id


def test_different_background_does_not_confirm(world: World) -> None:
    first = world.see(0, scene="street-1")
    other = world.see(70, scene="street-9")
    assert other.action == "candidate" and other.report_id != first.report_id
    assert world.states()[first.report_id] == "candidate"  # type: ignore[index]


def test_same_plate_at_two_places_are_separate_reports(world: World) -> None:
    here = world.see(0, where=HERE)
    there = world.see(20, where=FAR, scene="street-2")
    assert there.action == "candidate" and there.report_id != here.report_id
    assert world.see(70, where=HERE).report_id == here.report_id
    assert world.see(90, where=FAR, scene="street-2").report_id == there.report_id
    assert sorted(world.states().values()) == ["confirmed", "confirmed"]


def test_candidate_expires_without_a_second_photo(world: World) -> None:
    first = world.see(0)
    window = timedelta(seconds=DEFAULT_RULES.max_interval_s)
    with world.store.transaction():  # what the agent's maintenance worker does
        assert world.store.expire_due(T0 + window - timedelta(seconds=1)) == []
        expired = world.store.expire_due(T0 + window + timedelta(seconds=1))
    assert expired == [first.report_id]
    world.now = T0 + timedelta(hours=3)
    late = world.see(DEFAULT_RULES.max_interval_s + 60)
    assert late.action == "candidate" and late.report_id != first.report_id
