"""`gotcha sync`: upload confirmed reports from the outbox to the configured object store."""

from __future__ import annotations

import json
import logging
import threading
from typing import Annotated

import typer

from edge_agent.cli.common import (
    EXIT_SOME_FAILED,
    ConfigOption,
    JsonOption,
    cli_errors,
    get_config,
)
from edge_agent.store.store import Store
from edge_agent.upload.uploader import PassResult, Uploader

log = logging.getLogger(__name__)


def _print(result: PassResult, depth: int, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps({**result.to_dict(), "outbox_depth": depth}, ensure_ascii=False))
        return
    typer.echo(f"uploaded {len(result.uploaded)} report(s) ({result.objects_put} object(s) "
               f"written, {result.objects_skipped} already there); {depth} left in the outbox; "
               f"endpoint breaker {result.breaker}")
    for report_id, error in result.failed.items():
        typer.echo(f"  {report_id[:8]}: {error}")


def register(app: typer.Typer) -> None:
    @app.command("sync")
    def sync(
        limit: Annotated[int, typer.Option(min=1, help="Reports per pass.")] = 50,
        watch: Annotated[bool, typer.Option("--watch", help="Keep uploading until Ctrl-C, "
                                            "a pass every --interval seconds.")] = False,
        interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes with "
                                                "--watch.")] = 10.0,
        config: ConfigOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Upload confirmed reports: photos first, manifest last; network errors are retried
        later, so a pass never fails for a dead network (exit 1 when a report is waiting)."""
        cfg = get_config(config)
        with cli_errors(), Store.open(cfg.store) as store:
            uploader = Uploader.from_config(cfg, store)
            if watch:
                stop = threading.Event()
                try:
                    while not stop.is_set():
                        _print(uploader.run_pass(limit), store.outbox_depth(), json_out)
                        stop.wait(max(interval, uploader.breaker.remaining_s()))
                except KeyboardInterrupt:
                    stop.set()
                return
            result = uploader.run_pass(limit)
            depth = store.outbox_depth()
        _print(result, depth, json_out)
        if result.failed:
            raise typer.Exit(EXIT_SOME_FAILED)
