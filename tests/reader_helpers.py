"""Our plate reader twice, one with a look turned off, to show what that look adds."""

from __future__ import annotations

from dataclasses import replace

from edge_agent.config import load_config
from edge_agent.plates.reader import KoreanPlateReader


def with_and_without(look: str) -> tuple[KoreanPlateReader, KoreanPlateReader]:
    """(reader as models.toml sets it up, the same reader with option ``look`` off), both on
    one onnxruntime thread; models.toml must turn the look on."""
    config = load_config(None)
    config.models.intra_op_threads = 1
    with_look = KoreanPlateReader.from_config(config)
    without = KoreanPlateReader.from_config(config)
    assert getattr(with_look.options, look), f"models.toml should turn {look} on for our reader"
    without.options = replace(without.options, **{look: False})
    return with_look, without
