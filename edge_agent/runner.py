"""The device's main loop: photos in, reports decided, uploaded, and told to the fleet.

``DeviceRunner`` wires the existing parts together and runs them in three named, stoppable
worker threads (``while not stop_event.is_set()``):

* ``gotcha-capture``: source (watched folder or camera) -> VisionPipeline -> Agent.handle.
  A bad photo is logged and counted; the loop goes on. A broken model or store stops the
  runner (a device that cannot decide or record must say so, not idle quietly).
* ``gotcha-upload``: one Uploader pass every ``upload_every_s`` and at once on the MQTT
  ``sync_now`` command; the uploader's own backoff and circuit breaker decide what goes out.
  With no network, reports simply wait in the outbox.
* ``gotcha-maintenance``: candidates past their window are expired, store retention and the
  storage cap applied, and every newly expired report announced.

Each worker owns its own SQLite connection (WAL lets them read and write side by side); a lock
keeps a lifecycle decision and a maintenance sweep from interleaving. Telemetry is optional:
with MQTT off or the broker down, everything above runs the same. Stopping (``stop()``, or
SIGINT/SIGTERM under :meth:`run`) lets the current photo finish, joins the workers, sends a
last heartbeat and the retained ``offline`` status, and closes the store.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from types import FrameType
from typing import Any

from edge_agent.agent import Agent, rules_from_config
from edge_agent.config import GotchaConfig, load_config
from edge_agent.device_stats import DeviceStats
from edge_agent.errors import BadInputError, ConfigError, GotchaError, ModelError, StoreError
from edge_agent.inference.optional import usable_config
from edge_agent.io.photo import Photo
from edge_agent.lifecycle import Decision
from edge_agent.reload import ReloadPlan, merged_config, plan_reload
from edge_agent.run_settings import RunnerSettings
from edge_agent.store.store import Store, utc_now
from edge_agent.telemetry.base import Telemetry, make_telemetry
from edge_agent.upload.uploader import Uploader, UploadSettings

log = logging.getLogger(__name__)

FATAL_ERRORS = (ModelError, StoreError, ConfigError)
"""Errors that are not one photo's fault: the runner stops and says why."""
EVENT_KINDS = {"candidate": "report_candidate", "confirmed": "report_confirmed"}
"""Lifecycle actions announced as events; expired and uploaded come from their workers."""
EXPIRED_SCAN_LIMIT = 500

SourceItem = tuple[str, Photo | BadInputError]


class DeviceRunner:
    """Open with :meth:`start`, end with :meth:`stop` then :meth:`close`; or :meth:`run`.
    A runner runs once: build a new one to start again."""

    def __init__(self, config: GotchaConfig, settings: RunnerSettings,
                 pipeline: Any | None = None,
                 load: Callable[[], GotchaConfig] | None = None) -> None:
        """``pipeline``: a loaded VisionPipeline to use (default: loaded from ``config`` at
        start). ``load``: how reload_config reads the config (default: the settings' file)."""
        self.config = config
        self.settings = settings
        self.stats = DeviceStats()
        self.error: BaseException | None = None  # the fatal error that stopped the runner
        self.started = False  # start() succeeded: workers ran
        self._pipeline = pipeline
        self._load = load or (lambda: load_config(settings.config_path))
        self._stop = threading.Event()
        self._wake_upload = threading.Event()
        self._store_lock = threading.Lock()  # one lifecycle decision or sweep at a time
        self._threads: list[threading.Thread] = []
        self._agent: Agent | None = None
        self._upload_store: Store | None = None
        self._sweep_store: Store | None = None
        self._uploader: Uploader | None = None
        self._camera: Any = None
        self._items: Iterator[SourceItem] | None = None
        self._expired_mark = utc_now()
        self.telemetry: Telemetry = make_telemetry(
            config, commands={"sync_now": self._on_sync_now,
                              "reload_config": self._on_reload_config},
            stats=self.heartbeat)

    # ------------------------------------------------------------------ lifecycle
    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def start(self) -> None:
        """Open the source, load the models, open the store and uploader, start the workers.

        Everything that can be wrong with the setup (a missing model, a bad source, a damaged
        store) raises here, before any worker runs, and leaves nothing open behind it.
        """
        if self._threads:
            return
        try:
            self._items = self._open_source()  # first: cheap to check, and a watched folder's
            # photos that arrive while the models load are new, not "already there"
            usable = usable_config(self.config)  # absent optional models left out, noted
            if self._pipeline is None:
                from edge_agent.vision.pipeline import VisionPipeline

                self._pipeline = VisionPipeline.from_config(usable)
            self._agent = Agent.open(usable)
            self._upload_store = Store.open(self.config.store, check=False)
            self._uploader = Uploader.from_config(self.config, self._upload_store)
            self._uploader.sleep = self._stop.wait  # a stop cuts a retry's backoff short
            self._sweep_store = Store.open(self.config.store, check=False)
        except BaseException:
            self._close_parts()
            raise
        self.stats.outbox(self._sweep_store.outbox_depth())
        self.telemetry.start()
        for name, body in (("gotcha-capture", self._capture_loop),
                           ("gotcha-upload", self._upload_loop),
                           ("gotcha-maintenance", self._maintenance_loop)):
            thread = threading.Thread(target=self._guard, args=(name, body), name=name,
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        self.started = True
        log.info("device %s running: %s, uploads every %g s, telemetry %s",
                 self.config.device.id, self.settings.source_name, self.settings.upload_every_s,
                 "on" if self.config.mqtt.enabled else "off")

    def stop(self, reason: str = "stop requested") -> None:
        """Ask every worker to finish what it is doing and end (returns at once)."""
        if not self._stop.is_set():
            log.info("stopping: %s", reason)
        self._stop.set()
        self._wake_upload.set()

    def close(self) -> None:
        """Stop, wait for the workers, send the last heartbeat and the offline status, close
        the store. Safe to call more than once."""
        self.stop()
        for thread in self._threads:
            thread.join(self.settings.join_timeout_s)
            if thread.is_alive():
                log.warning("%s did not finish within %.0f s; leaving it behind", thread.name,
                            self.settings.join_timeout_s)
        self._threads.clear()
        self.telemetry.publish_heartbeat()
        self.telemetry.stop()
        self._close_parts()

    def run(self) -> None:
        """start(), then serve until SIGINT/SIGTERM or a fatal error; close(). A fatal error
        is raised again after the clean stop, so the caller can exit non-zero."""
        restore = self._handle_signals()  # before start(): a SIGTERM during start stops cleanly
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.stop("interrupted")
        finally:
            restore()
            self.close()
        if self.error is not None:
            raise self.error

    def heartbeat(self) -> Mapping[str, Any]:
        """The heartbeat body (the telemetry's stats provider)."""
        return {**self.stats.snapshot(), "source": self.settings.source_name}

    # ------------------------------------------------------------------ internals: setup
    def _open_source(self) -> Iterator[SourceItem]:
        """The source's items; opened now, so a bad folder or camera fails the start and a
        watched folder's "already there" is the moment of start."""
        s = self.settings
        if s.watch_dir is not None:
            from edge_agent.io.sources import watch_folder

            watched = watch_folder(s.watch_dir, self.config, self._stop, poll_s=s.poll_s,
                                   settle_s=s.settle_s, include_existing=s.include_existing)
            return ((str(path), item) for path, item in watched)
        from edge_agent.io.sources import CameraSource

        assert s.camera is not None
        self._camera = CameraSource(s.camera, self.config, interval_s=s.frame_interval_s)
        self._camera.open()
        return self._camera_items()

    def _camera_items(self) -> Iterator[SourceItem]:
        camera = self._camera
        while not self._stop.is_set():
            try:
                for photo in camera.frames(self._stop):
                    yield camera.name, photo
                return  # stopped, or a video file ended
            except BadInputError as exc:  # one frame could not be encoded: go on
                yield camera.name, exc

    def _close_parts(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        for store in (self._upload_store, self._sweep_store):
            if store is not None:
                store.close()
        self._upload_store = self._sweep_store = None
        if self._agent is not None:
            self._agent.close()
            self._agent = None

    def _handle_signals(self) -> Callable[[], None]:
        """SIGINT/SIGTERM ask for a clean stop (only possible in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop(f"signal {signal.Signals(signum).name}")

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return restore

    def _guard(self, name: str, body: Callable[[], None]) -> None:
        """Run a worker; an error escaping it stops the whole runner (first error kept)."""
        try:
            body()
        except Exception as exc:
            if isinstance(exc, GotchaError):
                log.error("%s stopped: %s", name, exc)
            else:
                log.exception("%s stopped by an unexpected error", name)
            if self.error is None:
                self.error = exc
            self.stats.error(f"{name}: {exc}")
            self.telemetry.publish_event("runner_failed", {"worker": name, "error": str(exc)})
            self.stop(f"{name} failed")

    # ------------------------------------------------------------------ capture worker
    def _capture_loop(self) -> None:
        assert self._items is not None
        for name, item in self._items:  # the source itself ends when the stop event is set
            self._process(name, item)
            if self._stop.is_set():
                break
        if not self._stop.is_set():
            self.stop(f"{self.settings.source_name} ended")

    def _process(self, name: str, item: Photo | BadInputError) -> None:
        """One photo through vision and the lifecycle; only this photo fails on a bad one."""
        assert self._agent is not None and self._pipeline is not None
        if isinstance(item, BadInputError):  # the source has logged it already
            self._photo_failed(name, item, logged=True)
            return
        try:
            result = self._pipeline.process(item)
            with self._store_lock:
                decisions = self._agent.handle(item, result)
        except FATAL_ERRORS:
            raise
        except BadInputError as exc:
            self._photo_failed(name, exc)
            return
        except Exception as exc:  # counted, logged with its trace, and the loop goes on
            log.exception("%s: processing failed", name)
            self._photo_failed(name, exc, logged=True)
            return
        self.stats.add("photos_processed")
        self.stats.timings(result.timings_ms)
        self._announce(name, decisions)

    def _photo_failed(self, name: str, exc: BaseException, logged: bool = False) -> None:
        self.stats.add("photos_failed")
        self.stats.error(f"{name}: {exc}")
        if not logged:
            log.warning("photo skipped: %s: %s", name, exc)

    def _announce(self, name: str, decisions: list[Decision]) -> None:
        """Count the lifecycle's decisions and publish each report state change."""
        counters = {"candidate": "candidates", "confirmed": "confirmed",
                    "duplicate": "duplicates", "unmatched": "unmatched"}
        for d in decisions:
            self.stats.add("sightings")
            if d.action in counters:
                self.stats.add(counters[d.action])
            kind = EVENT_KINDS.get(d.action)
            if kind is not None:
                self.telemetry.publish_event(kind, {
                    "state": d.action, "report_id": d.report_id, "plate": d.plate,
                    "reason": d.reason, "photo": name})
        if any(d.action == "confirmed" for d in decisions):
            assert self._agent is not None
            with self._store_lock:
                self.stats.outbox(self._agent.store.outbox_depth())

    # ------------------------------------------------------------------ upload worker
    def _upload_loop(self) -> None:
        assert self._uploader is not None
        while not self._stop.is_set():
            self._upload_pass()
            wait = self.settings.upload_every_s
            if self._uploader.breaker.state != "closed":
                wait = max(wait, self._uploader.breaker.remaining_s())
            self._wake_upload.wait(wait)
            self._wake_upload.clear()

    def _upload_pass(self) -> None:
        from edge_agent.errors import UploadError

        assert self._uploader is not None and self._upload_store is not None
        try:
            result = self._uploader.run_pass()
        except UploadError as exc:  # bucket or credentials: the operator must act; keep trying
            log.error("upload: %s", exc)
            self.stats.add("upload_failures")
            self.stats.error(f"upload: {exc}")
            self.telemetry.publish_event("upload_error", {"error": str(exc)})
            return
        for report_id in result.uploaded:
            self.stats.add("uploaded")
            report = self._upload_store.report(report_id)
            self.telemetry.publish_event("report_uploaded", {
                "state": "uploaded", "report_id": report_id, "plate": report.plate})
        if result.failed:
            self.stats.add("upload_failures", len(result.failed))
            self.stats.error("upload: " + next(iter(result.failed.values())))
        self.stats.outbox(self._upload_store.outbox_depth(), result.breaker)

    def _on_sync_now(self, command: Mapping[str, Any]) -> None:
        """MQTT ``sync_now``: the upload worker makes a pass now (the breaker still rules)."""
        log.info("sync_now received: upload pass now")
        self._wake_upload.set()

    # ------------------------------------------------------------------ maintenance worker
    def _maintenance_loop(self) -> None:
        while not self._stop.is_set():
            self._sweep()
            self._stop.wait(self.settings.maintenance_every_s)

    def _sweep(self) -> None:
        """Expire candidates whose window closed, apply retention, announce expiries (also
        those the lifecycle made while recording, e.g. "vehicle moved")."""
        store = self._sweep_store
        assert store is not None
        with self._store_lock:
            with store.transaction():
                store.expire_due(utc_now())
            store.evict()
            fresh = [r for r in store.list_reports("expired", limit=EXPIRED_SCAN_LIMIT)
                     if r.updated_at > self._expired_mark]
            self.stats.outbox(store.outbox_depth())
        for report in sorted(fresh, key=lambda r: r.updated_at):
            self.stats.add("expired")
            self.telemetry.publish_event("report_expired", {
                "state": "expired", "report_id": report.report_id, "plate": report.plate,
                "reason": report.expired_reason})
            self._expired_mark = max(self._expired_mark, report.updated_at)

    # ------------------------------------------------------------------ reload_config
    def _on_reload_config(self, command: Mapping[str, Any]) -> None:
        """MQTT ``reload_config``: re-read the file; apply the rules, zone, retention and
        retry settings now; report the rest as needing a restart. A bad file raises
        ConfigError (published as command_failed) and changes nothing."""
        plan = plan_reload(self.config, self._load())
        self.apply(plan)
        self.telemetry.publish_event("config_reloaded", plan.to_dict())

    def apply(self, plan: ReloadPlan) -> None:
        """Apply a reload plan's run-time changes to the running parts."""
        new = plan.config
        rules = rules_from_config(new)
        try:
            rules.min_interval(new.device.zone)
        except ValueError as exc:
            raise ConfigError(f"device.zone: {exc}") from exc
        with self._store_lock:
            if self._agent is not None:
                self._agent.lifecycle.rules = rules
                self._agent.lifecycle.zone = new.device.zone
            for store in (self._agent.store if self._agent else None, self._sweep_store):
                if store is not None:
                    store.max_photo_bytes = new.store.max_photo_bytes
                    store.expired_retention = timedelta(hours=new.store.expired_retention_h)
        if self._uploader is not None:
            settings = UploadSettings.from_config(new.upload)
            old = self._uploader.settings  # blur stays as started (reload lists it for restart)
            settings.blur_people, settings.blur_other_plates = (old.blur_people,
                                                                old.blur_other_plates)
            self._uploader.settings = settings
            self._uploader.breaker.failure_threshold = settings.breaker_failures
            self._uploader.breaker.cooldown_s = settings.breaker_cooldown_s
        self.config = merged_config(self.config, plan)
        if plan.needs_restart:
            log.warning("config reloaded; these changes need a restart: %s",
                        ", ".join(plan.needs_restart))
        log.info("config reloaded; applied: %s", ", ".join(plan.applied) or "nothing changed")
