"""Does the LLM read the audio? Dev loss of a trained speech LLM with each utterance's own audio against the
same targets with the audio shuffled across utterances.

Usage:
    python bench/audio_shuffle_loss.py --exp-dir exp/asr [--manifest data/dev/manifest.jsonl] [--max-utts 200]

Each utterance's target is its batch-mode transcript (``words <eos>`` seeing the whole source), so the target
does not depend on where the words fall in the audio; the shuffled run gives utterance ``i`` the audio of
utterance ``i + 1`` of the same batch (a derangement). A model that ignores its input scores the same on both;
the gap (nats per target token) is how much the audio tells it. Prints one table row per condition.
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
    p.add_argument("--exp-dir", required=True)
    p.add_argument("--manifest", default=None, help="default: the checkpoint's data.valid_manifest")
    p.add_argument("--max-utts", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from data_prep.audio import read_audio
    from data_prep.manifest import read_manifest
    from speech_llm.lm.targets import batch_target
    from speech_llm.model.build import feature_fn
    from speech_llm.model.checkpoint import find_checkpoint, load_model, read_checkpoint
    from speech_llm.train.llm import target_words_of, word_token_ids

    model, tokenizer, cfg = load_model(args.exp_dir)
    ckpt = read_checkpoint(find_checkpoint(args.exp_dir, "llm"))
    manifest = args.manifest or cfg.data.valid_manifest
    records = read_manifest(manifest)[: args.max_utts]
    words = target_words_of(records, cfg.llm, False, manifest)
    features = feature_fn(cfg.encoder)
    tok = model.tokens
    sums = {"own audio": [0.0, 0], "shuffled audio": [0.0, 0]}
    with torch.inference_mode():
        for start in range(0, len(records), args.batch_size):
            recs = records[start:start + args.batch_size]
            if len(recs) < 2:
                break
            feats = [features(torch.from_numpy(read_audio(r["audio"]))) for r in recs]
            for name, order in (("own audio", list(range(len(recs)))),
                                ("shuffled audio", [(i + 1) % len(recs) for i in range(len(recs))])):
                for i, j in enumerate(order):
                    f = feats[j][None]
                    audio, audio_lens = model.audio_embeds(f, torch.tensor([f.size(1)]))
                    source_len = model.prompt_len + int(audio_lens[0]) + len(tok.end_ids)
                    target = batch_target(word_token_ids(tokenizer, words[start + i][0]), source_len,
                                          bos_id=tok.bos_id, eos_id=tok.eos_id)
                    src, src_lens = model.source_batch(audio, audio_lens)
                    ids = torch.tensor([target.input_ids])
                    out = model.glm(src, src_lens, ids, torch.tensor([ids.size(1)]),
                                    torch.tensor([target.source_visible])).logits
                    loss = torch.nn.functional.cross_entropy(out[0].float(), torch.tensor(target.labels),
                                                             reduction="sum")
                    sums[name][0] += float(loss)
                    sums[name][1] += len(target.labels)
    print(f"{ckpt.path}: {manifest}, {len(records)} utterances, batch-mode targets")
    print("| audio | dev loss (nats / target token) |")
    print("|---|---:|")
    for name, (total, count) in sums.items():
        print(f"| {name} | {total / max(count, 1):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
