"""Steps per minute of the llm stage with the frozen encoder's frames read from the cache against the same
stage running the encoder at every step (``train.llm.cache_encoder_frames``), measured back to back in one
process on the same batches.

Usage:
    python bench/llm_step_cache.py --config conf/asr_cpu.yaml --steps 8 KEY=VALUE ...   # the recipe's overrides

Each condition trains ``--steps`` steps from the same start in a temporary experiment dir (the cache is the
config's ``data.cache_dir``, filled first if needed, so the cached condition pays nothing for it) and reports
seconds per step and steps per minute; the table gives the ratio. Check ``uptime`` first: a busy machine
changes both columns.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    import os

    import torch

    torch.set_num_threads(args.threads)
    from speech_llm.config import load_config
    from speech_llm.train.llm import run_llm_stage

    rows = []
    for cached in (True, False):
        cfg = load_config(args.config, [*args.overrides, f"train.llm.cache_encoder_frames={str(cached).lower()}",
                                        "train.llm.valid_every=0", "data.valid_manifest=null",
                                        f"train.llm.max_steps={args.steps + 2}", "train.llm.save_every=1000"])
        with tempfile.TemporaryDirectory() as exp:
            result = run_llm_stage(cfg, exp, resume=False, cpu=True, stop_after=args.steps, progress_bar=False)
        wall = result.train_wall_s
        rows.append(("cached encoder frames" if cached else "encoder run every step", len(result.losses), wall,
                     result.throughput))
    load = os.getloadavg()[0]
    print(f"llm stage, {args.steps} steps each, {args.threads} thread(s), load average {load:.1f}")
    print("| encoder | steps | s / step | steps / min | audio s per s | vs running the encoder |")
    print("|---|---:|---:|---:|---:|---:|")
    base = rows[1][2] / max(rows[1][1], 1)
    for name, steps, wall, audio_x in rows:
        per = wall / max(steps, 1)
        print(f"| {name} | {steps} | {per:.2f} | {60 / per:.1f} | {audio_x:.1f} | {base / per:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
