"""The Korean plate grammar: which texts are plates, what they say, and why a read is rejected.

Why here and pure: the device decides whether a read may become a report candidate and the
cloud re-checks every manifest, so both must apply the very same grammar (docs/design.md,
section "Korean plates"). A plate is an optional region (older and commercial plates, often
two-line), 2 or 3 front digits (3 since September 2019), one Hangul use-letter and a 4-digit
serial; diplomatic and similar plates are a two-syllable prefix and 6 digits (``외교 001-075``).

Public surface: :func:`parse_plate`, :func:`explain_reject`, :func:`repair_read`,
:func:`normalize_plate` and the :class:`ParsedPlate` result. Whether two reads are the same
plate is :mod:`gotcha_contracts.plate_identity`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

REGIONS: tuple[str, ...] = ("서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기",
                            "강원", "충북", "충남", "전북", "전남", "경북", "경남", "제주")

PRIVATE_LETTERS = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주"
COMMERCIAL_LETTERS = "바사아자"
DELIVERY_LETTERS = "배"
RENTAL_LETTERS = "하허호"
MILITARY_LETTERS = "국합육해공"

#: use-letter -> use
LETTER_USE: dict[str, str] = {
    **dict.fromkeys(PRIVATE_LETTERS, "private"),
    **dict.fromkeys(COMMERCIAL_LETTERS, "commercial"),
    **dict.fromkeys(DELIVERY_LETTERS, "delivery"),
    **dict.fromkeys(RENTAL_LETTERS, "rental"),
    **dict.fromkeys(MILITARY_LETTERS, "military"),
}

#: two-syllable prefixes of diplomatic and similar plates (followed by 6 digits)
DIPLOMATIC_PREFIXES: tuple[str, ...] = ("외교", "영사", "준외", "준영", "국기", "협정", "대표")

USES: tuple[str, ...] = ("private", "commercial", "delivery", "rental", "military", "diplomatic")
VEHICLE_TYPES: tuple[str, ...] = ("passenger", "van", "truck", "special", "emergency")
#: every value ParsedPlate.format takes (per-format statistics key on it)
FORMATS: tuple[str, ...] = (
    *(f"{use}-{n}digit" for use in USES[:5] for n in (2, 3)), "regional", "diplomatic")

# (low, high, type), inclusive, for each front-number length
_TYPE_RANGES: dict[int, tuple[tuple[int, int, str], ...]] = {
    3: ((100, 699, "passenger"), (700, 799, "van"), (800, 979, "truck"),
        (980, 997, "special"), (998, 999, "emergency")),
    2: ((1, 69, "passenger"), (70, 79, "van"), (80, 97, "truck"), (98, 99, "special")),
}

# Separators a read or a typed plate may carry: spaces, line breaks (two-line plates),
# hyphens/dashes, dots, the middle dot and zero-width characters pasted from the web.
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―·.・_\u200b\u200c\u200d\u2060\ufeff]+")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029]")
_HANGUL = re.compile(r"[가-힣]")
_RUNS = re.compile(r"[가-힣]+|[0-9]+|[A-Za-z]+|.", re.DOTALL)
_FULLWIDTH = str.maketrans({chr(0xFF10 + i): str(i) for i in range(10)}
                           | {chr(0xFF21 + i): chr(0x41 + i) for i in range(26)}
                           | {chr(0xFF41 + i): chr(0x61 + i) for i in range(26)})

#: Latin look-alikes of digits that OCR confuses on plates (plates carry no Latin letters)
DIGIT_CONFUSIONS: dict[str, str] = {
    "O": "0", "o": "0", "D": "0", "Q": "0", "U": "0",
    "I": "1", "l": "1", "i": "1", "L": "1", "|": "1", "!": "1",
    "Z": "2", "z": "2",
    "S": "5", "s": "5",
    "G": "6", "b": "6",
    "T": "7",
    "B": "8",
    "g": "9", "q": "9",
}

MAX_INPUT_CHARS = 64  # no plate is longer; refuse to chew on garbage


@dataclass(frozen=True, slots=True)
class ParsedPlate:
    """A read that the grammar accepted, split into its parts.

    ``text`` is the normalised form used everywhere as the plate's identity (no spaces):
    ``"서울12가3456"``, ``"123가4567"``, ``"외교001075"``. For diplomatic plates ``letter``
    holds the two-syllable prefix, ``front`` the first three digits and ``number`` the last
    three.
    """

    text: str
    region: str | None
    front: str
    letter: str
    number: str
    use: str  # one of USES
    vehicle_type: str | None  # one of VEHICLE_TYPES; None for military and diplomatic plates
    two_line: bool  # the input was written on two lines
    format: str  # one of FORMATS

    @property
    def display(self) -> str:
        """The way the plate is painted: ``"서울 12가 3456"``, ``"외교 001-075"``."""
        if self.format == "diplomatic":
            return f"{self.letter} {self.front}-{self.number}"
        head = f"{self.region} " if self.region else ""
        return f"{head}{self.front}{self.letter} {self.number}"


class _Reject(Exception):
    """Internal: carries the reason a text is not a plate."""


def _clean(text: str) -> tuple[str, bool]:
    """NFC, full-width to ASCII, separators removed; also whether the input had two lines."""
    if not isinstance(text, str):
        raise _Reject(f"a plate read must be text, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text).translate(_FULLWIDTH).strip()
    if not text:
        raise _Reject("empty read")
    if len(text) > MAX_INPUT_CHARS:
        raise _Reject(f"read is {len(text)} characters long; no plate has more than 12")
    two_line = bool(_LINE_BREAK.search(text))
    return _SEPARATORS.sub("", text), two_line


def _vehicle_type(front: str) -> str | None:
    value = int(front)
    for low, high, kind in _TYPE_RANGES.get(len(front), ()):
        if low <= value <= high:
            return kind
    return None


def _parse_diplomatic(prefix: str, digits: str, two_line: bool) -> ParsedPlate:
    if len(digits) != 6:
        raise _Reject(f"a {prefix} plate has 6 digits after the prefix, got {len(digits)}")
    return ParsedPlate(text=f"{prefix}{digits}", region=None, front=digits[:3], letter=prefix,
                       number=digits[3:], use="diplomatic", vehicle_type=None,
                       two_line=two_line, format="diplomatic")


def _parse_standard(region: str | None, front: str, letter: str, number: str,
                    two_line: bool) -> ParsedPlate:
    if region is not None and region not in REGIONS:
        raise _Reject(f"{region!r} is not a region name (one of {' '.join(REGIONS)})")
    if len(front) not in (2, 3):
        raise _Reject(f"the front number has 2 or 3 digits, got {len(front)} ({front})")
    if len(letter) != 1:
        raise _Reject(f"one Hangul use-letter goes between the numbers, got {letter!r}")
    use = LETTER_USE.get(letter)
    if use is None:
        raise _Reject(f"{letter!r} is not a plate use-letter")
    if len(number) != 4:
        raise _Reject(f"the serial after the letter has 4 digits, got {len(number)} ({number})")
    if number == "0000":
        raise _Reject("serial 0000 is never issued")
    vehicle_type = _vehicle_type(front)
    if vehicle_type is None:
        span = "100-999" if len(front) == 3 else "01-99"
        raise _Reject(f"front number {front} is never issued ({len(front)}-digit fronts are "
                      f"{span})")
    if use == "military":
        vehicle_type = None  # military fronts do not follow the civil type ranges
    fmt = "regional" if region else f"{use}-{len(front)}digit"
    return ParsedPlate(text=f"{region or ''}{front}{letter}{number}", region=region, front=front,
                       letter=letter, number=number, use=use, vehicle_type=vehicle_type,
                       two_line=two_line, format=fmt)


def _parse(text: str) -> ParsedPlate:
    """Parse or raise _Reject with the first reason found, checked from coarse to fine."""
    cleaned, two_line = _clean(text)
    if not cleaned:
        raise _Reject("read holds only separators")
    runs = _RUNS.findall(cleaned)
    odd = [r for r in runs if not (_HANGUL.match(r) or (r.isascii() and r.isdigit()))]
    if odd:
        latin = [r for r in odd if r.isascii() and r.isalpha()]
        if latin:
            raise _Reject(f"Latin letters {''.join(latin)!r} do not occur on Korean plates")
        shown = "".join(sorted(set("".join(odd))))
        raise _Reject(f"characters {shown!r} do not occur on Korean plates")
    kinds = "".join("H" if _HANGUL.match(r) else "D" for r in runs)
    if kinds == "HD" and runs[0] in DIPLOMATIC_PREFIXES:
        return _parse_diplomatic(runs[0], runs[1], two_line)
    if kinds == "DHD":
        return _parse_standard(None, *runs, two_line=two_line)
    if kinds == "HDHD":
        return _parse_standard(*runs, two_line=two_line)
    if kinds == "HD" and len(runs[0]) == 2 and runs[0] not in REGIONS:
        raise _Reject(f"{runs[0]!r} is not a diplomatic prefix (one of "
                      f"{' '.join(DIPLOMATIC_PREFIXES)})")
    if kinds == "HD" and runs[0] in REGIONS:
        raise _Reject(f"no use-letter and serial after {runs[0]}{runs[1]}")
    if "H" not in kinds:
        raise _Reject("no Hangul use-letter in the read")
    if kinds in ("DH", "HDH"):
        raise _Reject("no serial number after the use-letter")
    if kinds in ("HD", "H") or kinds.startswith("HH"):
        raise _Reject("no front number before the use-letter")
    raise _Reject(f"parts in the wrong order for a plate ({len(runs)} groups of Hangul and "
                  "digits; expected [region] front letter serial)")


def parse_plate(text: str) -> ParsedPlate | None:
    """The parsed plate, or None when ``text`` is not a Korean plate (see explain_reject).

    Accepts spaces, hyphens, dots and line breaks between parts (two-line plates), any
    Unicode normalisation form and full-width digits.
    """
    try:
        return _parse(text)
    except _Reject:
        return None


def explain_reject(text: str) -> str:
    """Why ``text`` is not a plate, in one line; ``""`` when it is one."""
    try:
        _parse(text)
    except _Reject as exc:
        return str(exc)
    return ""


def normalize_plate(text: str) -> str | None:
    """The normalised plate text (the plate's identity), or None when it does not parse."""
    parsed = parse_plate(text)
    return parsed.text if parsed else None


def repair_read(raw: str, confidences: Sequence[float]) -> tuple[str, tuple[float, ...]]:
    """Fix Latin look-alikes of digits (O/0, I/1, B/8, S/5, Z/2, D/0, G/6, ...) in a raw read.

    A repair happens only where it is unambiguous: plates carry no Latin letters, so a
    look-alike can only be a misread digit, and it is replaced only when the repaired read
    then parses (every replaced character sat in a digit position). Anything else is returned
    unchanged, so a read that is still wrong stays visibly wrong. ``confidences`` are per
    character of ``raw``; the result keeps them aligned (same length as the returned text).
    """
    confidences = tuple(float(c) for c in confidences)
    if not isinstance(raw, str) or parse_plate(raw) is not None:
        return raw, confidences
    candidate = raw.translate(_FULLWIDTH)
    if not any(ch in DIGIT_CONFUSIONS for ch in candidate):
        return raw, confidences
    repaired = "".join(DIGIT_CONFUSIONS.get(ch, ch) for ch in candidate)
    if parse_plate(repaired) is None:
        return raw, confidences
    return repaired, confidences

