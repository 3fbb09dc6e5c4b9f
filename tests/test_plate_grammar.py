"""The Korean plate grammar over every format, the rejects with their reasons, and repairs."""

from __future__ import annotations

import unicodedata

import pytest

from edge_agent.plates.text import interpret_read
from gotcha_contracts.plate_grammar import (
    DIPLOMATIC_PREFIXES,
    FORMATS,
    LETTER_USE,
    REGIONS,
    USES,
    VEHICLE_TYPES,
    explain_reject,
    normalize_plate,
    parse_plate,
    repair_read,
)

# text, normalised, region, front, letter, number, use, vehicle_type, two_line, format
ACCEPTED = [
    ("12가3456", "12가3456", None, "12", "가", "3456", "private", "passenger", False,
     "private-2digit"),
    ("123가4567", "123가4567", None, "123", "가", "4567", "private", "passenger", False,
     "private-3digit"),
    ("123 가 4567", "123가4567", None, "123", "가", "4567", "private", "passenger", False,
     "private-3digit"),
    ("123가-4567", "123가4567", None, "123", "가", "4567", "private", "passenger", False,
     "private-3digit"),
    ("  55 수 1004 ", "55수1004", None, "55", "수", "1004", "private", "passenger", False,
     "private-2digit"),
    ("712누1234", "712누1234", None, "712", "누", "1234", "private", "van", False,
     "private-3digit"),
    ("75누1234", "75누1234", None, "75", "누", "1234", "private", "van", False,
     "private-2digit"),
    ("850보5678", "850보5678", None, "850", "보", "5678", "private", "truck", False,
     "private-3digit"),
    ("979보5678", "979보5678", None, "979", "보", "5678", "private", "truck", False,
     "private-3digit"),
    ("85보5678", "85보5678", None, "85", "보", "5678", "private", "truck", False,
     "private-2digit"),
    ("980조1111", "980조1111", None, "980", "조", "1111", "private", "special", False,
     "private-3digit"),
    ("997조1111", "997조1111", None, "997", "조", "1111", "private", "special", False,
     "private-3digit"),
    ("98조1111", "98조1111", None, "98", "조", "1111", "private", "special", False,
     "private-2digit"),
    ("998주1119", "998주1119", None, "998", "주", "1119", "private", "emergency", False,
     "private-3digit"),
    ("999주1119", "999주1119", None, "999", "주", "1119", "private", "emergency", False,
     "private-3digit"),
    ("01가1000", "01가1000", None, "01", "가", "1000", "private", "passenger", False,
     "private-2digit"),
    ("69가1000", "69가1000", None, "69", "가", "1000", "private", "passenger", False,
     "private-2digit"),
    ("699가1000", "699가1000", None, "699", "가", "1000", "private", "passenger", False,
     "private-3digit"),
    # rental
    ("12하3456", "12하3456", None, "12", "하", "3456", "rental", "passenger", False,
     "rental-2digit"),
    ("345허6789", "345허6789", None, "345", "허", "6789", "rental", "passenger", False,
     "rental-3digit"),
    ("101호0001", "101호0001", None, "101", "호", "0001", "rental", "passenger", False,
     "rental-3digit"),
    # delivery
    ("80배1234", "80배1234", None, "80", "배", "1234", "delivery", "truck", False,
     "delivery-2digit"),
    ("서울80배1234", "서울80배1234", "서울", "80", "배", "1234", "delivery", "truck", False,
     "regional"),
    # commercial (yellow), with and without region, one and two lines
    ("서울12바3456", "서울12바3456", "서울", "12", "바", "3456", "commercial", "passenger",
     False, "regional"),
    ("부산 34 사 5678", "부산34사5678", "부산", "34", "사", "5678", "commercial", "passenger",
     False, "regional"),
    ("경기71아1234\n", "경기71아1234", "경기", "71", "아", "1234", "commercial", "van", False,
     "regional"),
    ("경기 71\n아 1234", "경기71아1234", "경기", "71", "아", "1234", "commercial", "van", True,
     "regional"),
    ("제주88자\r\n9999", "제주88자9999", "제주", "88", "자", "9999", "commercial", "truck",
     True, "regional"),
    ("123바4567", "123바4567", None, "123", "바", "4567", "commercial", "passenger", False,
     "commercial-3digit"),
    ("12자3456", "12자3456", None, "12", "자", "3456", "commercial", "passenger", False,
     "commercial-2digit"),
    # old private with region (two-line), region + 3 digits allowed by the grammar
    ("서울 12\n가 3456", "서울12가3456", "서울", "12", "가", "3456", "private", "passenger",
     True, "regional"),
    ("세종123가4567", "세종123가4567", "세종", "123", "가", "4567", "private", "passenger",
     False, "regional"),
    # military
    ("12국3456", "12국3456", None, "12", "국", "3456", "military", None, False,
     "military-2digit"),
    ("123합4567", "123합4567", None, "123", "합", "4567", "military", None, False,
     "military-3digit"),
    ("34육5678", "34육5678", None, "34", "육", "5678", "military", None, False,
     "military-2digit"),
    ("56해1234", "56해1234", None, "56", "해", "1234", "military", None, False,
     "military-2digit"),
    ("78공1234", "78공1234", None, "78", "공", "1234", "military", None, False,
     "military-2digit"),
    # diplomatic and similar
    ("외교001075", "외교001075", None, "001", "외교", "075", "diplomatic", None, False,
     "diplomatic"),
    ("외교 001-075", "외교001075", None, "001", "외교", "075", "diplomatic", None, False,
     "diplomatic"),
    ("영사 123-456", "영사123456", None, "123", "영사", "456", "diplomatic", None, False,
     "diplomatic"),
    ("준외\n010-001", "준외010001", None, "010", "준외", "001", "diplomatic", None, True,
     "diplomatic"),
    ("준영012345", "준영012345", None, "012", "준영", "345", "diplomatic", None, False,
     "diplomatic"),
    ("국기 100·200", "국기100200", None, "100", "국기", "200", "diplomatic", None, False,
     "diplomatic"),
    ("협정001002", "협정001002", None, "001", "협정", "002", "diplomatic", None, False,
     "diplomatic"),
    ("대표 999-999", "대표999999", None, "999", "대표", "999", "diplomatic", None, False,
     "diplomatic"),
    # full-width digits from some OCR dictionaries
    ("１２가３４５６", "12가3456", None, "12", "가", "3456", "private", "passenger", False,
     "private-2digit"),
]


@pytest.mark.parametrize(
    ("text", "norm", "region", "front", "letter", "number", "use", "vtype", "two_line", "fmt"),
    ACCEPTED)
def test_accepted_formats(text, norm, region, front, letter, number, use, vtype, two_line,
                          fmt) -> None:
    parsed = parse_plate(text)
    assert parsed is not None, explain_reject(text)
    assert (parsed.text, parsed.region, parsed.front, parsed.letter, parsed.number) == (
        norm, region, front, letter, number)
    assert (parsed.use, parsed.vehicle_type, parsed.two_line, parsed.format) == (
        use, vtype, two_line, fmt)
    assert parsed.format in FORMATS
    assert parsed.use in USES
    assert parsed.vehicle_type is None or parsed.vehicle_type in VEHICLE_TYPES
    assert explain_reject(text) == ""
    assert normalize_plate(text) == norm
    # the normalised text is a fixed point
    assert parse_plate(parsed.text).text == parsed.text


@pytest.mark.parametrize(("text", "display"), [
    ("12가3456", "12가 3456"), ("서울12바3456", "서울 12바 3456"), ("외교001075", "외교 001-075"),
])
def test_display(text: str, display: str) -> None:
    assert parse_plate(text).display == display
    assert parse_plate(display).text == text


@pytest.mark.parametrize("region", REGIONS)
def test_every_region(region: str) -> None:
    parsed = parse_plate(f"{region} 12바3456")
    assert parsed is not None and parsed.region == region and parsed.use == "commercial"


@pytest.mark.parametrize(("letter", "use"), sorted(LETTER_USE.items()))
def test_every_use_letter(letter: str, use: str) -> None:
    parsed = parse_plate(f"123{letter}4567")
    assert parsed is not None and parsed.use == use and parsed.letter == letter


@pytest.mark.parametrize("prefix", DIPLOMATIC_PREFIXES)
def test_every_diplomatic_prefix(prefix: str) -> None:
    parsed = parse_plate(f"{prefix} 001-075")
    assert parsed is not None and parsed.use == "diplomatic" and parsed.text == f"{prefix}001075"


@pytest.mark.parametrize(("front", "vtype"), [
    ("100", "passenger"), ("699", "passenger"), ("700", "van"), ("799", "van"),
    ("800", "truck"), ("979", "truck"), ("980", "special"), ("997", "special"),
    ("998", "emergency"), ("999", "emergency"),
    ("01", "passenger"), ("69", "passenger"), ("70", "van"), ("79", "van"), ("80", "truck"),
    ("97", "truck"), ("98", "special"), ("99", "special"),
])
def test_vehicle_type_boundaries(front: str, vtype: str) -> None:
    assert parse_plate(f"{front}가1234").vehicle_type == vtype


def test_decomposed_hangul_is_normalised() -> None:
    nfd = unicodedata.normalize("NFD", "서울12가3456")
    assert nfd != "서울12가3456"
    assert parse_plate(nfd).text == "서울12가3456"


# text, a fragment the reason must contain
REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    (" - \n ", "only separators"),
    ("12가345", "4 digits"),
    ("12가34567", "4 digits"),
    ("1가3456", "2 or 3 digits"),
    ("1234가5678", "2 or 3 digits"),
    ("12가나3456", "one Hangul use-letter"),
    ("12흐3456", "not a plate use-letter"),
    ("12배3456가", "wrong order"),
    ("123ABC4567", "Latin"),
    ("12가34S6", "Latin"),
    ("12#3456", "do not occur"),
    ("12ㄱ3456", "do not occur"),
    ("123456", "no Hangul"),
    ("12가", "no serial"),
    ("서울12가", "no serial"),
    ("가3456", "no front number"),
    ("서울가3456", "no front number"),
    ("서울1234", "no use-letter"),
    ("서욱12가3456", "not a region"),
    ("외교00107", "6 digits"),
    ("외교0010755", "6 digits"),
    ("외고001075", "not a diplomatic prefix"),
    ("12가0000", "0000"),
    ("000가1234", "never issued"),
    ("099가1234", "never issued"),
    ("00가1234", "never issued"),
    ("1" * 80, "characters long"),
    ("3456 12가", "no serial"),
]


@pytest.mark.parametrize(("text", "fragment"), REJECTED)
def test_rejects_with_reason(text: str, fragment: str) -> None:
    assert parse_plate(text) is None
    reason = explain_reject(text)
    assert fragment in reason, reason
    assert "\n" not in reason
    assert normalize_plate(text) is None


@pytest.mark.parametrize("value", [None, 123, b"12\xea\xb0\x803456"])
def test_non_text_is_rejected(value: object) -> None:
    assert parse_plate(value) is None  # type: ignore[arg-type]
    assert "must be text" in explain_reject(value)  # type: ignore[arg-type]


# raw OCR, repaired text (None: must stay as it was)
REPAIRS = [
    ("12가34S6", "12가3456"),
    ("I2가3456", "12가3456"),
    ("1O3가4567", "103가4567"),
    ("12가B456", "12가8456"),
    ("l23가4S67", "123가4567"),
    ("서울1Z바3456", "서울12바3456"),
    ("외교OO1O75", "외교001075"),
    ("12가3G56", "12가3656"),
    ("12가D456", "12가0456"),
    ("12가3456", None),  # already valid: untouched
    ("12X3456", None),  # X is no digit look-alike, and the letter slot needs Hangul
    ("12가3456B", None),  # repairing would give a 5-digit serial: not a plate, no repair
    ("ABC", None),
    ("12흐34S6", None),  # still not a plate after the repair
    ("", None),
]


@pytest.mark.parametrize(("raw", "repaired"), REPAIRS)
def test_repair_read(raw: str, repaired: str | None) -> None:
    confidences = tuple(0.5 + i / 100 for i in range(len(raw)))
    text, confs = repair_read(raw, confidences)
    assert text == (raw if repaired is None else repaired)
    assert confs == confidences
    assert len(text) == len(confs)


def test_repair_keeps_separators_aligned() -> None:
    raw = "12가 34S6"
    text, confs = repair_read(raw, [0.9] * len(raw))
    assert text == "12가 3456" and len(confs) == len(text)


@pytest.mark.parametrize(("raw", "text", "valid", "reason"), [
    ("12가3456", "12가3456", True, None),
    ("12가 34S6", "12가3456", True, None),
    ("외교 001-075", "외교001075", True, None),
    ("12흐3456", None, False, "not a plate use-letter"),
    ("", None, False, "empty"),
])
def test_interpret_read(raw: str, text: str | None, valid: bool, reason: str | None) -> None:
    confidences = [0.9] * len(raw)
    read = interpret_read(raw, confidences)  # a string: one token per character
    assert read.raw_text == raw and read.tokens == tuple(raw)
    assert read.text == text and read.valid is valid
    assert read.token_confidences == tuple(confidences)
    assert read.char_confidences == (0.9,) * len(text or raw)
    if reason is None:
        assert read.reject_reason is None
    else:
        assert reason in read.reject_reason


@pytest.mark.parametrize(("text", "norm"), [
    ("12가\u200b3456", "12가3456"),  # zero-width space pasted from a web form
    ("\ufeff12가3456", "12가3456"),  # byte-order mark at the start of a CSV cell
    ("12가\u00a03456", "12가3456"),  # no-break space
    ("12가\t3456", "12가3456"),
    ("서울\u300012가3456", "서울12가3456"),  # ideographic space
    ("12가–3456", "12가3456"),  # en dash
    ("외교 001—075", "외교001075"),  # em dash
])
def test_odd_separators(text: str, norm: str) -> None:
    assert normalize_plate(text) == norm


@pytest.mark.parametrize(("text", "fragment"), [
    ("12가3456\x00", "do not occur"),
    ("12가3456🚗", "do not occur"),
    ("12가3456号", "do not occur"),  # CJK ideograph, not Hangul
    ("12ㄱㅏ3456", "do not occur"),  # compatibility jamo, not a syllable
    ("12Ｏ3456", "Latin"),  # full-width Latin letter
    ("가" * 40, "no front number"),
    ("서울서울12가3456", "not a region"),
    ("١٢가٣٤٥٦", "do not occur"),  # Arabic-Indic digits
])
def test_hostile_input_is_rejected_with_a_reason(text: str, fragment: str) -> None:
    assert parse_plate(text) is None
    assert fragment in explain_reject(text)


def test_every_label_of_the_real_plate_sets_parses() -> None:
    """The hand-labelled real plates (../shared/data/plates) are all grammatical."""
    import csv

    from conftest import shared_path

    rows = []
    for name in ("set-a", "set-b"):
        with (shared_path(f"data/plates/{name}") / "labels.csv").open(encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    assert len(rows) >= 20
    failures = {r["plate_text"]: explain_reject(r["plate_text"]) for r in rows
                if parse_plate(r["plate_text"]) is None}
    assert failures == {}
    formats = {parse_plate(r["plate_text"]).format for r in rows}
    assert {"regional", "private-2digit"} <= formats


def test_synthetic_generator_texts_parse() -> None:
    """Texts the synthetic plate generator renders (OCR training) are plates by the grammar,
    apart from the never-issued numbers it may draw at random (front 00, serial 0000)."""
    import numpy as np

    from gotcha_train.synth.formats import STYLES, random_plate_text

    rng = np.random.default_rng(0)
    for style in STYLES:
        for _ in range(50):
            text = random_plate_text(rng, style)
            reason = explain_reject(text)
            assert reason == "" or "never issued" in reason, (style, text, reason)
