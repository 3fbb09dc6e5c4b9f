"""What a photo file says about itself before a single pixel is decoded.

The format from the magic bytes (never the file name), and the layout of the decoded image
(width, height, channels, bytes per channel) from the JPEG frame header (SOF), the PNG IHDR
chunk or the HEIF container. Why: the decoded size is what can exhaust a small device's
memory, and a 300 KB PNG can declare a 9000×9000 RGBA image (324 MB once decoded); it must be
refused from its header, before the decoder allocates anything. A JPEG's end marker and a
PNG's IEND chunk are checked here too, since a file cut off in a copy is the commonest damage.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.errors import BadInputError

Format = Literal["jpeg", "png", "heic"]

HEIC_HINT = "HEIC needs pip install 'gotcha[heic]'"
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_OTHER_FORMATS = {  # recognised, but not taken: say what it is and how to convert
    b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%PDF": "PDF",
}
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# PNG colour type -> channels OpenCV decodes it to (a palette may carry transparency: BGRA)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}


@dataclass(frozen=True)
class ImageLayout:
    """The decoded image a header promises: what decoding it will allocate."""

    width: int
    height: int
    channels: int
    bytes_per_channel: int

    def __post_init__(self) -> None:
        if min(self.width, self.height, self.channels, self.bytes_per_channel) < 1:
            raise ValueError(f"not an image layout: {self}")

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        return self.pixels * self.channels * self.bytes_per_channel


def sniff_format(data: bytes, name: str = "photo") -> Format:
    """The format from the magic bytes (never the file name): jpeg, png or heic."""
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heic"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        raise BadInputError(f"{name}: AVIF is not supported; convert it to JPEG")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise BadInputError(f"{name}: WebP is not supported; convert it to JPEG")
    for magic, label in _OTHER_FORMATS.items():
        if data.startswith(magic):
            raise BadInputError(f"{name}: {label} is not supported; convert it to JPEG")
    if _looks_like_text(data):
        raise BadInputError(f"{name}: not an image (the file holds text); pass a JPEG, PNG or "
                            "HEIC photo")
    raise BadInputError(f"{name}: not an image (unknown format, starts with "
                        f"{data[:8].hex(' ')}); pass a JPEG, PNG or HEIC photo")


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end is fine
            return False
        text = head[:exc.start].decode("utf-8")
    return bool(text) and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text)


def image_layout(data: bytes, kind: Format, name: str = "photo") -> ImageLayout:
    """The decoded image's layout from the header alone (HEIF via pillow-heif)."""
    if kind == "jpeg":
        return _jpeg_layout(data, name)
    if kind == "png":
        return _png_layout(data, name)
    return _heic_layout(data, name)


def image_dimensions(data: bytes, kind: Format, name: str = "photo") -> tuple[int, int]:
    """(width, height) from the header alone: JPEG SOF, PNG IHDR, HEIF via pillow-heif."""
    layout = image_layout(data, kind, name)
    return layout.width, layout.height


def jpeg_segments(data: bytes, name: str) -> Iterator[tuple[int, int, int]]:
    """Yield (marker, offset of its payload, payload length) up to and including SOS."""
    offset = 2
    size = len(data)
    while offset < size:
        if data[offset] != 0xFF:
            raise BadInputError(f"{name}: corrupt JPEG (bad marker at byte {offset}); "
                                "re-export or copy the photo again")
        while offset < size and data[offset] == 0xFF:  # fill bytes
            offset += 1
        if offset >= size:
            break
        marker = data[offset]
        offset += 1
        if marker == 0xD8 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # no payload
        if marker == 0xD9:
            yield marker, offset, 0
            return
        if offset + 2 > size:
            break
        length = struct.unpack(">H", data[offset:offset + 2])[0]
        if length < 2:
            raise BadInputError(f"{name}: corrupt JPEG (segment length {length}); "
                                "re-export or copy the photo again")
        yield marker, offset + 2, length - 2
        if marker == 0xDA:
            return
        offset += length
    raise BadInputError(f"{name}: truncated JPEG (ends inside its header); copy the photo "
                        "again")


def _jpeg_layout(data: bytes, name: str) -> ImageLayout:
    for marker, start, length in jpeg_segments(data, name):
        if marker in _SOF_MARKERS:
            if length < 6 or start + 6 > len(data):
                break
            precision, height, width, components = struct.unpack(">BHHB",
                                                                 data[start:start + 6])
            if width == 0 or height == 0 or components == 0:
                raise BadInputError(f"{name}: corrupt JPEG (declares {width}×{height} pixels, "
                                    f"{components} components); re-export the photo")
            return ImageLayout(width, height, components, 2 if precision > 8 else 1)
        if marker in (0xDA, 0xD9):
            break
    raise BadInputError(f"{name}: corrupt JPEG (no frame header); re-export or copy the photo "
                        "again")


def _png_layout(data: bytes, name: str) -> ImageLayout:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise BadInputError(f"{name}: corrupt PNG (no IHDR header); re-export the image")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if width == 0 or height == 0:
        raise BadInputError(f"{name}: corrupt PNG (declares {width}×{height} pixels); "
                            "re-export the image")
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        raise BadInputError(f"{name}: corrupt PNG (colour type {colour}, bit depth {depth}); "
                            "re-export the image")
    return ImageLayout(width, height, channels, 2 if depth == 16 else 1)


def heif_module() -> Any:
    """pillow_heif, or None when it is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return None
    return pillow_heif


def open_heic(data: bytes, name: str) -> Any:
    """The HEIF container of ``data`` (pillow-heif), 8-bit; BadInputError when pillow-heif is
    missing or the file is damaged."""
    heif = heif_module()
    if heif is None:
        raise BadInputError(f"{name}: HEIC photo, but pillow-heif is not installed; "
                            f"{HEIC_HINT}")
    try:
        return heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    except Exception as exc:  # libheif reports damage with its own error types
        raise BadInputError(f"{name}: corrupt HEIC ({exc}); re-export or copy the photo "
                            "again") from exc


def _heic_layout(data: bytes, name: str) -> ImageLayout:
    image = open_heic(data, name)
    width, height = image.size
    return ImageLayout(width, height, 4 if image.has_alpha else 3, 1)


def check_jpeg_complete(data: bytes, name: str) -> None:
    """The entropy-coded data after SOS cannot contain FF D9 (FF is byte-stuffed), so the
    first FF D9 after the first scan is the image's end; without it the file was cut off."""
    scan_start = None
    for marker, start, _length in jpeg_segments(data, name):
        if marker == 0xDA:
            scan_start = start
    if scan_start is None or data.find(b"\xff\xd9", scan_start) < 0:
        raise BadInputError(f"{name}: truncated JPEG (no end-of-image marker; the file was cut "
                            "off); copy the photo again")


def check_png_complete(data: bytes, name: str) -> None:
    if data.rfind(b"IEND", max(0, len(data) - 4096)) < 0:
        raise BadInputError(f"{name}: truncated PNG (no IEND chunk; the file was cut off); "
                            "copy the image again")
