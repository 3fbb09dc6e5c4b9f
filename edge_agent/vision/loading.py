"""Load a catalogued model the same way everywhere: resolve, verify, open, check, warm up.

Every model owner (vehicle detector, plate locator, plate reader, scene embedder) calls
``load_model(config, model_id, kind)`` so a broken or wrong model fails at start with one line,
never at the first real photo.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_agent.config import GotchaConfig
from edge_agent.errors import ModelError
from edge_agent.vision.catalog import (
    ModelSpec,
    check_sha256,
    file_sha256,
    get_spec,
    load_catalog,
)
from edge_agent.vision.onnx_session import check_input_shape, create_session

log = logging.getLogger(__name__)

HASH_CACHE_NAME = "model-sha256.json"
DYNAMIC_WARMUP_SIDE = 64  # side used for a dynamic dim the catalog does not fix either
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: its catalog entry, the file it came from, and the open session."""

    spec: ModelSpec
    path: Path
    session: ort.InferenceSession

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())


class HashCache:
    """sha256 of model files keyed by (path, size, mtime), so a large model is hashed once,
    not at every start. In memory always; also in a small JSON file when one is given.

    A file rewritten in place with the same size and mtime would be missed: the cache guards
    against damaged downloads and swapped exports, not against tampering.
    """

    def __init__(self, file: Path | None = None) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, object]] = {}
        if file is not None:
            try:
                loaded = json.loads(file.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._entries = {k: v for k, v in loaded.items() if isinstance(v, dict)}
            except (OSError, ValueError):
                pass  # no cache yet, or a damaged one: start empty, it is only a shortcut

    def sha256(self, path: Path) -> str:
        """The file's sha256, from the cache when its size and mtime are unchanged."""
        key = str(path.resolve())
        stat = path.stat()
        with self._lock:
            entry = self._entries.get(key)
        if (entry is not None and entry.get("size") == stat.st_size
                and entry.get("mtime_ns") == stat.st_mtime_ns
                and isinstance(entry.get("sha256"), str)):
            return str(entry["sha256"])
        digest = file_sha256(path)
        with self._lock:
            self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                  "sha256": digest}
            self._save()
        return digest

    def _save(self) -> None:
        if self.file is None:
            return
        tmp = self.file.with_name(self.file.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self._entries, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.file)
        except OSError as exc:
            log.debug("model hash cache %s not written: %s", self.file, exc)
            tmp.unlink(missing_ok=True)


_CACHES: dict[Path | None, HashCache] = {}
_CACHES_LOCK = threading.Lock()


def hash_cache_for(config: GotchaConfig) -> HashCache:
    """The process-wide hash cache; persisted next to the SQLite store when its folder exists
    (the store creates it), in memory only otherwise."""
    folder = Path(config.store.path).parent
    file = folder / HASH_CACHE_NAME if folder.is_dir() else None
    with _CACHES_LOCK:
        if file not in _CACHES:
            _CACHES[file] = HashCache(file)
        return _CACHES[file]


def verify_sha256(config: GotchaConfig, spec: ModelSpec, path: Path) -> str:
    """The file's sha256 (cached); ModelError when the catalog pins another one."""
    actual = hash_cache_for(config).sha256(path)
    check_sha256(spec, path, actual)
    return actual


def warmup_feed(session: ort.InferenceSession, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Zero inputs of the shape the catalog says; symbolic dims take the catalog's size, or 1
    for a batch, or a small side when the catalog leaves the side dynamic too."""
    feed: dict[str, np.ndarray] = {}
    width, height = spec.input_size
    for index, arg in enumerate(session.get_inputs()):
        dims = list(arg.shape)
        shape: list[int] = []
        for axis, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif index == 0 and len(dims) == 4 and axis == 2:
                shape.append(height or DYNAMIC_WARMUP_SIDE)
            elif index == 0 and len(dims) == 4 and axis == 3:
                shape.append(width or DYNAMIC_WARMUP_SIDE)
            elif axis == 0:
                shape.append(1)
            else:
                shape.append(DYNAMIC_WARMUP_SIDE)
        dtype = _ORT_DTYPES.get(arg.type)
        if dtype is None:
            raise ModelError(f"model {spec.id}: input {arg.name!r} has type {arg.type}, which "
                             f"Gotcha does not feed; re-export with a float or uint8 input")
        feed[arg.name] = np.zeros(shape, dtype=dtype)
    return feed


def warm_up(session: ort.InferenceSession, spec: ModelSpec) -> float:
    """Run the model once on zeros and return the milliseconds it took.

    Why: the first run is the expensive one. onnxruntime allocates its memory arenas then; the
    CUDA provider also allocates GPU memory and picks convolution algorithms, and the TensorRT
    provider builds its engine (minutes on a Jetson without an engine cache). Doing it at load
    keeps that cost off the first real frame, whose latency the lifecycle and the benchmarks
    measure, and makes a model that loads but cannot run fail at start, not mid-patrol.
    """
    feed = warmup_feed(session, spec)
    start = time.perf_counter()
    try:
        session.run(None, feed)
    except Exception as exc:  # onnxruntime raises its own unrelated types
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        shapes = {k: list(v.shape) for k, v in feed.items()}
        raise ModelError(f"model {spec.id}: warm-up run on {shapes} failed ({detail}); the "
                         f"export does not match models.toml or this onnxruntime") from exc
    return (time.perf_counter() - start) * 1000.0


ModelEdit = Callable[[bytes], bytes]


def open_model(config: GotchaConfig, spec: ModelSpec, *, warm: bool = True,
               edit: ModelEdit | None = None, verify: bool | None = None) -> LoadedModel:
    """Resolve, verify (cached sha256), open with the configured providers and threads, check
    the input shape against the catalog, and warm up once.

    ``edit`` gets the verified file's bytes and returns the model to open (e.g. with an extra
    output added in memory); the sha256 check is always on the file as shipped. ``verify``
    None follows config.models.verify_sha256.
    """
    models = config.models
    path = spec.resolve(models.dir)
    verify = models.verify_sha256 if verify is None else verify
    if verify and spec.sha256:
        verify_sha256(config, spec, path)
    elif verify and not spec.packaged:
        log.warning("model %s: models.toml pins no sha256 for %s; not verified", spec.id, path)
    start = time.perf_counter()
    data = edit(path.read_bytes()) if edit is not None else None
    session = create_session(path, providers=list(models.providers),
                             intra_op_threads=models.intra_op_threads, name=spec.id,
                             trt_cache_dir=models.trt_cache_dir, model_bytes=data)
    check_input_shape(session, spec.expected_input_shape(), spec.id)
    load_ms = (time.perf_counter() - start) * 1000.0
    warm_ms = warm_up(session, spec) if warm else 0.0
    log.info("model %s: %s loaded in %.0f ms, warm-up %.0f ms, providers %s", spec.id, path,
             load_ms, warm_ms, session.get_providers())
    return LoadedModel(spec=spec, path=path, session=session)


def load_model(config: GotchaConfig, model_id: str, kind: str, *, warm: bool = True,
               edit: ModelEdit | None = None) -> LoadedModel:
    """The model ``model_id`` of models.toml, checked to be a ``kind``, ready to run.

    Raises ConfigError (unknown id, wrong kind, bad catalog) or ModelError (file missing,
    wrong sha256, not loadable, wrong input shape, warm-up failed), each one line.
    """
    spec = get_spec(load_catalog(config.models.catalog), model_id, kind)
    return open_model(config, spec, warm=warm, edit=edit)
