"""Scoring a decode dir against a data dir: WER for ASR, BLEU/chrF for translation, and latency; the
``results.json`` schema that :mod:`speech_llm.metrics.report` reads.

Usage:
    from speech_llm.metrics.score import score_decode_dir
    results, table = score_decode_dir("data/test", "exp/mini/decode_test_640ms")   # writes results.*

Inputs:
    ref_dir   a Kaldi data dir: ``text`` ("<utt> <words...>"); optionally ``manifest.jsonl``
              (see data_prep/manifest.py) whose "words" [{"word","start","end"}] give reference word
              times for ASR latency, "translation" {"fr": ...} the translation references (st, mt),
              and "duration" the audio length.
    hyp_dir   a decode dir (:mod:`speech_llm.metrics.decode_dir`): ``text``; optionally
              ``emissions.jsonl`` (emission times) and ``summary.json`` (copied into results.json).

Tasks:
    asr  WER with substitutions, deletions and insertions (jiwer) after normalisation; CER on request.
         With emissions.jsonl: first-token latency, mean and p90 word emission delay, finalization
         latency, real-time factor; ideal and computation-aware (speech_llm/metrics/latency.py).
    st   speech translation: BLEU and chrF (sacrebleu, text as written) against the manifest's
         "translation"[lang]; with emissions.jsonl AL, LAAL, DAL, AP, StartOffset, EndOffset in
         milliseconds (SimulEval's definitions, speech_llm/metrics/simul.py), ideal and
         computation-aware, plus finalization and RTF.
    mt   text translation: the source is the data dir's ``text``; BLEU and chrF; with emissions.jsonl
         (words carrying "src_words") the same latency metrics in source words, ideal only (SimulEval
         defines no computation-aware latency for text input).

A reference utterance without a hypothesis is scored as an empty output (all deletions) and listed;
a hypothesis without a reference is an error naming it.

Outputs (in ``out_dir``, default the hyp dir): results.md (the table), results.json (keys: task, ref, hyp,
num_utts, then per task: wer / cer / latency / utts (asr), bleu / simul / latency / utts (st, mt), and
decode_summary), and for asr wer_details.txt (per-utterance alignments, Kaldi's wer_per_utt_details
layout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from data_prep.kaldi_dir import read_text_file
from speech_common.errors import UserError
from speech_llm.metrics.bleu import translation_scores
from speech_llm.metrics.decode_dir import read_summary
from speech_llm.metrics.emissions import UttEmissions, read_emissions
from speech_llm.metrics.latency import (
    LatencySummary,
    RefWord,
    UttLatency,
    computation_aware_time,
    summarize_latency,
    utterance_latency,
)
from speech_llm.metrics.simul import SimulScores, corpus_scores, sentence_scores
from speech_llm.metrics.wer import Normalizer, compute_wer, format_details

TASKS = ("asr", "st", "mt")
RESULTS = "results.json"


# ---------------------------------------------------------------------------------------------- reading

def read_manifest(data_dir: Path) -> dict[str, dict] | None:
    """Records of ``DATADIR/manifest.jsonl`` by key, or ``None`` when there is none."""
    path = data_dir / "manifest.jsonl"
    if not path.is_file():
        return None
    from data_prep.manifest import read_manifest as read_records  # raises DataError (a UserError)

    return {r["key"]: r for r in read_records(path)}


def _check_keys(extra: list[str], what: str, path: Path, ref: Path) -> None:
    if extra:
        more = f" and {len(extra) - 10} more" if len(extra) > 10 else ""
        raise UserError(f"{path}: {len(extra)} {what} with no reference in {ref}: "
                        f"{', '.join(extra[:10])}{more}")


def _duration(key: str, em: UttEmissions, manifest: dict[str, dict] | None, em_path: Path) -> float:
    if em.duration is not None:
        return em.duration
    if manifest and key in manifest:
        return float(manifest[key]["duration"])
    raise UserError(f"{em_path}: utterance {key!r} has no 'duration' (and the manifest does not give one)")


# ---------------------------------------------------------------------------------------------- scoring

def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def score_asr(refs: dict[str, str], hyps: dict[str, str], manifest, emissions, em_path: Path,
              normalize: str = "default", cer: bool = False) -> tuple[dict, str, str]:
    """results.json content (without the common header), the markdown body and wer_details.txt (asr)."""
    norm = Normalizer.from_spec(normalize)
    result = compute_wer(refs, hyps, norm, cer=cer)
    res: dict = {"normalize": norm.spec, "missing_hyps": result.missing, "wer": result.words.as_dict("words")}
    if result.chars is not None:
        res["cer"] = result.chars.as_dict("chars")
    utts = {u.key: {"ref_words": u.ref_words, "hits": u.hits, "substitutions": u.substitutions,
                    "deletions": u.deletions, "insertions": u.insertions, "missing": u.missing}
            for u in result.utts}
    w = result.words
    cer_head, cer_val = ("| CER % ", f"| {100 * result.chars.rate:.2f} ") if result.chars else ("", "")
    head = f"normalize: {norm.spec}"
    if result.missing:
        head += f" · {len(result.missing)} utterances without a hypothesis (scored as deletions)"
    md = [head, "",
          f"| WER % | errors | sub | del | ins | ref words {cer_head}|",
          "|---:|---:|---:|---:|---:|---:|" + ("---:|" if cer_head else ""),
          f"| {100 * w.rate:.2f} | {w.errors} | {w.substitutions} | {w.deletions} | {w.insertions} "
          f"| {w.ref_units} {cer_val}|"]

    if emissions is not None:
        lat, per_utt, note = _asr_latency(emissions, manifest, hyps, norm, em_path)
        res["latency"] = lat.as_dict()
        res["latency_note"] = note
        for k, ul in per_utt.items():
            utts[k]["latency"] = {
                "first_token_s": {"ideal": _round(ul.first_token_ideal),
                                  "computation_aware": _round(ul.first_token_ca)},
                "word_delays_s": {"ideal": [_round(d) for d in ul.delays_ideal],
                                  "computation_aware": [_round(d) for d in ul.delays_ca]},
                "finalization_s": _round(ul.finalization_ca), "rtf": _round(ul.rtf)}
        md += ["", *_latency_table(lat), "", note]
    res["utts"] = utts
    return res, "\n".join(md), format_details(result)


def _asr_latency(emissions: dict[str, UttEmissions], manifest, hyps: dict[str, str], norm: Normalizer,
                 em_path: Path) -> tuple[LatencySummary, dict[str, UttLatency], str]:
    per_utt: dict[str, UttLatency] = {}
    aligned = 0
    mismatch = []
    for key, em in emissions.items():
        words = manifest.get(key, {}).get("words") if manifest else None
        ref_words = None if words is None else [RefWord(w["word"], w["start"], w["end"]) for w in words]
        aligned += ref_words is not None
        if em.text_input:
            raise UserError(f"{em_path}: {key!r} has 'src_words' emissions; --task asr wants 'audio_s'")
        per_utt[key] = utterance_latency(
            [(w.word, w.audio_s, w.wall_s) for w in em.words], ref_words,
            _duration(key, em, manifest, em_path), em.wall_time, input_end_wall_s=em.input_end_wall_s,
            compute_s=em.compute_s, realtime=em.realtime, normalizer=norm)
        if norm(" ".join(w.word for w in em.words)) != norm(hyps.get(key, "")):
            mismatch.append(key)
    lat = summarize_latency(list(per_utt.values()))
    note = (f"latency over {len(per_utt)} utterances with emission times, {aligned} with reference "
            f"word times; "
            f"{lat.matched_words} words matched, {lat.unmatched_hyp_words} hypothesis and "
            f"{lat.unmatched_ref_words} reference words unmatched")
    if mismatch:
        note += (f"; emitted words differ from 'text' for {len(mismatch)} utterances "
                 f"({', '.join(mismatch[:5])})")
        print(f"speech-llm score: warning: {em_path}: emitted words differ from the hypothesis text for "
              f"{len(mismatch)} utterances, e.g. {mismatch[0]}", file=sys.stderr)
    return lat, per_utt, note


def _latency_table(lat: LatencySummary) -> list[str]:
    return ["| latency (s) | ideal | computation-aware |", "|---|---:|---:|",
            f"| first token | {_fmt(lat.first_token_ideal)} | {_fmt(lat.first_token_ca)} |",
            f"| word delay, mean | {_fmt(lat.delay_mean_ideal)} | {_fmt(lat.delay_mean_ca)} |",
            f"| word delay, p90 | {_fmt(lat.delay_p90_ideal)} | {_fmt(lat.delay_p90_ca)} |",
            f"| finalization | — | {_fmt(lat.finalization_ca)} |",
            f"| real-time factor | {_fmt(lat.rtf)} | |"]


def score_translation(task: str, lang: str, refs_text: dict[str, str], hyps: dict[str, str], manifest,
                      emissions, ref_dir: Path, em_path: Path) -> tuple[dict, str, None]:
    """results.json content and markdown body for ``--task st`` / ``--task mt`` (no details file)."""
    mpath = ref_dir / "manifest.jsonl"
    if manifest is None:
        raise UserError(f"{mpath}: not found; --task {task} takes the references from its 'translation'")
    lacking = [k for k in refs_text
               if k not in manifest or lang not in (manifest[k].get("translation") or {})]
    if lacking:
        raise UserError(f"{mpath}: no 'translation' {lang!r} for {len(lacking)} utterances, "
                        f"e.g. {lacking[0]}")
    keys = list(refs_text)
    refs = {k: manifest[k]["translation"][lang] for k in keys}
    missing = [k for k in keys if k not in hyps]
    scores = translation_scores([hyps.get(k, "") for k in keys], [refs[k] for k in keys], lang=lang)
    res: dict = {"lang": lang, "missing_hyps": missing, "bleu": scores.as_dict()}
    head = f"{lang} references from {mpath.name}"
    if missing:
        head += f" · {len(missing)} utterances without a hypothesis (scored as empty outputs)"
    md = [head, "", "| BLEU | chrF |", "|---:|---:|", f"| {scores.bleu:.2f} | {scores.chrf:.2f} |", "",
          scores.bleu_detail]
    utts: dict[str, dict] = {k: {"missing": k in missing} for k in keys}

    if emissions is not None:
        lat_res, lat_md = _translation_latency(task, emissions, refs, refs_text, manifest, em_path, utts)
        res.update(lat_res)
        md += lat_md
    res["utts"] = utts
    return res, "\n".join(md), None


def _translation_latency(task: str, emissions: dict[str, UttEmissions], refs: dict[str, str],
                         refs_text: dict[str, str], manifest: dict[str, dict], em_path: Path,
                         utts: dict[str, dict]) -> tuple[dict, list[str]]:
    """SimulEval metrics (and, for speech, finalization and RTF); fills ``utts[key]`` per utterance."""
    speech = task == "st"
    unit = "ms" if speech else "words"
    ideal: list[SimulScores | None] = []
    ca: list[SimulScores | None] = []
    per_utt: list[UttLatency] = []
    for key, em in emissions.items():
        ref_len = len(refs[key].split())
        if em.words and em.text_input == speech:
            want, got = ("audio_s", "src_words") if speech else ("src_words", "audio_s")
            raise UserError(f"{em_path}: {key!r} has {got!r} emissions; --task {task} wants {want!r}")
        if speech:
            dur = _duration(key, em, manifest, em_path)
            src_len = 1000.0 * dur
            d_ideal = [1000.0 * w.audio_s for w in em.words]
            d_ca = [1000.0 * computation_aware_time(w.audio_s, w.wall_s, em.realtime) for w in em.words]
            ca.append(sentence_scores(d_ca, src_len, ref_len))
            utts[key]["simul_computation_aware"] = ca[-1].as_dict() if ca[-1] else None
            per_utt.append(utterance_latency([], None, dur, em.wall_time, compute_s=em.compute_s,
                                             input_end_wall_s=em.input_end_wall_s, realtime=em.realtime))
        else:
            src_len = em.src_len if em.src_len is not None else len(refs_text[key].split())
            d_ideal = [w.src_words for w in em.words]
        ideal.append(sentence_scores(d_ideal, src_len, ref_len))
        utts[key]["simul"] = ideal[-1].as_dict() if ideal[-1] else None

    ideal_c, n_empty = corpus_scores(ideal)
    ca_c = corpus_scores(ca)[0] if speech else None
    res: dict = {"simul": {"unit": unit, "ideal": ideal_c.as_dict() if ideal_c else None,
                           "computation_aware": ca_c.as_dict() if ca_c else None,
                           "num_scored": len(ideal) - n_empty, "num_empty": n_empty}}
    md = ["", *_simul_table(ideal_c, ca_c, unit), "",
          f"latency over {len(ideal) - n_empty} utterances with emission times "
          f"({n_empty} empty outputs left out, as in SimulEval)"]
    if speech:
        lat = summarize_latency(per_utt).as_dict()
        res["latency"] = {"finalization_s": lat["finalization_s"], "rtf": lat["rtf"]}
        md.append(f"finalization {_fmt(lat['finalization_s']['computation_aware'])} s (computation-aware) "
                  f"· real-time factor {_fmt(lat['rtf'])}")
    return res, md


def _simul_table(ideal: SimulScores | None, ca: SimulScores | None, unit: str) -> list[str]:
    rows = [f"| latency ({unit}) | ideal | computation-aware |", "|---|---:|---:|"]
    for m in ("AL", "LAAL", "DAL", "AP", "StartOffset", "EndOffset"):
        digits = 3 if m == "AP" else 1 if unit == "ms" else 2
        i = None if ideal is None else getattr(ideal, m)
        c = None if ca is None else getattr(ca, m)
        rows.append(f"| {m} | {_fmt(i, digits)} | {_fmt(c, digits)} |")
    return rows


# ---------------------------------------------------------------------------------------------- a decode dir

def score_decode_dir(ref_dir: str | Path, hyp_dir: str | Path, task: str = "asr", lang: str = "fr",
                     normalize: str = "default", cer: bool = False,
                     out_dir: str | Path | None = None) -> tuple[dict, str]:
    """Score ``hyp_dir`` against ``ref_dir`` (see the module docstring); write results.md, results.json
    (and wer_details.txt for asr) into ``out_dir`` (default ``hyp_dir``). Returns (results, markdown)."""
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    ref_dir, hyp_dir = Path(ref_dir), Path(hyp_dir)
    out_dir = Path(out_dir) if out_dir else hyp_dir
    if not ref_dir.is_dir():
        raise UserError(f"--ref {ref_dir}: not a directory")
    if not hyp_dir.is_dir():
        raise UserError(f"--hyp {hyp_dir}: not a directory")
    refs = read_text_file(ref_dir / "text", allow_empty=False)
    hyps = read_text_file(hyp_dir / "text", allow_empty=True)
    _check_keys([k for k in hyps if k not in refs], "hypotheses", hyp_dir / "text", ref_dir / "text")
    manifest = read_manifest(ref_dir)
    em_path = hyp_dir / "emissions.jsonl"
    emissions = read_emissions(em_path) if em_path.is_file() else None
    if emissions is not None:
        _check_keys([k for k in emissions if k not in refs], "emission records", em_path, ref_dir / "text")

    if task == "asr":
        body, md, details = score_asr(refs, hyps, manifest, emissions, em_path, normalize, cer)
    else:
        body, md, details = score_translation(task, lang, refs, hyps, manifest, emissions, ref_dir, em_path)

    results = {"task": task, "ref": str(ref_dir), "hyp": str(hyp_dir), "num_utts": len(refs), **body}
    summary = read_summary(hyp_dir)
    if summary is not None:
        results["decode_summary"] = summary

    title = f"## {hyp_dir} against {ref_dir}: {task}, {len(refs)} utterances"
    table = f"{title}\n\n{md}\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(table, encoding="utf-8")
    (out_dir / RESULTS).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if details is not None:
        (out_dir / "wer_details.txt").write_text(details, encoding="utf-8")
    return results, table
