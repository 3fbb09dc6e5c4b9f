"""Where photos come from: files given on the command line, a watched folder, a camera.

Each source yields one item per photo and never stops a batch for one bad file: file sources
yield ``(path, Photo | BadInputError)`` so the caller reports the error and goes on. Files are
handed over in capture-time order because the report lifecycle reasons about "the same plate,
a minute later" and must see the earlier photo first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import BadInputError
from edge_agent.io.exif import write_exif
from edge_agent.io.files import open_regular
from edge_agent.io.photo import SUFFIXES, Photo, load_photo, photo_exif
from edge_agent.results import GeoPoint, PhotoMeta

log = logging.getLogger(__name__)

PhotoItem = tuple[Path, Photo | BadInputError]
_EXIF_HEAD_BYTES = 256 * 1024  # EXIF sits in the first APP1 segment, at most 64 KiB in
_EMPTY_FILE_FACTOR = 5  # an empty file is usually a copy that has not started


def expand_paths(paths: Iterable[Path | str], recursive: bool = False) -> list[Path]:
    """Files named directly are kept as given (a bad one must be reported, not skipped);
    folders contribute their photo files (by extension, hidden files skipped), including a
    FIFO or device with a photo's name, so that it is reported rather than silently passed."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            children = path.rglob("*") if recursive else path.iterdir()
            found.extend(sorted(p for p in children if _is_photo_name(p) and not p.is_dir()))
        else:
            found.append(path)
    return found


def _is_photo_name(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def capture_time_hint(path: Path, default_tz: str = "Asia/Seoul") -> datetime | None:
    """EXIF capture time from the head of the file, else its mtime; None if unreadable or
    not a regular file (a FIFO is never opened: it would block). Cheap: reads a few hundred
    KiB, decodes no pixels."""
    try:
        with open_regular(path) as handle:
            head = handle.read(_EXIF_HEAD_BYTES)
            if head[4:8] == b"ftyp":  # HEIF keeps its EXIF anywhere in the file
                head += handle.read()
            mtime = datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, UTC)
    except (OSError, BadInputError):
        return None
    return photo_exif(head, default_tz).captured_at or mtime


def iter_photo_files(paths: Iterable[Path | str], config: GotchaConfig,
                     recursive: bool = False) -> Iterator[PhotoItem]:
    """Yield ``(path, Photo or BadInputError)`` for every file, oldest capture time first.
    Unreadable files sort last, in the order given."""
    files = expand_paths(paths, recursive)
    far_future = datetime.max.replace(tzinfo=UTC)
    hints = {p: capture_time_hint(p, config.device.timezone) for p in files}
    ordered = sorted(enumerate(files), key=lambda item: (hints[item[1]] or far_future, item[0]))
    for _, path in ordered:
        yield path, _load_or_error(path, config)


def _load_or_error(path: Path, config: GotchaConfig) -> Photo | BadInputError:
    try:
        return load_photo(path, config)
    except BadInputError as exc:
        log.warning("%s", exc)
        return exc


def watch_folder(directory: Path | str, config: GotchaConfig, stop_event: threading.Event,
                 poll_s: float = 1.0, settle_s: float = 2.0,
                 include_existing: bool = False) -> Iterator[PhotoItem]:
    """Yield photos that appear in ``directory`` until ``stop_event`` is set.

    The files already there are noted when this is called (not when iteration starts), so
    nothing that arrives in between is mistaken for old. A file is taken once its size and
    mtime have not changed for ``settle_s`` (and over at least one poll), so a photo still
    being copied in, even over a stalling network share, is not read half-written; an empty
    file is reported only after five times as long.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"{directory}: not a folder; create it or pass the folder to watch")
    seen: set[Path] = set() if include_existing else set(_photo_files(directory))
    return _watch(directory, config, stop_event, poll_s, settle_s, seen)


def _watch(directory: Path, config: GotchaConfig, stop_event: threading.Event, poll_s: float,
           settle_s: float, seen: set[Path]) -> Iterator[PhotoItem]:
    # path -> ((size, mtime), monotonic time it was first seen with that signature)
    pending: dict[Path, tuple[tuple[int, int], float]] = {}
    while not stop_event.is_set():
        ready: list[tuple[int, Path]] = []
        now = time.monotonic()
        for path in _photo_files(directory):
            if path in seen:
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                pending.pop(path, None)
                continue
            signature = (info.st_size, info.st_mtime_ns)
            previous = pending.get(path)
            if previous is None or previous[0] != signature:
                pending[path] = (signature, now)
                continue
            needed = settle_s if info.st_size > 0 else settle_s * _EMPTY_FILE_FACTOR
            if now - previous[1] >= needed:
                ready.append((info.st_mtime_ns, path))
        for _, path in sorted(ready):
            seen.add(path)
            pending.pop(path, None)
            yield path, _load_or_error(path, config)
            if stop_event.is_set():
                return
        stop_event.wait(poll_s)


def _photo_files(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if _is_photo_name(p) and not p.is_dir()]
    except OSError as exc:
        log.warning("cannot list %s: %s", directory, exc)
        return []


@dataclass
class CameraSource:
    """Frames from an OpenCV VideoCapture: a device index, a URL (RTSP/HTTP) or a GStreamer
    pipeline (any string with '!'). Each frame becomes a Photo stamped with the device clock
    and configured place; its ``data`` is the frame as JPEG with that time and place in EXIF,
    so the stored evidence carries its own metadata.
    """

    source: int | str
    config: GotchaConfig
    interval_s: float = 0.0  # yield at most one frame per interval (cameras run at 30 fps)
    jpeg_quality: int = 92
    reconnect_s: float = 5.0  # live sources: wait this long before reopening after a failure

    def __post_init__(self) -> None:
        self._capture: cv2.VideoCapture | None = None

    @property
    def name(self) -> str:
        return f"camera:{self.source}"

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, str) and Path(self.source).is_file()

    def open(self) -> None:
        """Open the capture; BadInputError when it cannot be opened."""
        if isinstance(self.source, str) and "!" in self.source:
            capture = cv2.VideoCapture(self.source, cv2.CAP_GSTREAMER)
        else:
            capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise BadInputError(f"{self.name}: cannot open the camera or stream; check the "
                                "index, URL or pipeline and that nothing else holds it")
        self._capture = capture

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def frames(self, stop_event: threading.Event) -> Iterator[Photo]:
        """Yield frames until ``stop_event`` is set or a video file ends. A live source that
        stops delivering is reopened every ``reconnect_s``."""
        if self._capture is None:
            self.open()
        last_yield = float("-inf")
        while not stop_event.is_set():
            assert self._capture is not None
            ok, frame = self._capture.read()
            if not ok or frame is None:
                if self.is_file:
                    log.info("%s: end of video", self.name)
                    return
                log.warning("%s: no frame; reopening in %.0f s", self.name, self.reconnect_s)
                self.close()
                if stop_event.wait(self.reconnect_s):
                    return
                try:
                    self.open()
                except BadInputError as exc:
                    log.warning("%s", exc)
                    self._capture = cv2.VideoCapture()  # read() fails -> wait and retry
                continue
            now = time.monotonic()
            if now - last_yield < self.interval_s:
                continue
            last_yield = now
            yield self.frame_to_photo(frame)

    def frame_to_photo(self, frame: np.ndarray, captured_at: datetime | None = None) -> Photo:
        """Wrap one BGR frame as a Photo with the device's time and place."""
        captured_at = captured_at or datetime.now(UTC)
        device = self.config.device
        location = None
        if device.lat is not None and device.lon is not None:
            location = GeoPoint(device.lat, device.lon, accuracy_m=device.location_accuracy_m)
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise BadInputError(f"{self.name}: a frame could not be encoded as JPEG")
        data = write_exif(encoded.tobytes(), captured_at, location, tz=device.timezone)
        warnings = () if location else ("no device.lat/lon configured; the frame has no place",)
        meta = PhotoMeta(captured_at=captured_at, location=location, time_source="device",
                         location_source="device" if location else "none",
                         source_id=self.name, warnings=warnings)
        return Photo(image=np.ascontiguousarray(frame), meta=meta, path=None,
                     sha256=hashlib.sha256(data).hexdigest(), data=data)
