"""The doctor's checks of the device itself: models, providers, store, disk, source, clock."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.config import GotchaConfig, StoreConfig
from edge_agent.doctor import Finding
from edge_agent.errors import GotchaError

EARLIEST_SANE = datetime(2025, 1, 1, tzinfo=UTC)  # before this gotcha existed: a reset clock
CLOCK_SLACK = timedelta(days=1)  # files may carry a time zone's worth of skew


def check_models(config: GotchaConfig) -> list[Finding]:
    """Each configured model: in models.toml, its file found, its sha256 as pinned."""
    from edge_agent.inference.catalog import get_spec, load_catalog
    from edge_agent.inference.inventory import check_model_file, configured_ids

    try:
        catalog = load_catalog(config.models.catalog)
    except GotchaError as exc:
        return [Finding("models", False, str(exc))]
    found = []
    for model_id, kind in configured_ids(config).items():
        try:
            path = check_model_file(config, get_spec(catalog, model_id, kind))
        except (GotchaError, OSError) as exc:
            text = str(exc)
            found.append(Finding("models", False, text if model_id in text
                                 else f"{model_id}: {text}"))
            continue
        found.append(Finding("models", True, f"{model_id} sha256 ok ({path.name})"))
    return found


def check_providers(config: GotchaConfig, available: list[str] | None = None) -> list[Finding]:
    """The first configured execution provider must be the one sessions will really use:
    a device set up for TensorRT that silently runs on CPU is several times slower."""
    import onnxruntime as ort

    from edge_agent.inference.session import PROVIDER_NAMES, pick_providers

    have = ort.get_available_providers() if available is None else available
    wanted = list(config.models.providers)
    used = pick_providers(wanted, have)[0]
    short = {v: k for k, v in PROVIDER_NAMES.items()}[used]
    if short == wanted[0]:
        return [Finding("providers", True, f"models run on {short}")]
    offered = ", ".join(p.removesuffix("ExecutionProvider") for p in sorted(have))
    return [Finding("providers", False,
                    f"models.providers prefers {wanted[0]}, but this onnxruntime offers "
                    f"{offered}, so models run on {short}; install the onnxruntime build for "
                    f"the accelerator (onnxruntime-gpu, or JetPack's for TensorRT) or set "
                    f'models.providers = ["{short}"]')]


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a new device has no var/ yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _folder_writable(folder: Path) -> str | None:
    """None when a file can be created in ``folder``, else why not (a real write, not
    os.access: root passes os.access on a read-only mount)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".gotcha-doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _database_writable(path: Path) -> str | None:
    """None when SQLite can take the write lock on the database, else SQLite's reason."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:  # locked: a running gotcha is writing it, so it is writable
        return None if "locked" in str(exc).lower() else str(exc)
    finally:
        conn.close()
    return None


def check_store(store: StoreConfig) -> list[Finding]:
    """The database and photo folders writable, then `gotcha store check`'s own findings
    (quick_check, photo files against rows); its integrity is not judged through a folder
    that cannot be written, where SQLite cannot open a WAL database at all."""
    from edge_agent.store.health import diagnose

    found: list[Finding] = []
    folders = {_existing(store.path.parent): "store.path", _existing(store.photo_dir):
               "store.photo_dir"}
    bad_folder = False
    for folder, key in folders.items():
        why = _folder_writable(folder)
        if why is not None:
            bad_folder = True
            found.append(Finding("store", False, f"{folder} ({key}) is not writable ({why}); "
                                 "make it writable for the gotcha user or point " f"{key} at a "
                                 "writable disk"))
    if store.path.exists() and not bad_folder:
        why = _database_writable(store.path)
        if why is not None:
            found.append(Finding("store", False, f"{store.path} cannot be written ({why}); "
                                 "make the file writable for the gotcha user"))
    if bad_folder:  # SQLite cannot even read a WAL database there; fix that first
        return found
    health = diagnose(store)
    found += [Finding("store", False, line) for line in health.problems]
    if not found:
        found.append(Finding("store", True, f"{store.path} writable, "
                             + (health.facts[-1] if len(health.facts) > 1 else "new store")))
    return found


def check_disk(store: StoreConfig) -> list[Finding]:
    """Free space on each disk holding the database or the photos (each disk once)."""
    found: list[Finding] = []
    seen: set[int] = set()
    for path in (store.path.parent, store.photo_dir):
        folder = _existing(path)
        device = folder.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        free_mb = shutil.disk_usage(folder).free / 1e6
        if free_mb < store.min_free_mb:
            found.append(Finding("disk", False, f"only {free_mb:.0f} MB free at {folder} "
                                 f"(store.min_free_mb = {store.min_free_mb:.0f}); free space "
                                 "there or lower store.max_photo_bytes"))
        else:
            found.append(Finding("disk", True, f"{free_mb:.0f} MB free at {folder}"))
    return found


def check_source(config: GotchaConfig, watch: Path | None,
                 camera: int | str | None) -> list[Finding]:
    """The photo source `gotcha run` will be given: a readable folder, or a camera that opens."""
    if watch is not None:
        if not watch.is_dir():
            what = "does not exist" if not watch.exists() else "is not a folder"
            return [Finding("source", False, f"watch folder {watch} {what}; create it or "
                            "pass the folder the photos are copied into")]
        try:
            count = sum(1 for _ in os.scandir(watch))
        except OSError as exc:
            return [Finding("source", False, f"watch folder {watch} cannot be read "
                            f"({exc.strerror}); let the gotcha user read it")]
        return [Finding("source", True, f"watch folder {watch} readable ({count} entries)")]
    if camera is not None:
        from edge_agent.io.sources import CameraSource

        source = CameraSource(camera, config)
        try:
            source.open()
        except GotchaError as exc:
            return [Finding("source", False, str(exc))]
        finally:
            source.close()
        return [Finding("source", True, f"camera {camera} opens")]
    return [Finding("source", True, "no --watch or --camera given: photo source not checked")]


def _newest_mtime(config: GotchaConfig) -> tuple[datetime, Path] | None:
    """The newest time among files this device wrote or installed: the database, its WAL,
    the photo folder and gotcha's own code; a clock earlier than that has been reset."""
    import edge_agent

    candidates = [config.store.path, config.store.path.with_name(config.store.path.name
                                                                 + "-wal"),
                  config.store.photo_dir, Path(edge_agent.__file__).parent]
    times = []
    for path in candidates:
        with contextlib.suppress(OSError):
            times.append((datetime.fromtimestamp(path.stat().st_mtime, UTC), path))
    return max(times) if times else None


def check_clock(config: GotchaConfig, now: datetime | None = None) -> list[Finding]:
    """The clock is not before this gotcha existed and not behind the files it wrote.

    Why: capture times come from this clock when a photo has no EXIF time, and a report's
    interval and expiry are measured with it; a device whose RTC battery died boots in 1970
    or 2000, and one that lost NTP drifts behind the files it already wrote.
    """
    now = now or datetime.now(UTC)
    fix = "set the time (timedatectl set-ntp true, or the GPS/RTC) before running gotcha"
    if now < EARLIEST_SANE:
        return [Finding("clock", False, f"the clock says {now:%Y-%m-%d %H:%M} UTC, before "
                        f"{EARLIEST_SANE:%Y}; {fix}")]
    newest = _newest_mtime(config)
    if newest is not None and now < newest[0] - CLOCK_SLACK:
        return [Finding("clock", False, f"the clock says {now:%Y-%m-%d %H:%M} UTC, but "
                        f"{newest[1]} was written at {newest[0]:%Y-%m-%d %H:%M} UTC; {fix}")]
    return [Finding("clock", True, f"{now:%Y-%m-%d %H:%M} UTC")]
