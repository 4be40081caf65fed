"""Input of any length (issue #17): WER, memory and per-chunk cost of long files streamed through the Recognizer.

Usage:
    speech-llm prepare longform --data data/test --out data/longform --minutes 1,5,20
    python bench/long_form.py --exp-dir exp/mini --short data/test \
        --long data/longform/long_1min data/longform/long_5min data/longform/long_20min
    python bench/long_form.py ... --decode endpoint.silence_s=0.5     # other endpoint rules (DecodeConfig keys)
    python bench/long_form.py ... --silence-minutes 0 --cli-max-minutes 0   # no silence row, no CLI runs

Method. The long files are a data dir's utterances joined with 0.5-1.0 s pauses (``speech-llm prepare
longform``: ``segments.jsonl`` gives each utterance's offsets). One model and ONE DecodeConfig (the
checkpoint's ``decode`` section plus ``--decode`` overrides) are used for everything:

* baseline ("one by one"): every utterance of ``--short`` that the long files use, decoded alone, as
  ``speech-llm decode`` does (blocks of one chunk, a decode after each). Its WER over the utterances of a
  long file (repeats included when the file cycles) is that file's reference WER.
* long: each long file streamed through the Recognizer (``load_recognizer``): read block by block
  (``data_prep.audio.audio_blocks``, one chunk per block), ``rec.decode`` after every block, then
  ``input_finished``. WER of the whole file against the joined transcript (``compute_wer``, S/D/I), the
  ratio to the baseline (goal <= 1.1x), and the longest run of consecutive deleted reference words (jiwer
  alignment, ``align_words``) against the longest utterance of the file in words (goal: no run longer
  than one utterance); "lost utts" counts utterances all of whose words were deleted. When the
  endpointer cut exactly one segment per utterance, "segment text = alone" counts the segments whose text
  equals that utterance's own decode (the rest differ only through the audio around the words: the
  segment starts ``preroll_s`` before the first loud frame and ends ``silence_s`` after the last).
* control: the same utterances one by one again, each behind ``--control-shift-ms`` of white noise at its
  own noise floor: how far the WER moves when only the framing changes (chunk grid, leading non-speech),
  i.e. the size of a difference that means nothing.
* silence: ``--silence-minutes`` of white noise at the corpus' noise floor (measured on ``--short`` as in
  ``data_prep.longform.noise_floor``), generated block by block, streamed the same way: no text, constant
  memory.
* CLI: long-form dirs of up to ``--cli-max-minutes`` also go through ``speech-llm transcribe FILE`` (its
  final line) and ``speech-llm decode --data DIR`` (its ``text``) with the same options (the console
  script, as a user runs it); their text should equal the Recognizer's ("same text"). Wall time and peak
  RSS are those of the whole command (model loading included; ``os.wait4``).

Memory and time. Every row runs in a fresh subprocess (this script with ``--worker``), so peak RSS
(``VmHWM``) does not carry over; a stream row first decodes one short utterance as a warm-up, so one-time
allocations are not counted as growth. RSS (``VmRSS``) is sampled after every block; "RSS first / last
10%" are its means over the first and last 10% of the blocks (flat: within 10%). "ms/block" is the wall
time of ``rec.decode`` per block, mean over the first and the last 10% of the blocks, and their ratio
(flat: within 10%). Between segments a block costs next to nothing, so a window's mean depends on how much
of it is speech (the 20-minute file's windows hold ~190 blocks each, the 1-minute file's 9), and on a
shared machine the speed itself drifts while a 20-minute stream runs. Hence a paired measurement: from the
first block of the last 10% that finds no segment open, a second, fresh stream gets the same blocks, and
each block is decoded by both in turn (alternating which goes first), so "same audio, end of stream / fresh
stream" compares the same work under the same load, late in a long stream against at its start (flat:
within 10%; the fresh stream's state adds at most one segment to the last RSS window). "KV positions" is
the largest LLM KV cache (positions of the open segment's session) in each window: what a block's
attention works on, bounded by one segment whatever the stream's length. "get_result" is the time of
``rec.get_result(stream)`` after every decode, as ``transcribe``, ``live`` and the server call it (not in
ms/block). RTF = seconds in ``rec.decode`` (every block and the final one) /
audio seconds; for the one-by-one decode, seconds of the whole loop / audio seconds. Threads:
``--threads`` (default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run as a script from anywhere
    sys.path.insert(0, str(REPO))

GOAL_WER_RATIO = 1.1
FLAT = 0.10


# ------------------------------------------------------------------------------------------- the workers
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _load(job: dict):
    import torch

    from speech_llm.decoding.recognizer import load_recognizer

    torch.set_num_threads(job["threads"])
    return load_recognizer(job["exp_dir"], overrides=job["overrides"])


def _segments(result) -> list[dict]:
    return [{"start": s.start_s, "end": s.end_s, "reason": s.reason, "truncated": s.truncated, "text": s.text}
            for s in result.segments]


def _kv_tokens(stream) -> int:
    """Positions in the KV cache of the stream's open segment (0 between segments)."""
    sess = stream.open[0].session if stream.open else None
    return 0 if sess is None else int(sess.num_forwarded)


def _stream(rec, blocks, n_blocks: int, warmup_wav: str) -> dict:
    """Feed ``(samples, rate)`` blocks to one stream, a decode after each; time, RSS and KV length per block.

    In the last 10% of the blocks, from the first block that finds no segment open, a second, fresh stream
    gets the same blocks, decoded in turn with the first one (alternating which goes first): the same audio
    at the end of a long stream and at the start of a new one, under the same machine load."""
    from speech_llm.decoding.decode import decode_file

    decode_file(rec, warmup_wav)
    rss_loaded = _status_kb("VmRSS")
    s = rec.create_stream()
    replay = None
    wall, cpu, rss, active, result, kv, pairs = [], [], [], [], [], [], []
    audio_s = 0.0

    def timed(st) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        rec.decode(st)
        return time.perf_counter() - t0, time.process_time() - c0

    for i, (samples, rate) in enumerate(blocks):
        if replay is None and i >= n_blocks - max(1, n_blocks // 10) and not s.open:
            replay = rec.create_stream()
        s.accept_waveform(rate, samples)
        active.append(bool(s.open))          # a segment (speech) has work in this block
        if replay is not None:
            replay.accept_waveform(rate, samples)
        if replay is not None and i % 2:
            early = timed(replay)
            late = timed(s)
        else:
            late = timed(s)
            early = timed(replay) if replay is not None else None
        wall.append(late[0])
        cpu.append(late[1])
        if early is not None:
            pairs.append((i, late[0], early[0], late[1], early[1]))
        t0 = time.perf_counter()
        rec.get_result(s)                    # as transcribe / live / the server do after every decode
        result.append(time.perf_counter() - t0)
        rss.append(_status_kb("VmRSS"))
        kv.append(_kv_tokens(s))
        audio_s += len(samples) / rate
    t0 = time.perf_counter()
    s.input_finished()
    rec.decode(s)
    final_s = time.perf_counter() - t0
    r = rec.get_result(s)
    return {"text": r.text, "segments": _segments(r), "wall": wall, "cpu": cpu, "rss_kb": rss, "active": active,
            "get_result": result, "kv": kv, "pairs": pairs, "final_s": final_s, "audio_s": audio_s,
            "rss_loaded_kb": rss_loaded, "hwm_kb": _status_kb("VmHWM"), "open_segments_left": len(s.open),
            "trace_len": len(s.trace), "words": len(r.words)}


def run_worker(job: dict) -> dict:
    from data_prep.audio import audio_blocks, audio_info, read_audio
    from data_prep.kaldi_dir import read_data_dir
    from data_prep.longform import noise_floor
    from encoders.constants import SAMPLE_RATE
    from speech_llm.decoding.decode import decode_file, decode_samples

    rec = _load(job)
    if job["kind"] == "short":
        utts = read_data_dir(job["data"])
        hyps, shifted, audio_s, t0 = {}, {}, 0.0, time.perf_counter()
        for key in job["keys"]:
            res, emis = decode_file(rec, utts[key].wav)
            hyps[key] = res.text
            audio_s += emis.duration
        total_s = time.perf_counter() - t0
        if job["shift_ms"]:      # control: the same utterances behind a lead of their own noise floor
            rng = np.random.default_rng(0)
            for key in job["keys"]:
                x = read_audio(utts[key].wav)
                lead = noise_floor(x) * rng.standard_normal(round(job["shift_ms"] * SAMPLE_RATE / 1000))
                shifted[key] = decode_samples(rec, np.concatenate([lead.astype(np.float32), x]))[0].text
        return {"hyps": hyps, "shifted": shifted, "audio_s": audio_s, "total_s": total_s,
                "hwm_kb": _status_kb("VmHWM"), "config": _config(rec)}
    block = round(rec.chunk_s * SAMPLE_RATE)
    if job["kind"] == "long":
        frames, rate = audio_info(job["wav"])
        n_blocks = -(-frames // round(rec.chunk_s * rate))
        out = _stream(rec, audio_blocks(job["wav"], rec.chunk_s), n_blocks, job["warmup_wav"])
    else:   # silence: white noise at the corpus floor, made block by block (nothing held in memory)
        rng = np.random.default_rng(job["seed"])
        n_blocks = round(job["minutes"] * 60 * SAMPLE_RATE / block)
        gen = (((job["level"] * rng.standard_normal(block)).astype(np.float32), SAMPLE_RATE) for _ in range(n_blocks))
        out = _stream(rec, gen, n_blocks, job["warmup_wav"])
    out["config"] = _config(rec)
    return out


def _config(rec) -> dict:
    from dataclasses import asdict

    return {**asdict(rec.config), "chunk_s": rec.chunk_s}


def spawn(job: dict, tmp: Path) -> dict:
    """Run one job in a fresh interpreter (its own peak RSS); returns its JSON result."""
    out = tmp / f"job_{job['name']}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job), "--worker-out", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO, env=_env(job["threads"]))
    return json.loads(out.read_text())


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


# ------------------------------------------------------------------------------------------- the CLI runs
def cli_base() -> list[str]:
    exe = shutil.which("speech-llm")
    return [exe] if exe else [sys.executable, "-m", "speech_llm"]


def cli_options(overrides: list[str]) -> list[str]:
    """The ``speech-llm`` options equal to ``overrides`` (DecodeConfig keys)."""
    from speech_llm.commands._decode_options import OPTIONS

    by_key = {key: opt for opt, (key, _, _) in OPTIONS.items()}
    out = []
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key == "endpoint.enabled" and value.lower() in ("false", "0", "no"):
            out.append("--no-endpoint")
        elif key in by_key:
            out += [by_key[key], value]
        else:
            raise SystemExit(f"--decode {ov}: the speech-llm commands have no option for {key}; "
                             "use --cli-max-minutes 0 to skip the CLI runs")
    return out


def run_cli(cmd: list[str], stdout_path: Path, threads: int) -> dict:
    """Run ``cmd`` with stdout to a file; wall time and the child's own peak RSS (os.wait4)."""
    t0 = time.perf_counter()
    with open(stdout_path, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE, cwd=REPO, env=_env(threads))
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return {"wall_s": time.perf_counter() - t0, "maxrss_kb": usage.ru_maxrss,
            "stdout_bytes": stdout_path.stat().st_size}


# ------------------------------------------------------------------------------------------- scoring
def longest_deletion_run(ref: str, hyp: str) -> tuple[int, int, set[int]]:
    """(longest run of consecutive deleted reference words, index of its first word, indices of all deleted
    reference words), after normalisation."""
    from speech_llm.metrics.wer import Normalizer, align_words

    norm = Normalizer()
    r, h = norm(ref).split(), norm(hyp).split()
    deleted = {i for i, j in align_words(r, h) if i is not None and j is None}
    best, start, run = 0, -1, 0
    for i in range(len(r)):
        run = run + 1 if i in deleted else 0
        if run > best:
            best, start = run, i - run + 1
    return best, start, deleted


def score_long(record: dict, res: dict, short: dict) -> dict:
    """WER of a long file's text, of its utterances one by one (and shifted), deletion runs, lost utterances;
    with one segment per utterance, how many segments' texts equal the utterance's own decode."""
    from speech_llm.metrics.wer import Normalizer, compute_wer

    norm = Normalizer()
    utts, hyp = record["utterances"], res["text"]
    ref = " ".join(u["text"] for u in utts)
    keyed = {f"{i:05d}-{u['key']}": u for i, u in enumerate(utts)}
    refs = {k: u["text"] for k, u in keyed.items()}
    out = {"wer": compute_wer({record["key"]: ref}, {record["key"]: hyp}),
           "base": compute_wer(refs, {k: short["hyps"][u["key"]] for k, u in keyed.items()}),
           "shifted": compute_wer(refs, {k: short["shifted"][u["key"]] for k, u in keyed.items()})
           if short.get("shifted") else None, "utts": len(utts), "ref_words": len(norm(ref).split())}
    out["del_run"], out["del_run_at"], deleted = longest_deletion_run(ref, hyp)
    sizes = [len(norm(u["text"]).split()) for u in utts]
    out["longest_utt"], out["lost_utts"], pos = max(sizes), 0, 0
    for n in sizes:
        out["lost_utts"] += n > 0 and all(i in deleted for i in range(pos, pos + n))
        pos += n
    segs = res["segments"]
    out["same_as_alone"] = (sum(norm(g["text"]) == norm(short["hyps"][u["key"]]) for g, u in zip(segs, utts))
                            if len(segs) == len(utts) else None)
    return out


def _counts(w) -> str:
    return f"{100 * w.wer:.2f} ({w.substitutions}/{w.deletions}/{w.insertions})"


def _ratio(a: float, b: float) -> str:
    if b == 0:
        return "1.00x" if a == 0 else "inf"
    return f"{a / b:.2f}x"


def _windows(xs: list[float], stat=statistics.mean) -> tuple[float, float]:
    """``stat`` of the first and of the last 10% of ``xs``."""
    n = max(1, len(xs) // 10)
    return stat(xs[:n]), stat(xs[-n:])


def stream_cols(res: dict) -> dict:
    n = len(res["wall"])
    rss_a, rss_b = _windows(res["rss_kb"])
    w_a, w_b = _windows(res["wall"])
    c_a, c_b = _windows(res["cpu"])
    g_a, g_b = _windows(res["get_result"])
    kv_a, kv_b = _windows(res["kv"], max)
    pairs = res["pairs"]
    late, early = (sum(x[1] for x in pairs), sum(x[2] for x in pairs)) if pairs else (0.0, 0.0)
    late_cpu, early_cpu = (sum(x[3] for x in pairs), sum(x[4] for x in pairs)) if pairs else (0.0, 0.0)
    return {"hwm": res["hwm_kb"] / 1024, "rss_a": rss_a / 1024, "rss_b": rss_b / 1024, "rss_ratio": rss_b / rss_a,
            "ms_a": 1e3 * w_a, "ms_b": 1e3 * w_b, "ms_ratio": w_b / w_a if w_a else float("nan"),
            "cpu_ratio": c_b / c_a if c_a else float("nan"), "kv_a": kv_a, "kv_b": kv_b,
            "pairs": len(pairs), "late_ms": 1e3 * late / max(1, len(pairs)),
            "early_ms": 1e3 * early / max(1, len(pairs)),
            "paired": late / early if early else float("nan"),
            "paired_cpu": late_cpu / early_cpu if early_cpu else float("nan"),
            "get_a": 1e6 * g_a, "get_b": 1e6 * g_b, "rtf": (sum(res["wall"]) + res["final_s"]) / res["audio_s"],
            "chunks": n}


def _seg_summary(segs: list[dict]) -> str:
    reasons = {r: sum(s["reason"] == r for s in segs) for r in ("silence", "max_length", "end")}
    trunc = sum(s["truncated"] for s in segs)
    longest = max((s["end"] - s["start"] for s in segs), default=0.0)
    return (f"{len(segs)} ({reasons['silence']}/{reasons['max_length']}/{reasons['end']}"
            + (f", {trunc} trunc" if trunc else "") + f"), max {longest:.1f} s")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _flat(x: float) -> str:
    return _yes(abs(x - 1) <= FLAT)


def _table(header: list[str]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))


def print_tables(args, results: dict, files: list, scores: dict) -> None:
    from speech_llm.metrics.wer import compute_wer

    base, sil = results["short"], results.get("silence")
    cfg = (base or sil)["config"]
    ep = cfg["endpoint"]
    print(f"\n# {args.exp_dir}: mode {cfg['mode']}, chunk {cfg['chunk_s'] * 1000:.0f} ms, endpoint silence_s "
          f"{ep['silence_s']}, max_segment_s {ep['max_segment_s']}, threshold_db {ep['threshold_db']}, "
          f"preroll_s {ep['preroll_s']}, max_tokens_per_segment {cfg['max_tokens_per_segment']}; "
          f"{args.threads} thread(s)\n")
    if files:
        shift = f"one by one +{args.control_shift_ms:g} ms lead" if base.get("shifted") else None
        _table(["input", "min", "utts", "ref words", "WER % long (S/D/I)", "WER % one by one (S/D/I)", "ratio",
                *([f"WER % {shift} (S/D/I)", "ratio"] if shift else []), "segment text = alone",
                "longest del run / longest utt (words)", "lost utts", "segments (silence/max/end), longest"])
        for _, rec in files:
            sc, res = scores[rec["key"]], results["files"][rec["key"]]
            same = f"{sc['same_as_alone']}/{sc['utts']}" if sc["same_as_alone"] is not None else "n/a"
            ctrl = [_counts(sc["shifted"]), _ratio(sc["shifted"].wer, sc["base"].wer)] if shift else []
            print("| " + " | ".join([
                rec["key"], f"{rec['duration'] / 60:.1f}", str(sc["utts"]), str(sc["ref_words"]), _counts(sc["wer"]),
                _counts(sc["base"]), _ratio(sc["wer"].wer, sc["base"].wer), *ctrl, same,
                f"{sc['del_run']} / {sc['longest_utt']}", str(sc["lost_utts"]), _seg_summary(res["segments"])]) + " |")
        print()
    _table(["input", "min", "blocks", "peak RSS MiB", "RSS MiB first / last 10%", "KV positions max first / last 10%",
            "ms/block first / last 10%", "ratio", "same audio, end of stream / fresh stream: ms/block", "ratio",
            "get_result µs first / last", "RTF"])
    rows = [(rec["key"], results["files"][rec["key"]]) for _, rec in files]
    if sil:
        rows.append((f"silence + noise ({sil['level_db']:.0f} dBFS, {len(sil['text'].split())} words written)", sil))
    for name, res in rows:
        c = stream_cols(res)
        print("| " + " | ".join([
            name, f"{res['audio_s'] / 60:.1f}", str(c["chunks"]), f"{c['hwm']:.0f}",
            f"{c['rss_a']:.1f} / {c['rss_b']:.1f} ({c['rss_ratio']:.3f}x)", f"{c['kv_a']} / {c['kv_b']}",
            f"{c['ms_a']:.2f} / {c['ms_b']:.2f}", f"{c['ms_ratio']:.2f}x",
            f"{c['late_ms']:.2f} / {c['early_ms']:.2f} ({c['pairs']} blocks)", f"{c['paired']:.2f}x",
            f"{c['get_a']:.0f} / {c['get_b']:.0f}", f"{c['rtf']:.4f}"]) + " |")
    if base:
        print(f"\n# one by one: {len(base['hyps'])} utterances, {base['audio_s'] / 60:.1f} min, peak RSS "
              f"{base['hwm_kb'] / 1024:.0f} MiB, RTF {base['total_s'] / base['audio_s']:.4f}")

    if results["cli"]:
        print()
        _table(["input", "entry point", "WER % (S/D/I)", "same text as Recognizer", "wall s", "peak RSS MiB",
                "stdout bytes"])
        for _, rec in files:
            for how in ("transcribe", "decode"):
                run = results["cli"].get((rec["key"], how))
                if run is None:
                    continue
                ref = " ".join(u["text"] for u in rec["utterances"])
                w = compute_wer({rec["key"]: ref}, {rec["key"]: run["text"]})
                same = run["text"] == results["files"][rec["key"]]["text"]
                print(f"| {rec['key']} | speech-llm {how} | {_counts(w)} | {_yes(same)} | "
                      f"{run['wall_s']:.1f} | {run['maxrss_kb'] / 1024:.0f} | {run['stdout_bytes']} |")

    print("\n# goals:")
    for _, rec in files:
        sc, c = scores[rec["key"]], stream_cols(results["files"][rec["key"]])
        ratio_ok = sc["wer"].wer <= GOAL_WER_RATIO * sc["base"].wer + 1e-12
        print(f"#   {rec['key']}: WER ratio <= {GOAL_WER_RATIO}x: {_yes(ratio_ok)}; deletion run <= longest utt: "
              f"{_yes(sc['del_run'] <= sc['longest_utt'])}; memory flat: {_flat(c['rss_ratio'])}; per-block time "
              f"flat (first/last 10%; same audio end/fresh): {_flat(c['ms_ratio'])} / {_flat(c['paired'])}")
    if sil:
        c = stream_cols(sil)
        print(f"#   silence: no text: {_yes(not sil['text'])}; memory flat: {_flat(c['rss_ratio'])}")


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--exp-dir", help="trained experiment dir (or checkpoint)")
    ap.add_argument("--short", help="the original data dir the long files were made from (e.g. data/test)")
    ap.add_argument("--long", nargs="+", default=[], help="long-form data dirs from 'speech-llm prepare longform'")
    ap.add_argument("--decode", action="append", default=[], metavar="KEY=VALUE",
                    help="DecodeConfig override for every row, e.g. endpoint.silence_s=0.5 (repeatable)")
    ap.add_argument("--silence-minutes", type=float, default=30.0, help="length of the silence row (0: none)")
    ap.add_argument("--silence-db", type=float, default=None,
                    help="noise level of the silence row in dBFS (default: the noise floor of --short)")
    ap.add_argument("--cli-max-minutes", type=float, default=5.0,
                    help="also run speech-llm transcribe and decode on long-form dirs of up to this many minutes "
                         "(0: none)")
    ap.add_argument("--control-shift-ms", type=float, default=320.0,
                    help="control row: the utterances one by one again behind this much of their own noise "
                         "floor, to show how much WER moves with framing alone (0: none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    ap.add_argument("--json", type=Path, default=None, help="also write every raw measurement here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        Path(args.worker_out).write_text(json.dumps(run_worker(json.loads(args.worker))))
        return
    if not (args.exp_dir and args.short and (args.long or args.silence_minutes > 0)):
        ap.error("give --exp-dir, --short and --long (and/or --silence-minutes > 0)")

    from data_prep.audio import read_audio
    from data_prep.kaldi_dir import read_data_dir, read_text_file
    from data_prep.longform import db_to_amplitude, noise_floor, read_segments

    short = read_data_dir(args.short)
    files = [(Path(d), rec) for d in args.long for rec in read_segments(d)]
    needed = list(dict.fromkeys(u["key"] for _, r in files for u in r["utterances"]))
    unknown = [k for k in needed if k not in short]
    if unknown:
        raise SystemExit(f"--long uses utterances that --short lacks: {', '.join(unknown[:5])}")
    first_wav = next(iter(short.values())).wav
    common = {"exp_dir": args.exp_dir, "overrides": args.decode, "threads": args.threads, "warmup_wav": first_wav}
    results: dict = {"uptime_before": _uptime(), "files": {}, "cli": {}, "short": None}
    print(f"# uptime before: {results['uptime_before']}", flush=True)

    with tempfile.TemporaryDirectory(prefix="long_form_") as tmp_name:
        tmp = Path(tmp_name)
        if needed:
            print(f"# decoding {len(needed)} utterances of {args.short} one by one", flush=True)
            results["short"] = spawn({**common, "name": "short", "kind": "short", "data": args.short, "keys": needed,
                                      "shift_ms": args.control_shift_ms}, tmp)
        for _, rec in files:
            print(f"# streaming {rec['key']} ({rec['duration'] / 60:.1f} min)", flush=True)
            results["files"][rec["key"]] = spawn({**common, "name": rec["key"], "kind": "long", "wav": rec["audio"]},
                                                 tmp)
        if args.silence_minutes > 0:
            if args.silence_db is not None:
                level = db_to_amplitude(args.silence_db)
            else:
                level = float(np.median([noise_floor(read_audio(u.wav)) for u in list(short.values())[:20]]))
            print(f"# streaming {args.silence_minutes:g} min of noise at {20 * np.log10(level):.1f} dBFS", flush=True)
            results["silence"] = spawn({**common, "name": "silence", "kind": "silence", "minutes": args.silence_minutes,
                                        "level": level, "seed": 0}, tmp)
            results["silence"]["level_db"] = 20 * float(np.log10(level))
        cli_dirs = [d for d in dict.fromkeys(d for d, _ in files) if _nominal_minutes(d) <= args.cli_max_minutes]
        opts = cli_options(args.decode) if cli_dirs else []
        for d in cli_dirs:
            for rec in read_segments(d):
                cmd = [*cli_base(), "transcribe", "--exp-dir", args.exp_dir, "--device", "cpu", *opts, rec["audio"]]
                print("# " + " ".join(cmd), flush=True)
                run = run_cli(cmd, tmp / "stdout.txt", args.threads)
                lines = (tmp / "stdout.txt").read_text().splitlines()
                run.update(text=lines[-1].strip() if lines else "", cmd=cmd)
                results["cli"][(rec["key"], "transcribe")] = run
            out = tmp / f"decode_{d.name}"
            cmd = [*cli_base(), "decode", "--exp-dir", args.exp_dir, "--data", str(d), "--out", str(out),
                   "--device", "cpu", "--no-progress", *opts]
            print("# " + " ".join(cmd), flush=True)
            run = run_cli(cmd, tmp / "stdout.txt", args.threads)
            hyps = read_text_file(out / "text", allow_empty=True)
            for rec in read_segments(d):
                results["cli"][(rec["key"], "decode")] = {**run, "text": hyps.get(rec["key"], ""), "cmd": cmd}
    results["uptime_after"] = _uptime()

    scores = {rec["key"]: score_long(rec, results["files"][rec["key"]], results["short"]) for _, rec in files}
    print_tables(args, results, files, scores)
    print(f"# uptime after: {results['uptime_after']}")
    if args.json:
        def totals(w):
            return None if w is None else w.words.as_dict("words")

        dump = {**results, "cli": {f"{k}/{how}": v for (k, how), v in results["cli"].items()},
                "scores": {k: {**v, "wer": totals(v["wer"]), "base": totals(v["base"]), "shifted": totals(v["shifted"])}
                           for k, v in scores.items()}}
        args.json.write_text(json.dumps(dump, indent=1, default=str))


def _nominal_minutes(long_dir: Path) -> float:
    """The length a long-form dir was asked for (``longform.json``), else its longest file's."""
    from data_prep.longform import PARAMS_FILE, read_segments

    try:
        return float(json.loads((long_dir / PARAMS_FILE).read_text())["minutes"])
    except (OSError, KeyError, ValueError, TypeError):
        return max(r["duration"] for r in read_segments(long_dir)) / 60


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
