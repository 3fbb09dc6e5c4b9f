"""Our plate reader twice, one with a look turned off, to show what that look adds."""

from __future__ import annotations

from edge_agent.config import load_config
from edge_agent.plates.recogniser import CtcPlateReader


def with_and_without(look: str) -> tuple[CtcPlateReader, CtcPlateReader]:
    """(reader as models.toml sets it up, the same reader with attribute ``look`` False), both
    on one onnxruntime thread; models.toml must turn the look on."""
    config = load_config(None)
    config.models.intra_op_threads = 1
    with_look = CtcPlateReader.from_config(config)
    without = CtcPlateReader.from_config(config)
    assert getattr(with_look, look), f"models.toml should turn {look} on for our reader"
    setattr(without, look, False)
    return with_look, without
