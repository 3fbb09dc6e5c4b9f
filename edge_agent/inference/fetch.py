"""Download a model from its pinned source: atomic, resumable, verified.

Why this shape: devices sit on patchy mobile links and small SD cards. A download goes to
``<file>.part`` (resumed with an HTTP Range request after a dropped connection), is checked
against the sha256 pinned in models.toml, synced to disk and only then renamed into place, so
models.dir never holds a half-written or unverified model. Plain urllib: no extra dependency.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_agent import __version__
from edge_agent.durable import fsync_dir
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import PACKAGED_MODELS_HINT, ModelSpec, file_sha256

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_BYTES = 4 << 30  # no model of ours is near this; a server sending more is wrong
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    downloaded_bytes: int  # fetched in this call (0 when the file was already there)
    resumed_from: int  # bytes of an earlier .part that were kept
    already_present: bool


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def need_space(folder: Path, needed: int, free: int | None = None) -> None:
    """ModelError before downloading when the disk cannot hold ``needed`` more bytes."""
    if free is None:
        free = shutil.disk_usage(folder).free
    if needed > free:
        raise ModelError(f"not enough disk space in {folder}: the download needs "
                         f"{needed / 1e6:.1f} MB, {free / 1e6:.1f} MB free; free some space "
                         f"and run the command again")


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """One download per file at a time (a provisioning script and a technician may both try):
    two writers appending to one .part would corrupt it."""
    path = lock_path(target)
    try:
        handle = path.open("w")
    except OSError as exc:
        raise ModelError(f"cannot write in {target.parent} ({exc.strerror or exc}); choose "
                         f"another --dest or fix its permissions") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelError(f"another download of {target.name} into {target.parent} is "
                             f"running; wait for it to finish") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc or url


def _unreachable(url: str, reason: object, folder: Path) -> ModelError:
    return ModelError(f"cannot reach {_host(url)} ({reason}); copy the file manually into "
                      f"{folder} or try again")


def _open(url: str, offset: int, timeout: float, folder: Path) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"gotcha/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            raise  # the caller decides: the .part may already be complete
        if exc.code in (404, 410):
            hint = (f"the pinned source moved or the url is wrong: fix url in models.toml or "
                    f"copy the file manually into {folder}")
        elif exc.code in (401, 403):
            hint = f"the source refuses the download: copy the file manually into {folder}"
        else:
            hint = "the server has a problem: try again later"
        raise ModelError(f"{url} answered HTTP {exc.code} {exc.reason}; {hint}") from None
    except urllib.error.URLError as exc:
        raise _unreachable(url, exc.reason, folder) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _unreachable(url, exc, folder) from None


def _expected_total(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(where the body starts in the file, total file size or None) from the response."""
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise ModelError(f"the server answered a resume request with a wrong range "
                             f"({response.headers.get('Content-Range')!r}); delete the .part "
                             f"file and run again")
        return offset, None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _download(url: str, part: Path, timeout: float, progress: Progress | None) -> tuple[int, int]:
    """Append the rest of ``url`` to ``part``; returns (bytes fetched now, bytes kept)."""
    folder = part.parent
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout, folder)
    except urllib.error.HTTPError as exc:  # 416: nothing left to fetch past our offset
        exc.close()
        if not offset:
            raise ModelError(f"{url} answered HTTP 416 to a plain download; check url in "
                             f"models.toml") from None
        return 0, offset
    with response:
        start, total = _expected_total(response, offset)
        if total is not None and total > MAX_BYTES:
            raise ModelError(f"{url} would send {total / 1e9:.1f} GB, more than any model; "
                             f"check url in models.toml")
        if start == 0 and offset:
            log.info("%s ignored the resume request; downloading from the start", _host(url))
        kept = start
        if total is not None:
            need_space(folder, total - start)
        done = 0
        try:
            with part.open("r+b" if start else "wb") as handle:
                handle.seek(start)
                handle.truncate()
                while block := response.read(CHUNK):
                    handle.write(block)
                    done += len(block)
                    if start + done > MAX_BYTES:
                        raise ModelError(f"{url} sent more than {MAX_BYTES / 1e9:.0f} GB; check "
                                         f"url in models.toml")
                    if progress is not None:
                        progress(start + done, total)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ModelError(f"disk full while writing {part}; free some space and run the "
                                 f"command again to resume") from None
            if isinstance(exc, (TimeoutError, ConnectionError)):
                raise ModelError(f"download from {_host(url)} interrupted after "
                                 f"{(start + done) / 1e6:.1f} MB ({exc}); run the command "
                                 f"again to resume") from None
            raise ModelError(f"cannot write {part} ({exc.strerror or exc}); check the folder's "
                             f"permissions") from None
        except http.client.IncompleteRead:
            total_mb = f" of {total / 1e6:.1f} MB" if total else ""
            raise ModelError(f"download from {_host(url)} interrupted after "
                             f"{(start + done) / 1e6:.1f} MB{total_mb}; run the command again "
                             f"to resume") from None
        if total is not None and start + done < total:
            raise ModelError(f"download from {_host(url)} interrupted after "
                             f"{(start + done) / 1e6:.1f} of {total / 1e6:.1f} MB; run the "
                             f"command again to resume")
    return done, kept


def fetch_model(spec: ModelSpec, dest: Path, *, url: str | None = None, timeout: float = 30.0,
                progress: Progress | None = None) -> FetchResult:
    """Download ``spec``'s file into ``dest`` from ``url`` (default: the catalog's pinned url).

    Raises ModelError with one line for: no url, no sha256 to check against, unreachable host,
    HTTP errors, an interrupted transfer (the .part is kept; run again to resume), a sha256
    mismatch (the .part is deleted) and a full disk.
    """
    if spec.packaged:
        package = spec.file[4:].split("/", 1)[0]
        raise ModelError(f"model {spec.id} ships inside the Python package '{package}'; "
                         f"install it instead of fetching ({PACKAGED_MODELS_HINT})")
    source = url or spec.url
    if not source:
        raise ModelError(f"model {spec.id} has no pinned download url in models.toml; copy "
                         f"{spec.file} manually into {dest}"
                         + (f" (source: {spec.source})" if spec.source else ""))
    if not spec.sha256:
        raise ModelError(f"model {spec.id}: models.toml pins no sha256, so a download cannot "
                         f"be verified; add the sha256 of the file you trust first")
    if urllib.parse.urlsplit(source).scheme not in ("http", "https"):
        raise ModelError(f"model {spec.id}: url {source!r} must be http:// or https://")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create {dest} ({exc.strerror or exc}); choose another "
                         f"--dest or fix its permissions") from None
    target = dest / spec.file
    if target.is_file() and file_sha256(target) == spec.sha256:
        return FetchResult(target, 0, 0, already_present=True)
    part = part_path(target)
    with _exclusive(target):
        done, kept = _download(source, part, timeout, progress)
        actual = file_sha256(part)
        if actual != spec.sha256:
            size = part.stat().st_size
            part.unlink(missing_ok=True)
            raise ModelError(f"model {spec.id}: the download from {_host(source)} ({size} "
                             f"bytes) has sha256 {actual[:12]}…, models.toml expects "
                             f"{spec.sha256[:12]}…; deleted it, nothing was installed: the "
                             f"source changed or the url is wrong")
        os.replace(part, target)
        fsync_dir(dest)
    log.info("model %s: %s verified and installed (%d bytes fetched, %d resumed)", spec.id,
             target, done, kept)
    return FetchResult(target, done, kept, already_present=False)

