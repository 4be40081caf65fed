"""Stage ``align``: word start/end times from CTC forced alignment, written into the manifests.

The CTC model of ``<exp>/ctc`` (best, else last) runs over every utterance of a manifest (full attention
when the encoder was trained with dynamic chunks, else its decoding chunk: the most accurate times it
can give). Each transcript's units go through :func:`encoders.ctc.align_words`
(``torchaudio.functional.forced_align``); for character units the word separators are aligned too,
exactly as the model was trained. Each record gets ``"words": [{"word", "start", "end"}, ...]`` (seconds,
end clipped to the duration), replacing any earlier alignment. An utterance that cannot be aligned
(e.g. more units than frames) keeps what it had and is reported.

The manifest is rewritten atomically (a temporary file renamed over it), with its audio paths as they
were; by default the data set's own manifest is updated in place.

Usage:
    speech-llm train --config conf/mini.yaml --exp-dir exp/mini --stage align
    speech-llm train ... --stage align --manifest data/test/manifest.jsonl --out aligned.jsonl
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from data_prep.manifest import write_manifest
from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig
from speech_llm.model.build import chunk_frames, feature_fn
from speech_llm.model.checkpoint import find_checkpoint, load_ctc_model
from speech_llm.train.ctc import usable
from speech_llm.train.data import BucketBatchSampler, FbankDataset, collate, load_manifest, record_frames


@dataclass
class AlignReport:
    """What :func:`align_manifest` did: the manifest written, how many aligned, which failed and why."""

    manifest: Path
    aligned: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _raw_audio_paths(path: Path) -> dict[str, str]:
    """Audio paths as written in the manifest (``read_manifest`` makes relative ones absolute)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["key"]] = rec["audio"]
    return out


@torch.no_grad()
def align_records(model, units, records: list[dict], source: str, chunk_size: int = 0,
                  device: str | torch.device = "cpu", max_frames: int = 20000,
                  progress: bool = True, features=None) -> list[tuple[str, str]]:
    """Add ``words`` to ``records`` in place; returns ``[(key, reason)]`` for those that failed.

    ``chunk_size``: encoder chunk in frames (0 = full attention). ``features``: the encoder's feature
    function (:func:`speech_llm.model.build.feature_fn`; default fbank).
    """
    from encoders.ctc import AlignmentError, align_words

    enc = model.encoder
    frame_shift_s = enc.frame_shift_s
    good, too_short = usable(records, enc.output_lengths)
    failed = [(k, "too short for the encoder") for k in too_short]
    dataset = FbankDataset(good, source, cache_mb=0, **({"features": features} if features else {}))
    sampler = BucketBatchSampler([record_frames(r) for r in good], max_frames, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    desc = f"align {Path(source.split()[-1]).name}"
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        log_probs, lens = model(batch["feats"].to(device), batch["feat_lens"].to(device), chunk_size, -1)
        for b, i in enumerate(batch["indices"].tolist()):
            rec = good[i]
            words = rec["text"].split()
            pieces, where = units.word_pieces(words)
            try:
                emissions = log_probs[b, : int(lens[b])].cpu()
                times = align_words(emissions, pieces, frame_shift_s, blank=units.blank)
            except AlignmentError as e:
                failed.append((rec["key"], str(e)))
                continue
            duration = float(rec["duration"])
            rec["words"] = [{"word": w, "start": round(min(times[j][0], duration), 3),
                             "end": round(min(times[j][1], duration), 3)} for w, j in zip(words, where)]
    return failed


def align_manifest(ctc_checkpoint: str | Path, manifest: str | Path, out: str | Path | None = None,
                   device: str | torch.device = "cpu", max_frames: int = 20000,
                   progress: bool = True) -> AlignReport:
    """Align every utterance of ``manifest`` with the CTC model of ``ctc_checkpoint``; write ``out``
    (default: ``manifest`` itself, atomically)."""
    manifest = Path(manifest)
    model, units, cfg = load_ctc_model(find_checkpoint(ctc_checkpoint, "ctc"), device)
    chunk = 0 if cfg.encoder.dynamic_chunk else chunk_frames(cfg)
    records = load_manifest(str(manifest), "--manifest")
    failed = align_records(model, units, records, f"manifest {manifest}", chunk, device, max_frames, progress,
                           feature_fn(cfg.encoder))
    raw = _raw_audio_paths(manifest)
    for rec in records:
        rec["audio"] = raw[rec["key"]]
    out = Path(out) if out is not None else manifest
    write_manifest(out, records)
    return AlignReport(manifest=out, aligned=len(records) - len(failed), failed=failed)


def run_align_stage(cfg: ExperimentConfig, exp_dir: str | Path, manifests: list[str] | None = None,
                    out: str | None = None, encoder_checkpoint: str | Path | None = None,
                    device: str | torch.device = "cpu", progress: bool = True) -> list[AlignReport]:
    """Align ``manifests`` (default: ``data.train_manifest`` and ``data.valid_manifest``) in place, or the one
    manifest into ``out``."""
    if manifests is None:
        manifests = [m for m in (cfg.data.train_manifest, cfg.data.valid_manifest) if m]
        if not manifests:
            raise UserError("nothing to align: set data.train_manifest / data.valid_manifest "
                            "or give --manifest")
    if out is not None and len(manifests) != 1:
        raise UserError("--out needs exactly one --manifest")
    ckpt = encoder_checkpoint or Path(exp_dir) / "ctc"
    reports = []
    for m in manifests:
        report = align_manifest(ckpt, m, out, device, cfg.train.ctc.max_frames_per_batch, progress)
        reports.append(report)
        if progress:
            print(f"[align] {report.manifest}: {report.aligned} utterance(s) aligned, "
                  f"{len(report.failed)} failed"
                  + "".join(f"\n  {k}: {why}" for k, why in report.failed[:10]))
    return reports
