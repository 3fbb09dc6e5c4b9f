"""Plate identity, shared by device and cloud: the exact key and the one-unsure-character rule."""

from __future__ import annotations

import pytest

from gotcha_contracts.plate_identity import match_keys, plate_key, same_plate

SURE, UNSURE_LAST = (0.95,) * 7, (0.95,) * 6 + (0.3,)


@pytest.mark.parametrize(("text", "key"), [
    ("12가3456", "12가3456"), ("서울 12바 3456", "서울12바3456"),
    ("서울\n12바3456", "서울12바3456"), ("외교 001-075", "외교001075"), ("12흐3456", None),
    ("", None),
])
def test_plate_key_is_the_normalised_plate(text: str, key: str | None) -> None:
    assert plate_key(text) == key


def test_one_unsure_character_against_a_sure_one_is_the_same_plate() -> None:
    assert same_plate("12가3456", SURE, "12가3458", UNSURE_LAST, 0.6, 0.8) == \
        ("12가3456", "12가3458")
    assert same_plate("12가3458", UNSURE_LAST, "12가3456", SURE, 0.6, 0.8) == \
        ("12가3456", "12가3458")  # the sure read is kept, whichever comes first


def test_equal_plates_match_whatever_the_confidences() -> None:
    assert same_plate("12가3456", UNSURE_LAST, "12가3456", UNSURE_LAST, 0.6, 0.8) == \
        ("12가3456", "12가3456")


@pytest.mark.parametrize(("a", "a_confs", "b", "b_confs"), [
    ("12가3456", SURE, "12가3458", SURE),  # two confident different reads: two plates
    ("12가3456", UNSURE_LAST, "12가3458", UNSURE_LAST),  # both unsure: no read to trust
    ("12가3456", SURE, "12가3478", (0.3,) * 7),  # two characters apart
    ("12가3456", SURE, "123가3456", (0.3,) * 8),  # different lengths
    ("12가3456", SURE, "12가 3458", (0.3,) * 8),  # not normalised
    ("12흐3456", SURE, "12흐3458", UNSURE_LAST),  # not plates
    ("12흐3456", SURE, "12흐3456", SURE),
])
def test_different_plates(a: str, a_confs: tuple[float, ...], b: str,
                          b_confs: tuple[float, ...]) -> None:
    assert same_plate(a, a_confs, b, b_confs, 0.6, 0.8) is None


def test_confidences_must_align_with_the_plate() -> None:
    with pytest.raises(ValueError, match="one confidence per plate character"):
        same_plate("12가3456", SURE[:3], "12가3458", UNSURE_LAST, 0.6, 0.8)


@pytest.mark.parametrize(("a", "b"), [
    ("12가3456", "12가3458"), ("12가3456", "17가3456"), ("12가3456", "12나3456"),
    ("서울12가3456", "서울12가3459"), ("서울12가3456", "부울12가3456"), ("12가3456", "12가3456"),
])
def test_plates_one_character_apart_share_a_match_key(a: str, b: str) -> None:
    assert set(match_keys(a)) & set(match_keys(b))


def test_match_keys_keep_plates_of_other_lengths_apart() -> None:
    assert match_keys("12가3456") == ("**가3456", "12**456", "12가3***")
    assert not set(match_keys("12가3456")) & set(match_keys("123가3456"))
    assert not set(match_keys("12가3456")) & set(match_keys("34나7890"))
    assert not set(match_keys("12가3456")) & set(match_keys("12가7890"))  # same front half
