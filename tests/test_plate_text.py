"""A read's tokens to a PlateRead: one confidence per character of the plate, derived once."""

from __future__ import annotations

import pytest

from edge_agent.plates.text import interpret_read, plate_char_confidences
from edge_agent.results import PlateRead


def test_a_region_token_gives_its_confidence_to_both_its_characters() -> None:
    tokens = ("서울", *"12가3456")
    confs = (0.7, 0.91, 0.92, 0.5, 0.93, 0.94, 0.95, 0.96)
    read = interpret_read(tokens, confs)
    assert read.valid and read.text == "서울12가3456" and read.raw_text == "서울12가3456"
    assert read.tokens == tokens and read.token_confidences == confs
    assert read.char_confidences == (0.7, 0.7, 0.91, 0.92, 0.5, 0.93, 0.94, 0.95, 0.96)
    assert read.confidence == 0.5  # still the weakest token's


def test_a_plate_without_a_region_has_one_confidence_per_token() -> None:
    confs = (0.91, 0.92, 0.5, 0.93, 0.94, 0.95, 0.96)
    read = interpret_read(tuple("12가3456"), confs)
    assert read.text == "12가3456" and read.char_confidences == confs


def test_repaired_characters_get_the_weakest_confidence() -> None:
    """O read where the plate has 0: the grammar repairs it, but the model never read a 0."""
    confs = (0.9, 0.91, 0.92, 0.93, 0.6, 0.95, 0.96)
    read = interpret_read(tuple("12가3O56"), confs)
    assert read.text == "12가3056"
    assert read.char_confidences == (0.9, 0.91, 0.92, 0.93, 0.6, 0.95, 0.96)
    sure_o = (0.99,) * 4 + (0.98,) + (0.7,) + (0.99,)
    assert plate_char_confidences(tuple("12가3O56"), sure_o, "12가3056")[4] == 0.7


def test_separators_are_skipped_and_characters_not_read_are_weakest() -> None:
    tokens, confs = ("12", " ", "가", "34", "56"), (0.9, 0.2, 0.8, 0.7, 0.6)
    assert plate_char_confidences(tokens, confs, "12가3456") == (0.9, 0.9, 0.8, 0.7, 0.7, 0.6,
                                                                  0.6)
    # a character the read does not hold (here 7) cannot borrow a confidence
    assert plate_char_confidences(tuple("12가3456"), (0.9,) * 6 + (0.95,),
                                  "12가3457")[-1] == 0.9


def test_an_invalid_read_keeps_one_confidence_per_raw_character() -> None:
    read = interpret_read(("서울", "1", "흐"), (0.8, 0.7, 0.6))
    assert not read.valid and read.text is None
    assert read.char_confidences == (0.8, 0.8, 0.7, 0.6)
    empty = interpret_read((), ())
    assert empty.char_confidences == () and empty.confidence == 0.0


def test_a_plate_read_is_checked_when_built() -> None:
    with pytest.raises(ValueError, match="one confidence per character"):
        PlateRead(raw_text="서울12가3456", char_confidences=(0.9,) * 10, text="서울12가3456",
                  valid=True)
    with pytest.raises(ValueError, match="do not spell"):
        PlateRead(raw_text="12가3456", char_confidences=(0.9,) * 7, tokens=("12가345",),
                  token_confidences=(0.9,))
    with pytest.raises(ValueError, match="one confidence per token"):
        PlateRead(raw_text="12", char_confidences=(0.9, 0.9), tokens=("1", "2"),
                  token_confidences=(0.9,))


def test_a_plate_character_found_only_further_on_borrows_nothing() -> None:
    """A full-width first digit (unsure) must not take the sure confidence of the later 1."""
    tokens = ("１", "2", "가", "3", "4", "5", "1")
    confs = (0.3, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95)
    assert plate_char_confidences(tokens, confs, "12가3451") == (0.3,) * 7
