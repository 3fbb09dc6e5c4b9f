"""models/models.toml: what each model is, where its file lives, how to feed it.

Why a catalog: a new export (another input size, YOLOX instead of YOLOv8, another charset) is a
config change, not a code change. Everything a pre/post-processor needs is here, and every
mistake in the file is reported with the entry and the key that hold it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_agent.errors import ConfigError, ModelError, ModelMissingError

ModelKind = Literal[
    "vehicle_detector", "plate_detector", "plate_reader", "text_detector", "scene_embedder"
]
KINDS = ("vehicle_detector", "plate_detector", "plate_reader", "text_detector", "scene_embedder")
LAYOUTS = ("yolov8", "yolox", "ctc", "embedding", "db")
COLORS = ("rgb", "bgr", "gray")
LETTERBOXES = ("center", "topleft")
BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "models"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("kind", "file", "layout", "input_size")

# Model-specific keys, kept in ModelSpec.extra: name -> (types allowed, what the value must be).
# A key not here and not a ModelSpec field is a typo, refused at parse time.
MOVED_KEYS = {
    "sure_read": "set plates.sure_read in the config (gotcha.toml); every threshold on plate "
                 "reads lives there",
}
"""Keys that once belonged here, with where they live now."""
EXTRA_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "feature_output": ((str,), "a tensor name"),  # scene_embedder: the pooled features
    "resize": ((str,), "a string"),  # ctc: "stretch" = stretched to input_size even if width-free
    "two_line": ((str,), "a string"),  # ctc: "split" = also read crops as two-line plates
    "two_line_max_aspect": ((int, float), "a number"),
    "region_check": ((bool,), "true or false"),  # ctc: plate colour says region or none
    "zoom": ((bool,), "true or false"),  # ctc: doubtful reads read again cut to their text
    "level": ((bool,), "true or false"),  # ctc: doubtful reads read again with the plate level
    "region_prior": ((str,), "a string"),  # ctc: "fleet" = weigh regions by registrations
    "decode": ((str,), "a string"),  # ctc: plate | greedy | auto
    "constrain": ((str,), "a string"),  # ctc: fallback | always
}


#: how a model shipped inside a wheel (the PP-OCRv4 text detector) gets onto a machine: the
#: wheel alone, without its dependencies (its CPU onnxruntime would shadow a Jetson's GPU build)
PACKAGED_MODELS_HINT = ("scripts/setup.sh installs it; by hand: "
                        "pip install --no-deps rapidocr-onnxruntime==1.4.4")


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
    extra: dict[str, object] = field(default_factory=dict)  # the EXTRA_KEYS it sets

    @property
    def packaged(self) -> bool:
        """True for "pkg:<package>/<path>" files shipped inside an installed Python package."""
        return self.file.startswith("pkg:")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def expected_input_shape(self) -> tuple[int | None, ...]:
        """NCHW as the catalog describes it: any batch, channels from the colour order, and
        ``None`` for a side given as 0 (dynamic)."""
        width, height = self.input_size
        return (None, self.channels, height or None, width or None)

    def candidate_paths(self, model_dir: Path) -> list[Path]:
        """Where the file may be: a package's data folder, or models.dir then the bundled folder."""
        if self.packaged:
            package, _, rel = self.file[4:].partition("/")
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                return []
            return [Path(spec.origin).parent / rel]
        paths = [Path(model_dir) / self.file]
        bundled = BUNDLED_DIR / self.file
        if bundled not in paths:
            paths.append(bundled)
        return paths

    def find(self, model_dir: Path) -> Path | None:
        """The first existing candidate path, or None."""
        return next((p for p in self.candidate_paths(model_dir) if p.is_file()), None)

    def resolve(self, model_dir: Path) -> Path:
        """The model's file; ModelError naming every place looked and the fix if it is absent."""
        found = self.find(model_dir)
        if found is not None:
            return found
        if self.packaged:
            package = self.file[4:].split("/", 1)[0]
            if not self.candidate_paths(model_dir):
                raise ModelError(f"model {self.id}: needs the Python package '{package}' "
                                 f"({PACKAGED_MODELS_HINT})")
            raise ModelError(f"model {self.id}: {self.file} is not in the installed package "
                             f"'{package}'; reinstall it ({PACKAGED_MODELS_HINT})")
        where = ", ".join(str(p.parent) for p in self.candidate_paths(model_dir))
        hint = (f"run `gotcha models fetch {self.id}`" if self.url
                else "copy it there or set GOTCHA_MODEL_DIR")
        raise ModelMissingError(f"model {self.id}: file {self.file} not found in {where}; "
                                f"{hint}")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(spec: ModelSpec, path: Path, actual: str) -> None:
    """Raise ModelError when ``actual`` (the file's sha256) differs from the catalog's."""
    if spec.sha256 and actual != spec.sha256:
        raise ModelError(f"model {spec.id}: {path} has sha256 {actual[:12]}…, models.toml "
                         f"expects {spec.sha256[:12]}…; the file is damaged or another export: "
                         f"re-fetch it or update models.toml")


def verify_file(spec: ModelSpec, path: Path) -> None:
    """Raise ModelError when the file's sha256 differs from the catalog's (hashes every time;
    edge_agent.inference.hash_cache keeps a cache for start-up)."""
    if spec.sha256:
        check_sha256(spec, path, file_sha256(path))


def _floats(where: str, key: str, value: object, length: int | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{where}: '{key}' must be a list of numbers, got {value!r}")
    if length is not None and len(value) not in (1, length):
        raise ConfigError(f"{where}: '{key}' needs 1 or {length} values (one per channel), "
                          f"got {len(value)}")
    return tuple(float(v) for v in value)


def _choice(where: str, entry: dict[str, Any], key: str, allowed: tuple[str, ...],
            default: str | None = None) -> str:
    value = entry.get(key, default)
    if value not in allowed:
        raise ConfigError(f"{where}: '{key}' is {value!r}, expected one of {', '.join(allowed)}")
    return str(value)


def _optional_str(where: str, entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
    return value


def _labels(where: str, value: object) -> dict[int, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'labels' must be a table of class id = \"label\"")
    labels: dict[int, str] = {}
    for key, label in value.items():
        if not str(key).isdigit() or not isinstance(label, str):
            raise ConfigError(f"{where}: 'labels' entry {key!r} = {label!r} must be "
                              f"<class id> = \"<label>\"")
        labels[int(key)] = label
    return labels


def known_keys() -> tuple[str, ...]:
    """Every key a [models.<id>] entry may hold: ModelSpec's fields, then EXTRA_KEYS."""
    fields = tuple(name for name in ModelSpec.__dataclass_fields__ if name not in ("id", "extra"))
    return fields + tuple(EXTRA_KEYS)


def _extra(where: str, entry: dict[str, Any]) -> dict[str, object]:
    """The entry's model-specific keys, type-checked; ConfigError naming an unknown key."""
    fields = set(ModelSpec.__dataclass_fields__) - {"id", "extra"}
    extra: dict[str, object] = {}
    for key, value in entry.items():
        if key in fields:
            continue
        if key in MOVED_KEYS:
            raise ConfigError(f"{where}: '{key}' is no longer a models.toml key; {MOVED_KEYS[key]}")
        if key not in EXTRA_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: "
                              f"{', '.join(known_keys())}")
        types, wanted = EXTRA_KEYS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"{where}: '{key}' must be {wanted}, got {value!r}")
        extra[key] = value
    return extra


def _parse_entry(model_id: str, entry: object, origin: str) -> ModelSpec:
    where = f"{origin} [models.{model_id}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table of keys, got {entry!r}")
    extra = _extra(where, entry)
    for key in _REQUIRED:
        if key not in entry:
            raise ConfigError(f"{where}: missing key '{key}'")
    kind = _choice(where, entry, "kind", KINDS)
    layout = _choice(where, entry, "layout", LAYOUTS)
    color = _choice(where, entry, "color", COLORS, "rgb")
    file = entry["file"]
    if not isinstance(file, str) or not file or (file.startswith("pkg:") and "/" not in file):
        raise ConfigError(f"{where}: 'file' must be a file name or \"pkg:<package>/<path>\", "
                          f"got {file!r}")
    size = entry["input_size"]
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise ConfigError(f"{where}: 'input_size' must be [width, height] (0 = dynamic), "
                          f"got {size!r}")
    sha256 = _optional_str(where, entry, "sha256")
    if sha256 is not None and not _SHA256.match(sha256):
        raise ConfigError(f"{where}: 'sha256' must be 64 lowercase hex digits, got {sha256!r}")
    url = _optional_str(where, entry, "url")
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}: 'url' must start with https://, got {url!r}")
        if sha256 is None:
            raise ConfigError(f"{where}: 'url' needs 'sha256' too, so a download can be "
                              f"verified")
    scale = entry.get("scale", 255.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
        raise ConfigError(f"{where}: 'scale' must be a positive number, got {scale!r}")
    channels = 1 if color == "gray" else 3
    return ModelSpec(
        id=model_id,
        kind=kind,  # type: ignore[arg-type]
        file=file,
        layout=layout,
        input_size=(size[0], size[1]),
        color=color,  # type: ignore[arg-type]
        scale=float(scale),
        mean=_floats(where, "mean", entry.get("mean"), channels),
        std=_floats(where, "std", entry.get("std"), channels),
        letterbox=_choice(where, entry, "letterbox", LETTERBOXES, "center"),  # type: ignore[arg-type]
        labels=_labels(where, entry.get("labels", {})),
        sha256=sha256,
        url=url,
        license=_optional_str(where, entry, "license"),
        source=_optional_str(where, entry, "source"),
        charset=_optional_str(where, entry, "charset"),
        blank_first=bool(entry.get("blank_first", True)),
        extra=extra,
    )


def parse_catalog(text: str, origin: str = "models.toml") -> dict[str, ModelSpec]:
    """Parse models.toml text into specs, naming the entry and key of any mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from exc
    unknown = [key for key in data if key != "models"]
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key {unknown[0]!r}; the file holds "
                          f"only [models.<id>] entries")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{origin}: 'models' must be a table of [models.<id>] entries")
    return {model_id: _parse_entry(model_id, entry, origin) for model_id, entry in models.items()}


_CACHE: dict[Path, tuple[int, int, dict[str, ModelSpec]]] = {}


def load_catalog(path: Path) -> dict[str, ModelSpec]:
    """Read and parse models.toml; re-parsed only when the file changes (size or mtime)."""
    try:
        stat = path.stat()
        cached = _CACHE.get(path)
        if cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return dict(cached[2])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"model catalog {path} not found; set models.catalog") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"model catalog {path} cannot be read ({exc}); check the file") from exc
    specs = parse_catalog(text, origin=str(path))
    _CACHE[path] = (stat.st_size, stat.st_mtime_ns, specs)
    return dict(specs)


def get_spec(catalog: dict[str, ModelSpec], model_id: str, kind: str | None = None) -> ModelSpec:
    """The entry ``model_id``; ConfigError when it is absent or of another kind."""
    spec = catalog.get(model_id)
    if spec is None:
        raise ConfigError(f"model id {model_id!r} is not in models.toml (known: "
                          f"{', '.join(sorted(catalog))})")
    if kind is not None and spec.kind != kind:
        raise ConfigError(f"model {model_id!r} is a {spec.kind}, but is configured as {kind}")
    return spec
