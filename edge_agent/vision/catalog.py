"""models/models.toml: what each model is, where its file lives, how to feed it.

Why a catalog: a new export (another input size, YOLOX instead of YOLOv8, another charset) is a
config change, not a code change. Everything a pre/post-processor needs is here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge_agent.errors import ConfigError, ModelError

ModelKind = Literal[
    "vehicle_detector", "plate_detector", "plate_reader", "text_detector", "scene_embedder"
]
KINDS = ("vehicle_detector", "plate_detector", "plate_reader", "text_detector", "scene_embedder")
LAYOUTS = ("yolov8", "yolox", "ctc", "embedding", "db")
BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "models"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of models.toml."""

    id: str
    kind: ModelKind
    file: str
    layout: str
    input_size: tuple[int, int]  # (width, height); 0 = dynamic
    color: Literal["rgb", "bgr", "gray"] = "rgb"
    scale: float = 255.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    letterbox: Literal["center", "topleft"] = "center"
    labels: dict[int, str] = field(default_factory=dict)
    sha256: str | None = None
    url: str | None = None
    license: str | None = None
    source: str | None = None
    charset: str | None = None  # ctc: file name next to the model, "metadata:<key>", or inline
    blank_first: bool = True  # ctc: index 0 is the blank (else the last index)
    extra: dict[str, object] = field(default_factory=dict)

    def candidate_paths(self, model_dir: Path) -> list[Path]:
        """Where the file may be: a package's data folder, or models.dir then the bundled folder."""
        if self.file.startswith("pkg:"):
            package, _, rel = self.file[4:].partition("/")
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                return []
            return [Path(spec.origin).parent / rel]
        return [Path(model_dir) / self.file, BUNDLED_DIR / self.file]

    def resolve(self, model_dir: Path) -> Path:
        """The model's file; ModelError naming every place looked and the fix if it is absent."""
        candidates = self.candidate_paths(model_dir)
        for path in candidates:
            if path.is_file():
                return path
        if self.file.startswith("pkg:"):
            package = self.file[4:].split("/", 1)[0]
            raise ModelError(f"model {self.id}: needs the Python package '{package}' "
                             f"(pip install 'gotcha[paddle]')")
        where = ", ".join(str(p.parent) for p in candidates)
        hint = (f"run `gotcha models fetch {self.id}`" if self.url
                else "copy it there or set GOTCHA_MODEL_DIR")
        raise ModelError(f"model {self.id}: file {self.file} not found in {where}; {hint}")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(spec: ModelSpec, path: Path) -> None:
    """Raise ModelError when the file's sha256 differs from the catalog's."""
    if not spec.sha256:
        return
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise ModelError(f"model {spec.id}: {path} has sha256 {actual[:12]}…, models.toml "
                         f"expects {spec.sha256[:12]}…; the file is damaged or another export: "
                         f"re-fetch it or update models.toml")


def _tuple(value: object) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value)  # type: ignore[union-attr]


def parse_catalog(text: str, origin: str = "models.toml") -> dict[str, ModelSpec]:
    """Parse models.toml text into specs, naming the entry and key of any mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from exc
    known = set(ModelSpec.__dataclass_fields__) - {"id", "extra"}
    specs: dict[str, ModelSpec] = {}
    for model_id, entry in data.get("models", {}).items():
        where = f"{origin} [models.{model_id}]"
        for key in ("kind", "file", "layout", "input_size"):
            if key not in entry:
                raise ConfigError(f"{where}: missing key '{key}'")
        if entry["kind"] not in KINDS:
            raise ConfigError(f"{where}: kind {entry['kind']!r} is not one of {KINDS}")
        if entry["layout"] not in LAYOUTS:
            raise ConfigError(f"{where}: layout {entry['layout']!r} is not one of {LAYOUTS}")
        size = entry["input_size"]
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) for v in size)):
            raise ConfigError(f"{where}: input_size must be [width, height], got {size!r}")
        unknown = set(entry) - known
        try:
            specs[model_id] = ModelSpec(
                id=model_id,
                kind=entry["kind"],
                file=entry["file"],
                layout=entry["layout"],
                input_size=(size[0], size[1]),
                color=entry.get("color", "rgb"),
                scale=float(entry.get("scale", 255.0)),
                mean=_tuple(entry.get("mean")),
                std=_tuple(entry.get("std")),
                letterbox=entry.get("letterbox", "center"),
                labels={int(k): str(v) for k, v in entry.get("labels", {}).items()},
                sha256=entry.get("sha256"),
                url=entry.get("url"),
                license=entry.get("license"),
                source=entry.get("source"),
                charset=entry.get("charset"),
                blank_first=bool(entry.get("blank_first", True)),
                extra={k: entry[k] for k in unknown},
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return specs


def load_catalog(path: Path) -> dict[str, ModelSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"model catalog {path} not found; set models.catalog") from exc
    return parse_catalog(text, origin=str(path))


def get_spec(catalog: dict[str, ModelSpec], model_id: str, kind: str) -> ModelSpec:
    spec = catalog.get(model_id)
    if spec is None:
        raise ConfigError(f"model id {model_id!r} is not in models.toml (known: "
                          f"{', '.join(sorted(catalog))})")
    if spec.kind != kind:
        raise ConfigError(f"model {model_id!r} is a {spec.kind}, but is configured as {kind}")
    return spec
