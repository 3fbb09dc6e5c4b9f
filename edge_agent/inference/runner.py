"""ModelRunner: the one way a catalogued model is loaded, warmed up, run and timed.

Every model owner (vehicle and plate detectors, text detector, plate reader, scene embedder)
gets its model from ``load_runner(config, model_id, kind)`` (or ``ModelRunner.load`` for a
catalog entry it already holds), so every model is checked the same way at start, a broken or
wrong model fails there with one line, never at the first real photo, and every model's bare
inference time is on the same clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_agent.config import GotchaConfig, ModelsConfig
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec, get_spec, load_catalog
from edge_agent.inference.hash_cache import verify_sha256
from edge_agent.inference.session import check_input_shape, create_session

log = logging.getLogger(__name__)

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

ModelEdit = Callable[[bytes], bytes]
Shape = tuple[int | str | None, ...]


class InferenceClock:
    """Milliseconds spent inside onnxruntime's ``run`` (no pre/post-processing), how many runs
    and how many inputs they held (the batch sizes summed): what the pipeline, the eval and the
    benchmarks set against their wall times. Monotonic; a caller diffs two readings."""

    __slots__ = ("calls", "inputs", "total_ms")

    def __init__(self) -> None:
        self.total_ms = 0.0
        self.calls = 0
        self.inputs = 0

    def add(self, ms: float, inputs: int = 1) -> None:
        self.total_ms += ms
        self.calls += 1
        self.inputs += inputs


def warmup_feed(inputs: Sequence[ort.NodeArg], spec: ModelSpec) -> dict[str, np.ndarray]:
    """Zero inputs of the shape the catalog says; symbolic dims take the catalog's size, or 1
    for a batch, or a small side when the catalog leaves the side dynamic too."""
    feed: dict[str, np.ndarray] = {}
    width, height = spec.input_size
    for index, arg in enumerate(inputs):
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


def _one_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0][:160] if text else type(exc).__name__


class ModelRunner:
    """One loaded model: ``run(tensor or feed) -> outputs``, timed on ``clock``.

    Built by ``ModelRunner.load`` / ``load_runner``; the session inside is this class's own.
    """

    def __init__(self, spec: ModelSpec, path: Path, session: ort.InferenceSession) -> None:
        self.spec = spec
        self.path = path
        self._session = session
        self._inputs = session.get_inputs()
        self._outputs = session.get_outputs()
        self.clock = InferenceClock()
        self.warm_up_ms: float | None = None  # None until warmed up
        self.warm_shapes: tuple[tuple[int, ...], ...] = ()  # output shapes of the warm-up run

    @classmethod
    def load(cls, config: GotchaConfig | None, spec: ModelSpec, *, path: Path | None = None,
             warm: bool = True, edit: ModelEdit | None = None,
             verify: bool | None = None) -> ModelRunner:
        """Resolve the file (or take ``path``), verify its sha256 (cached), open it with the
        configured providers, threads and TensorRT engine cache, check the input shape
        against the catalog, and warm up once.

        ``config`` None means the default model settings. ``edit`` gets the verified file's
        bytes and returns the model to open (e.g. with an extra output added in memory); the
        sha256 check is always on the file as shipped. ``verify`` None follows
        config.models.verify_sha256. Raises ModelError (file missing, wrong sha256, not
        loadable, wrong input shape, warm-up failed), each one line.
        """
        models = config.models if config is not None else ModelsConfig()
        path = spec.resolve(models.dir) if path is None else path
        verify = models.verify_sha256 if verify is None else verify
        if verify and spec.sha256 and path.is_file():
            verify_sha256(config, spec, path)
        elif verify and not spec.sha256 and not spec.packaged:
            log.warning("model %s: models.toml pins no sha256 for %s; not verified", spec.id, path)
        start = time.perf_counter()
        data = edit(path.read_bytes()) if edit is not None and path.is_file() else None
        session = create_session(path, providers=list(models.providers),
                                 intra_op_threads=models.intra_op_threads, name=spec.id,
                                 trt_cache_dir=models.trt_cache_dir, model_bytes=data)
        runner = cls(spec, path, session)
        runner.check_input(spec.expected_input_shape())
        load_ms = (time.perf_counter() - start) * 1000.0
        if warm:
            runner.warm_up()
        log.info("model %s: %s loaded in %.0f ms, warm-up %.0f ms, providers %s", spec.id, path,
                 load_ms, runner.warm_up_ms or 0.0, runner.providers)
        return runner

    # -- what the model takes and gives ----------------------------------------------------

    @property
    def input_name(self) -> str:
        return self._inputs[0].name

    @property
    def input_shape(self) -> Shape:
        """The first input's dims as the model declares them (str or None: symbolic)."""
        return tuple(self._inputs[0].shape)

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._outputs]

    @property
    def output_shapes(self) -> list[Shape]:
        """Every output's dims as the model declares them (str or None: symbolic)."""
        return [tuple(o.shape) if o.shape is not None else () for o in self._outputs]

    @property
    def providers(self) -> list[str]:
        """Execution providers in use, preferred first (CPU always last)."""
        return list(self._session.get_providers())

    @property
    def metadata(self) -> dict[str, str]:
        """The model file's custom metadata (e.g. a recogniser's character list)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def check_input(self, expected: tuple[int | None, ...]) -> None:
        """ModelError unless the first input matches ``expected`` (None: any)."""
        check_input_shape(self.input_shape, expected, self.spec.id)

    # -- running -----------------------------------------------------------------------------

    def warm_up(self) -> float:
        """Run the model once on zeros of the catalog's shape; the milliseconds it took.

        Why: the first run is the expensive one. onnxruntime allocates its memory arenas then;
        the CUDA provider also allocates GPU memory and picks convolution algorithms, and the
        TensorRT provider builds its engine (minutes on a Jetson without an engine cache).
        Doing it at load keeps that cost off the first real frame, whose latency the
        lifecycle and the benchmarks measure, and makes a model that loads but cannot run
        (or gives outputs of the wrong shape, see ``warm_shapes``) fail at start, not
        mid-patrol. Not counted on ``clock``.
        """
        feed = warmup_feed(self._inputs, self.spec)
        start = time.perf_counter()
        try:
            outputs = self._session.run(None, feed)
        except Exception as exc:  # onnxruntime raises its own unrelated types
            shapes = {k: list(v.shape) for k, v in feed.items()}
            raise ModelError(f"model {self.spec.id}: warm-up run on {shapes} failed "
                             f"({_one_line(exc)}); the export does not match models.toml or "
                             f"this onnxruntime") from exc
        self.warm_up_ms = (time.perf_counter() - start) * 1000.0
        self.warm_shapes = tuple(tuple(np.shape(o)) for o in outputs)
        return self.warm_up_ms

    def run(self, inputs: np.ndarray | Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """The model's outputs (all, or those named) for one tensor fed to its only input, or
        a feed of input name -> tensor. Only the time inside onnxruntime goes on ``clock``.
        ModelError when onnxruntime refuses the input."""
        feed = {self.input_name: inputs} if isinstance(inputs, np.ndarray) else dict(inputs)
        start = time.perf_counter()
        try:
            result = self._session.run(list(outputs) if outputs is not None else None, feed)
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise ModelError(f"model {self.spec.id}: inference failed "
                             f"({type(exc).__name__}: {_one_line(exc)[:120]})") from exc
        first = next(iter(feed.values()), None)
        batch = int(first.shape[0]) if getattr(first, "ndim", 0) else 1
        self.clock.add((time.perf_counter() - start) * 1000.0, batch)
        return result


def load_runner(config: GotchaConfig, model_id: str, kind: str, *, warm: bool = True,
                edit: ModelEdit | None = None) -> ModelRunner:
    """The model ``model_id`` of models.toml, checked to be a ``kind``, loaded and warmed up.

    Raises ConfigError (unknown id, wrong kind, bad catalog) or ModelError (file missing,
    wrong sha256, not loadable, wrong input shape, warm-up failed), each one line.
    """
    spec = get_spec(load_catalog(config.models.catalog), model_id, kind)
    return ModelRunner.load(config, spec, warm=warm, edit=edit)
