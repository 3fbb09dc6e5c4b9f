"""From the recogniser's tokens to a PlateRead: repair look-alikes, parse, say why not, and give
each character of the plate its confidence.

Why a separate adapter: the grammar lives in gotcha_contracts (shared with the cloud, which must not
import the device package); this is the one place the device turns a raw read into its result
type, and the one place a per-token confidence becomes a per-character one.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.results import PlateRead
from gotcha_contracts.plate_grammar import explain_reject, parse_plate, repair_read


def interpret_read(tokens: Sequence[str], confidences: Sequence[float]) -> PlateRead:
    """A PlateRead for a recogniser read: ``text`` is the normalised plate when valid.

    ``tokens`` are the recogniser's, one confidence each (a region name such as 서울 is one
    token; a plain string reads as one token per character). ``raw_text`` keeps what the
    recogniser said (before repair) so an operator can see a repaired read.
    """
    tokens = tuple(tokens)
    confidences = tuple(float(c) for c in confidences)
    raw = "".join(tokens)
    repaired, _ = repair_read(raw, _per_raw_character(tokens, confidences))
    parsed = parse_plate(repaired)
    if parsed is None:
        return PlateRead(raw_text=raw, char_confidences=_per_raw_character(tokens, confidences),
                         text=None, valid=False, reject_reason=explain_reject(repaired),
                         tokens=tokens, token_confidences=confidences)
    return PlateRead(raw_text=raw,
                     char_confidences=plate_char_confidences(tokens, confidences, parsed.text),
                     text=parsed.text, valid=True, reject_reason=None, tokens=tokens,
                     token_confidences=confidences)


def plate_char_confidences(tokens: Sequence[str], confidences: Sequence[float],
                           plate: str) -> tuple[float, ...]:
    """One confidence per character of ``plate`` (the normalised text of this read).

    Why per character: the lifecycle compares two reads character by character, and a region
    token (서울) is two characters read with one confidence, which each of them gets. A plate
    character that no token gave as such (a look-alike the grammar repaired, O read for 0, or
    one it could not find in the read) gets the weakest confidence of the read.
    """
    raw = "".join(tokens)
    per_char = _per_raw_character(tokens, confidences)
    weakest = min(confidences, default=0.0)
    repaired, _ = repair_read(raw, per_char)
    if len(repaired) != len(raw):  # a repair keeps one character per character; else trust none
        return (weakest,) * len(plate)
    out: list[float] = []
    start = 0
    for ch in plate:
        at = repaired.find(ch, start)
        if at < 0 or not _only_separators(repaired[start:at]):
            return (weakest,) * len(plate)  # cannot line the plate up with the read: trust none
        out.append(per_char[at] if repaired[at] == raw[at] else weakest)
        start = at + 1
    return tuple(out)


def _per_raw_character(tokens: Sequence[str], confidences: Sequence[float]
                       ) -> tuple[float, ...]:
    """Each token's confidence repeated for each of its characters (aligned with the raw text)."""
    return tuple(float(c) for token, c in zip(tokens, confidences, strict=True) for _ in token)


def _only_separators(skipped: str) -> bool:
    """Whether the read characters skipped while lining up hold nothing but separators."""
    return all(not c.isalnum() for c in skipped)
