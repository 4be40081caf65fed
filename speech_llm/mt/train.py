"""Stage ``mt``: simultaneous text translation, wait-k fine-tuning of a causal LM on the shared trainer.

The stage runs on :class:`speech_llm.train.trainer.Trainer` like the speech stages (accelerate, AdamW,
warm-up + cosine schedule, clipping, ``best``/``last`` checkpoints, exact resume) with its own section
``train.mt``:

* data: sentence pairs, the source from a manifest's ``text`` and the target from its
  ``translation[llm.target_lang]`` (``data.train_manifest`` / ``data.valid_manifest``), or given in
  memory; batches are bucketed by tokens under ``train.mt.max_tokens_per_batch``;
* each pair of a training batch draws its lag from ``train.mt.k`` (several lags train one model for all of
  them, as in multi-path wait-k), or batch mode with probability ``train.mt.batch_share``, from the global
  torch RNG (so a resumed run draws the same); validation fixes the draw per key;
* the wait-k visibility of :mod:`speech_llm.mt.targets` goes into one masked forward of the
  :class:`~speech_llm.lm.group_lm.GroupStreamingLM`; the loss is the mean cross-entropy over target tokens
  (eos included);
* the model is :func:`~speech_llm.mt.model.build_mt_model`: LoRA when ``llm.lora_rank > 0``, else full
  fine-tuning; the checkpoint (stage ``mt``) holds what trained, the tokenizer and the base LLM reference.

Usage:
    speech-llm train --config conf/mt.yaml --exp-dir exp/mt --stage mt llm.path_or_name=exp/tiny_llm
    from speech_llm.mt.train import run_mt_stage
    run_mt_stage(cfg, "exp/mt", pairs=[("TURN ON THE LIGHT", "ALLUME LA LUMIÈRE")])   # in-memory pairs
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig
from speech_llm.model.checkpoint import TOKENIZER_DIR, llm_reference, trained_state
from speech_llm.mt.framing import source_groups, target_word_tokens
from speech_llm.mt.model import MTModel, build_mt_model
from speech_llm.mt.targets import collate_targets, wait_k_target
from speech_llm.train.trainer import Stage, TrainResult, run_training


def mt_loss(glm, batch: dict[str, torch.Tensor], embed=None) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the target tokens of a collated batch
    (:func:`~speech_llm.mt.targets.collate_targets`) and the number of those tokens.

    ``glm`` is a :class:`~speech_llm.lm.group_lm.GroupStreamingLM` (or the trainer's wrapper around one, then
    ``embed`` is the unwrapped model's ``embed``)."""
    src = (embed or glm.embed)(batch["source_ids"])                      # (B, S, D)
    logits = glm(src, batch["source_lens"], batch["input_ids"], batch["target_lens"],
                 batch["source_visible"]).logits                          # (B, T, V)
    labels = batch["labels"]
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    return loss, int((labels != -100).sum())


class PairDataset(Dataset):
    """Tokenized sentence pairs; ``records[i]`` is ``{"key", "source": SourceGroups, "words": [[ids]]}``."""

    def __init__(self, model: MTModel, pairs: Sequence[tuple[str, str, str]], source: str):
        self.source = source
        self.records = []
        for i, pair in enumerate(pairs):
            if len(pair) != 3 or not all(isinstance(x, str) for x in pair):
                raise UserError(f"{source}: pair {i} must be (key, source, target) strings, got {pair!r}")
            key, src, tgt = pair
            if not src.split() or not tgt.split():
                raise UserError(f"{source}: {key}: empty source or target: {(src, tgt)!r}")
            try:
                words = target_word_tokens(model.tokenizer, tgt, model.starts_word)
            except UserError as e:
                raise UserError(f"{source}: {key}: {e}") from None
            self.records.append({"key": key, "source": source_groups(model.tokenizer, model.framing, src),
                                 "words": words})
        if not self.records:
            raise UserError(f"{source}: no sentence pairs to train on")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.records[index]


def pairs_from_manifest(path: str | Path, lang: str, what: str) -> list[tuple[str, str, str]]:
    """``(key, text, translation[lang])`` of every record of a manifest; a record without it is an error."""
    from data_prep.manifest import read_manifest

    records = read_manifest(path)
    lacking = [r["key"] for r in records if not str((r.get("translation") or {}).get(lang) or "").strip()]
    if lacking:
        raise UserError(f"{what} {path}: {len(lacking)} of {len(records)} record(s) have no translation "
                        f"{lang!r}, e.g. {', '.join(lacking[:3])} (set llm.target_lang)")
    return [(r["key"], r["text"], r["translation"][lang]) for r in records]


def _fixed_lag(key: str, lags: Sequence[int], share: float) -> int | None:
    """Validation: a lag (or batch mode) fixed per key, in the training proportions."""
    h = zlib.crc32(key.encode("utf-8"))
    return None if h % 10000 < share * 10000 else lags[(h // 10000) % len(lags)]


class MTStage(Stage):
    """The ``mt`` stage for the trainer (see the module docstring).

    Args:
        cfg: the experiment config (``llm``, ``train.mt``, ``data``).
        pairs, valid_pairs: ``(source, target)`` or ``(key, source, target)`` in memory; None = from the
            config's manifests (``valid_pairs`` None and no ``data.valid_manifest``: no validation).
    """

    name = "mt"

    def __init__(self, cfg: ExperimentConfig, pairs=None, valid_pairs=None):
        self.cfg, self.tc = cfg, cfg.train.mt
        self.mt = build_mt_model(cfg)
        self.model = self.mt.glm
        if cfg.llm.lora_rank == 0:
            for p in self.model.parameters():
                p.requires_grad_(True)
        lang = cfg.llm.target_lang
        if pairs is None:
            if not cfg.data.train_manifest:
                raise UserError("stage mt: no training pairs (set data.train_manifest)")
            pairs = pairs_from_manifest(cfg.data.train_manifest, lang, "data.train_manifest")
            if valid_pairs is None and cfg.data.valid_manifest:
                valid_pairs = pairs_from_manifest(cfg.data.valid_manifest, lang, "data.valid_manifest")
        self.train_set = PairDataset(self.mt, _keyed(pairs, "train"), "training pairs")
        self.valid_set = None if not valid_pairs else PairDataset(self.mt, _keyed(valid_pairs, "valid"),
                                                                  "validation pairs")

    # ------------------------------------------------------------------ data hooks
    def item_costs(self, dataset: PairDataset) -> list[int]:
        return [len(r["source"].ids) + sum(len(w) for w in r["words"]) + 1 for r in dataset.records]

    def batch_budget(self, tc) -> int:
        return tc.max_tokens_per_batch

    def collate(self, items: list[dict]) -> dict:
        return {"keys": [it["key"] for it in items], "items": items}

    def batch_audio_s(self, batch: dict) -> float:
        return 0.0

    # ------------------------------------------------------------------ losses
    def _loss(self, model, items: list[dict], lags: list[int | None]) -> tuple[torch.Tensor, int]:
        fr = self.mt.framing
        targets = [wait_k_target(it["source"], it["words"], lag, bos_id=fr.bos_id, eos_id=fr.eos_id)
                   for it, lag in zip(items, lags)]
        dev = next(self.model.parameters()).device
        batch = collate_targets([it["source"] for it in items], targets, dev)
        return mt_loss(model, batch, embed=self.model.embed)

    def train_loss(self, model, batch: dict) -> torch.Tensor:
        lags = [None if float(torch.rand(())) < self.tc.batch_share
                else self.tc.k[int(torch.randint(len(self.tc.k), ()))] for _ in batch["items"]]
        return self._loss(model, batch["items"], lags)[0]

    def valid_loss(self, model, batch: dict) -> tuple[float, float]:
        lags = [_fixed_lag(k, self.tc.k, self.tc.batch_share) for k in batch["keys"]]
        loss, n = self._loss(model, batch["items"], lags)
        return float(loss) * n, float(n)

    def checkpoint_content(self, out_dir: Path) -> tuple[dict, dict, dict]:
        meta = {"base_llm": llm_reference(self.cfg.llm.path_or_name, out_dir),
                "train_pairs": len(self.train_set)}
        return trained_state(self.model), meta, {TOKENIZER_DIR: self.mt.tokenizer.save_pretrained}


def _keyed(pairs, split: str) -> list[tuple[str, str, str]]:
    return [p if len(p) == 3 else (f"{split}{i:06d}", *p) for i, p in enumerate(pairs)]


def run_mt_stage(cfg: ExperimentConfig, exp_dir: str | Path, pairs=None, valid_pairs=None, resume: bool = True,
                 cpu: bool = False, stop_after: int | None = None, progress_bar: bool = True) -> TrainResult:
    """Train the text-translation model into ``<exp_dir>/mt`` (resumes from ``mt/last`` when ``resume``)."""
    return run_training(lambda: MTStage(cfg, pairs, valid_pairs), cfg, Path(exp_dir) / "mt", resume, cpu,
                        stop_after, progress_bar)


def read_parallel_data(data_dir: str | Path, lang: str = "fr") -> dict[str, tuple[str, str]]:
    """``{key: (source, translation)}`` of a data dir: the source from ``text``, the translation from
    ``manifest.jsonl``'s ``"translation"[lang]`` (the layout ``speech-llm score --task mt`` reads)."""
    from data_prep.kaldi_dir import read_text_file

    data_dir = Path(data_dir)
    texts = read_text_file(data_dir / "text", allow_empty=False)
    pairs = {k: (src, tgt) for k, src, tgt in pairs_from_manifest(data_dir / "manifest.jsonl", lang, "manifest")}
    missing = [k for k in texts if k not in pairs]
    if missing:
        raise UserError(f"{data_dir / 'manifest.jsonl'}: no record for {len(missing)} utterances of "
                        f"{data_dir / 'text'}, e.g. {missing[0]}")
    return {k: (texts[k], pairs[k][1]) for k in texts}
