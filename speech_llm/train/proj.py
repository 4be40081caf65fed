"""Stage ``proj``: pre-align the projector with the LLM before any LLM step (CTC over the LLM's vocabulary).

A projector trained from scratch with the LLM's cross-entropy needs thousands of steps before the LLM starts
to follow the audio (SLAM-ASR's "emergence"); on 2 CPU cores the LLM stage gets a few hundred, and the LLM
then writes fluent text that ignores the audio. This stage gives the projector a dense signal instead, at a
tiny fraction of an LLM step's cost:

* the frozen encoder's streamed frames (the chunk mask of ``streaming.chunk_ms``, left context
  ``encoder.left_chunks``) are computed once per utterance and cached (:mod:`encoders.feature_cache`, keyed
  by the encoder's weights, the chunk setting and the audio);
* a :class:`~speech_llm.model.projector.VocabProjector` maps stacked frames to vectors ``h`` whose dot products
  with the LLM's own (frozen, tied) token embeddings are CTC logits over the LLM's tokens, blank being a
  learned extra row; the target is the transcript as the LLM writes it (``llm.target_case``, each word with
  its leading space, exactly the tokens of the llm stage's targets);
* the CTC classes are the tokens of the training transcripts plus those of ``train.proj.vocab_text``
  (``train.proj.full_vocab``: all of them);
* regularisation on the cached frames: dropout (``frame_dropout``) and time masks.

Validation reports the CTC loss and the greedy CTC word error rate (tokens -> text with the LLM's tokenizer).
Output: ``<exp>/proj/{best,last}`` (the projector's state, its CTC classes); the llm stage starts its
projector from ``<exp>/proj/best`` (``--projector-checkpoint``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from encoders.ctc import greedy_decode
from encoders.feature_cache import FeatureCache, state_digest
from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig
from speech_llm.lm.framing import word_token_ids
from speech_llm.model.build import build_encoder_from_config, load_causal_lm, load_tokenizer
from speech_llm.model.projector import VocabProjector
from speech_llm.train.ctc import load_datasets
from speech_llm.train.data import FbankDataset, pad_field
from speech_llm.train.distill import cache_root
from speech_llm.train.trainer import Stage, TrainResult, run_training


def transcript_tokens(tokenizer, text: str, case: str = "lower") -> list[int]:
    """The LLM tokens of a transcript as the llm stage writes it: words (lower-cased for ``case='lower'``),
    each but the first with its leading space."""
    words = text.split()
    if case == "lower":
        words = [w.lower() for w in words]
    return [t for ids in word_token_ids(tokenizer, words) for t in ids]


def read_text_lines(path: str | Path) -> list[str]:
    """Sentences of a Kaldi text file (``key WORDS``: the key is dropped when the first field looks like one,
    i.e. holds a digit or a dash) or of a plain one-sentence-per-line file."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and any(c.isdigit() or c in "-_" for c in fields[0]):
            fields = fields[1:]
        if fields:
            out.append(" ".join(fields))
    return out


def encoder_cache(cfg: ExperimentConfig, encoder, exp_dir: str | Path, chunk_frames: int) -> FeatureCache:
    """The cache of ``encoder``'s streamed frames (chunk mask of ``chunk_frames``, ``encoder.left_chunks``)."""
    key = f"{cfg.encoder.name}-encoder {state_digest(encoder)} chunk={chunk_frames} left={cfg.encoder.left_chunks}"
    return FeatureCache(cache_root(cfg, exp_dir), key)


def fill_encoder_cache(cache: FeatureCache, encoder, compute, records: list[dict], chunk_frames: int,
                       left_chunks: int, progress: bool = True) -> int:
    """Encode every record's audio not cached yet (masked forward == streaming) and store its frames."""
    from data_prep.audio import read_audio

    @torch.inference_mode()
    def frames(path: str) -> torch.Tensor:
        feats = compute(torch.from_numpy(read_audio(path)))
        out, _ = encoder(feats[None], torch.tensor([feats.size(0)]), chunk_frames, left_chunks)
        return out[0]

    return cache.fill([r["audio"] for r in records], frames, progress=progress, desc="encoder frames")


class CachedFrames(torch.utils.data.Dataset):
    """Items ``{"index", "key", "frames": (T', D)}``: a speech dataset's records, read from the encoder cache."""

    def __init__(self, base: FbankDataset, cache: FeatureCache):
        self.records, self.source, self.cache = base.records, base.source, cache

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        frames = self.cache.get(rec["audio"])
        if frames is None:
            raise UserError(f"{self.source}: no cached encoder frames for {rec['key']} (cache {self.cache.dir})")
        return {"index": index, "key": rec["key"], "frames": frames}


def collate_frames(items: list[dict]) -> dict:
    """Pad ``frames`` into (B, T', D) with ``frame_lens`` (B,), ``indices``, ``keys``."""
    frames, lens = pad_field(items, "frames")
    return {"frames": frames, "frame_lens": lens, "indices": torch.tensor([it["index"] for it in items]),
            "keys": [it["key"] for it in items]}


def time_mask(frames: torch.Tensor, lens: torch.Tensor, masks: int, width: int) -> torch.Tensor:
    """Zero ``masks`` random spans of up to ``width`` frames of each utterance (global torch RNG)."""
    if masks == 0 or width == 0:
        return frames
    out = frames.clone()
    for b, n in enumerate(lens.tolist()):
        for _ in range(masks):
            w = int(torch.randint(width + 1, ()))
            if n > w:
                start = int(torch.randint(n - w, ()))
                out[b, start:start + w] = 0
    return out


class ProjCTCStage(Stage):
    """The ``proj`` stage for the trainer (see the module docstring)."""

    name = "proj"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, progress: bool = True):
        from speech_llm.model.build import chunk_frames

        self.cfg = cfg
        tc = cfg.train.proj
        encoder = build_encoder_from_config(cfg.encoder, dynamic_chunk=False).eval().requires_grad_(False)
        self.chunk = chunk_frames(cfg)
        base_train, base_valid, self.dropped = load_datasets(cfg)
        self.cache = encoder_cache(cfg, encoder, exp_dir, self.chunk)
        records = base_train.records + (base_valid.records if base_valid is not None else [])
        fill_encoder_cache(self.cache, encoder, base_train.compute, records, self.chunk, cfg.encoder.left_chunks,
                           progress)
        self.encoder_dim = encoder.output_dim
        del encoder
        self.tokenizer = load_tokenizer(cfg.llm.path_or_name, cfg.llm.gguf_file)
        llm = load_causal_lm(cfg.llm.path_or_name, cfg.llm)
        self.embedding = llm.get_input_embeddings().weight.detach().clone()
        del llm
        targets = {id(ds): [transcript_tokens(self.tokenizer, r["text"], cfg.llm.target_case) for r in ds.records]
                   for ds in (base_train, base_valid) if ds is not None}
        vocab = None
        if not tc.full_vocab:
            ids = {t for seqs in targets.values() for s in seqs for t in s}
            for path in tc.vocab_text:
                if not Path(path).is_file():
                    raise UserError(f"train.proj.vocab_text: file not found: {path}")
                for line in read_text_lines(path):
                    ids.update(transcript_tokens(self.tokenizer, line, cfg.llm.target_case))
            vocab = torch.tensor(sorted(ids), dtype=torch.long)
        self.model = VocabProjector(self.encoder_dim, self.embedding, stack=cfg.projector.stack,
                                    hidden_dim=cfg.projector.hidden_dim, vocab_ids=vocab, temperature=tc.temperature)
        index = {int(t): i for i, t in enumerate(self.model.vocab_ids.tolist())}
        self.targets = {k: [[index[t] for t in s] for s in seqs] for k, seqs in targets.items()}
        self.train_set = CachedFrames(base_train, self.cache)
        self.valid_set = CachedFrames(base_valid, self.cache) if base_valid is not None else None
        self._ids = {id(self.train_set): id(base_train), id(self.valid_set): id(base_valid)}
        self._hyps: list[tuple[str, str]] = []
        if progress:
            print(f"[proj] {self.model.blank_id} CTC classes (+ blank), encoder frames cached in {self.cache.dir}")

    def collate(self, items: list) -> dict:
        return collate_frames(items)

    def batch_audio_s(self, batch: dict) -> float:
        return float(batch["frame_lens"].sum()) * self.cfg.encoder.subsampling * 0.01

    def _loss(self, model, batch: dict, dataset, train: bool) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        tc = self.cfg.train.proj
        frames, lens = batch["frames"], batch["frame_lens"]
        if train:
            frames = time_mask(F.dropout(frames, tc.frame_dropout), lens, tc.time_masks, tc.time_mask_frames)
        h, out_lens = model.hidden(frames, lens)
        log_probs = model.logits(h).float().log_softmax(-1)
        seqs = [torch.tensor(self.targets[self._ids[id(dataset)]][int(i)], dtype=torch.long)
                for i in batch["indices"]]
        target_lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        targets = pad_sequence(seqs, batch_first=True) if seqs else torch.zeros(0, 0, dtype=torch.long)
        loss = F.ctc_loss(log_probs.transpose(0, 1), targets.to(frames.device), out_lens, target_lens,
                          blank=model.blank_id, reduction="sum", zero_infinity=True)
        return loss, target_lens.sum(), (log_probs, out_lens)

    def train_loss(self, model, batch: dict) -> torch.Tensor:
        loss, count, _ = self._loss(model, batch, self.train_set, True)
        return loss / count.clamp_min(1)

    def valid_loss(self, model, batch: dict) -> tuple[float, float]:
        loss, count, (log_probs, lens) = self._loss(model, batch, self.valid_set, False)
        vocab = model.vocab_ids.tolist()
        for i, hyp in zip(batch["indices"].tolist(), greedy_decode(log_probs, lens, model.blank_id)):
            text = self.tokenizer.decode([vocab[c] for c in hyp])
            self._hyps.append((self.valid_set.records[i]["text"].lower(), text.strip()))
        return float(loss), float(count)

    def valid_report(self) -> dict:
        import jiwer

        pairs, self._hyps = self._hyps, []
        if not pairs:
            return {}
        refs, hyps = zip(*pairs)
        return {"greedy_wer": float(jiwer.wer(list(refs), list(hyps)))}

    def checkpoint_content(self, out_dir: Path) -> tuple[dict, dict, dict]:
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        meta = {"encoder_cache": self.cache.module_key, "classes": self.model.blank_id + 1}
        return state, meta, {}


def run_proj_stage(cfg: ExperimentConfig, exp_dir: str | Path, resume: bool = True, cpu: bool = False,
                   stop_after: int | None = None, progress_bar: bool = True) -> TrainResult:
    """Pre-align the projector into ``<exp_dir>/proj``; resumes from ``proj/last`` when ``resume``."""
    stage_dir = Path(exp_dir) / "proj"
    return run_training(lambda: ProjCTCStage(cfg, exp_dir, progress=progress_bar), cfg, stage_dir, resume, cpu,
                        stop_after, progress_bar)
