"""Latency as a decode-time choice: decode ONE checkpoint over a grid of chunk sizes and read-aheads,
score every point, and tabulate (and plot) WER against word emission delay.

Usage:
    from speech_llm.decoding.sweep import run_sweep, write_sweep
    points = run_sweep("exp/mini", "data/test", "exp/mini/sweep", chunks=[320, 640, 1280], read_aheads=[0, 1])
    write_sweep({"mini": points}, "exp/mini/sweep/sweep")     # sweep.md, sweep.json, sweep.png

Each point is a decode dir ``<out>/decode_<chunk>ms_ra<k>`` (plus ``<out>/decode_batch``), decoded with
:func:`speech_llm.decoding.decode.decode_data_dir` and scored with :func:`speech_llm.metrics.score.score_decode_dir`;
a point whose ``results.json`` exists is not decoded again (an interrupted sweep resumes). The model is
loaded once; only the decoding config changes between points.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from data_prep.fileutil import atomic_write_text
from speech_llm.metrics.report import read_row


@dataclass
class SweepPoint:
    """One decoding setting of one model and what it measured.

    quality: WER as a fraction (asr) or BLEU (st). delay_*: mean word emission delay (asr) or AL (st),
    in seconds, ideal and computation-aware.
    """

    model: str
    task: str
    mode: str
    chunk_ms: int | None
    read_ahead: int
    quality: float
    delay_ideal_s: float | None
    delay_ca_s: float | None
    first_token_s: float | None
    rtf: float | None
    decode_dir: str

    @property
    def wer(self) -> float:
        return self.quality


def run_sweep(exp_dir: str | Path, data_dir: str | Path, out_dir: str | Path, chunks: list[int],
              read_aheads: list[int] = (0,), batch: bool = True, batch_size: int = 1, device: str = "cpu",
              progress: bool = True, overrides: tuple[str, ...] = (), label: str | None = None,
              lang: str = "fr") -> list[SweepPoint]:
    """Decode and score ``data_dir`` with the checkpoint of ``exp_dir`` at every chunk size x read-ahead (and
    in batch mode); returns the points in grid order, batch last."""
    from speech_llm.decoding.decode import decode_data_dir
    from speech_llm.decoding.recognizer import Recognizer
    from speech_llm.metrics.score import score_decode_dir
    from speech_llm.model.checkpoint import load_model
    from speech_llm.typed_config import apply_overrides

    out = Path(out_dir)
    label = label or Path(exp_dir).name
    grid = [(f"decode_{c}ms_ra{k}", ["mode=streaming", f"chunk_ms={c}", f"read_ahead_chunks={k}"])
            for c in chunks for k in read_aheads]
    if batch:
        grid.append(("decode_batch", ["mode=batch"]))
    model = tokenizer = cfg = None
    points = []
    for name, settings in grid:
        d = out / name
        if not (d / "results.json").is_file():
            if model is None:
                model, tokenizer, cfg = load_model(exp_dir, device=device)
            rec = Recognizer(model, tokenizer, apply_overrides(cfg.decode, [*overrides, *settings], "sweep"))
            decode_data_dir(rec, data_dir, d, progress=progress, batch_size=batch_size,
                            info={"task": cfg.llm.task, "exp_dir": str(exp_dir)})
            score_decode_dir(data_dir, d, task=cfg.llm.task, lang=lang)
        row = read_row(d)
        summary = json.loads((d / "results.json").read_text(encoding="utf-8")).get("decode_summary") or {}
        opts = summary.get("options") or {}
        asr = row.task == "asr"
        ideal = row.delay_mean_s if asr else (None if row.al_ms is None else row.al_ms / 1000)
        ca = row.delay_mean_ca_s if asr else (None if row.al_ca_ms is None else row.al_ca_ms / 1000)
        points.append(SweepPoint(model=label, task=row.task, mode=row.mode or "", chunk_ms=row.chunk_ms,
                                 read_ahead=int(opts.get("read_ahead_chunks") or 0),
                                 quality=row.wer if asr else row.bleu, delay_ideal_s=ideal, delay_ca_s=ca,
                                 first_token_s=row.first_token_s, rtf=row.rtf, decode_dir=str(d)))
    return points


def format_sweep(curves: dict[str, list[SweepPoint]]) -> str:
    """One markdown table: a row per model and setting, quality relative to the model's own 640 ms point."""
    asr = all(p.task == "asr" for ps in curves.values() for p in ps)
    qname, dname = ("WER %", "word delay s") if asr else ("BLEU", "AL s")
    lines = [f"| model | mode | chunk ms | read-ahead | {qname} | rel. to 640 ms | {dname} (ideal / comp.) "
             "| first token s | RTF |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, points in curves.items():
        ref = next((p.quality for p in points if p.chunk_ms == 640 and p.read_ahead == 0), None)
        for p in points:
            rel = f"{p.quality / ref:.2f}" if ref and p.quality is not None else "—"
            ahead = p.read_ahead if p.mode == "streaming" else "—"
            q = "—" if p.quality is None else f"{100 * p.quality:.2f}" if asr else f"{p.quality:.2f}"
            lines.append(f"| {label} | {p.mode} | {p.chunk_ms or '—'} | {ahead} "
                         f"| {q} | {rel} | {_f(p.delay_ideal_s)} / {_f(p.delay_ca_s)} "
                         f"| {_f(p.first_token_s)} | {_f(p.rtf)} |")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def write_sweep(curves: dict[str, list[SweepPoint]], out_prefix: str | Path, title: str = "") -> tuple[Path, ...]:
    """``<prefix>.md`` (the table), ``<prefix>.json`` (the points) and ``<prefix>.png`` (the curves)."""
    from speech_llm.metrics.plots import plot_sweep

    prefix = Path(out_prefix)
    md, js, png = (prefix.with_name(prefix.name + ext) for ext in (".md", ".json", ".png"))
    atomic_write_text(md, format_sweep(curves) + "\n")
    atomic_write_text(js, json.dumps({k: [asdict(p) for p in v] for k, v in curves.items()}, indent=2) + "\n")
    plot_sweep(curves, png, title)
    return md, js, png


def read_sweep(path: str | Path) -> dict[str, list[SweepPoint]]:
    """The curves of a ``<prefix>.json`` written by :func:`write_sweep`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: [SweepPoint(**p) for p in v] for k, v in data.items()}
