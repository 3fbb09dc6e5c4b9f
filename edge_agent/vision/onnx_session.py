"""The one onnxruntime session factory every model goes through.

Why one factory: the provider order (TensorRT, CUDA, CPU), thread counts and the load-time checks
(file present, loads, input shape as models.toml says) must be the same for every model, and a
Jetson differs from a Raspberry Pi only in configuration.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from edge_agent.errors import ModelError

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def pick_providers(preferred: list[str]) -> list[str]:
    """The preferred providers that this onnxruntime build has, in order; CPU always last."""
    available = set(ort.get_available_providers())
    chosen = [PROVIDER_NAMES[p] for p in preferred if PROVIDER_NAMES[p] in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def create_session(
    path: Path,
    *,
    providers: list[str] | None = None,
    intra_op_threads: int = 0,
    name: str | None = None,
    model_bytes: bytes | None = None,
) -> ort.InferenceSession:
    """Open an ONNX model, turning every load failure into a ModelError that says what to do.

    ``model_bytes``: the model already read (and edited in memory, e.g. an extra output); ``path``
    then only names it.
    """
    label = name or path.name
    if model_bytes is None and not path.is_file():
        raise ModelError(f"model {label}: file {path} not found; run `gotcha models fetch "
                         f"{label}` or set GOTCHA_MODEL_DIR to the folder that holds it")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            model_bytes if model_bytes is not None else str(path), sess_options=options,
            providers=pick_providers(providers or ["cpu"]),
        )
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise ModelError(f"model {label}: {path} is not a loadable ONNX model "
                         f"({type(exc).__name__}: {detail}); re-download it with "
                         f"`gotcha models fetch {label}`") from exc
    log.debug("loaded %s with %s", label, session.get_providers())
    return session


def check_input_shape(
    session: ort.InferenceSession, expected: tuple[int | None, ...], name: str
) -> None:
    """Fail at load, not at first frame, when an export's input shape differs from the catalog.

    ``None`` in ``expected`` and symbolic dims in the model match anything.
    """
    actual = session.get_inputs()[0].shape
    if len(actual) != len(expected):
        raise ModelError(f"model {name}: input has {len(actual)} dims {actual}, models.toml "
                         f"expects {list(expected)}; fix input_size/layout in models.toml")
    for got, want in zip(actual, expected, strict=True):
        if want is not None and isinstance(got, int) and got != want:
            raise ModelError(f"model {name}: input shape {actual} does not match models.toml "
                             f"{list(expected)}; fix input_size in models.toml or re-export")
