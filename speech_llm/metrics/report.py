"""One results table over several scored decode dirs (the end of a recipe).

Usage:
    from speech_llm.metrics.report import collect_rows, format_table
    rows = collect_rows(["exp/mini/decode_test_640ms", "exp/mini/decode_test_batch"],
                        baseline="exp/mini/decode_test_batch")
    print(format_table(rows))

Each dir must hold the ``results.json`` written by ``speech-llm score`` (and, through it, the decoder's
``summary.json``). A row gives the decode mode and chunk, the quality (WER for asr; BLEU and chrF for
st/mt), the latency that applies (word emission delays for asr, AL/LAAL for st, ideal and
computation-aware) and the real-time factor, plus the quality relative to the baseline row
(``rel. to batch``: WER / baseline WER, BLEU / baseline BLEU). The baseline is one dir for every row, or
(``baseline="sibling"``) for each row the batch decode beside it: the dir of the same name with its mode
suffix (``_640ms``, ``_batch``) replaced by ``_batch``, so one table can hold several test sets and models.
Rows are named by the decode dir, with its parent dir in front when the dirs come from several parents.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from speech_common.errors import UserError


@dataclass
class Row:
    """One decode dir's numbers (``None`` where they do not apply or were not measured)."""

    name: str
    task: str
    mode: str | None
    chunk_ms: int | None
    num_utts: int
    wer: float | None = None
    sdi: tuple[int, int, int] | None = None
    """asr: substitutions, deletions, insertions (word counts)."""
    bleu: float | None = None
    chrf: float | None = None
    first_token_s: float | None = None
    delay_mean_s: float | None = None
    delay_mean_ca_s: float | None = None
    delay_p90_s: float | None = None
    al_ms: float | None = None
    al_ca_ms: float | None = None
    laal_ms: float | None = None
    finalization_s: float | None = None
    rtf: float | None = None
    rel_to_baseline: float | None = None

    @property
    def quality(self) -> float | None:
        """The headline number: WER for asr, BLEU for translation."""
        return self.wer if self.task == "asr" else self.bleu


def _get(d: dict | None, *keys: str):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _ms(x) -> int | None:
    return None if x is None else int(round(float(x)))


def read_row(decode_dir: str | Path) -> Row:
    """The row of one scored decode dir (its ``results.json``)."""
    path = Path(decode_dir) / "results.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; run `speech-llm score --ref DATA --hyp {decode_dir}` first")
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None
    summary = res.get("decode_summary") or {}          # speech_llm.metrics.decode_dir.DecodeSummary
    mode = summary.get("mode")
    if mode == "wait-k" and summary.get("k") is not None:
        mode = f"wait-{summary['k']}"
    row = Row(name=Path(decode_dir).name, task=res.get("task", "asr"), mode=mode,
              chunk_ms=_ms(summary.get("chunk_ms")) if mode == "streaming" else None,
              num_utts=int(res.get("num_utts", 0)))
    if row.task == "asr":
        pct = _get(res, "wer", "percent")
        row.wer = None if pct is None else pct / 100.0
        counts = [_get(res, "wer", k) for k in ("substitutions", "deletions", "insertions")]
        row.sdi = None if None in counts else tuple(int(c) for c in counts)
        row.first_token_s = _get(res, "latency", "first_token_s", "ideal")
        row.delay_mean_s = _get(res, "latency", "word_delay_mean_s", "ideal")
        row.delay_mean_ca_s = _get(res, "latency", "word_delay_mean_s", "computation_aware")
        row.delay_p90_s = _get(res, "latency", "word_delay_p90_s", "ideal")
        row.finalization_s = _get(res, "latency", "finalization_s", "computation_aware")
        row.rtf = _get(res, "latency", "rtf")
    else:
        row.bleu = _get(res, "bleu", "bleu")
        row.chrf = _get(res, "bleu", "chrf")
        row.al_ms = _get(res, "simul", "ideal", "AL")
        row.al_ca_ms = _get(res, "simul", "computation_aware", "AL")
        row.laal_ms = _get(res, "simul", "ideal", "LAAL")
        row.finalization_s = _get(res, "latency", "finalization_s", "computation_aware")
        row.rtf = _get(res, "latency", "rtf")
    return row


SIBLING = "sibling"


def batch_sibling(decode_dir: str | Path) -> Path:
    """The batch decode beside ``decode_dir``: ``x/decode_test_640ms`` -> ``x/decode_test_batch``."""
    d = Path(decode_dir)
    stem, sep, _ = d.name.rpartition("_")
    if not sep:
        raise UserError(f"{d}: the dir name has no mode suffix (_<N>ms, _batch) to find its batch decode by")
    return d.with_name(f"{stem}_batch")


def collect_rows(decode_dirs: list[str | Path], baseline: str | Path | None = None) -> list[Row]:
    """Rows of ``decode_dirs``, with ``rel_to_baseline`` filled when the baseline (``baseline``, one of them
    or another scored dir; or :data:`SIBLING`: each row's :func:`batch_sibling`) has a non-zero headline
    number."""
    rows = [read_row(d) for d in decode_dirs]
    if len({Path(d).resolve().parent for d in decode_dirs}) > 1:
        for r, d in zip(rows, decode_dirs):
            r.name = f"{Path(d).parent.name}/{r.name}"
    if baseline is None:
        return rows
    for r, d in zip(rows, decode_dirs):
        base = read_row(batch_sibling(d) if str(baseline) == SIBLING else baseline).quality
        if base and r.quality is not None:
            r.rel_to_baseline = r.quality / base
    return rows


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def format_table(rows: list[Row]) -> str:
    """A markdown table (asr and translation rows get their own columns)."""
    if rows and all(r.task == "asr" for r in rows):
        head = ("| decode | mode | chunk ms | utts | WER % | S / D / I | rel. to batch | first token s | word delay s "
                "(ideal / comp.) | p90 s | finalization s | RTF |")
        lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            sdi = "—" if r.sdi is None else " / ".join(map(str, r.sdi))
            lines.append(
                f"| {r.name} | {r.mode or '—'} | {r.chunk_ms or '—'} | {r.num_utts} "
                f"| {_f(None if r.wer is None else 100 * r.wer, '.2f')} | {sdi} | {_f(r.rel_to_baseline, '.3f')} "
                f"| {_f(r.first_token_s, '.3f')} | {_f(r.delay_mean_s, '.3f')} / {_f(r.delay_mean_ca_s, '.3f')} "
                f"| {_f(r.delay_p90_s, '.3f')} | {_f(r.finalization_s, '.3f')} | {_f(r.rtf, '.3f')} |")
        return "\n".join(lines)
    head = ("| decode | task | mode | chunk ms | utts | BLEU | chrF | rel. to batch | AL ms (ideal / comp.) "
            "| LAAL ms | finalization s | RTF |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.task} | {r.mode or '—'} | {r.chunk_ms or '—'} | {r.num_utts} "
            f"| {_f(r.bleu, '.2f')} | {_f(r.chrf, '.2f')} | {_f(r.rel_to_baseline, '.3f')} "
            f"| {_f(r.al_ms, '.0f')} / {_f(r.al_ca_ms, '.0f')} | {_f(r.laal_ms, '.0f')} "
            f"| {_f(r.finalization_s, '.3f')} | {_f(r.rtf, '.3f')} |")
    return "\n".join(lines)


def write_report(rows: list[Row], out_prefix: str | Path) -> tuple[Path, Path]:
    """``<out_prefix>.md`` (the table) and ``<out_prefix>.json`` (the rows); returns both paths."""
    from data_prep.fileutil import atomic_write_text

    prefix = Path(out_prefix)
    md, js = prefix.with_name(prefix.name + ".md"), prefix.with_name(prefix.name + ".json")
    atomic_write_text(md, format_table(rows) + "\n")
    atomic_write_text(js, json.dumps({"rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return md, js
