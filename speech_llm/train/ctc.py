"""Stage ``ctc``: train the chunked streaming encoder with a CTC head (DESIGN.md §2).

Inputs (config): ``data.train_manifest`` / ``data.valid_manifest``, ``ctc.units`` (``char`` or ``bpe``),
``encoder.*`` (with ``dynamic_chunk``: a random chunk size per batch, WeNet U2), ``train.spec_augment``.

* CTC units come from ``data.units_path`` when that file exists, else they are learned from the training
  transcripts (and written there when the key is set); a resumed run reuses the units of its checkpoint.
* CMVN statistics come from ``data.cmvn_path`` when that file exists, else they are computed on (up to
  :data:`CMVN_UTTS` of) the training utterances and written there; ``cmvn_path: null`` = no CMVN.
* Loss: CTC summed over units / number of target units of the batch. Validation (and static-chunk
  training, ``encoder.dynamic_chunk: false``) runs the encoder with the decoding chunk, ``streaming.chunk_ms`` in
  encoder frames (:func:`~speech_llm.model.build.chunk_frames`), and also reports the greedy CTC WER.

Output: ``<exp>/ctc/{best,last}`` (see :mod:`speech_llm.model.checkpoint`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from encoders.subsampling import subsampled_lengths
from speech_llm.config import ExperimentConfig
from speech_llm.model.build import build_ctc_model, chunk_frames, feature_fn
from speech_llm.model.checkpoint import LAST, is_checkpoint, read_checkpoint
from speech_llm.model.units import Units, build_units, load_units, units_file_name
from speech_llm.train.data import FbankDataset, load_manifest, record_frames
from speech_llm.train.trainer import Stage, TrainResult, run_training

CMVN_UTTS = 500
"""Utterances used to estimate CMVN statistics when ``data.cmvn_path`` does not exist yet."""


def usable(records: list[dict], output_lengths) -> tuple[list[dict], list[str]]:
    """Records long enough to give at least one encoder frame (``output_lengths``: feature frames -> encoder
    frames, the encoder's own, e.g. ``encoder.output_lengths``), and the keys of the others."""
    keep, dropped = [], []
    for r in records:
        (keep if output_lengths(record_frames(r)) > 0 else dropped).append(r)
    return keep, [r["key"] for r in dropped]


def encoder_frames_fn(cfg: ExperimentConfig):
    """Feature frames -> encoder frames of ``cfg.encoder``, without building it: the encoder's own arithmetic
    (:func:`encoders.whisper.output_lengths`, ceil(T / 2); the Conformer's
    :func:`~encoders.subsampling.subsampled_lengths`, which drops its receptive field)."""
    if cfg.encoder.name == "whisper":
        from encoders.whisper import output_lengths

        return output_lengths
    return functools.partial(subsampled_lengths, rate=cfg.encoder.subsampling)


def load_datasets(cfg: ExperimentConfig) -> tuple[FbankDataset, FbankDataset | None, list[str]]:
    """Train and (optional) valid datasets from the config's manifests, with the keys of dropped records."""
    sub = encoder_frames_fn(cfg)
    features = feature_fn(cfg.encoder)
    train, dropped = usable(load_manifest(cfg.data.train_manifest, "data.train_manifest"), sub)
    train_set = FbankDataset(train, f"data.train_manifest {cfg.data.train_manifest}", features=features)
    valid_set = None
    if cfg.data.valid_manifest:
        valid, more = usable(load_manifest(cfg.data.valid_manifest, "data.valid_manifest"), sub)
        dropped += more
        valid_set = FbankDataset(valid, f"data.valid_manifest {cfg.data.valid_manifest}", features=features)
    return train_set, valid_set, dropped


def prepare_units(cfg: ExperimentConfig, texts: list[str], resume_from: Path | None = None) -> Units:
    """Units of the checkpoint a run resumes from, else of ``data.units_path``, else learned from ``texts``.
    """
    last = resume_from
    if last is not None and is_checkpoint(last):
        ckpt = read_checkpoint(last)
        return load_units(last / ckpt.meta["units"], cfg.ctc.units)
    path = cfg.data.units_path
    if path and Path(path).is_file():
        return load_units(path, cfg.ctc.units)
    units = build_units(cfg.ctc.units, texts, cfg.ctc.bpe_vocab_size)
    if path:
        units.save(path)
    return units


def prepare_cmvn(cfg: ExperimentConfig, dataset: FbankDataset, seed: int = 0):
    """Global CMVN from ``data.cmvn_path``, computed and written there first when the file is missing."""
    from encoders.frontend import GlobalCMVN

    path = cfg.data.cmvn_path
    if not path:
        return None
    if Path(path).is_file():
        return GlobalCMVN.from_file(path)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(dataset))[:CMVN_UTTS].tolist()
    cmvn = GlobalCMVN.compute_stats(dataset[i]["feats"] for i in sorted(picks))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cmvn.save(path)
    return cmvn


class CTCStage(Stage):
    """The ``ctc`` stage for the trainer (see the module docstring)."""

    name = "ctc"

    def __init__(self, cfg: ExperimentConfig, resume_from: Path | None = None):
        from encoders.frontend import SpecAugment

        self.cfg = cfg
        self.train_set, self.valid_set, self.dropped = load_datasets(cfg)
        self.units = prepare_units(cfg, [r["text"] for r in self.train_set.records], resume_from)
        cmvn = prepare_cmvn(cfg, self.train_set, cfg.train.ctc.seed)
        self.targets = {id(ds): [self.units.encode(r["text"]) for r in ds.records]
                        for ds in (self.train_set, self.valid_set) if ds is not None}
        self.model = build_ctc_model(cfg, self.units.vocab_size, cmvn)
        self.model.spec_augment = SpecAugment() if cfg.train.ctc.spec_augment else None
        self.chunk_frames = chunk_frames(cfg)
        """The attention chunk in encoder frames (``streaming.chunk_ms``)."""
        self._hyps: list[tuple[str, str]] = []

    def _targets(self, batch: dict, dataset: FbankDataset) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [torch.tensor(self.targets[id(dataset)][int(i)], dtype=torch.long) for i in batch["indices"]]
        lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        return pad_sequence(seqs, batch_first=True).to(batch["feats"].device), lens.to(batch["feats"].device)

    def _loss_sum(self, model, batch: dict, dataset: FbankDataset) -> tuple:
        """``(summed CTC loss, number of target units, (log_probs, lens))``."""
        log_probs, lens = model(batch["feats"], batch["feat_lens"], self.chunk_frames, self.cfg.encoder.left_chunks)
        targets, target_lens = self._targets(batch, dataset)
        loss = F.ctc_loss(log_probs.transpose(0, 1), targets, lens, target_lens, blank=0, reduction="sum",
                          zero_infinity=True)
        return loss, target_lens.sum(), (log_probs, lens)

    def train_loss(self, model, batch: dict) -> torch.Tensor:
        loss, count, _ = self._loss_sum(model, batch, self.train_set)
        return loss / count.clamp_min(1)

    def valid_loss(self, model, batch: dict) -> tuple[float, float]:
        from encoders.ctc import greedy_decode

        loss, count, (log_probs, lens) = self._loss_sum(model, batch, self.valid_set)
        for i, hyp in zip(batch["indices"].tolist(), greedy_decode(log_probs, lens)):
            self._hyps.append((self.valid_set.records[i]["text"], self.units.decode(hyp)))
        return float(loss), float(count)

    def valid_report(self) -> dict:
        import jiwer

        refs, hyps = zip(*self._hyps) if self._hyps else ((), ())
        self._hyps = []
        if not refs:
            return {}
        return {"greedy_wer": float(jiwer.wer(list(refs), list(hyps)))}

    def checkpoint_content(self, out_dir: Path) -> tuple[dict, dict, dict]:
        name = units_file_name(self.units.kind)
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        return state, {"units": name, "num_units": self.units.vocab_size}, {name: self.units.save}


def run_ctc_stage(cfg: ExperimentConfig, exp_dir: str | Path, resume: bool = True, cpu: bool = False,
                  stop_after: int | None = None, progress_bar: bool = True) -> TrainResult:
    """Train the CTC encoder into ``<exp_dir>/ctc``; resumes from ``ctc/last`` when ``resume``."""
    stage_dir = Path(exp_dir) / "ctc"
    return run_training(lambda: CTCStage(cfg, stage_dir / LAST), cfg, stage_dir, resume, cpu, stop_after,
                        progress_bar)
