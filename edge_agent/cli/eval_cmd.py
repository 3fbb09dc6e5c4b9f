"""`gotcha eval ...`: measure the models on labelled data.

`eval plates` is here; `eval scenes` is added by edge_agent.evaluation.scenes.register_scenes
(the hook in ``register`` below), so each evaluation keeps its logic in its own module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import EXIT_OK, ConfigOption, JsonOption, cli_errors, get_config
from edge_agent.evaluation.plates import (
    DEFAULT_PEER_DIR,
    ReaderScore,
    TinyLprPeer,
    evaluate_readers,
    evidence_reads,
    load_labelled_crops,
)

eval_app = typer.Typer(help="Measure the models on labelled data (plates, scenes).",
                       no_args_is_help=True)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _table(scores: list[ReaderScore]) -> list[str]:
    names = [s.name for s in scores]
    rows: list[tuple[str, ...]] = [("", *names)]
    rows.append(("exact match", *(f"{s.exact}/{s.total} = {_pct(s.exact_accuracy)}"
                                  for s in scores)))
    rows.append(("character accuracy", *(_pct(s.char_accuracy) for s in scores)))
    rows.append(("ms per plate", *(f"{s.ms_per_plate:.2f}" for s in scores)))
    if any(s.model_ms_per_plate is not None for s in scores):
        rows.append(("  of which model runs", *(
            "-" if s.model_ms_per_plate is None else
            f"{s.model_ms_per_plate:.2f} ({s.model_inputs / max(1, s.total):.1f} inputs)"
            for s in scores)))
    rows.append(("sure reads (evidence)", *(f"{s.sure}/{s.total}" if s.has_sure_rule
                                            else "no sure rule" for s in scores)))
    rows.append(("sure but wrong", *(str(s.sure_wrong) if s.has_sure_rule else "-"
                                     for s in scores)))
    formats = sorted({f for s in scores for f in s.by_format})
    for fmt in formats:
        cells = []
        for s in scores:
            hit, total = s.by_format.get(fmt, [0, 0])
            cells.append(f"{hit}/{total}")
        rows.append((f"  {fmt}", *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for s in scores:
        lines.append(f"\nmisreads of {s.name} ({len(s.misreads)}):")
        lines += [f"  {m['file']}: expected {m['expected']}, read {m['read'] or '(nothing)'}"
                  f"{_sureness(m)}" for m in s.misreads]
        if s.confusion:
            lines.append(f"characters {s.name} misread (expected -> read: count):")
            lines.append("  " + ", ".join(f"{r['expected']}->{r['read']}: {r['count']}"
                                          for r in s.confusion_rows()))
    return lines


def _sureness(misread: dict[str, object]) -> str:
    if misread["sure"] is None:
        return ""
    verdict = "SURE (wrong evidence)" if misread["sure"] else "unsure"
    return f"  conf {misread['confidence']:.2f}  {verdict}"


@eval_app.command("plates")
def plates(
    dirs: Annotated[list[Path], typer.Argument(help="Folders with crops and labels.csv "
                                               "(file,plate_text); searched recursively.")],
    config: ConfigOption = None,
    json_out: JsonOption = False,
    peer: Annotated[bool, typer.Option("--peer", help="Also run the public kr-tinylpr reader "
                                       "on the same crops, side by side.")] = False,
    peer_dir: Annotated[Path, typer.Option("--peer-dir", help="Folder of the kr-tinylpr peer "
                                           "(tiny_lpr_uint8.tflite, labels.txt).")
                        ] = DEFAULT_PEER_DIR,
    model: Annotated[str | None, typer.Option("--model", help="models.toml id of the reader "
                                              "(default: models.plate_reader).")] = None,
    threads: Annotated[int, typer.Option("--threads", min=0, help="Inference threads "
                                         "(1 = one core, as on a small device; 0 = all).")] = 1,
) -> None:
    """Exact match and character accuracy, per plate format, ms per plate, sure reads (those
    the evidence rule of [plates] would record) and how many of them are wrong, the characters
    misread, and each misread with its confidence."""
    from edge_agent.plates.reader import KoreanPlateReader

    cfg = get_config(config)
    with cli_errors():
        cfg.models.intra_op_threads = threads
        crops = load_labelled_crops(dirs)
        reader = KoreanPlateReader.from_config(cfg, model)
        readers = {reader.spec.id: evidence_reads(reader, cfg.plates)}
        if peer:
            tiny = TinyLprPeer(peer_dir, threads=max(1, threads))
            readers[tiny.name] = tiny.read
        scores = evaluate_readers(readers, crops, {reader.spec.id: reader.runner.clock})
    if json_out:
        rule = {"evidence_floor": cfg.plates.evidence_floor,
                "check_views": cfg.plates.check_views, "max_dissent": cfg.plates.max_dissent}
        typer.echo(json.dumps({"plates": len(crops), "sure_rule": rule,
                               "readers": [s.to_dict() for s in scores]},
                              ensure_ascii=False, indent=2))
    else:
        typer.echo(f"{len(crops)} plates from {', '.join(str(d) for d in dirs)}\n")
        for line in _table(scores):
            typer.echo(line)
    raise typer.Exit(EXIT_OK)


def _add_scenes() -> None:
    """Hook for SCENE's `eval scenes` (edge_agent.evaluation.scenes.register_scenes)."""
    try:
        from edge_agent.evaluation.scenes import register_scenes
    except ModuleNotFoundError as exc:
        if exc.name != "edge_agent.evaluation.scenes":
            raise
        return
    register_scenes(eval_app)


def register(app: typer.Typer) -> None:
    """Add the `eval` group (plates here, scenes through the hook) to the gotcha app."""
    _add_scenes()
    app.add_typer(eval_app, name="eval")
