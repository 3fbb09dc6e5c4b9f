"""Photo files stored by content: ``photos/ab/cd/<sha256>.jpg``.

Why content-addressed: the same photo written twice (a retry after a crash) lands on the same
file, and a report's evidence can be checked against the sha256 its manifest carries. A file
is written to a temporary name, fsynced, renamed and its folder fsynced before any row names
it, so a row never points at a half-written photo.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from edge_agent.durable import atomic_write
from edge_agent.errors import StoreError
from edge_agent.store.db import store_error


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative_path(sha: str) -> str:
    return f"{sha[:2]}/{sha[2:4]}/{sha}.jpg"


class PhotoFiles:
    """The folder of evidence photos; one verb per job: put, path, verify, delete."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha: str) -> Path:
        return self.root / relative_path(sha)

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256; an intact existing copy is kept."""
        if not data:
            raise StoreError("refusing to store an empty photo")
        sha = sha256_hex(data)
        target = self.path(sha)
        if target.exists() and target.stat().st_size == len(data) and self.verify(sha):
            return sha
        try:
            atomic_write(target, data)
        except OSError as exc:
            raise store_error(exc, target) from exc
        return sha

    def read(self, sha: str) -> bytes:
        try:
            return self.path(sha).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"photo {sha[:12]} is missing from {self.root} (evicted or "
                             "deleted); its report cannot be exported") from exc

    def verify(self, sha: str) -> bool:
        """True when the file exists and its bytes hash to ``sha``."""
        path = self.path(sha)
        try:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha

    def delete(self, sha: str) -> int:
        """Remove the file; returns the bytes freed (0 when it was already gone)."""
        path = self.path(sha)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def remove_temporaries(self) -> int:
        """Delete ``.tmp-*`` files a killed process left behind; returns how many."""
        removed = 0
        if self.root.exists():
            for tmp in self.root.glob("*/*/.tmp-*"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
                    removed += 1
        return removed
