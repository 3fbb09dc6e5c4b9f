"""CTC decoding: greedy best path, and the best path that is also a Korean plate.

Why a constrained decoder: a CTC model trained on synthetic plates often adds a stray token at
a crop edge ("01오3121거", "경기7101448") although the right reading is nearly as probable. The
most probable label sequence that the plate grammar accepts is found exactly by a Viterbi pass
over the CTC topology (blank / repeat rules) intersected with a small automaton of the pattern
``[region]? D D D? L D D D D``. Pure numpy; one pass costs O(T x slots x classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from edge_agent.errors import ModelError

Decoded = tuple[list[str], list[float]]
_NEG = -np.inf
SURE_BLANK = 0.95  # frames at least this sure of blank carry no token; runs of them merge


def merge_blank_runs(probs: np.ndarray, blank: int, level: float = SURE_BLANK) -> np.ndarray:
    """``probs`` with each run of sure-blank frames merged into one frame.

    Why: the Viterbi pass costs the same numpy calls for every frame, and most frames of a plate
    read are sure blanks between characters. A merged frame's blank probability is the product
    over the run and every other class keeps its largest probability in the run, so the best
    grammatical path is the same unless it would put a token on a sure-blank frame.
    """
    sure = probs[:, blank] >= level
    starts = ~sure | np.concatenate(([True], ~sure[:-1]))
    if starts.all():
        return probs
    index = np.flatnonzero(starts)
    merged = np.maximum.reduceat(probs, index, axis=0)
    log_blank = np.log(np.maximum(probs[:, blank], 1e-30, dtype=np.float64))
    merged[:, blank] = np.exp(np.add.reduceat(log_blank, index))
    return merged


def greedy_decode(probs: np.ndarray, charset: Sequence[str], blank: int) -> Decoded:
    """Best path: argmax per frame, collapse repeats, drop blanks.

    ``probs`` is [T, C] probabilities, ``charset[i]`` the token of class i (blank included).
    Returns the tokens (a region name is one token) and each token's confidence: its
    probability at the frame that started it.
    """
    best = probs.argmax(axis=1)
    tokens: list[str] = []
    confs: list[float] = []
    prev = -1
    for t, k in enumerate(best.tolist()):
        if k != prev and k != blank:
            if k >= len(charset):
                raise ModelError(f"model output class {k} is outside its {len(charset)}-entry "
                                 f"character list; the charset does not belong to this model")
            tokens.append(charset[k])
            confs.append(float(probs[t, k]))
        prev = k
    return tokens, confs


@dataclass(frozen=True)
class CtcGrammar:
    """A finite-state automaton over label positions ("slots") for constrained decoding.

    ``allowed[s, k]``: slot s may emit class k; ``edges[a, b]``: slot b may follow slot a;
    ``start`` / ``final``: slots a label sequence may begin / end with. Several slots may allow
    the same class (the automaton may be non-deterministic: Viterbi takes the best branch).
    """

    allowed: np.ndarray  # bool [S, C]
    edges: np.ndarray  # bool [S, S]
    start: np.ndarray  # bool [S]
    final: np.ndarray  # bool [S]

    @cached_property
    def predecessors(self) -> np.ndarray:
        """int [S, D]: each slot's predecessor slots, padded with S ("nothing"); S + 1 stands
        for the leading blanks, the predecessor of a start slot."""
        n_slots = len(self.start)
        lists = [[*np.flatnonzero(self.edges[:, s]), *([n_slots + 1] if self.start[s] else [])]
                 for s in range(n_slots)]
        preds = np.full((n_slots, max(1, *map(len, lists))), n_slots)
        for s, src in enumerate(lists):
            preds[s, :len(src)] = src
        return preds


def plate_grammar(charset: Sequence[str]) -> CtcGrammar:
    """The automaton of a Korean plate over ``charset``'s tokens.

    ``[region]? front L N N N N`` where the front is 3 digits starting 1-9, or 2 digits other
    than 00 (the issued ranges of gotcha_contracts.plate_grammar); L is a use-letter. The
    serial 0000 is not excluded (it would double the serial slots for a case the grammar check
    still catches). Raises ModelError when the charset lacks digits or use-letters.
    """
    from gotcha_contracts.plate_grammar import LETTER_USE, REGIONS

    index = {tok: i for i, tok in enumerate(charset) if tok}
    digits = [index.get(str(d)) for d in range(10)]
    letters = [index[tok] for tok in LETTER_USE if tok in index]
    regions = [index[tok] for tok in REGIONS if tok in index]
    if None in digits or not letters:
        raise ModelError("the character list lacks digits or use-letters; plate-constrained "
                         "decoding needs both (set decode = \"greedy\" for this model)")
    zero, nonzero = [digits[0]], [k for k in digits[1:] if k is not None]
    anydigit = [*zero, *nonzero]
    slots = {  # name: (classes, successors)
        "region": (regions, ("f3a", "f2z")),
        "f3a": (nonzero, ("f3b",)),  # front 100-999, or 10-99 (f3b straight to the letter)
        "f3b": (anydigit, ("f3c", "letter")),
        "f3c": (anydigit, ("letter",)),
        "f2z": (zero, ("f2a",)),  # 2-digit front 01-09
        "f2a": (nonzero, ("letter",)),
        "letter": (letters, ("n1",)),
        "n1": (anydigit, ("n2",)),
        "n2": (anydigit, ("n3",)),
        "n3": (anydigit, ("n4",)),
        "n4": (anydigit, ()),
    }
    names = list(slots)
    allowed = np.zeros((len(names), len(charset)), bool)
    edges = np.zeros((len(names), len(names)), bool)
    for s, (classes, successors) in enumerate(slots.values()):
        allowed[s, classes] = True
        for nxt in successors:
            edges[s, names.index(nxt)] = True
    start = np.isin(names, ["region", "f3a", "f2z"])
    final = np.isin(names, ["n4"])
    return CtcGrammar(allowed=allowed, edges=edges, start=start, final=final)


def constrained_decode(probs: np.ndarray, charset: Sequence[str], blank: int,
                       grammar: CtcGrammar) -> tuple[list[str], list[float], float] | None:
    """The most probable CTC label sequence accepted by ``grammar`` (Viterbi, max-product).

    Returns (tokens, per-token confidence, log score of the best frame path) or None when no
    path fits (too few frames). A token's confidence is the largest probability of its class
    over the frames the best path spends on it.
    """
    n_frames, n_cls = probs.shape
    if grammar.allowed.shape[1] != n_cls:
        raise ModelError(f"grammar built for {grammar.allowed.shape[1]} classes, model output "
                         f"has {n_cls}; build it from this model's character list")
    probs = merge_blank_runs(probs, blank)
    n_frames = len(probs)
    logp = np.log(np.maximum(probs, 1e-30, dtype=np.float64))
    n_slots = grammar.allowed.shape[0]
    # emission score of (slot, class) per frame; -inf where the slot does not allow the class
    gain = np.where(grammar.allowed[None], logp[:, None, :], _NEG)
    lead = np.cumsum(logp[:, blank])  # blank frames before any token
    preds = grammar.predecessors
    rows = np.arange(n_slots)
    emit = np.empty((n_frames, n_slots, n_cls))  # E: on a frame of the slot's token
    rest = np.empty((n_frames, n_slots, n_cls))  # B: on a blank after it
    e = np.full((n_slots, n_cls), _NEG)
    b = np.full((n_slots, n_cls), _NEG)
    leave = np.full((n_slots + 2, n_cls), _NEG)  # best way out of each slot, per next class
    leave[n_slots + 1] = 0.0
    for t in range(n_frames):
        # out of a slot into class k: its blank after any class, or its token frame of another
        # class (the same class again needs a blank between)
        top = e.argmax(axis=1)
        top1 = e[rows, top]
        e[rows, top] = _NEG
        done = b.max(axis=1)
        leave[:n_slots] = np.maximum(done, top1)[:, None]
        leave[rows, top] = np.maximum(done, e.max(axis=1))
        e[rows, top] = top1
        into = leave[preds].max(axis=1)
        np.maximum(b, e, out=b)
        b += logp[t, blank]
        np.maximum(e, into, out=e)
        e += gain[t]
        emit[t], rest[t] = e, b
        leave[n_slots + 1] = lead[t]
    fin = np.where(grammar.final[:, None], np.maximum(e, b), _NEG)
    flat = int(np.argmax(fin))
    score = float(fin.flat[flat])
    if not np.isfinite(score):
        return None
    slot, cls = divmod(flat, n_cls)
    on_token = emit[-1, slot, cls] >= rest[-1, slot, cls]
    return (*_backtrack(emit, rest, lead, probs, charset, grammar, slot, cls, on_token), score)


def _backtrack(emit: np.ndarray, rest: np.ndarray, lead: np.ndarray, probs: np.ndarray,
               charset: Sequence[str], grammar: CtcGrammar, slot: int, cls: int,
               on_token: bool) -> Decoded:
    """Walk the stored Viterbi scores back from the last frame; tokens in reading order."""
    tokens: list[str] = []
    confs: list[float] = []
    conf = 0.0
    for t in range(len(emit) - 1, -1, -1):
        if on_token:
            conf = max(conf, float(probs[t, cls]))
        if t == 0:
            break
        if not on_token:  # blank after (slot, cls): came from that blank or that token
            on_token = emit[t - 1, slot, cls] > rest[t - 1, slot, cls]
            continue
        stay = emit[t - 1, slot, cls]
        preds = np.flatnonzero(grammar.edges[:, slot])
        from_b = rest[t - 1, preds]  # [P, C]
        from_e = emit[t - 1, preds].copy()
        from_e[:, cls] = _NEG
        best_b, best_e = (from_b.max(), from_e.max()) if preds.size else (_NEG, _NEG)
        begin = lead[t - 1] if grammar.start[slot] else _NEG
        if stay >= max(best_b, best_e, begin):
            continue
        tokens.append(charset[cls])
        confs.append(conf)
        conf = 0.0
        if begin >= max(best_b, best_e):
            slot = -1
            break
        src = from_b if best_b >= best_e else from_e
        p, cls = divmod(int(np.argmax(src)), src.shape[1])
        slot, on_token = int(preds[p]), best_b < best_e
    if slot >= 0:  # the first token started at frame 0 or after the leading blanks
        tokens.append(charset[cls])
        confs.append(conf)
    return tokens[::-1], confs[::-1]
