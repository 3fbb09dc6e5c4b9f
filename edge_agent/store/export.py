"""Export one confirmed report to a folder: its two photos, its manifest, a contact sheet PNG.

The contact sheet is for a person checking the evidence: both photos side by side with the
vehicle and plate boxes, and the plate, times, interval and scene score written above. Hangul
needs a Korean font: text is drawn with Pillow and a fontconfig Korean font (fonts-nanum from
scripts/setup.sh) when both are there; otherwise the boxes are still drawn and the text is
written without Hangul, with a warning.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import StoreError
from edge_agent.store.bundle import ReportBundle, report_bundle
from edge_agent.store.db import store_error
from edge_agent.store.store import Store
from gotcha_contracts.rules import DEFAULT_RULES, KST, Rules

log = logging.getLogger(__name__)

PANEL_HEIGHT = 540
HEADER = 120
CAPTION = 40
VEHICLE_BGR = (60, 200, 60)
PLATE_BGR = (40, 40, 230)
_FALLBACK_FONTS = ("/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf",
                   "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
                   "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@functools.cache
def korean_font_path() -> str | None:
    """A font file with Hangul, from fontconfig (fc-match), else a known path; None if none."""
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(["fc-match", "-f", "%{file}", ":lang=ko"], capture_output=True,
                                   text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if found and Path(found).exists() and "dejavu" not in found.lower():
            return found
    return next((p for p in _FALLBACK_FONTS if Path(p).exists()), None)


def _panel(bundle: ReportBundle, index: int) -> np.ndarray:
    data = np.frombuffer(bundle.photo_bytes(index), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise StoreError(f"photo {bundle.photo_paths[index]} does not decode; restore it from "
                         "a backup")
    s = bundle.sightings[index]
    scale = PANEL_HEIGHT / image.shape[0]
    image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), PANEL_HEIGHT),
                       interpolation=cv2.INTER_AREA)
    for box, colour in ((s.vehicle_box, VEHICLE_BGR), (s.plate_box, PLATE_BGR)):
        if box is not None:
            p1 = (round(box.x1 * scale), round(box.y1 * scale))
            p2 = (round(box.x2 * scale), round(box.y2 * scale))
            cv2.rectangle(image, p1, p2, colour, 3)
    return image


def _lines(bundle: ReportBundle) -> tuple[list[str], list[str]]:
    r = bundle.report
    assert r.confirmed_at is not None
    gap = (r.confirmed_at - r.first_seen_at).total_seconds()
    alt = f"  (other read: {r.plate_alt})" if r.plate_alt else ""
    header = [f"{r.plate}{alt}   zone {r.zone}   {r.state}",
              f"report {r.report_id}   device {r.device_id}",
              f"{gap:.0f} s apart   scene {r.scene_score or 0:.2f}   "
              f"{r.lat:.6f}, {r.lon:.6f}   deadline "
              f"{r.deadline.astimezone(KST):%Y-%m-%d %H:%M} KST" if r.deadline else ""]
    captions = [f"photo {i + 1}: {s.captured_at.astimezone(KST):%Y-%m-%d %H:%M:%S} KST   "
                f"read {s.plate} ({s.plate_confidence:.2f})"
                for i, s in enumerate(bundle.sightings)]
    return header, captions


def contact_sheet(bundle: ReportBundle) -> bytes:
    """The PNG bytes of the sheet."""
    panels = [_panel(bundle, 0), _panel(bundle, 1)]
    width = sum(p.shape[1] for p in panels) + 30
    sheet = np.full((HEADER + PANEL_HEIGHT + CAPTION + 20, width, 3), 255, np.uint8)
    x = 10
    for panel in panels:
        sheet[HEADER:HEADER + PANEL_HEIGHT, x:x + panel.shape[1]] = panel
        x += panel.shape[1] + 10
    header, captions = _lines(bundle)
    texts = [(line, (12, 8 + 36 * i), 28 if i == 0 else 20) for i, line in enumerate(header)]
    x = 10
    for caption, panel in zip(captions, panels, strict=True):
        texts.append((caption, (x, HEADER + PANEL_HEIGHT + 8), 18))
        x += panel.shape[1] + 10
    sheet = _draw_text(sheet, texts)
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise StoreError("could not encode the contact sheet PNG")
    return png.tobytes()


def _draw_text(sheet: np.ndarray, texts: list[tuple[str, tuple[int, int], int]]) -> np.ndarray:
    font_path = korean_font_path()
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        Image = None
    if Image is not None and font_path is not None:
        canvas = Image.fromarray(cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB))
        draw = ImageDraw.Draw(canvas)
        for text, xy, size in texts:
            draw.text(xy, text, fill=(0, 0, 0), font=ImageFont.truetype(font_path, size))
        return cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR)
    log.warning("no Pillow or no Korean font (run scripts/setup.sh): contact sheet text is "
                "written without Hangul")
    for text, (x, y), size in texts:
        ascii_text = "".join(ch if ch.isascii() else "?" for ch in text)
        cv2.putText(sheet, ascii_text, (x, y + size), cv2.FONT_HERSHEY_SIMPLEX, size / 36,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise store_error(exc, path) from exc


def export_report(store: Store, report_id: str, out_dir: Path,
                  rules: Rules = DEFAULT_RULES) -> list[Path]:
    """Write photo-1.jpg, photo-2.jpg, manifest.json and contact-sheet.png into ``out_dir``.

    ``rules``: the rules the device runs, named in the manifest as the uploader names them.
    """
    bundle = report_bundle(store, report_id, rules)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store_error(exc, out_dir) from exc
    written = []
    for index, name in enumerate(("photo-1.jpg", "photo-2.jpg")):
        _write(out_dir / name, bundle.photo_bytes(index))
        written.append(out_dir / name)
    _write(out_dir / "manifest.json", bundle.manifest_bytes)
    _write(out_dir / "contact-sheet.png", contact_sheet(bundle))
    written += [out_dir / "manifest.json", out_dir / "contact-sheet.png"]
    return written
