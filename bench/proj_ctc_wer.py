"""Word error rate of a ``proj`` checkpoint's CTC head alone (greedy, no LLM) on Kaldi data dirs: how much of
the speech the pre-aligned projector already reads, before the LLM sees anything.

Usage:
    python bench/proj_ctc_wer.py --config conf/asr_cpu.yaml --proj exp/asr/proj/best \\
        --data data/test_heldout data/asterisk [KEY=VALUE ...]

The encoder is the config's (``encoder.path_or_name``, e.g. the distilled Whisper dir) run with the chunk
mask of ``streaming.chunk_ms`` (what streaming gives); each set's WER, S/D/I, and how many distinct
hypotheses it writes against distinct references, in one table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--proj", required=True, help="a proj checkpoint dir (exp/<tag>/proj/best)")
    p.add_argument("--data", nargs="+", required=True, help="Kaldi data dirs")
    p.add_argument("--max-utts", type=int, default=0, help="first N utterances of each set (0 = all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import jiwer

    from data_prep.audio import read_audio
    from data_prep.kaldi_dir import read_data_dir
    from encoders.ctc import greedy_decode
    from speech_llm.config import load_config
    from speech_llm.model.build import (
        build_encoder_from_config,
        chunk_frames,
        feature_fn,
        load_causal_lm,
        load_tokenizer,
    )
    from speech_llm.model.checkpoint import read_checkpoint
    from speech_llm.model.projector import VocabProjector

    cfg = load_config(args.config, args.overrides)
    encoder = build_encoder_from_config(cfg.encoder, dynamic_chunk=False).eval()
    features = feature_fn(cfg.encoder)
    chunk = chunk_frames(cfg)
    tokenizer = load_tokenizer(cfg.llm.path_or_name, cfg.llm.gguf_file)
    state = read_checkpoint(args.proj).state()
    embedding = load_causal_lm(cfg.llm.path_or_name, cfg.llm).get_input_embeddings().weight.detach()
    proj = VocabProjector(encoder.output_dim, embedding, stack=cfg.projector.stack,
                          hidden_dim=cfg.projector.hidden_dim, vocab_ids=state["vocab_ids"])
    proj.load_state_dict(state)
    proj.eval()
    vocab = proj.vocab_ids.tolist()
    print("| set | utts | WER % | S | D | I | distinct hyps / refs |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for data in args.data:
        utts = read_data_dir(data)
        keys = list(utts)[: args.max_utts or None]
        refs, hyps = [], []
        with torch.inference_mode():
            for k in keys:
                feats = features(torch.from_numpy(read_audio(utts[k].wav)))
                frames, lens = encoder(feats[None], torch.tensor([feats.size(0)]), chunk, cfg.encoder.left_chunks)
                h, hl = proj.hidden(frames, lens)
                classes = greedy_decode(proj.logits(h).float(), hl, proj.blank_id)[0]
                hyps.append(tokenizer.decode([vocab[c] for c in classes]).strip().lower())
                refs.append(utts[k].text.lower())
        out = jiwer.process_words(refs, hyps)
        words = out.hits + out.substitutions + out.deletions
        print(f"| {data} | {len(keys)} | {100 * (out.substitutions + out.deletions + out.insertions) / words:.2f} | "
              f"{out.substitutions} | {out.deletions} | {out.insertions} | {len(set(hyps))} / {len(set(refs))} |")
        for r, h in list(zip(refs, hyps))[:3]:
            print(f"    ref: {r}\n    hyp: {h}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
