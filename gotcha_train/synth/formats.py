"""Korean plate formats: which text each style carries, and how that text splits into parts.

Facts (docs/design.md, "Korean plates"): optional region, 2 or 3 digits, one Hangul use-letter,
4 digits. The style decides colours and layout; the text decides the characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edge_agent.errors import BadInputError

REGIONS = ("서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기", "강원",
           "충북", "충남", "전북", "전남", "경북", "경남", "제주")
PRIVATE_LETTERS = tuple("가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주")
COMMERCIAL_LETTERS = tuple("바사아자")
DELIVERY_LETTERS = ("배",)
RENTAL_LETTERS = tuple("하허호")
MILITARY_LETTERS = tuple("국합육해공")
USE_LETTERS = (PRIVATE_LETTERS + COMMERCIAL_LETTERS + DELIVERY_LETTERS + RENTAL_LETTERS
               + MILITARY_LETTERS)

# style -> short description; every current format and colour.
STYLES: dict[str, str] = {
    "white7": "white private, 2 digits + letter + 4 digits (2006-2019)",
    "white8": "white private, 3 digits + letter + 4 digits (2019+), optional left band",
    "white_old2": "white private two-line, region + 2 digits over letter + 4 digits (pre-2006)",
    "yellow1": "yellow commercial, region stacked at the left, one line",
    "yellow2": "yellow commercial two-line, region + 2 digits over letter + 4 digits",
    "yellow_new": "yellow commercial without region (2019+ style), one line",
    "green2": "green old two-line, region + 2 digits over letter + 4 digits",
    "green2_noregion": "green two-line, 2 digits + letter over 4 digits",
    "green1": "green single-line (2004-2006 and 2024+ corporate, pale green)",
    "blue_ev": "blue electric vehicle, emblem at the left",
    "orange": "orange construction equipment, region over 2 digits + letter + 4 digits",
    "rental": "white rental car (하 허 호)",
    "delivery": "yellow delivery vehicle (배)",
}

_TEXT_RE = re.compile(r"^(?P<region>" + "|".join(REGIONS) + r")?(?P<front>\d{2,3})"
                      r"(?P<letter>[가-힣])(?P<number>\d{4})$")


@dataclass(frozen=True)
class PlateParts:
    """A plate text split the way it is painted."""

    region: str | None
    front: str
    letter: str
    number: str

    @property
    def text(self) -> str:
        return f"{self.region or ''}{self.front}{self.letter}{self.number}"


def split_text(text: str) -> PlateParts:
    """Split plate text into region, front digits, letter and number; BadInputError otherwise."""
    match = _TEXT_RE.match(text.replace(" ", ""))
    if match is None:
        raise BadInputError(f"plate text {text!r} is not [region]NN(N)<letter>NNNN; give a "
                            f"text like 12가3456 or 서울12바3456")
    return PlateParts(match["region"], match["front"], match["letter"], match["number"])


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def _front2(rng: np.random.Generator) -> str:
    """2-digit front: 01..99 (00 is never issued)."""
    return f"{int(rng.integers(1, 100)):02d}"


def _front3(rng: np.random.Generator) -> str:
    """3-digit front in the passenger/van/truck ranges."""
    return f"{int(rng.integers(100, 1000)):03d}"


def random_plate_text(rng: np.random.Generator, style: str) -> str:
    """A plausible plate text for ``style`` (see STYLES)."""
    if style not in STYLES:
        raise BadInputError(f"unknown plate style {style!r}; one of {', '.join(STYLES)}")
    region = REGIONS[int(rng.integers(len(REGIONS)))]
    private = PRIVATE_LETTERS[int(rng.integers(len(PRIVATE_LETTERS)))]
    commercial = COMMERCIAL_LETTERS[int(rng.integers(len(COMMERCIAL_LETTERS)))]
    number = _digits(rng, 4)
    if style in ("white7", "green2_noregion"):
        return f"{_front2(rng)}{private}{number}"
    if style in ("white8", "blue_ev", "green1"):
        front = _front3(rng) if rng.random() < 0.7 or style == "white8" else _front2(rng)
        letter = private if rng.random() < 0.9 else MILITARY_LETTERS[int(rng.integers(5))]
        return f"{front}{letter}{number}"
    if style in ("white_old2", "green2"):
        return f"{region}{_front2(rng)}{private}{number}"
    if style in ("yellow1", "yellow2"):
        return f"{region}{_front2(rng)}{commercial}{number}"
    if style == "yellow_new":
        front = _front2(rng) if rng.random() < 0.5 else _front3(rng)
        return f"{front}{commercial}{number}"
    if style == "orange":
        letter = private if rng.random() < 0.7 else commercial
        return f"{region}{_front2(rng)}{letter}{number}"
    if style == "rental":
        front = _front2(rng) if rng.random() < 0.5 else _front3(rng)
        return f"{front}{RENTAL_LETTERS[int(rng.integers(3))]}{number}"
    # delivery
    with_region = rng.random() < 0.5
    return f"{region if with_region else ''}{_front2(rng)}배{number}"
