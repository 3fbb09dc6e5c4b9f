"""sha256 of model files, hashed once per file version instead of at every start.

Why a cache: a start-up checks every model against the sha256 models.toml pins, and hashing
hundreds of megabytes on an SD card at each start costs seconds; an unchanged file (same size
and mtime) keeps its digest.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from edge_agent.config import GotchaConfig
from edge_agent.inference.catalog import ModelSpec, check_sha256, file_sha256

log = logging.getLogger(__name__)

HASH_CACHE_NAME = "model-sha256.json"


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


def hash_cache_for(config: GotchaConfig | None) -> HashCache:
    """The process-wide hash cache; persisted next to the SQLite store when its folder exists
    (the store creates it), in memory only otherwise or without a configuration."""
    folder = Path(config.store.path).parent if config is not None else None
    file = folder / HASH_CACHE_NAME if folder is not None and folder.is_dir() else None
    with _CACHES_LOCK:
        if file not in _CACHES:
            _CACHES[file] = HashCache(file)
        return _CACHES[file]


def verify_sha256(config: GotchaConfig | None, spec: ModelSpec, path: Path) -> str:
    """The file's sha256 (cached); ModelError when the catalog pins another one."""
    actual = hash_cache_for(config).sha256(path)
    check_sha256(spec, path, actual)
    return actual
