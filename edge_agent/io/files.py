"""Reading an input file only when it is a regular file, without ever blocking on it.

Why: photo folders are writable by people and by other programs. A FIFO opened for reading
blocks until a writer comes (for ever, on an unattended device), a character device such as
``/dev/zero`` never ends, and a socket cannot be read at all. So the kind of file is checked
with ``os.stat`` before any open, and once more on the opened descriptor (the name could be
swapped in between); the open itself is non-blocking, so even a swapped-in FIFO cannot hang.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from edge_agent.errors import BadInputError
from edge_agent.printable import printable

_KINDS = (
    (stat.S_ISDIR, "is a directory, not a photo; pass the image files in it"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a photo file; only regular files are read"),
    (stat.S_ISCHR, "is a character device, not a photo file; only regular files are read"),
    (stat.S_ISBLK, "is a block device, not a photo file; only regular files are read"),
    (stat.S_ISSOCK, "is a socket, not a photo file; only regular files are read"),
)


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, reason in _KINDS:
        if test(mode):
            return reason
    return "is not a regular file; only regular files are read"


def stat_regular(path: Path) -> os.stat_result:
    """``os.stat`` of a regular file; BadInputError (one line, name escaped) for anything else."""
    label = printable(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInputError(f"{label}: no such file; check the path") from None
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read it ({exc.strerror}); check permissions"
                            ) from exc
    reason = not_regular_reason(info.st_mode)
    if reason is not None:
        raise BadInputError(f"{label}: {reason}")
    return info


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading (binary); BadInputError for anything else. The kind
    is checked with ``os.stat`` before the open and with ``os.fstat`` after it."""
    stat_regular(path)
    label = printable(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read it ({exc.strerror}); check permissions"
                            ) from exc
    try:
        reason = not_regular_reason(os.fstat(fd).st_mode)
        if reason is not None:  # swapped for something else between stat and open
            raise BadInputError(f"{label}: {reason}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, max_bytes: int | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file (at most ``max_bytes`` + 1 of them, so a caller can tell a
    file that grew past its limit) and its stat. Never blocks on a FIFO or a device."""
    with open_regular(path) as handle:
        try:
            info = os.fstat(handle.fileno())
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        except OSError as exc:
            raise BadInputError(f"{printable(path)}: cannot read it ({exc.strerror}); copy the "
                                "photo again") from exc
    return data, info
