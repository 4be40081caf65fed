"""WER of a checkpoint on torch vs its ONNX export on onnxruntime, float32 and int8, in one run (issue #27).

Usage:
    python bench/onnx_wer.py --exp-dir exp/asr/llm/best --export exp/asr/onnx \\
        --data data/asterisk data/test_heldout_200 --max-utts 40 [--threads 1] [KEY=VALUE ...]

Each utterance is read at its own sample rate and fed to the torch Recognizer
(``speech_llm.Recognizer.from_checkpoint``) and to ``speech_runtime`` (the export, then its ``--int8``
models) in blocks of one chunk, decoding after each block, as ``speech-llm decode`` streams a file.
Endpointing is off on both sides (the runtime decodes one segment per stream; these utterances are short).
First, the LoRA merge is checked on the real LLM: the peft model (adapter and trained wait row unmerged), the
merged one the Recognizer runs, and the exported ``llm.onnx`` give the same logits on the same tokens.
KEY=VALUE are decode overrides given to all three. Prints, per data dir: WER of each backend (the toolkit's
default normalisation), how many utterances have exactly torch's text, and the decode time with its ratio
to torch's (the machine's load shows in these; RTF is measured separately, on a quiet machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def decode(rec, samples, rate: int, block: int) -> str:
    s = rec.create_stream()
    for start in range(0, len(samples), block):
        s.accept_waveform(rate, samples[start:start + block])
        rec.decode(s)
    s.input_finished()
    rec.decode(s)
    return rec.get_result(s).text


def lm_probe(lm, embed_table, ids) -> tuple:
    """Logits (n, V) of the causal LM on the embeddings of ``ids`` (the wait token among them), positions 0.."""
    import torch

    with torch.no_grad():
        x = embed_table(torch.tensor([ids]))
        out = lm(inputs_embeds=x, position_ids=torch.arange(len(ids))[None])
    return x[0], out.logits[0]


def check_merge(model, rec_factory, export: str, threads: int):
    """The LLM with its LoRA adapter and trained wait row (peft, unmerged) vs merged (``merge_and_unload``,
    what the Recognizer runs) vs the exported ``llm.onnx`` step, on the same tokens: max abs differences of
    the logits and whether every row's argmax agrees. Returns the Recognizer built on the merged model."""
    import json

    import numpy as np
    import onnxruntime as ort
    import torch

    from speech_llm.export import MANIFEST

    lm = model.glm.lm
    wait = model.tokens.wait_id
    ids = [*model.tokens.prompt_ids[-6:], wait, *model.tokens.prompt_ids[:4], wait]
    emb_peft, peft = lm_probe(lm, lm.get_input_embeddings(), ids)
    adapters = sum("lora_" in n for n, _ in lm.named_parameters())
    rec = rec_factory(model)                     # merges (prepare_for_inference)
    merged_lm = rec.model.glm.lm
    emb_merged, merged = lm_probe(merged_lm, merged_lm.get_input_embeddings(), ids)
    m = json.loads((Path(export) / MANIFEST).read_text())["llm"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(Path(export) / m["file"]), opts, providers=["CPUExecutionProvider"])
    n = len(ids)
    table = np.load(Path(export) / m["embeddings"])
    mask = np.triu(np.full((n, n), np.finfo(np.float32).min, np.float32), 1)[None, None]
    ort_rows = []
    for i in range(n):                           # the step returns the last row: one call per prefix
        feed = {"inputs_embeds": table[ids[:i + 1]][None], "position_ids": np.arange(i + 1)[None],
                "attention_mask": np.ascontiguousarray(mask[:, :, :i + 1, :i + 1])}
        feed.update({f"past_{k}_{j}": np.zeros((1, m["num_kv_heads"], 0, m["head_dim"]), np.float32)
                     for j in range(m["num_layers"]) for k in ("key", "value")})
        ort_rows.append(sess.run(["logits"], feed)[0][0])
    onnx = torch.from_numpy(np.stack(ort_rows))
    print(f"# LoRA merge check ({adapters} LoRA tensors before merging, {len(ids)} tokens, wait token twice): "
          f"embeddings peft vs merged max |diff| {float((emb_peft - emb_merged).abs().max()):.2e}, "
          f"export table vs merged {float(np.abs(table[ids] - emb_merged.numpy()).max()):.2e}; logits peft vs "
          f"merged {float((peft - merged).abs().max()):.2e}, merged vs llm.onnx "
          f"{float((merged - onnx).abs().max()):.2e} (logits {float(merged.min()):.1f}..{float(merged.max()):.1f}); "
          f"argmax equal peft/merged/onnx: {bool((peft.argmax(-1) == merged.argmax(-1)).all())}/"
          f"{bool((merged.argmax(-1) == onnx.argmax(-1)).all())}")
    return rec


def print_table(names: list[str], rows: list[tuple]) -> None:
    print("| set | utts | audio s | " + " | ".join(f"WER % {n}" for n in names)
          + " | same text as torch: fp32 | int8 | " + " | ".join(f"decode s {n} (vs torch)" for n in names) + " |")
    print("|---|---:|---:|" + "---:|" * (2 * len(names) + 2))
    for name, n, audio_s, wers, same, secs in rows:
        print(f"| {name} | {n} | {audio_s:.1f} | " + " | ".join(f"{100 * wers[x]:.2f}" for x in names)
              + f" | {same['ort fp32']}/{n} ({100 * same['ort fp32'] / n:.1f} %) | "
              f"{same['ort int8']}/{n} ({100 * same['ort int8'] / n:.1f} %) | "
              + " | ".join(f"{secs[x]:.1f} ({secs[x] / secs['torch']:.2f}x)" for x in names) + " |", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="the checkpoint (or exp dir) that was exported")
    p.add_argument("--export", required=True, help="its export dir (speech-llm export ... --int8)")
    p.add_argument("--data", nargs="+", required=True, help="Kaldi data dirs")
    p.add_argument("--max-utts", type=int, default=40, help="first N utterances of each set (0 = all)")
    p.add_argument("--skip", type=int, default=0, help="start after the first SKIP utterances of each set")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--show", type=int, default=3, help="print this many utterances whose texts differ")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)

    import soundfile as sf
    import torch

    import speech_runtime
    from data_prep.kaldi_dir import read_data_dir
    from speech_llm.decoding.recognizer import Recognizer
    from speech_llm.metrics.wer import compute_wer
    from speech_llm.model.checkpoint import load_model
    from speech_llm.typed_config import apply_overrides

    torch.set_num_threads(args.threads)
    overrides = ["endpoint.enabled=false", *args.overrides]
    t = time.perf_counter()
    model, tokenizer, cfg = load_model(args.exp_dir)
    config = apply_overrides(cfg.decode, overrides, source="decode")
    print(f"# checkpoint loaded in {time.perf_counter() - t:.1f} s")
    recs = {"torch": check_merge(model, lambda m: Recognizer(m, tokenizer, config), args.export, args.threads)}
    for name, int8 in (("ort fp32", False), ("ort int8", True)):
        t = time.perf_counter()
        recs[name] = speech_runtime.load_recognizer(args.export, int8=int8, overrides=overrides, threads=args.threads)
        print(f"# {name} recognizer loaded in {time.perf_counter() - t:.1f} s")
    chunk_s = recs["torch"].chunk_s

    rows = []
    for data in args.data:
        utts = read_data_dir(data)
        keys = list(utts)[args.skip:][: args.max_utts or None]
        refs = {k: utts[k].text for k in keys}
        hyps: dict[str, dict[str, str]] = {name: {} for name in recs}
        secs = dict.fromkeys(recs, 0.0)
        audio_s = 0.0
        for k in keys:
            samples, rate = sf.read(utts[k].wav, dtype="float32", always_2d=True)
            samples = samples.mean(axis=1)
            audio_s += len(samples) / rate
            block = max(1, round(chunk_s * rate))
            for name, rec in recs.items():
                t = time.perf_counter()
                x = torch.from_numpy(samples) if name == "torch" else samples
                hyps[name][k] = decode(rec, x, rate, block)
                secs[name] += time.perf_counter() - t
            print(f"# {k}: " + " | ".join(hyps[name][k] for name in recs), file=sys.stderr, flush=True)
        wers = {name: compute_wer(refs, h).wer for name, h in hyps.items()}
        same = {name: sum(hyps[name][k] == hyps["torch"][k] for k in keys) for name in recs}
        rows.append((Path(data).name, len(keys), audio_s, wers, same, secs))
        print_table(list(recs), rows[-1:])
        shown = 0
        for k in keys:
            if shown < args.show and len({hyps[name][k] for name in recs}) > 1:
                shown += 1
                print(f"    {k} ref: {refs[k].lower()}")
                for name in recs:
                    print(f"    {k} {name}: {hyps[name][k]}")
    print("# all sets:")
    print_table(list(recs), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
