"""Plate-reading evaluation on labelled crops: our reader and, side by side, a peer.

Why a library module: `gotcha eval plates` and the tests need the same figures (exact match,
character accuracy, per format, ms per plate, sure reads and wrong sure reads, the confusion
table, misreads) computed the same way in one run.
"""

from __future__ import annotations

import csv
import logging
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge_agent.errors import BadInputError, ModelError

if TYPE_CHECKING:
    from edge_agent.config import PlatesConfig
    from edge_agent.inference.runner import InferenceClock
    from edge_agent.plates.agreement import BatchReader
from edge_agent.plates.alignment import align, edit_distance

log = logging.getLogger(__name__)

NOTHING = "∅"  # the confusion table's side of a character missed or added


@dataclass(frozen=True)
class EvalRead:
    """One reader's answer for one crop: the text, and how sure the reader said it was
    (``sure`` None: the reader has no sure rule, as the peer)."""

    text: str
    confidence: float | None = None
    sure: bool | None = None
    unsure_reason: str | None = None


ReadFn = Callable[[np.ndarray], EvalRead]
DEFAULT_PEER_DIR = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "peers" \
    / "kr-tinylpr"


def evidence_reads(reader: BatchReader, rule: PlatesConfig) -> ReadFn:
    """Our reader as the device uses it: each crop read, its views checked and the evidence
    rule of ``rule`` (a PlatesConfig) applied, so a figure says what would be recorded."""
    from edge_agent.plates.agreement import read_plates
    from edge_agent.plates.evidence import unsure_reason

    def read(image: np.ndarray) -> EvalRead:
        plate = read_plates(reader, [image], rule)[0]
        reason = unsure_reason(plate, rule)
        return EvalRead(plate.text if plate.valid and plate.text else plate.raw_text,
                        plate.confidence, reason is None, reason)

    return read


@dataclass(frozen=True)
class LabelledCrop:
    """One crop file and the plate text it shows (labels.csv: file,plate_text)."""

    path: Path
    text: str


def _label_files(folder: Path) -> list[Path]:
    direct = folder / "labels.csv"
    return [direct] if direct.is_file() else sorted(folder.rglob("labels.csv"))


def load_labelled_crops(folders: Sequence[Path]) -> list[LabelledCrop]:
    """Crops listed in each folder's labels.csv (or in labels.csv files below it)."""
    crops: list[LabelledCrop] = []
    for folder in folders:
        if not folder.is_dir():
            raise BadInputError(f"{folder} is not a folder; give folders holding crops and "
                                f"labels.csv")
        files = _label_files(folder)
        if not files:
            raise BadInputError(f"no labels.csv in or below {folder}; add one with the "
                                f"header file,plate_text")
        for labels in files:
            with labels.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not {"file", "plate_text"} <= set(reader.fieldnames):
                    raise BadInputError(f"{labels}: header must be file,plate_text")
                for row in reader:
                    path = labels.parent / row["file"]
                    if not path.is_file():
                        raise BadInputError(f"{labels}: {row['file']} is listed but missing")
                    text = unicodedata.normalize("NFC", row["plate_text"]).replace(" ", "")
                    crops.append(LabelledCrop(path, text))
    if not crops:
        raise BadInputError("the labels.csv files list no crops")
    return crops


def read_image(path: Path) -> np.ndarray:
    """BGR image of a crop (a path with Hangul in it works, unlike cv2.imread on some builds)."""
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise BadInputError(f"{path} is not a readable image")
    return image


def plate_format(text: str) -> str:
    """Format key of a label (ParsedPlate.format); 'unparsed' when it does not parse."""
    from gotcha_contracts.plate_grammar import parse_plate

    parsed = parse_plate(text)
    return parsed.format if parsed is not None else "unparsed"


@dataclass
class ReaderScore:
    """Figures of one reader over the crops."""

    name: str
    total: int = 0
    exact: int = 0
    chars_total: int = 0
    chars_correct: int = 0
    ms_total: float = 0.0
    model_ms_total: float | None = None  # bare inference inside ms_total, where it is clocked
    model_inputs: int = 0  # crops and views the model ran on
    by_format: dict[str, list[int]] = field(default_factory=dict)  # format -> [exact, total]
    misreads: list[dict[str, object]] = field(default_factory=list)
    reads: dict[str, str] = field(default_factory=dict)  # file -> text read
    has_sure_rule: bool = False
    sure: int = 0
    sure_wrong: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, read)

    @property
    def exact_accuracy(self) -> float:
        return self.exact / self.total if self.total else 0.0

    @property
    def char_accuracy(self) -> float:
        return self.chars_correct / self.chars_total if self.chars_total else 0.0

    @property
    def ms_per_plate(self) -> float:
        return self.ms_total / self.total if self.total else 0.0

    @property
    def model_ms_per_plate(self) -> float | None:
        if self.model_ms_total is None or not self.total:
            return None
        return self.model_ms_total / self.total

    def add_model_time(self, ms: float, inputs: int) -> None:
        """Bare inference of one read (see evaluate_readers): where a read's time goes."""
        self.model_ms_total = (self.model_ms_total or 0.0) + ms
        self.model_inputs += inputs

    def add(self, crop: LabelledCrop, fmt: str, answer: EvalRead, ms: float) -> None:
        read = answer.text
        self.total += 1
        self.ms_total += ms
        ok = read == crop.text
        self.exact += ok
        self.chars_total += len(crop.text)
        self.chars_correct += max(0, len(crop.text) - edit_distance(read, crop.text))
        counts = self.by_format.setdefault(fmt, [0, 0])
        counts[0] += ok
        counts[1] += 1
        self.reads[str(crop.path)] = read
        if answer.sure is not None:
            self.has_sure_rule = True
            self.sure += answer.sure
            self.sure_wrong += answer.sure and not ok
        self.confusion.update(confused_characters(crop.text, read))
        if not ok:
            self.misreads.append({"file": f"{crop.path.parent.name}/{crop.path.name}",
                                  "expected": crop.text, "read": read,
                                  "confidence": None if answer.confidence is None
                                  else round(answer.confidence, 3),
                                  "sure": answer.sure, "unsure_reason": answer.unsure_reason})

    def confusion_rows(self) -> list[dict[str, object]]:
        """The misread characters, most frequent first: expected -> read, count."""
        return [{"expected": e, "read": r, "count": n}
                for (e, r), n in sorted(self.confusion.items(), key=lambda kv: (-kv[1], kv[0]))]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "plates": self.total,
            "exact": self.exact,
            "exact_accuracy": round(self.exact_accuracy, 4),
            "char_accuracy": round(self.char_accuracy, 4),
            "ms_per_plate": round(self.ms_per_plate, 3),
            "model_ms_per_plate": None if self.model_ms_per_plate is None
            else round(self.model_ms_per_plate, 3),
            "model_inputs_per_plate": None if self.model_ms_total is None
            else round(self.model_inputs / max(1, self.total), 2),
            "sure": self.sure if self.has_sure_rule else None,
            "sure_wrong": self.sure_wrong if self.has_sure_rule else None,
            "confusion": self.confusion_rows(),
            "by_format": {k: {"exact": v[0], "plates": v[1],
                              "accuracy": round(v[0] / v[1], 4)}
                          for k, v in sorted(self.by_format.items())},
            "misreads": self.misreads,
        }


def confused_characters(expected: str, read: str) -> list[tuple[str, str]]:
    """The (expected, read) character pairs where ``read`` differs from ``expected``; a missed
    or an added character is paired with NOTHING."""
    pairs = []
    for i, j in align(expected, read):
        e = NOTHING if i is None else expected[i]
        r = NOTHING if j is None else read[j]
        if e != r:
            pairs.append((e, r))
    return pairs


def evaluate_readers(readers: dict[str, ReadFn], crops: Sequence[LabelledCrop],
                     clocks: Mapping[str, InferenceClock] | None = None) -> list[ReaderScore]:
    """Run every reader on every crop, one crop per call (as on a device), timing each read,
    and where ``clocks`` holds a reader's model clock, the bare inference inside it and the
    inputs it ran on (one per crop or view read).

    The times are steady-state: every reader first reads every crop once untimed, as a device
    that has been reading for a while would (arenas allocated, kernels chosen, caches warm).
    """
    clocks = clocks or {}
    scores = [ReaderScore(name) for name in readers]
    images = [read_image(crop.path) for crop in crops]
    for image in images:
        for read in readers.values():
            read(image)
    for crop, image in zip(crops, images, strict=True):
        fmt = plate_format(crop.text)
        for score, (name, read) in zip(scores, readers.items(), strict=True):
            clock = clocks.get(name)
            model_before = (clock.total_ms, clock.inputs) if clock is not None else None
            start = time.perf_counter()
            answer = read(image)
            ms = (time.perf_counter() - start) * 1000.0
            score.add(crop, fmt, answer, ms)
            if clock is not None and model_before is not None:
                score.add_model_time(clock.total_ms - model_before[0],
                                     clock.inputs - model_before[1])
    return scores


class TinyLprPeer:
    """The public kr-tinylpr TFLite reader, measured against ours (a dev/test dependency only).

    Input: grayscale crop resized to 128x64, uint8; output [1,16,69]: argmax per step, collapse
    repeats, drop index 68 (blank) and the space entry.
    """

    name = "kr-tinylpr"

    def __init__(self, folder: Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError("the peer needs the package ai-edge-litert (a dev dependency): "
                             "pip install ai-edge-litert") from exc
        model = folder / "tiny_lpr_uint8.tflite"
        labels = folder / "labels.txt"
        if not model.is_file() or not labels.is_file():
            raise ModelError(f"peer kr-tinylpr not found in {folder} (tiny_lpr_uint8.tflite, "
                             f"labels.txt); pass --peer-dir")
        self.labels = labels.read_text(encoding="utf-8").split("\n")
        self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def read(self, crop_bgr: np.ndarray) -> EvalRead:
        _, height, width, _ = self.input["shape"]
        gray = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
        x = cv2.resize(gray, (int(width), int(height)))[None, :, :, None].astype(np.uint8)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        best = self.interpreter.get_tensor(self.output["index"])[0].argmax(axis=-1)
        blank = self.output["shape"][-1] - 1
        text, prev = [], -1
        for k in best:
            k = int(k)
            if k != prev and k != blank and k < len(self.labels):
                text.append(self.labels[k])
            prev = k
        return EvalRead("".join(text).replace(" ", ""))
