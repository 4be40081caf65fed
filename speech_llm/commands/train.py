"""Train one stage: the CTC encoder, word alignments, the speech LLM adapter, or a text-translation LLM.

Usage:
    speech-llm train --config conf/mini.yaml --exp-dir exp/mini --stage ctc [KEY=VALUE ...]
    speech-llm train --config conf/mini.yaml --exp-dir exp/mini --stage align [--manifest M] [--out O]
    speech-llm train --config conf/mini.yaml --exp-dir exp/mini --stage llm train.llm.lr=1e-4 train.llm.max_steps=2000
    speech-llm train --exp-dir exp/mt --stage mt llm.path_or_name=exp/tiny_llm data.train_manifest=M llm.lora_rank=0
    speech-llm train --config conf/asr_cpu.yaml --exp-dir exp/asr --stage distill   # Whisper encoder -> streaming
    accelerate launch -m speech_llm train --config ... --stage llm        # several GPUs

Stages (DESIGN.md §2):
    ctc    chunked streaming encoder + CTC head       -> EXP/ctc/{best,last}
    align  CTC forced alignment -> "words" with start/end times in the manifests (in place)
    llm    projector + LoRA + <wait> token rows on the frozen encoder -> EXP/llm/{best,last}
    distill  a Whisper encoder fine-tuned to keep its full-attention output under chunk masks (no transcripts
           needed; the teacher's frames cached once)       -> EXP/distill/{best,last} (+ whisper/ in each)
    proj   the projector pre-aligned with CTC over the LLM's vocabulary through its frozen embedding matrix, on
           the frozen encoder's cached frames (no LLM forward)  -> EXP/proj/{best,last}
    mt     word-level wait-k text translation (LoRA, or the whole LLM with llm.lora_rank=0) on the
           manifests' text -> translation[llm.target_lang] pairs     -> EXP/mt/{best,last}

Trailing KEY=VALUE arguments override config keys (``train.llm.lr=1e-4 encoder.num_layers=2``); unknown keys
and values of the wrong type are errors naming the key. The resolved config is written to
EXP/config.yaml (and EXP/<stage>/config.yaml). A stage resumes from EXP/<stage>/last when that
checkpoint holds a training state (model, optimizer, scheduler, step, RNG, data position); --restart
trains from scratch instead. Decoding rebuilds the model from EXP alone (``speech_llm.model.checkpoint``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_common.errors import UserError

NAME = "train"
HELP = ("train a stage: ctc (encoder), align (word times), llm (projector + LoRA), mt (text translation), "
        "distill (a streaming Whisper encoder), proj (CTC pre-alignment of the projector)")
ORDER = 20
STAGES = ("ctc", "align", "llm", "mt", "distill", "proj")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="YAML",
                        help="experiment config (default: the built-in tiny defaults)")
    parser.add_argument("--exp-dir", type=Path, required=True, metavar="DIR", help="experiment dir")
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. train.llm.lr=1e-4")
    parser.add_argument("--restart", action="store_true",
                        help="ctc/llm/mt: train from scratch, removing EXP/<stage>/{best,last}")
    parser.add_argument("--encoder-checkpoint", type=Path, default=None, metavar="DIR",
                        help="align/llm: the CTC checkpoint to use (default: EXP/ctc, best else last)")
    parser.add_argument("--manifest", action="append", default=None, metavar="JSONL",
                        help="align: manifest to align (repeatable; default: data.train_manifest and "
                             "data.valid_manifest)")
    parser.add_argument("--out", default=None, metavar="JSONL",
                        help="align: write the aligned manifest here instead of in place (one --manifest)")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from speech_llm.config import load_config, save_config

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UserError(f"expected KEY=VALUE overrides after the options, got {' '.join(bad)}")
    cfg = load_config(args.config, args.overrides)
    exp = args.exp_dir
    save_config(cfg, exp / "config.yaml")
    progress = not args.no_progress
    if args.stage == "align":
        import torch

        from speech_llm.train.align import run_align_stage

        device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
        reports = run_align_stage(cfg, exp, manifests=args.manifest, out=args.out,
                                  encoder_checkpoint=args.encoder_checkpoint, device=device, progress=progress)
        return 0 if all(r.aligned for r in reports) else 1
    if args.manifest or args.out:
        raise UserError("--manifest and --out are options of --stage align")
    save_config(cfg, exp / args.stage / "config.yaml")
    if args.stage == "ctc":
        from speech_llm.train.ctc import run_ctc_stage

        run_ctc_stage(cfg, exp, resume=not args.restart, cpu=args.cpu, progress_bar=progress)
    elif args.stage == "distill":
        from speech_llm.train.distill import run_distill_stage

        run_distill_stage(cfg, exp, resume=not args.restart, cpu=args.cpu, progress_bar=progress)
    elif args.stage == "proj":
        from speech_llm.train.proj import run_proj_stage

        run_proj_stage(cfg, exp, resume=not args.restart, cpu=args.cpu, progress_bar=progress)
    elif args.stage == "mt":
        from speech_llm.mt.train import run_mt_stage

        run_mt_stage(cfg, exp, resume=not args.restart, cpu=args.cpu, progress_bar=progress)
    else:
        from speech_llm.train.llm import run_llm_stage

        run_llm_stage(cfg, exp, encoder_checkpoint=args.encoder_checkpoint, resume=not args.restart,
                      cpu=args.cpu, progress_bar=progress)
    return 0
