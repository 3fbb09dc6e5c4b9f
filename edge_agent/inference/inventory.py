"""What the catalog describes versus what is on this device: found where, sha256, loadable.

Why separate from loading: `gotcha models list` must describe every entry, including missing and
broken ones, without raising; `gotcha models verify` turns each failure into one line per model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from edge_agent.config import GotchaConfig
from edge_agent.errors import GotchaError
from edge_agent.inference.catalog import BUNDLED_DIR, ModelSpec, check_sha256, file_sha256
from edge_agent.inference.hash_cache import hash_cache_for
from edge_agent.inference.runner import ModelRunner

# config.models fields that name a catalog entry, and the kind each must be
CONFIGURED_KINDS = {
    "vehicle_detector": "vehicle_detector",
    "plate_detector": "plate_detector",
    "plate_reader": "plate_reader",
    "scene_embedder": "scene_embedder",
}


@dataclass(frozen=True)
class ModelStatus:
    """One catalog entry as found on this machine."""

    id: str
    kind: str
    file: str
    found_in: str  # "models.dir", "bundled", "package" or "missing"
    path: str | None
    size: int | None
    sha256: str | None  # "ok", "mismatch", "unpinned" or None when the file is missing
    in_use: bool  # named by the configuration
    license: str | None
    source: str | None
    url: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class VerifyResult:
    id: str
    ok: bool
    message: str  # one line: what was checked, or what is wrong and what to do

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def configured_ids(config: GotchaConfig) -> dict[str, str]:
    """model id -> kind for every model the configuration uses."""
    used: dict[str, str] = {}
    for field_name, kind in CONFIGURED_KINDS.items():
        model_id = getattr(config.models, field_name, None)
        if model_id:
            used[str(model_id)] = kind
    vision = config.vision
    text_detector = getattr(vision, "text_detector", None)
    if text_detector and (not config.models.plate_detector
                          or getattr(vision, "plate_text_fallback", False)):
        used[str(text_detector)] = "text_detector"  # without a plate detector, or its fallback
    return used


def _where(spec: ModelSpec, path: Path) -> str:
    if spec.packaged:
        return "package"
    return "bundled" if path.parent.resolve() == BUNDLED_DIR.resolve() else "models.dir"


def model_status(config: GotchaConfig, spec: ModelSpec, *, check_sha: bool = True) -> ModelStatus:
    """Describe ``spec`` on this machine; never raises for a missing or damaged file."""
    path = spec.find(config.models.dir)
    sha: str | None = None
    if path is not None and check_sha:
        if not spec.sha256:
            sha = "unpinned"
        else:
            try:
                sha = "ok" if hash_cache_for(config).sha256(path) == spec.sha256 else "mismatch"
            except OSError:
                sha = "unreadable"
    return ModelStatus(
        id=spec.id, kind=spec.kind, file=spec.file,
        found_in=_where(spec, path) if path is not None else "missing",
        path=str(path) if path is not None else None,
        size=path.stat().st_size if path is not None else None,
        sha256=sha, in_use=spec.id in configured_ids(config),
        license=spec.license, source=spec.source, url=spec.url,
    )


def check_model_file(config: GotchaConfig, spec: ModelSpec) -> Path:
    """The model's file, found and its sha256 hashed now (not cached) and matched; raises
    ModelError / OSError with the fix otherwise. `gotcha doctor` stops here (no loading)."""
    path = spec.resolve(config.models.dir)
    if spec.sha256:
        check_sha256(spec, path, file_sha256(path))
    return path


def verify_model(config: GotchaConfig, spec: ModelSpec) -> VerifyResult:
    """Full check of one model: file found, sha256 (hashed now, not cached), the session
    opens with the configured providers, input shape as the catalog says, one warm-up run."""
    try:
        path = check_model_file(config, spec)
        runner = ModelRunner.load(config, spec, path=path, verify=False)
    except (GotchaError, OSError) as exc:
        return VerifyResult(spec.id, False, str(exc))
    shape = [d if isinstance(d, int) else "?" for d in runner.input_shape]
    sha = "sha256 ok" if spec.sha256 else "no sha256 pinned"
    provider = runner.providers[0].removesuffix("ExecutionProvider")
    return VerifyResult(spec.id, True, f"{path}: {sha}, loads on {provider}, input "
                                       f"{runner.input_name} {shape}, warm-up ok")
