"""Inputs an attacker or a careless operator leaves in the photo folder, on the real things:
a real FIFO, a real 315 KB PNG that decodes to 324 MB, a real photo cut short with an end
marker appended, and a file whose name holds a newline."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, shared_path

from edge_agent.agent import LifecycleHook
from edge_agent.config import DeviceConfig, GotchaConfig, VisionConfig
from edge_agent.errors import BadInputError
from edge_agent.io.native_stderr import native_stderr
from edge_agent.io.photo import decode_photo, load_photo
from edge_agent.io.sources import capture_time_hint, iter_photo_files
from edge_agent.printable import printable

SEOUL = DeviceConfig(lat=37.5665, lon=126.978)


@pytest.fixture()
def config() -> GotchaConfig:
    return GotchaConfig(device=SEOUL)


@pytest.fixture(scope="module")
def photo_bytes() -> bytes:
    return (shared_path("data/scenes/korea-a") / "4vehicles.jpg").read_bytes()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def rgba_png(width: int, height: int, depth: int = 8) -> bytes:
    """A real, valid RGBA PNG of transparent black, compressed row by row (so making it
    never holds the decoded image): 9000×9000 is about 315 KB on disk."""
    row = b"\x00" + bytes(width * 4 * depth // 8)
    packer = zlib.compressobj(9)
    idat = b"".join([packer.compress(row) for _ in range(height)] + [packer.flush()])
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


# --- FIFOs, devices, sockets ---------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_being_opened(tmp_path: Path, config: GotchaConfig,
                                                photo_bytes: bytes) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(photo_bytes)
    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came: for ever
    with pytest.raises(BadInputError, match=r"f\.jpg: is a FIFO \(named pipe\)"):
        load_photo(fifo, config)
    assert capture_time_hint(fifo) is None
    hook = LifecycleHook(SimpleNamespace(config=config))  # the lifecycle's ordering path
    assert hook.in_capture_order([fifo, good]) == [good, fifo]
    items = dict(iter_photo_files([tmp_path], config))  # a folder lists the FIFO, to report it
    assert isinstance(items[fifo], BadInputError) and "FIFO" in str(items[fifo])
    assert items[good].size == (4000, 2252)


@pytest.mark.timeout(20)
def test_devices_and_sockets_are_refused(tmp_path: Path, config: GotchaConfig) -> None:
    with pytest.raises(BadInputError, match="is a character device"):
        load_photo(Path("/dev/zero"), config)
    import socket

    path = tmp_path / "s.jpg"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(BadInputError, match="is a socket"):
            load_photo(path, config)


# --- decompression bombs -------------------------------------------------------------------

_MEASURE = """
import json, resource, sys
from edge_agent.config import GotchaConfig
from edge_agent.errors import BadInputError
from edge_agent.io.photo import decode_photo
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    photo = decode_photo(data, GotchaConfig(), name="bomb.png")
    outcome = "decoded %dx%d" % photo.size
except BadInputError as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "before_mib": before / 1024, "after_mib": after / 1024}))
"""


def _decode_in_child(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True,
                          text=True, timeout=120, env=env, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("depth, mib", [(8, 309), (16, 618)])
def test_a_small_png_that_decodes_huge_is_refused_before_decoding(
        tmp_path: Path, depth: int, mib: int) -> None:
    data = rgba_png(9000, 9000, depth)
    assert len(data) < 700_000  # 315 KB (8-bit) or 630 KB (16-bit) on disk
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    measured = _decode_in_child(path)
    assert f"{mib} MiB once decoded, above vision.max_decoded_bytes" in measured["outcome"]
    # decoding would have peaked at 3.8 GB (4.4 GB in 16-bit); refusing costs nothing
    assert measured["after_mib"] - measured["before_mib"] < 20, measured


def test_a_transparent_png_within_the_budget_decodes_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(rgba_png(6000, 6000))  # 137 MiB decoded, within the 256 MiB budget
    measured = _decode_in_child(path)
    assert measured["outcome"] == "decoded 6000x6000"
    # decoded RGBA (137 MiB) + BGR out (103 MiB) + one band of float work; the float
    # compositing of the whole image at once peaked above 1.5 GB
    assert measured["after_mib"] - measured["before_mib"] < 400, measured


def test_the_decode_budget_is_configurable(photo_bytes: bytes) -> None:
    small = GotchaConfig(device=SEOUL, vision=VisionConfig(max_decoded_bytes=20_000_000))
    with pytest.raises(BadInputError, match=r"4000×2252 with 3 channel\(s\) of 8 bits: 26 MiB"):
        decode_photo(photo_bytes, small, name="x.jpg")


# --- damaged JPEG --------------------------------------------------------------------------


def test_a_cut_jpeg_with_an_end_marker_appended_is_refused_quietly(
        photo_bytes: bytes, config: GotchaConfig, capfd: pytest.CaptureFixture[str]) -> None:
    cut = photo_bytes[:len(photo_bytes) * 6 // 10] + b"\xff\xd9"
    with pytest.raises(BadInputError) as caught:
        decode_photo(cut, config, name="cut.jpg")
    message = str(caught.value)
    assert message.startswith("cut.jpg: damaged JPEG (decoder: Corrupt JPEG data")
    assert "not used as evidence" in message
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # libjpeg's warning did not leak
    decode_photo(photo_bytes, config, name="whole.jpg")  # the whole photo is fine


def test_other_output_during_a_decode_is_kept(capfd: pytest.CaptureFixture[str]) -> None:
    with native_stderr() as lines:
        os.write(2, b"Corrupt JPEG data: 3 extraneous bytes before marker 0xd9\n")
        os.write(2, b"a log line from another thread\n")
    assert lines == ["Corrupt JPEG data: 3 extraneous bytes before marker 0xd9"]
    assert capfd.readouterr().err == "a log line from another thread\n"


def test_captures_from_threads_do_not_mix(photo_bytes: bytes, config: GotchaConfig,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    cut = photo_bytes[:len(photo_bytes) // 2] + b"\xff\xd9"
    errors: list[str] = []

    def work(data: bytes) -> None:
        try:
            decode_photo(data, config)
        except BadInputError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=work, args=(d,)) for d in (cut, photo_bytes) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 3 and all("damaged JPEG" in e for e in errors)
    assert capfd.readouterr().err == ""


# --- names ---------------------------------------------------------------------------------


def test_control_characters_in_names_are_escaped(tmp_path: Path, config: GotchaConfig) -> None:
    path = tmp_path / "bad\nOK: 5 of 5 photos processed.jpg"
    path.write_text("not a photo")
    with pytest.raises(BadInputError) as caught:
        load_photo(path, config)
    assert "\n" not in str(caught.value)
    assert "bad\\nOK: 5 of 5 photos processed.jpg: not an image" in str(caught.value)
    assert printable("서울 12가3456.jpg") == "서울 12가3456.jpg"
    assert printable("a\x1b[2Jb\u202e.jpg") == "a\\x1b[2Jb\\u202e.jpg"


@pytest.mark.timeout(300)
def test_gotcha_process_with_a_fifo_and_a_forged_name(tmp_path: Path, photo_bytes: bytes,
                                                      models_dir: Path) -> None:
    """The issue's commands, end to end with the lifecycle on: one line per bad file, no
    hang, no forged line."""
    (tmp_path / "good.jpg").write_bytes(photo_bytes)
    os.mkfifo(tmp_path / "f.jpg")
    forged = tmp_path / "bad\nOK: 5 of 5 photos processed.jpg"
    forged.write_text("not a photo")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GOTCHA_MODEL_DIR": str(models_dir),
           "GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos")}
    env.pop("GOTCHA_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli.main", "process", "good.jpg", "f.jpg",
         forged.name], cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert sorted(errors) == [
        "error: bad\\nOK: 5 of 5 photos processed.jpg: not an image (the file holds text); "
        "pass a JPEG, PNG or HEIC photo",
        "error: f.jpg: is a FIFO (named pipe), not a photo file; only regular files are read"]
    lines = done.stdout.splitlines()
    assert not any(line.startswith("OK:") for line in lines + done.stderr.splitlines())
    assert lines[0].startswith("good.jpg  4000x2252")
    assert lines[-1] == "1 of 3 photos processed, 2 failed"


@pytest.mark.parametrize(("line", "damage"), [
    ("Corrupt JPEG data: 2 extraneous bytes before marker 0xda", False),
    ("Corrupt JPEG data: premature end of data segment", True),
    ("Premature end of JPEG file", True),
])
def test_stray_bytes_before_a_marker_are_no_damage(line: str, damage: bool) -> None:
    """Some cameras write a few stray bytes before a marker; the picture is whole."""
    from edge_agent.io.native_stderr import DAMAGE_LINE

    assert bool(DAMAGE_LINE.match(line)) is damage
