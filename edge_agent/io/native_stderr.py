"""What the native image decoders say on file descriptor 2, captured instead of leaked.

Why: libjpeg reports damage ("Corrupt JPEG data: premature end of data segment") only as a
warning printed to the process's stderr, then hands back an image whose missing rows are grey;
OpenCV offers no other way to learn of it. A device must not accept that picture as evidence,
and its console must not fill with a library's lines. So a decode runs with fd 2 pointed at an
in-memory file; afterwards the decoder's lines are returned to the caller, and any other line
written meanwhile (another thread's log record) is written back to the real stderr.

fd 2 belongs to the whole process, so captures take a lock: decodes that need one run one at a
time (a decode is a few tens of milliseconds; the device processes one photo at a time anyway).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

_LOCK = threading.Lock()
DECODER_LINE = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG|Invalid SOS|Inconsistent progression|"
    r"Bogus |Unsupported |Warning: |JPEG datastream|Quantization table|Huffman table|"
    r"Application transferred|libpng (warning|error)|\[ ?(WARN|ERROR|INFO)[: ])")
"""Lines the native decoders (libjpeg, libpng) and OpenCV's own logger write."""
DAMAGE_LINE = re.compile(r"^(Corrupt JPEG data(?!: \d+ extraneous bytes before marker)|"
                         r"Premature end of JPEG|Bogus |JPEG datastream|libpng error)")
"""Decoder lines that mean the picture is damaged (rows missing or made up)."""


def _sink() -> BinaryIO:
    if hasattr(os, "memfd_create"):  # Linux: no file on the SD card for every photo
        return os.fdopen(os.memfd_create("gotcha-stderr", os.MFD_CLOEXEC), "w+b")
    return tempfile.TemporaryFile()


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Run the block with fd 2 captured; the yielded list holds the decoder lines once the
    block has ended. Other lines go to the real stderr after the block."""
    lines: list[str] = []
    with _LOCK, _sink() as sink:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured = sink.read().decode("utf-8", "replace")
            others = []
            for line in captured.splitlines():
                (lines if DECODER_LINE.match(line) else others).append(line)
            if others:
                with contextlib.suppress(OSError):
                    os.write(2, ("\n".join(others) + "\n").encode("utf-8", "replace"))
