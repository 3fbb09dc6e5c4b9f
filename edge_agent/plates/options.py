"""How the Korean reading is set up for one recogniser: which looks it takes and how it decodes.

Why one object: the switches come from the model's models.toml entry (they depend on how the
model was trained) and the second-look threshold from the config's [plates] section; the
reader and the tests read them in one frozen, validated place instead of ten attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec

Decode = Literal["auto", "plate", "greedy"]
Constrain = Literal["fallback", "always"]


@dataclass(frozen=True)
class ReadingOptions:
    """The looks and decoding of one reader (models.toml keys in brackets)."""

    sure_read: float = 0.9  # config plates.sure_read: a plate this sure gets no second look
    zoom: bool = False  # [zoom = true] a doubtful read is read again cut to its text
    two_line: bool = False  # [two_line = "split"] also read the crop split in two lines
    two_line_max_aspect: float = 3.2  # [two_line_max_aspect] ... if no wider than this
    level: bool = False  # [level = true] a still doubtful tilted plate is read turned level
    region_check: bool = False  # [region_check = true] the colour checks (plates.colour)
    region_prior: bool = False  # [region_prior = "fleet"] regions weighed by the fleet
    decode: Decode = "auto"  # [decode] plate-constrained ("auto": for small plate charsets)
    constrain: Constrain = "fallback"  # [constrain] when no look is a plate, or always

    def __post_init__(self) -> None:
        if not 0.0 <= self.sure_read <= 1.0:
            raise ValueError(f"sure_read must be in [0, 1], got {self.sure_read}")
        if not self.two_line_max_aspect > 0:
            raise ValueError(f"two_line_max_aspect must be positive, got "
                             f"{self.two_line_max_aspect}")
        if self.decode not in ("auto", "plate", "greedy"):
            raise ValueError(f"decode {self.decode!r} is unknown; use auto, plate or greedy")
        if self.constrain not in ("fallback", "always"):
            raise ValueError(f"constrain {self.constrain!r} is unknown; use fallback or always")

    @classmethod
    def from_spec(cls, spec: ModelSpec, sure_read: float, keep_aspect: bool) -> ReadingOptions:
        """The options a models.toml entry asks for. ``keep_aspect``: the recogniser reads
        crops at their own aspect (PaddleOCR), which leaves no room for the zoomed, two-line and
        levelled looks."""
        extra = spec.extra
        prior = extra.get("region_prior")
        if prior not in (None, "fleet"):
            raise ModelError(f"model {spec.id}: region_prior {prior!r} is unknown; use \"fleet\" "
                             f"or leave it out")
        try:
            return cls(
                sure_read=sure_read,
                zoom=bool(extra.get("zoom", False)) and not keep_aspect,
                two_line=extra.get("two_line") == "split" and not keep_aspect,
                two_line_max_aspect=float(extra.get("two_line_max_aspect", 3.2)),  # type: ignore[arg-type]
                level=bool(extra.get("level", False)) and not keep_aspect,
                region_check=bool(extra.get("region_check", False)),
                region_prior=prior == "fleet",
                decode=str(extra.get("decode", "auto")),  # type: ignore[arg-type]
                constrain=str(extra.get("constrain", "fallback")),  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model {spec.id}: {exc}; fix its models.toml entry") from exc
