"""Load on `speech-llm serve`: concurrent real-time clients, batched vs one stream per step, and the largest
number of real-time clients the server sustains with p90 word latency under a bound.

Usage:
    python bench/server_load.py --exp-dir recipes/mini/exp/mini --audio-dir recipes/mini/data/corpus/test
    python bench/server_load.py --exp-dir EXP --audio-dir DIR --clients 16 --capacity 16,32,48,64,96
    python bench/server_load.py --quick              # 8 clients, short audio, no capacity search

The server runs as a subprocess (the real ``speech-llm serve`` command, ``--threads`` torch threads); the
clients run here, on asyncio, and share the machine's cores with it. Each client streams its own audio in
real time (100 ms s16le frames; starts spread over the first second): a few test utterances joined with 1 s
pauses, so the recognizer's endpointing cuts several segments per session. Without ``--audio-dir``
the utterances are espeak-ng sentences.

Reported per run:
  latency p50/p90/max -- per word, from when the audio it was written after had been sent to when the
                         client got the first message showing it (see speech_llm/server/client.py);
  finish p50          -- from the client's "end" to "done";
  server RTF          -- sum of the sessions' compute seconds (each its share of the batched calls) over their
                         audio seconds; busy = share of wall time the decode thread spent in steps;
                         CPU = server process CPU seconds per wall second (2.0 = both cores);
  mean batch          -- streams per decode step;
  equal               -- every session's final text equals the one-at-a-time transcript of the same audio
                         (one Stream, in-process, the same checkpoint and decode options).
The capacity search raises the number of clients until p90 latency reaches ``--max-p90`` (or a transcript
differs or a session fails) and reports the largest count below it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from speech_llm.server.client import Audio, percentile, run_clients_async

SENTENCES = ["the quick brown fox jumps over the lazy dog", "turn on the light in the kitchen please",
             "alice and bob meet at noon", "please call me back tomorrow morning",
             "the train to boston leaves at six", "we will need more coffee for the meeting"]


def client_audios(audio_dir: str | None, count: int, seconds: float, rate: int = 16000) -> list[Audio]:
    """``count`` different sessions of about ``seconds`` each: consecutive utterances with 1 s pauses."""
    if audio_dir:
        files = sorted(p for p in Path(audio_dir).rglob("*") if p.suffix in (".flac", ".wav"))
        if not files:
            sys.exit(f"no .flac/.wav files under {audio_dir}")
        utts = (_read_16k(p, rate) for p in _cycle(files))
    else:
        utts = (_espeak(s, i) for i, s in enumerate(_cycle(SENTENCES)))
    out = []
    for c in range(count):
        parts, total = [], 0
        while total < seconds * rate:
            x = next(utts)
            parts += [x, np.zeros(rate, np.int16)]
            total += len(x) + rate
        out.append(Audio(f"client{c:03d}", np.concatenate(parts[:-1]), rate))
    return out


def _cycle(items):
    while True:
        yield from items


def _read_16k(path: Path, rate: int) -> np.ndarray:
    from data_prep.audio import read_audio

    return np.round(read_audio(path, rate) * 32767).astype(np.int16)


def _espeak(text: str, i: int) -> np.ndarray:
    import tempfile

    from data_prep.audio import resample

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-s", str(150 + 10 * (i % 4)), "-w", f.name, text], check=True)
        x, r = sf.read(f.name, dtype="float32")
    return np.round(resample(x, r, 16000) * 32767).astype(np.int16)


def references(exp_dir: str, audios: list[Audio], decode_args: list[str]) -> list[str]:
    """One-at-a-time transcripts, in-process (one Stream each, the server's checkpoint and options)."""
    import torch

    from speech_llm.commands._decode_options import OPTIONS
    from speech_llm.decoding.recognizer import load_recognizer

    torch.set_num_threads(1)
    overrides = [f"{OPTIONS[k][0]}={v}" for k, v in zip(decode_args[::2], decode_args[1::2])]
    rec = load_recognizer(exp_dir, overrides=overrides)
    out = []
    for a in audios:
        s = rec.create_stream()
        s.accept_waveform(a.sample_rate, a.samples)
        s.input_finished()
        rec.decode(s)
        out.append(rec.get_result(s).text)
    return out


class Server:
    """``speech-llm serve`` in a subprocess (a context manager)."""

    def __init__(self, exp_dir: str, batch: int, threads: int, max_wait_ms: float, decode_args: list[str]):
        self.cmd = [sys.executable, "-m", "speech_llm", "serve", "--exp-dir", exp_dir, "--port", "0",
                    "--max-batch-size", str(batch), "--max-wait-ms", str(max_wait_ms), "--max-active", "1000",
                    "--threads", str(threads), "--device", "cpu", *decode_args]

    def __enter__(self) -> Server:
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=dict(os.environ, HF_HUB_OFFLINE="1"))
        line = self.proc.stdout.readline()
        m = re.search(r"serving (http://\S+) \(WebSocket (ws://\S+)\)", line)
        if not m:
            self.__exit__()
            sys.exit(f"the server did not start: {line!r}")
        self.http, self.ws = m.group(1), m.group(2)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()

    def health(self) -> dict:
        with urllib.request.urlopen(self.http + "healthz", timeout=10) as r:
            return json.loads(r.read())

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(server: Server, audios: list[Audio], refs: list[str]) -> dict:
    h0, c0, t0 = server.health()["decoder"], server.cpu_s(), time.monotonic()
    results = asyncio.run(run_clients_async(server.ws, audios, realtime=True, frame_s=0.1,
                                            stagger_s=1.0 / max(1, len(audios))))
    wall = time.monotonic() - t0
    h1, c1 = server.health()["decoder"], server.cpu_s()
    lat = [x for r in results for x in r.latencies_s]
    done = [r.done for r in results if r.done]
    audio_s = sum(d["audio_s"] for d in done)
    steps = max(1, h1["steps"] - h0["steps"])
    return {
        "clients": len(audios), "audio_s": round(audio_s, 1), "words": len(lat),
        "p50": percentile(lat, 50), "p90": percentile(lat, 90), "max": round(max(lat), 3) if lat else None,
        "finish_p50": percentile([r.finish_s for r in results if r.finish_s is not None], 50),
        "rtf": round(sum(d["compute_s"] for d in done) / audio_s, 4) if audio_s else None,
        "busy": round((h1["busy_s"] - h0["busy_s"]) / wall, 3), "cpu": round((c1 - c0) / wall, 2),
        "mean_batch": round((h1["stepped"] - h0["stepped"]) / steps, 2),
        "errors": sum(r.done is None for r in results),
        "equal": sum(r.text == ref for r, ref in zip(results, refs)),
    }


HEADER = ("| run | clients | audio s | words | latency p50 s | p90 s | max s | finish p50 s | server RTF | "
          "decode busy | server CPU | mean batch | equal |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
          "---:|---:|")


def row(name: str, r: dict) -> str:
    eq = f"{r['equal']}/{r['clients']}" + (f" ({r['errors']} failed)" if r["errors"] else "")
    return (f"| {name} | {r['clients']} | {r['audio_s']} | {r['words']} | {r['p50']} | {r['p90']} | {r['max']} | "
            f"{r['finish_p50']} | {r['rtf']} | {r['busy']} | {r['cpu']} | {r['mean_batch']} | {eq} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exp-dir", default="recipes/mini/exp/mini")
    p.add_argument("--audio-dir", default=None, help="utterances (.flac/.wav, searched recursively)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=12.0, help="audio per client")
    p.add_argument("--batch", type=int, default=16, help="--max-batch-size of the batched run")
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1,
                   help="server torch threads (1: two spinning OpenMP threads on a shared 2-core machine are "
                        "many times slower)")
    p.add_argument("--capacity", default="16,32,48,64,96,128", help="client counts to try ('' = skip)")
    p.add_argument("--capacity-batch", default="64,1",
                   help="--max-batch-size of the capacity searches, one search each (default: 64,1)")
    p.add_argument("--max-p90", type=float, default=1.0)
    p.add_argument("--decode", nargs=argparse.REMAINDER, default=[],
                   help="decode options passed to serve, e.g. --decode --endpoint-silence 0.5")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.clients, args.seconds, args.capacity = 8, 5.0, ""
    counts = [int(c) for c in args.capacity.split(",") if c]
    n_audio = max([args.clients, *counts])
    audios = client_audios(args.audio_dir, min(n_audio, 64), args.seconds)
    t = time.monotonic()
    refs = references(args.exp_dir, audios, args.decode)
    print(f"{len(audios)} sessions of ~{args.seconds:g} s; one-at-a-time references in {time.monotonic() - t:.0f} s; "
          f"load before: {os.getloadavg()[0]:.2f} (1 min avg), {os.cpu_count()} cores", flush=True)

    def take(n):
        return [audios[i % len(audios)] for i in range(n)], [refs[i % len(refs)] for i in range(n)]

    print(HEADER, flush=True)
    runs = [(f"batched (--max-batch-size {args.batch}, --max-wait-ms {args.max_wait_ms:g})", args.batch,
             args.max_wait_ms), (f"batched (--max-batch-size {args.batch}, --max-wait-ms 0)", args.batch, 0.0),
            ("--max-batch-size 1", 1, 0.0)]
    for name, batch, wait in runs:
        with Server(args.exp_dir, batch, args.threads, wait, args.decode) as server:
            print(row(name, run_load(server, *take(args.clients))), flush=True)
    found = {}
    for batch in [int(b) for b in args.capacity_batch.split(",") if b] if counts else []:
        found[batch] = None
        with Server(args.exp_dir, batch, args.threads, args.max_wait_ms, args.decode) as server:
            for n in counts:
                r = run_load(server, *take(n))
                print(row(f"capacity (--max-batch-size {batch})", r), flush=True)
                if r["p90"] is None or r["p90"] >= args.max_p90 or r["errors"] or r["equal"] < n:
                    break
                found[batch] = n
    for batch, best in found.items():
        print(f"--max-batch-size {batch}: largest real-time client count with p90 latency < {args.max_p90:g} s "
              f"and every transcript equal: {best if best is not None else 'none of ' + args.capacity}")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min avg)")


if __name__ == "__main__":
    main()
