"""ONNX export vs torch (issue #27): RTF, peak memory and WER of the torch Recognizer and of speech_runtime
(onnxruntime, fp32 and int8) on the same test audio, side by side in one run.

Usage:
    speech-llm export --exp-dir exp/mini --out exp/mini/onnx --int8
    python bench/onnx_rtf.py --exp-dir exp/mini --export exp/mini/onnx --data data/test
    python bench/onnx_rtf.py --exp-dir exp/mini --export exp/mini/onnx --data data/test \
        --threads 1,2 --streams 1,8 --rtf-utts 24 --rounds 2 --wer-utts 0 --json onnx_rtf.json

Engines: ``torch`` (``speech_llm.load_recognizer(exp_dir)``, fp32), ``ort-fp32`` and ``ort-int8``
(``speech_runtime.load_recognizer(export, int8=...)``). The torch recognizer gets the export's decode settings
(both come from the checkpoint's ``decode`` section) with ``endpoint.enabled=false`` for both, so each stream is
one segment and the comparison is of the models alone (the runtime's endpointing is the torch one's, tested in
``tests/speech_llm/export/test_runtime_endpoint.py``). A fourth
WER row, ``torch (endpointing)``, is the checkpoint's own decode config, as ``speech-llm decode`` runs it.

Method. Every measurement runs in its own subprocess (this script with ``--worker``), so its peak RSS
(``VmHWM``: model loading, the runtime's arenas and the decoding together) is that configuration's
alone. Threads: ``torch.set_num_threads(n)`` for torch, onnxruntime's ``intra_op_num_threads = n`` for each
ORT model (``OMP_NUM_THREADS`` is set to n for both). A worker reads its utterances into memory, decodes the
first one once as a warm-up (not counted), then streams them: in blocks of one chunk with a decode after each
block (``transcribe``'s loop); with ``--streams`` S, S
utterances at a time, one block of each per step, all advanced by one ``decode_streams`` call (a stream
whose audio has run out gets ``input_finished`` and stays in the batch until it is finished).

RTF = seconds inside ``decode`` / ``decode_streams`` (wall clock) / seconds of audio decoded; "CPU RTF" is the
process CPU time over the same calls / audio seconds (with 2 threads it can exceed the wall RTF). Each
configuration runs ``--rounds`` times, rounds interleaved (all configurations, then all again), and the
table shows the lowest wall RTF of the rounds (the one least disturbed by other jobs on a shared machine)
with its ratio to torch fp32 at the first ``--threads`` and ``--streams`` (1 thread, 1 stream by default: the
issue's baseline), next to the CPU RTF and the peak RSS of each engine, all configurations in one table. "same
text" counts the utterances whose text equals that torch run's text (batching and threads must not change
the text).

WER: every utterance of ``--data`` (or the first ``--wer-utts``), one stream, ``--wer-threads`` threads (default 1:
on a busy 2-core machine torch at 2 threads is several times slower, see bench/RESULTS.md);
``compute_wer`` (S/D/I) and the utterances whose text is identical to torch's (goal for fp32: >= 99 %).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run as a script from anywhere
    sys.path.insert(0, str(REPO))

ENGINES = ("torch", "ort-fp32", "ort-int8")


# ------------------------------------------------------------------------------------------- the worker
def _load(job: dict):
    if job["engine"].startswith("torch"):
        import torch

        torch.set_num_threads(job["threads"])
        import speech_llm

        overrides = [] if job["engine"] == "torch-endpointing" else ["endpoint.enabled=false"]
        return speech_llm.load_recognizer(job["exp_dir"], overrides=overrides)
    import speech_runtime

    return speech_runtime.load_recognizer(job["export"], int8=job["engine"] == "ort-int8", threads=job["threads"],
                                          overrides={"endpoint.enabled": False})


def _decode_group(rec, audios: list) -> tuple[list[str], float, float]:
    """Stream ``audios`` (``(samples, rate)``) together; their texts, wall and CPU seconds in decode."""
    streams = [rec.create_stream() for _ in audios]
    pos = [0] * len(audios)
    wall = cpu = 0.0
    while True:
        live = []
        for i, (s, (x, rate)) in enumerate(zip(streams, audios)):
            if s.finished:
                continue
            block = max(1, int(rate * rec.chunk_s))
            if pos[i] < len(x):
                s.accept_waveform(rate, x[pos[i]:pos[i] + block])
                pos[i] += block
            else:
                s.input_finished()
            live.append(s)
        if not live:
            break
        t, c = time.perf_counter(), time.process_time()
        if len(live) == 1:
            rec.decode(live[0])
        else:
            rec.decode_streams(live)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
    return [rec.get_result(s).text for s in streams], wall, cpu


def run_worker(job: dict) -> dict:
    import soundfile as sf

    t = time.perf_counter()
    rec = _load(job)
    load_s = time.perf_counter() - t
    audios = [sf.read(path, dtype="float32") for _, path in job["utts"]]
    audios = [(x, rate) for x, rate in audios]
    _decode_group(rec, audios[:1])                   # warm-up, not counted
    texts, wall, cpu = [], 0.0, 0.0
    n = job["streams"]
    for i in range(0, len(audios), n):
        t_texts, t_wall, t_cpu = _decode_group(rec, audios[i:i + n])
        texts += t_texts
        wall += t_wall
        cpu += t_cpu
    audio_s = sum(len(x) / rate for x, rate in audios)
    return {"texts": dict(zip((k for k, _ in job["utts"]), texts)), "wall_s": wall, "cpu_s": cpu,
            "audio_s": audio_s, "load_s": load_s,
            "maxrss_mb": _peak_rss_kb() / 1024}


def _peak_rss_kb() -> int:
    """This process's peak RSS: ``VmHWM`` (of this program's memory map only; ``ru_maxrss`` also keeps the
    peak of the forked parent before ``exec``, here the bench's own process with its imports)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def spawn(job: dict, tmp: Path) -> dict:
    """Run ``job`` in a fresh interpreter (its own threads settings and peak RSS)."""
    inp, out = tmp / "job.json", tmp / "out.json"
    inp.write_text(json.dumps(job))
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]), MKL_NUM_THREADS=str(job["threads"]),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, __file__, "--worker", str(inp), "--worker-out", str(out)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {job['engine']} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------- the tables
def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _same(texts: dict, ref: dict) -> int:
    return sum(texts[k] == ref.get(k) for k in texts)


def _table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


def rtf_table(runs: dict, threads: list[int], streams: list[int], n_utts: int) -> list[dict]:
    """``runs[(engine, threads, streams)]``: the rounds' worker results. Prints one table of every configuration
    (RTF with its ratio to torch fp32 at the first threads/streams, CPU RTF, peak RSS, same text), then every
    round."""
    base_key = ("torch", threads[0], streams[0])
    ref = runs[base_key][0]["texts"]
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    base_rtf = best[base_key]["wall_s"] / best[base_key]["audio_s"]
    rows, out = [], []
    for th in threads:
        for st in streams:
            res = [best[(eng, th, st)] for eng in ENGINES]
            rtfs = [r["wall_s"] / r["audio_s"] for r in res]
            for eng, r, rtf in zip(ENGINES, res, rtfs):
                rounds = "/".join(f"{x['wall_s'] / x['audio_s']:.4f}" for x in runs[(eng, th, st)])
                out.append({"engine": eng, "threads": th, "streams": st, "rtf": rtf, "rounds": rounds,
                            "ratio_to_base": rtf / base_rtf, "cpu_rtf": r["cpu_s"] / r["audio_s"],
                            "maxrss_mb": r["maxrss_mb"], "load_s": r["load_s"], "same_text": _same(r["texts"], ref),
                            "utts": len(r["texts"])})
            rows.append([th, st, *[f"{rtf:.4f} ({rtf / base_rtf:.2f}x)" for rtf in rtfs],
                         " / ".join(f"{r['cpu_s'] / r['audio_s']:.4f}" for r in res),
                         " / ".join(f"{r['maxrss_mb']:.0f}" for r in res),
                         " / ".join(f"{_same(r['texts'], ref)}/{len(r['texts'])}" for r in res[1:])])
    print(f"\n### RTF ({n_utts} utterances, {best[base_key]['audio_s']:.1f} s of audio; lowest wall RTF of the "
          f"rounds; (x): ratio to torch fp32 at {threads[0]} thread(s), {streams[0]} stream(s))\n")
    _table(["threads", "streams", *[f"{e} RTF" for e in ENGINES], "CPU RTF " + " / ".join(ENGINES),
            "peak RSS MB " + " / ".join(ENGINES), "same text as torch: " + " / ".join(ENGINES[1:])], rows)
    print(f"\n### Every round, load time, same text as torch {threads[0]} thread(s) {streams[0]} stream(s)\n")
    _table(["engine", "threads", "streams", "wall RTF per round", "peak RSS MB", "load s", "same text"],
           [[o["engine"], o["threads"], o["streams"], o["rounds"], f"{o['maxrss_mb']:.0f}", f"{o['load_s']:.2f}",
             f"{o['same_text']}/{o['utts']}"] for o in out])
    return out


def wer_table(refs: dict, results: dict) -> list[dict]:
    from speech_llm.metrics import compute_wer

    torch_texts = results["torch"]["texts"]
    rows, out = [], []
    for eng, r in results.items():
        w = compute_wer({k: refs[k] for k in r["texts"]}, r["texts"])
        same = _same(r["texts"], torch_texts)
        rtf = r["wall_s"] / r["audio_s"]
        rows.append([eng, f"{100 * w.wer:.2f} %", f"{w.substitutions}/{w.deletions}/{w.insertions}",
                     f"{same}/{len(r['texts'])} ({100 * same / len(r['texts']):.1f} %)", f"{rtf:.4f}",
                     f"{r['maxrss_mb']:.0f}"])
        out.append({"engine": eng, "wer": w.wer, "sdi": [w.substitutions, w.deletions, w.insertions],
                    "ref_words": w.ref_words, "same_as_torch": same, "utts": len(r["texts"]), "rtf": rtf,
                    "maxrss_mb": r["maxrss_mb"]})
    print(f"\n### WER ({len(torch_texts)} utterances, {sum(o['ref_words'] for o in out[:1])} words, one stream)\n")
    _table(["engine", "WER", "S/D/I", "text identical to torch", "RTF", "peak RSS MB"], rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--exp-dir", help="trained experiment dir (or llm checkpoint)")
    ap.add_argument("--export", help="its export dir (speech-llm export --int8)")
    ap.add_argument("--data", help="test data dir (Kaldi style: wav.scp, text)")
    ap.add_argument("--threads", default="1,2", help="comma list (default: %(default)s)")
    ap.add_argument("--streams", default="1,8", help="comma list of batched streams (default: %(default)s)")
    ap.add_argument("--rtf-utts", type=int, default=24, help="utterances of the RTF runs (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="runs of each RTF configuration (default: %(default)s; 0: WER only)")
    ap.add_argument("--wer-utts", type=int, default=0, help="utterances of the WER runs (0: all; -1: no WER)")
    ap.add_argument("--wer-threads", type=int, default=1, help="threads of the WER runs (default: %(default)s)")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = run_worker(json.loads(Path(args.worker).read_text()))
        Path(args.worker_out).write_text(json.dumps(res))
        return
    if not (args.exp_dir and args.export and args.data):
        ap.error("--exp-dir, --export and --data are required")

    from data_prep.kaldi_dir import read_data_dir

    data = read_data_dir(args.data)
    keys = sorted(data)
    utt = {k: [k, str(data[k].wav)] for k in keys}
    refs = {k: data[k].text for k in keys}
    threads = [int(x) for x in args.threads.split(",")]
    streams = [int(x) for x in args.streams.split(",")]
    base = {"exp_dir": args.exp_dir, "export": args.export}
    start = _uptime()
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {start}; {os.cpu_count()} CPUs")
    print(f"# exp {args.exp_dir}, export {args.export}, data {args.data} ({len(keys)} utterances)")
    dump: dict = {"start_uptime": start}
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict = {}
        rtf_keys = keys[:args.rtf_utts]
        for rnd in range(args.rounds):
            for th in threads:
                for st in streams:
                    for eng in ENGINES:
                        job = {**base, "engine": eng, "threads": th, "streams": st,
                               "utts": [utt[k] for k in rtf_keys]}
                        r = spawn(job, Path(tmp))
                        runs.setdefault((eng, th, st), []).append(r)
                        print(f"round {rnd + 1}: {eng:9s} threads {th} streams {st}: RTF "
                              f"{r['wall_s'] / r['audio_s']:.4f}, peak RSS {r['maxrss_mb']:.0f} MB  "
                              f"[{_uptime().split('load average:')[-1].strip()}]", flush=True)
        if runs:                                     # --rounds 0: WER only
            dump["raw_rtf"] = [{"config": list(k), "rounds": v} for k, v in runs.items()]
            _save(args.json, dump)                   # the measurements first: a table bug loses nothing
            dump["rtf"] = rtf_table(runs, threads, streams, len(rtf_keys))
        if args.wer_utts >= 0:
            wer_keys = keys[:args.wer_utts] if args.wer_utts else keys
            results = {}
            for eng in (*ENGINES, "torch-endpointing"):
                results[eng] = spawn({**base, "engine": eng, "threads": args.wer_threads, "streams": 1,
                                      "utts": [utt[k] for k in wer_keys]}, Path(tmp))
                print(f"WER run {eng}: done [{_uptime().split('load average:')[-1].strip()}]", flush=True)
            dump["raw_wer"] = results
            _save(args.json, dump)
            dump["wer"] = wer_table(refs, results)
            dump["texts"] = {e: r["texts"] for e, r in results.items()}
    end = _uptime()
    print(f"\n# start: {start}\n# end:   {end}")
    dump["end_uptime"] = end
    _save(args.json, dump)


def _save(path: Path | None, dump: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(dump, indent=1))


if __name__ == "__main__":
    main()
