"""Grammar-constrained CTC decoding on hand-made probability matrices (no model), and the
constrained reader against greedy decoding on the real crops of ../shared/data/plates."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import need, shared_path

from edge_agent.config import load_config
from edge_agent.evaluation.plates import load_labelled_crops, read_image
from edge_agent.plates.ctc_decode import (
    CtcGrammar,
    constrained_decode,
    greedy_decode,
    merge_blank_runs,
    plate_grammar,
)
from edge_agent.plates.reader import KoreanPlateReader

CHARSET = ["", *"0123456789", *"가나다바", "서울", "부산"]
BLANK = 0
GRAMMAR = plate_grammar(CHARSET)


def _probs(frames: list[dict[str, float]]) -> np.ndarray:
    """[T, C] probabilities: each frame names its likely tokens ("-" is blank); the rest of
    the mass is spread over the other classes."""
    probs = np.zeros((len(frames), len(CHARSET)))
    for t, frame in enumerate(frames):
        rest = 1.0 - sum(frame.values())
        probs[t] = rest / (len(CHARSET) - len(frame))
        for tok, p in frame.items():
            probs[t, 0 if tok == "-" else CHARSET.index(tok)] = p
    return probs


def _frames(text: str, p: float = 0.9) -> list[dict[str, float]]:
    """One sure frame per token with a blank between: "12가3456" -> 1 - 2 - 가 ..."""
    out: list[dict[str, float]] = []
    for tok in _tokens(text):
        out += [{tok: p}, {"-": p}]
    return out


def _tokens(text: str) -> list[str]:
    tokens, i = [], 0
    while i < len(text):
        step = 2 if text[i:i + 2] in ("서울", "부산") else 1
        tokens.append(text[i:i + step])
        i += step
    return tokens


CASES = [
    # name, frames, greedy text, constrained text
    ("clean 2-digit front", _frames("12가3456"), "12가3456", "12가3456"),
    ("clean 3-digit front", _frames("123가4567"), "123가4567", "123가4567"),
    ("region prefix", _frames("서울12가3456"), "서울12가3456", "서울12가3456"),
    ("repeat split by a blank", _frames("11가1111"), "11가1111", "11가1111"),
    ("repeat without a blank is one token",
     [{"1": 0.9}, {"1": 0.9}, *_frames("2가3456")], "12가3456", "12가3456"),
    ("stray letter at the right edge is dropped",
     [*_frames("12가3456"), {"나": 0.5, "-": 0.45}], "12가3456나", "12가3456"),
    ("stray digit at the left edge is dropped",
     [{"9": 0.5, "-": 0.45}, {"-": 0.9}, *_frames("123가4567")], "9123가4567", "123가4567"),
    ("two regions: the likelier one alone",
     [{"서울": 0.55, "-": 0.4}, {"부산": 0.9}, {"-": 0.9}, *_frames("27다6162")],
     "서울부산27다6162", "부산27다6162"),
    ("digit read where the letter belongs",
     [*_frames("71"), {"0": 0.5, "바": 0.45}, {"-": 0.9}, *_frames("1448")],
     "7101448", "71바1448"),
    ("front 00 is never issued", [*_frames("0"), {"0": 0.5, "3": 0.4}, {"-": 0.9},
                                   *_frames("가1234")], "00가1234", "03가1234"),
    ("3-digit front starting 0 is never issued",
     [{"0": 0.5, "-": 0.45}, {"-": 0.9}, *_frames("12가3456")], "012가3456", "12가3456"),
]


@pytest.mark.parametrize(("name", "frames", "greedy", "want"), CASES, ids=[c[0] for c in CASES])
def test_constrained_decoding(name: str, frames: list, greedy: str, want: str) -> None:
    probs = _probs(frames)
    tokens, _ = greedy_decode(probs, CHARSET, BLANK)
    assert "".join(tokens) == greedy
    got = constrained_decode(probs, CHARSET, BLANK, GRAMMAR)
    assert got is not None
    tokens, confs, score = got
    assert tokens == _tokens(want)
    assert len(confs) == len(tokens)
    assert all(0.0 < c <= 1.0 for c in confs)
    assert score <= 0.0 and np.isfinite(score)


def test_confidence_is_the_best_frame_of_each_token() -> None:
    frames = [{"1": 0.6}, {"1": 0.8}, {"-": 0.9}, *_frames("2가345"), {"6": 0.7}, {"6": 0.95}]
    tokens, confs, _ = constrained_decode(_probs(frames), CHARSET, BLANK, GRAMMAR)
    assert "".join(tokens) == "12가3456"
    assert confs[0] == pytest.approx(0.8) and confs[-1] == pytest.approx(0.95)
    assert confs[1:-1] == pytest.approx([0.9] * 5)


def test_log_score_is_the_best_frame_path() -> None:
    probs = _probs(_frames("12가3456"))
    _, _, score = constrained_decode(probs, CHARSET, BLANK, GRAMMAR)
    assert score == pytest.approx(np.log(probs.max(axis=1)).sum())


def test_no_path_when_the_frames_are_too_few() -> None:
    probs = _probs(_frames("12가3456")[:6])  # 6 frames < 7 tokens
    assert constrained_decode(probs, CHARSET, BLANK, GRAMMAR) is None
    # 7 frames are just enough for 7 distinct tokens
    seven = _probs([{t: 0.9} for t in "12가3456"])
    assert "".join(constrained_decode(seven, CHARSET, BLANK, GRAMMAR)[0]) == "12가3456"


def test_sure_blank_runs_merge_without_changing_the_read() -> None:
    """Long runs of sure blanks (most frames of a real read) become one frame each; repeats
    still need their blank, and the path's blank probability is kept as a product."""
    frames: list[dict[str, float]] = [{"-": 0.999}] * 3
    for tok in _tokens("11가1111"):
        frames += [{tok: 0.9}, *[{"-": 0.999}] * 4]
    probs = _probs(frames)
    merged = merge_blank_runs(probs, BLANK)
    assert len(probs) == 38 and len(merged) == 15  # 7 tokens, 8 merged blank runs
    assert merged[0, BLANK] == pytest.approx(0.999 ** 3)
    tokens, confs, _ = constrained_decode(probs, CHARSET, BLANK, GRAMMAR)
    assert "".join(tokens) == "11가1111" and confs == pytest.approx([0.9] * 7)
    unsure = _probs([{"-": 0.9}, {"1": 0.9}, {"-": 0.9}])
    assert merge_blank_runs(unsure, BLANK) is unsure  # nothing sure enough to merge


def test_blank_last_charset() -> None:
    charset = [*CHARSET[1:], ""]
    grammar = plate_grammar(charset)
    probs = np.roll(_probs(_frames("서울12가3456")), -1, axis=1)
    tokens = constrained_decode(probs, charset, len(charset) - 1, grammar)[0]
    assert tokens == ["서울", *"12가3456"]


def test_constrained_reader_reads_real_crops_at_least_as_well_as_greedy() -> None:
    crops = load_labelled_crops([shared_path("data/plates/set-a"),
                                 shared_path("data/plates/set-b")])
    need(len(crops) >= 20, f"expected the real crops, found {len(crops)}")
    config = load_config(None)
    config.models.intra_op_threads = 1
    reader = KoreanPlateReader.from_config(config)
    assert reader.grammar is not None
    images = [read_image(Path(c.path)) for c in crops]
    constrained = [reader.read(image).text for image in images]
    reader.grammar = None
    greedy = [reader.read(image).text for image in images]
    want = [c.text for c in crops]
    hits = sum(a == b for a, b in zip(constrained, want, strict=True))
    base = sum(a == b for a, b in zip(greedy, want, strict=True))
    assert hits >= base, (hits, base, constrained)


def _accepts(grammar: CtcGrammar, labels: list[int]) -> bool:
    """Whether the automaton accepts a label sequence (plain NFA simulation)."""
    states = grammar.start & grammar.allowed[:, labels[0]] if labels else grammar.start & False
    for k in labels[1:]:
        states = grammar.edges[states].any(axis=0) & grammar.allowed[:, k]
    return bool((states & grammar.final).any())


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_matches_brute_force_over_all_frame_paths(seed: int) -> None:
    """Tiny automaton "a b? (a|b)" over blank/a/b: the decoder's best score and text equal the
    best of all 3^7 frame paths whose collapsed labels the automaton accepts."""
    charset = ["", "a", "b"]
    grammar = CtcGrammar(allowed=np.array([[0, 1, 0], [0, 0, 1], [0, 1, 1]], bool),
                         edges=np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], bool),
                         start=np.array([1, 0, 0], bool), final=np.array([0, 0, 1], bool))
    probs = np.random.default_rng(seed).dirichlet(np.ones(3) * 0.7, size=7)
    best, best_text = -np.inf, None
    for path in itertools.product(range(3), repeat=len(probs)):
        labels = [k for i, k in enumerate(path) if k and (i == 0 or path[i - 1] != k)]
        score = float(np.log(probs[np.arange(len(probs)), path]).sum())
        if score > best and _accepts(grammar, labels):
            best, best_text = score, "".join(charset[k] for k in labels)
    tokens, confs, score = constrained_decode(probs, charset, 0, grammar)
    assert score == pytest.approx(best)
    assert "".join(tokens) == best_text and len(confs) == len(tokens)
