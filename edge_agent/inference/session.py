"""Provider choice and onnxruntime session creation: the one place a session is made.

Why one factory: the provider order (TensorRT, CUDA, CPU), thread counts, the TensorRT engine
cache and the load-time checks (file present, loads, input shape as models.toml says) must be
the same for every model, and a Jetson differs from a Raspberry Pi only in configuration.
Only edge_agent.inference.runner calls it; everything else runs models through a ModelRunner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edge_agent.errors import ConfigError, ModelError, ModelMissingError

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PROVIDER_ORDER = ("tensorrt", "cuda", "cpu")  # the default preference (config.models.providers)


def pick_providers(preferred: list[str], available: list[str] | None = None) -> list[str]:
    """The preferred providers this onnxruntime build has, in the configured order (default
    TensorRT, CUDA, CPU); CPU is always there, last, so a missing GPU build degrades to CPU
    instead of failing.

    ``available`` defaults to what onnxruntime reports (tests pass their own list).
    """
    unknown = [p for p in preferred if p not in PROVIDER_NAMES]
    if unknown:
        raise ConfigError(f"models.providers: unknown provider(s) {unknown}; use "
                          f"{', '.join(PROVIDER_ORDER)}")
    have = set(ort.get_available_providers() if available is None else available)
    chosen: list[str] = []
    for short in preferred:
        full = PROVIDER_NAMES[short]
        if full in have and full not in chosen and short != "cpu":
            chosen.append(full)
    if PROVIDER_NAMES["cpu"] not in chosen:
        chosen.append(PROVIDER_NAMES["cpu"])
    skipped = [p for p in preferred if PROVIDER_NAMES[p] not in chosen]
    if skipped:
        log.info("execution providers %s are not in this onnxruntime build; using %s",
                 skipped, chosen)
    return chosen


def _with_options(providers: list[str], trt_cache_dir: Path | None) -> list[Any]:
    """Provider list with TensorRT's engine cache turned on when a cache folder is configured
    (building an engine takes minutes on a Jetson; the cache makes it a one-time cost)."""
    if trt_cache_dir is None or PROVIDER_NAMES["tensorrt"] not in providers:
        return list(providers)
    trt_cache_dir.mkdir(parents=True, exist_ok=True)
    options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache_dir)}
    return [(p, options) if p == PROVIDER_NAMES["tensorrt"] else p for p in providers]


def create_session(
    path: Path,
    *,
    providers: list[str] | None = None,
    intra_op_threads: int = 0,
    name: str | None = None,
    trt_cache_dir: Path | None = None,
    model_bytes: bytes | None = None,
) -> ort.InferenceSession:
    """Open an ONNX model, turning every load failure into a ModelError that says what to do.

    ``providers`` are short names from config (tensorrt, cuda, cpu); ``intra_op_threads`` 0
    lets onnxruntime use every core. ``model_bytes``: the model already read and edited in
    memory (e.g. an extra output); ``path`` then only names it.
    """
    label = name or path.name
    if model_bytes is None and not path.is_file():
        raise ModelMissingError(f"model {label}: file {path} not found; run `gotcha models fetch "
                         f"{label}` or set GOTCHA_MODEL_DIR to the folder that holds it")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    chosen = pick_providers(providers or ["cpu"])
    try:
        session = ort.InferenceSession(
            model_bytes if model_bytes is not None else str(path), sess_options=options,
            providers=_with_options(chosen, trt_cache_dir),
        )
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise ModelError(f"model {label}: {path} is not a loadable ONNX model "
                         f"({type(exc).__name__}: {detail}); re-download it with "
                         f"`gotcha models fetch {label}`") from exc
    log.debug("loaded %s with %s", label, session.get_providers())
    return session


def check_input_shape(
    actual: Sequence[object], expected: tuple[int | None, ...], name: str
) -> None:
    """Fail at load, not at first frame, when an export's input shape (``actual``, as the
    session lists it) differs from the catalog's ``expected``.

    ``None`` in ``expected`` and symbolic dims in the model match anything. With a 4-D (NCHW)
    input the batch must be 1 or symbolic: the pipelines feed one image (or a batch of crops).
    """
    actual = list(actual)
    if len(actual) != len(expected):
        raise ModelError(f"model {name}: input has {len(actual)} dims {actual}, models.toml "
                         f"expects {list(expected)}; fix input_size/layout in models.toml")
    for got, want in zip(actual, expected, strict=True):
        if want is not None and isinstance(got, int) and got != want:
            raise ModelError(f"model {name}: input shape {actual} does not match models.toml "
                             f"{list(expected)}; fix input_size/color in models.toml or "
                             f"re-export")
    if len(actual) == 4 and isinstance(actual[0], int) and actual[0] != 1:
        raise ModelError(f"model {name}: input batch is fixed at {actual[0]}; re-export with "
                         f"batch 1 or a dynamic batch")
