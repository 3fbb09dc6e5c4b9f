#!/usr/bin/env python
"""Export detector and scene-embedding models to ONNX and print their models.toml entry.

For users who have the weights and the packages (none of them is a Gotcha dependency):

    # Ultralytics YOLO (.pt) -> ONNX, optionally int8 (dynamic quantisation)
    python scripts/export_models.py yolo yolov8n.pt --imgsz 640 --int8 --id yolov8n-coco
    # torchvision ResNet-18/50 -> ONNX whose output `features` is the pooled vector
    python scripts/export_models.py resnet resnet18 --weights resnet18.pth --id resnet18-scene
    # an ONNX file you already have: quantise it and/or print its entry
    python scripts/export_models.py entry model.onnx --id my-model --kind vehicle_detector

Each prints the [models.<id>] entry, with the file's sha256, to paste into models/models.toml;
copy the .onnx file into models.dir. Why the scene embedder exposes pooled features: the
classifier's logits say "street" for every street, the pooled layer tells streets apart.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

COCO_VEHICLES = {2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNETS = ("resnet18", "resnet50")


class ExportError(Exception):
    """A one-line reason the export cannot go on, with what to do."""


def _require(package: str, pip_name: str) -> object:
    """Import an optional package, or say in one line how to get it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        top = package.split(".")[0]
        raise ExportError(f"this export needs the '{top}' package, which Gotcha does not "
                          f"install: pip install {pip_name}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def input_size_of(path: Path) -> tuple[int, int]:
    """(width, height) of the model's first NCHW input; 0 for a dynamic side."""
    onnx = _require("onnx", "onnx")
    model = onnx.load(str(path), load_external_data=False)  # type: ignore[attr-defined]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ExportError(f"{path}: first input has {len(dims)} dims, expected NCHW (4)")
    height, width = (d.dim_value if d.HasField("dim_value") else 0 for d in dims[2:])
    return width, height


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def catalog_entry(model_id: str, path: Path, *, kind: str, layout: str,
                  input_size: tuple[int, int] | None = None, color: str = "rgb",
                  scale: float = 255.0, mean: tuple[float, ...] | None = None,
                  std: tuple[float, ...] | None = None, letterbox: str | None = None,
                  labels: dict[int, str] | None = None, license: str | None = None,
                  source: str | None = None, extra: dict[str, object] | None = None) -> str:
    """The [models.<id>] TOML entry for ``path``, sha256 computed from the file itself."""
    size = input_size or input_size_of(path)
    keys: dict[str, object | None] = {
        "kind": kind, "file": path.name, "sha256": sha256_of(path), "license": license,
        "source": source, "input_size": list(size), "color": color, "scale": float(scale),
        "mean": list(mean) if mean else None, "std": list(std) if std else None,
        "layout": layout, "letterbox": letterbox, "labels": labels, **(extra or {}),
    }
    lines = [f"[models.{model_id}]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in keys.items() if value is not None]
    if license is None:
        lines.append('# license = "..."  (fill in the licence of the weights)')
    return "\n".join(lines) + "\n"


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation with onnxruntime: weights stored as uint8, activations
    quantised at run time. uint8 weights because onnxruntime's CPU ConvInteger takes uint8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QUInt8)
    return target


def export_yolo(weights: Path, out: Path, *, imgsz: int = 640, opset: int = 12) -> Path:
    """Ultralytics YOLO .pt -> ONNX ([1,3,imgsz,imgsz] RGB /255 in, [1,4+C,N] out, no NMS)."""
    ultralytics = _require("ultralytics", "ultralytics")
    if not weights.is_file():
        raise ExportError(f"weights file {weights} not found")
    model = ultralytics.YOLO(str(weights))  # type: ignore[attr-defined]
    exported = Path(model.export(format="onnx", imgsz=imgsz, opset=opset, dynamic=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    if exported.resolve() != out.resolve():
        shutil.move(str(exported), out)
    return out


def export_resnet(arch: str, out: Path, *, weights: Path | None = None, imgsz: int = 224,
                  opset: int = 17) -> Path:
    """torchvision ResNet -> ONNX with one output, ``features``: the globally pooled vector
    (512 for ResNet-18, 2048 for ResNet-50), batch dimension dynamic."""
    if arch not in RESNETS:
        raise ExportError(f"unknown ResNet {arch!r}; choose one of {', '.join(RESNETS)}")
    torch = _require("torch", "torch")
    models = _require("torchvision.models", "torchvision")
    if weights is not None:
        if not weights.is_file():
            raise ExportError(f"weights file {weights} not found")
        net = getattr(models, arch)(weights=None)
        state = torch.load(str(weights), map_location="cpu", weights_only=True)  # type: ignore[attr-defined]
        net.load_state_dict(state)
    else:  # torchvision's own ImageNet weights (downloaded once into its cache)
        net = getattr(models, arch)(weights="IMAGENET1K_V1")
    net.fc = torch.nn.Identity()  # type: ignore[attr-defined]
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, imgsz, imgsz)  # type: ignore[attr-defined]
    torch.onnx.export(net, dummy, str(out), input_names=["input"],  # type: ignore[attr-defined]
                      output_names=["features"], opset_version=opset,
                      dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})
    return out


def _maybe_int8(path: Path, int8: bool) -> Path:
    if not int8:
        return path
    target = path.with_name(path.stem + "-int8.onnx")
    return quantize_int8(path, target)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    yolo = sub.add_parser("yolo", help="Ultralytics YOLO .pt -> ONNX")
    yolo.add_argument("weights", type=Path, help="the .pt file")
    yolo.add_argument("--imgsz", type=int, default=640, help="input side in pixels")
    yolo.add_argument("--opset", type=int, default=12, help="ONNX opset")
    yolo.add_argument("--kind", default="vehicle_detector",
                      choices=("vehicle_detector", "plate_detector"), help="catalog kind")

    resnet = sub.add_parser("resnet", help="torchvision ResNet -> ONNX pooled features")
    resnet.add_argument("arch", choices=RESNETS, help="which ResNet")
    resnet.add_argument("--weights", type=Path, help="a state_dict .pth (default: "
                        "torchvision's ImageNet weights)")
    resnet.add_argument("--imgsz", type=int, default=224, help="input side in pixels")
    resnet.add_argument("--opset", type=int, default=17, help="ONNX opset")

    entry = sub.add_parser("entry", help="print the entry of an existing ONNX file")
    entry.add_argument("onnx", type=Path, help="the .onnx file")
    entry.add_argument("--kind", required=True, help="catalog kind")
    entry.add_argument("--layout", required=True, help="output layout (yolov8, yolox, ...)")

    for command in (yolo, resnet, entry):
        command.add_argument("--id", required=True, help="models.toml id for the entry")
        command.add_argument("--out", type=Path, help="output .onnx (default: <id>.onnx)")
        command.add_argument("--int8", action="store_true", help="also quantise to int8")
        command.add_argument("--license", help="licence of the weights, for the entry")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out or Path(f"{args.id}.onnx")
    try:
        if args.command == "yolo":
            path = _maybe_int8(export_yolo(args.weights, out, imgsz=args.imgsz,
                                           opset=args.opset), args.int8)
            labels = COCO_VEHICLES if args.kind == "vehicle_detector" else {0: "plate"}
            text = catalog_entry(args.id, path, kind=args.kind, layout="yolov8",
                                 letterbox="center", labels=labels,
                                 license=args.license or "AGPL-3.0",
                                 source=f"Ultralytics {args.weights.name}, ONNX opset "
                                        f"{args.opset}, {args.imgsz} px"
                                        + (", int8 (dynamic)" if args.int8 else ""))
        elif args.command == "resnet":
            path = _maybe_int8(export_resnet(args.arch, out, weights=args.weights,
                                             imgsz=args.imgsz, opset=args.opset), args.int8)
            text = catalog_entry(args.id, path, kind="scene_embedder", layout="embedding",
                                 input_size=(args.imgsz, args.imgsz), mean=IMAGENET_MEAN,
                                 std=IMAGENET_STD, license=args.license,
                                 source=f"torchvision {args.arch}, pooled features, ONNX opset "
                                        f"{args.opset}" + (", int8 (dynamic)" if args.int8
                                                           else ""),
                                 extra={"feature_output": "features"})
        else:
            if not args.onnx.is_file():
                raise ExportError(f"{args.onnx} not found")
            path = args.onnx
            if args.int8:
                path = quantize_int8(args.onnx, out)
            text = catalog_entry(args.id, path, kind=args.kind, layout=args.layout,
                                 license=args.license)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"# wrote {path}; copy it into models.dir and paste this into models/models.toml:")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
