"""An ImageNet backbone as an image embedder: its pooled features, not its class logits.

Why pooled features: the logits of an ImageNet classifier say "street" or "parking lot" for every
street; the pooled layer before the classifier still tells one street from another. Exported
classifiers rarely list that layer as an output, so it is added to the graph in memory at load
(with the ``onnx`` package), or taken as it is when the file already exposes it (see
``scripts/expose_features.py``). models.toml may name the tensor (``feature_output = "..."``);
otherwise the last GlobalAveragePool (float or int8-quantised) is used, and a model whose only
output is already an embedding (layout ``embedding`` without a classifier) is used as is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec, get_spec, load_catalog
from edge_agent.inference.preprocess import to_batch
from edge_agent.inference.runner import ModelRunner, load_runner

log = logging.getLogger(__name__)

FEATURE_OUTPUT = "gotcha_features"
POOL_OPS = ("GlobalAveragePool", "QLinearGlobalAveragePool")


def expose_features(model_bytes: bytes, feature_output: str | None = None) -> tuple[bytes, str]:
    """Return (model bytes with the pooled features as an extra float output, that output's name);
    (unchanged bytes, "") when no tensor is named and the graph has no global pooling.

    A quantised pool (QLinearGlobalAveragePool, uint8) gets a DequantizeLinear with the pool's own
    output scale and zero point, so the feature is float either way.
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as exc:  # pragma: no cover - onnx is a dev dependency
        raise ModelError("exposing a backbone's pooled features needs the 'onnx' package "
                         "(pip install onnx), or run scripts/expose_features.py once") from exc
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf raises its own DecodeError family
        raise ModelError(f"not an ONNX model ({type(exc).__name__}); re-fetch it") from exc
    graph = model.graph
    outputs = {o.name for o in graph.output}
    producer = {out: node for node in graph.node for out in node.output}
    if feature_output is None:
        pools = [n for n in graph.node if n.op_type in POOL_OPS]
        if not pools:
            return model_bytes, ""  # nothing to expose: an embedding model, or the caller says
        feature_output = pools[-1].output[0]
    if feature_output not in producer:
        raise ModelError(f"tensor {feature_output!r} is not produced by any node of the model; "
                         "fix feature_output in models.toml")
    node = producer[feature_output]
    name = feature_output
    if node.op_type == "QLinearGlobalAveragePool":
        name = FEATURE_OUTPUT
        graph.node.append(helper.make_node("DequantizeLinear",
                                           [feature_output, node.input[3], node.input[4]],
                                           [name], name="gotcha_dequant_features"))
    if name not in outputs:
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return model.SerializeToString(), name


@dataclass
class Embedder:
    """Runs one backbone and returns L2-normalised feature vectors, one per image."""

    spec: ModelSpec
    runner: ModelRunner
    output_name: str

    @classmethod
    def from_config(cls, config: GotchaConfig, model_id: str) -> Embedder:
        """Load ``model_id`` (a scene_embedder of models.toml) with its features exposed."""
        chosen: dict[str, str] = {}

        def edit(data: bytes) -> bytes:
            return _edit_for_features(data, model_id, wanted, chosen)

        spec = get_spec(load_catalog(config.models.catalog), model_id, "scene_embedder")
        wanted = spec.extra.get("feature_output")
        if wanted is not None and not isinstance(wanted, str):
            raise ModelError(f"model {model_id}: feature_output must be a tensor name, got "
                             f"{wanted!r}; fix models.toml")
        runner = load_runner(config, model_id, "scene_embedder", edit=edit)
        outputs = runner.output_names
        output = chosen.get("name") or (wanted if wanted in outputs else None)
        if output is None and len(outputs) == 1 and _is_embedding(runner, spec):
            output = outputs[0]
        if output is None or output not in outputs:
            raise ModelError(f"model {model_id}: no feature output found (outputs {outputs}); "
                             "install the 'onnx' package or run scripts/expose_features.py")
        log.debug("scene embedder %s: output %s", model_id, output)
        return cls(runner.spec, runner, output)

    def embed(self, images_bgr: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32, each row of unit length.

        Images are stretched to the input size (no letterbox: the whole view matters) with
        pixel-area averaging even when enlarged, as the scene figures were measured.
        """
        batch = to_batch(images_bgr, self.spec, interpolation=cv2.INTER_AREA)
        (out,) = self.runner.run(batch, [self.output_name])
        feats = np.asarray(out, np.float32).reshape(len(images_bgr), -1)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)


def _edit_for_features(data: bytes, model_id: str, wanted: str | None,
                       chosen: dict[str, str]) -> bytes:
    """The load-time edit: expose the features unless the file already lists them as an output.

    Without the ``onnx`` package the file is opened as shipped (fine for a file prepared by
    scripts/expose_features.py; the caller then checks the output is there).
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        return data
    try:
        edited, name = expose_features(data, wanted)
    except ModelError as exc:
        raise ModelError(f"model {model_id}: {exc}") from None
    if name:
        chosen["name"] = name
    return edited


def _is_embedding(runner: ModelRunner, spec: ModelSpec) -> bool:
    """A single output that is not an ImageNet classifier's 1000 logits is taken as the feature."""
    shape = runner.output_shapes[0]
    return spec.layout == "embedding" and not (len(shape) == 2 and shape[-1] == 1000)
