"""A lost or damaged database next to a photo store holding evidence, on real SQLite files:
an emptied database (`: > gotcha.db`) and garbage in a page are named errors that say how to
recover, never "no reports" nor a traceback; `gotcha store recover` moves the file aside and
rebuilds the reports from the uploaded manifests and the stored photos, deleting nothing."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from conftest import shared_path
from pair_helpers import photo_pair, result_for
from typer.testing import CliRunner

from edge_agent.agent import Agent
from edge_agent.cli import reports, store_cmd
from edge_agent.config import GotchaConfig, load_config
from edge_agent.errors import DamagedStoreError
from edge_agent.io.photo import Photo
from edge_agent.results import Box, GeoPoint, PhotoResult
from edge_agent.store.health import diagnose
from edge_agent.store.recover import recover_store, replay_kept
from edge_agent.store.store import Store
from edge_agent.upload.uploader import Uploader

app = typer.Typer()
reports.register(app)
store_cmd.register(app)
ELSEWHERE = GeoPoint(37.5700, 126.9900, 5.0)  # about 1.5 km from HERE


def _photo_tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under the photo folder."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, models_dir: Path):
    """A store with one uploaded report (manifest in the local object store), one confirmed
    report waiting in the outbox and one candidate; returns the folder, env and what each
    photo's replay would find."""
    root = tmp_path_factory.mktemp("recover")
    env = {"GOTCHA_STORE__PATH": str(root / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(root / "photos"),
           "GOTCHA_UPLOAD__LOCAL_DIR": str(root / "outbox-store"),
           "GOTCHA_UPLOAD__BLUR_PEOPLE": "false", "GOTCHA_UPLOAD__BLUR_OTHER_PLATES": "false",
           "GOTCHA_MODEL_DIR": str(models_dir), "GOTCHA_DEVICE__ID": "dev-rec"}
    config = load_config(None, environ=env)
    source = shared_path("data/scenes/korea-a/4vehicles.jpg")
    t0 = datetime.now(UTC) - timedelta(hours=2)
    a1, a2 = photo_pair(source, config, t0, 75)
    b1, b2 = photo_pair(shared_path("data/scenes/korea-a/802.jpg"), config,
                        t0 + timedelta(minutes=30), 80, where=ELSEWHERE)
    c1, _ = photo_pair(source, config, t0 + timedelta(minutes=50), 60)
    w, h = a1.size
    vehicle = Box(w * 0.35, h * 0.45, w * 0.65, h * 0.85)
    wb, hb = b1.size
    vehicle_b = Box(wb * 0.3, hb * 0.4, wb * 0.7, hb * 0.9)
    plan: dict[str, tuple[Photo, PhotoResult]] = {}
    for photo, plate, box, shift in ((a1, "12가3456", vehicle, 0), (a2, "12가3456", vehicle, 4),
                                     (b1, "34나5678", vehicle_b, 0),
                                     (b2, "34나5678", vehicle_b, 3),
                                     (c1, "56다7890", vehicle, 0)):
        plan[photo.sha256] = (photo, result_for(photo, plate, box, dx=shift, dy=shift))
    with Agent.open(config) as agent:
        actions = []
        for photo, result in list(plan.values())[:2]:
            actions += [d.action for d in agent.handle(photo, result)]
        with Store.open(config.store) as store:
            assert Uploader.from_config(config, store).run_pass().uploaded
        for photo, result in list(plan.values())[2:]:
            actions += [d.action for d in agent.handle(photo, result)]
    assert actions == ["candidate", "confirmed", "candidate", "confirmed", "candidate"]
    with Store.open(config.store) as store:
        states = sorted(r.state for r in store.list_reports())
    assert states == ["candidate", "confirmed", "uploaded"]
    return root, env, config, plan


@pytest.fixture()
def device(built, tmp_path: Path):
    """A fresh copy of the built device for one test (the test damages it)."""
    root, env, _config, plan = built
    for name in ("g.db", "photos", "outbox-store"):
        source = root / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp_path / name)
    env = {**env, "GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos"),
           "GOTCHA_UPLOAD__LOCAL_DIR": str(tmp_path / "outbox-store")}
    return tmp_path, env, load_config(None, environ=env), plan


def cli(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


def _garbage_page(path: Path, page: int | None) -> None:
    """Overwrite one 4 KiB page (None: the last) with garbage text."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size - 4096 if page is None else 4096 * (page - 1))
        handle.write(b"garbage " * 512)


def test_an_emptied_database_is_a_named_error_not_no_reports(device) -> None:
    folder, env, config, _ = device
    (folder / "g.db").write_bytes(b"")  # `: > gotcha.db`
    with pytest.raises(DamagedStoreError, match=r"g\.db: the database is empty \(0 bytes\), "
                       r"but .*photos holds 5 evidence photo\(s\).*gotcha store recover"):
        Store.open(config.store)
    assert (folder / "g.db").stat().st_size == 0  # refused before SQLite wrote anything
    listed = cli(env, "reports", "list")
    assert listed.exit_code == 2 and "no reports" not in listed.output
    assert listed.output.count("\n") == 1 and "gotcha store recover" in listed.output
    checked = cli(env, "store", "check")
    assert checked.exit_code == 1 and "PROBLEM:" in checked.output


@pytest.mark.parametrize("page", [None, 2])
def test_garbage_in_a_page_is_a_named_error_not_a_traceback(device, page: int | None) -> None:
    folder, env, config, _ = device
    _garbage_page(folder / "g.db", page)
    with pytest.raises(DamagedStoreError) as caught:
        Store.open(config.store)
    message = str(caught.value)
    assert "\n" not in message and "the database is damaged" in message
    assert "gotcha store recover" in message
    listed = cli(env, "reports", "list")
    assert listed.exit_code == 2 and listed.exception is not None  # typer.Exit, no traceback
    assert listed.output.startswith("error: ") and "Traceback" not in listed.output
    assert not diagnose(config.store).ok


@pytest.mark.parametrize("damage", ["emptied", "garbage"])
def test_recover_rebuilds_from_manifests_and_photos_and_deletes_nothing(
        device, damage: str) -> None:
    folder, env, config, _plan = device
    photos_before = _photo_tree(folder / "photos")
    with Store.open(config.store) as store:
        uploaded = store.list_reports("uploaded")[0]
        before = [(s.location, s.char_confidences) for s in store.report_sightings(
            uploaded.report_id)]
    if damage == "emptied":
        (folder / "g.db").write_bytes(b"")
    else:
        _garbage_page(folder / "g.db", None)
    damaged_bytes = (folder / "g.db").read_bytes()
    done = cli(env, "store", "recover")
    assert done.exit_code == 0, done.output
    assert "1 uploaded report(s) rebuilt from their manifests (2 photo(s))" in done.output
    assert "3 stored photo(s) no manifest names: kept, pinned" in done.output
    aside = sorted(folder.glob("g.db.damaged-*"))
    assert aside and aside[0].read_bytes() == damaged_bytes  # kept, byte for byte
    assert _photo_tree(folder / "photos") == photos_before  # no photo deleted or changed
    with Store.open(config.store) as store:  # opens and passes its checks again
        [rebuilt] = store.list_reports()
        assert (rebuilt.report_id, rebuilt.state, rebuilt.plate) == (
            uploaded.report_id, "uploaded", "12가3456")
        assert store.outbox_item(rebuilt.report_id).state == "done"  # type: ignore[union-attr]
        # each photo's own place and the plate's per-character confidences, as uploaded
        after = [(s.location, s.char_confidences) for s in store.report_sightings(
            rebuilt.report_id)]
        assert [(loc.lat, loc.lon) for loc, _ in after] == [  # type: ignore[union-attr]
            (loc.lat, loc.lon) for loc, _ in before]  # type: ignore[union-attr]
        assert [c for _, c in after] == [c for _, c in before]
        pinned = store.db.execute("SELECT COUNT(*), SUM(bytes) FROM photos WHERE pinned = 1"
                                  ).fetchone()
        assert pinned[0] == 3 and store.photo_bytes() >= pinned[1]  # inside the storage cap
        kept = {sha for (sha,) in store.db.execute("SELECT sha256 FROM photos WHERE pinned = 1")}
        store.max_photo_bytes = 1  # a cap of nothing evicts the uploaded photos, no kept one
        store._last_sweep = None
        store.evict()
    assert set(_photo_tree(folder / "photos").values()) == kept
    checked = cli(env, "store", "check")
    assert checked.exit_code == 0, checked.output


def test_recover_replays_kept_photos_through_the_lifecycle(device) -> None:
    """--reprocess: the kept photos go through the lifecycle again in capture order, which
    confirms the report that was waiting in the outbox and restores the candidate."""
    folder, _env, config, plan = device
    (folder / "g.db").write_bytes(b"")
    result = recover_store(config, [config.upload.local_dir])
    assert result.reports_rebuilt == 1 and len(result.kept) == 3
    with Agent.open(config) as agent:
        def replay(sha: str, data: bytes) -> int:
            photo, vision = plan[sha]
            assert photo.data == data
            return len(agent.handle(photo, vision))

        assert replay_kept(config, result.kept, replay) == (3, 3)
    with Store.open(config.store) as store:
        states = sorted((r.state, r.plate) for r in store.list_reports())
        assert states == [("candidate", "56다7890"), ("confirmed", "34나5678"),
                          ("uploaded", "12가3456")]
        assert store.outbox_depth() == 1  # the confirmed one will be uploaded, once
        assert store.db.execute("SELECT COUNT(*) FROM photos WHERE pinned = 1"
                                ).fetchone()[0] == 0


def test_recover_refuses_a_healthy_store_without_force(device) -> None:
    folder, env, _, _ = device
    done = cli(env, "store", "recover")
    assert done.exit_code == 0 and "nothing to recover" in done.output
    assert not list(folder.glob("g.db.damaged-*"))


def test_a_new_device_still_starts_with_no_database(tmp_path: Path) -> None:
    config = GotchaConfig.model_validate({"store": {"path": str(tmp_path / "g.db"),
                                                   "photo_dir": str(tmp_path / "photos")}})
    Store.open(config.store).close()
    assert (tmp_path / "g.db").stat().st_size > 0
