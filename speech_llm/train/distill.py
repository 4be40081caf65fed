"""Stage ``distill``: teach a pretrained Whisper encoder to stream (self-distillation under chunk masks).

Whisper's encoder was trained attending to its whole 30 s window. Under a 640 ms chunk mask (each frame
sees its own chunk and the past, nothing later) its frames move away from what its decoder, or anything
trained on them, expects: Whisper's own decoder goes from 5.6 % to 26.6 % WER on espeak-ng sentences
(``bench/whisper_chunk_mask.py``). This stage fine-tunes a copy of the encoder (the *student*, every weight)
so that its output under the chunk mask matches the frozen encoder's full-attention output over the same
utterance (the *teacher*). No transcript is needed, so any audio serves.

* Teacher frames: full attention over each utterance alone (not padded to 30 s: frame cosine 0.95 to the
  padded output, and Whisper's decoder reads both equally well, 5.1 vs 5.6 % WER, at a sixth of the cost),
  computed **once** and cached (:class:`encoders.feature_cache.FeatureCache`, keyed by the teacher's weights
  and the audio), so a training step pays only for the student.
* Student: the same encoder under the chunk mask of a chunk size drawn per batch from
  ``train.distill.chunk_ms_choices`` (left context ``encoder.left_chunks``), trained with the frame MSE
  (mean over the real frames and channels). Validation reports the MSE and the mean frame cosine at the
  decoding chunk ``streaming.chunk_ms``.
* Output: ``<exp>/distill/{best,last}``; each holds, besides the checkpoint, ``whisper/``: a complete
  transformers Whisper dir (the student's encoder with the original decoder and processor), which
  ``encoder.path_or_name`` can name and ``speech-llm whisper-decode --encoder-chunk-ms`` can read.

Config: ``encoder.name: whisper`` with ``encoder.path_or_name`` (the teacher and the student's start),
``train.distill`` (lr about 2e-5: at 1e-4 the encoder broke in a probe), ``data.cache_dir``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from encoders.feature_cache import FeatureCache, state_digest
from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig
from speech_llm.model.build import build_encoder_from_config
from speech_llm.model.checkpoint import LAST
from speech_llm.train.ctc import load_datasets
from speech_llm.train.data import FbankDataset
from speech_llm.train.trainer import Stage, TrainResult, run_training

WHISPER_DIR = "whisper"
"""The transformers Whisper dir inside each distill checkpoint."""


def cache_root(cfg: ExperimentConfig, exp_dir: str | Path) -> Path:
    """``data.cache_dir``, or ``<exp>/cache``."""
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(exp_dir) / "cache"


class TeacherFrames(torch.utils.data.Dataset):
    """A speech dataset whose items also carry the teacher's frames ``teacher`` (T', D), from the cache."""

    def __init__(self, base: FbankDataset, cache: FeatureCache):
        self.base, self.cache = base, cache
        self.records, self.source, self.compute = base.records, base.source, base.compute

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        teacher = self.cache.get(self.records[index]["audio"])
        if teacher is None:
            raise UserError(f"{self.source}: no cached teacher frames for {self.records[index]['key']} "
                            f"(cache {self.cache.dir}); the stage fills the cache when it starts")
        return {**item, "teacher": teacher}


def collate_teacher(items: list[dict]) -> dict:
    """:func:`speech_llm.train.data.collate` plus ``teacher`` (B, T', D) zero-padded and ``teacher_lens``."""
    from speech_llm.train.data import collate, pad_field

    teacher, lens = pad_field(items, "teacher")
    return {**collate(items), "teacher": teacher, "teacher_lens": lens}


class DistillStage(Stage):
    """The ``distill`` stage for the trainer (see the module docstring)."""

    name = "distill"

    def __init__(self, cfg: ExperimentConfig, exp_dir: str | Path, progress: bool = True):
        if cfg.encoder.name != "whisper":
            raise UserError(f"--stage distill adapts a pretrained Whisper encoder to chunk masks; encoder.name is "
                            f"{cfg.encoder.name!r} (a Conformer trained here is trained under chunk masks already)")
        self.cfg = cfg
        teacher = build_encoder_from_config(cfg.encoder, dynamic_chunk=False).eval().requires_grad_(False)
        self.model = build_encoder_from_config(cfg.encoder, dynamic_chunk=False)
        self.frame_ms = self.model.frame_shift_s * 1000.0
        self.chunks = [self._frames(c, "train.distill.chunk_ms_choices") for c in cfg.train.distill.chunk_ms_choices]
        self.valid_chunk = self._frames(cfg.streaming.chunk_ms, "streaming.chunk_ms")
        base_train, base_valid, self.dropped = load_datasets(cfg)
        self.cache = FeatureCache(cache_root(cfg, exp_dir), f"whisper-encoder {state_digest(teacher)} full-attention")
        compute = base_train.compute

        @torch.inference_mode()
        def teacher_frames(path: str) -> torch.Tensor:
            from data_prep.audio import read_audio

            feats = compute(torch.from_numpy(read_audio(path)))
            out, _ = teacher(feats[None], torch.tensor([feats.size(0)]))
            return out[0]

        records = base_train.records + (base_valid.records if base_valid is not None else [])
        self.cache.fill([r["audio"] for r in records], teacher_frames, progress=progress, desc="teacher frames")
        self.train_set = TeacherFrames(base_train, self.cache)
        self.valid_set = TeacherFrames(base_valid, self.cache) if base_valid is not None else None
        self._cos: list[float] = []

    def _frames(self, chunk_ms: int, key: str) -> int:
        frames = chunk_ms / self.frame_ms
        if frames < 1 or abs(frames - round(frames)) > 1e-9:
            raise UserError(f"{key}: {chunk_ms} ms is not a whole number of {self.frame_ms:g} ms encoder frames")
        return int(round(frames))

    def collate(self, items: list) -> dict:
        return collate_teacher(items)

    def _loss(self, model, batch: dict, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(MSE over real frames and channels, per-frame cosine of the real frames, number of frames)``."""
        out, lens = model(batch["feats"], batch["feat_lens"], chunk, self.cfg.encoder.left_chunks)
        teacher = batch["teacher"][:, : out.size(1)]
        valid = torch.arange(out.size(1), device=out.device).unsqueeze(0) < lens.unsqueeze(1)
        diff = (out - teacher)[valid]
        cos = F.cosine_similarity(out[valid], teacher[valid], dim=-1)
        return diff.pow(2).mean(), cos, valid.sum()

    def train_loss(self, model, batch: dict) -> torch.Tensor:
        chunk = self.chunks[int(torch.randint(len(self.chunks), ()))] if len(self.chunks) > 1 else self.chunks[0]
        return self._loss(model, batch, chunk)[0]

    def valid_loss(self, model, batch: dict) -> tuple[float, float]:
        loss, cos, count = self._loss(model, batch, self.valid_chunk)
        self._cos += cos.tolist()
        return float(loss) * int(count), float(count)

    def valid_report(self) -> dict:
        cos, self._cos = self._cos, []
        return {"frame_cos": sum(cos) / len(cos)} if cos else {}

    def checkpoint_content(self, out_dir: Path) -> tuple[dict, dict, dict]:
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        meta = {"teacher": str(self.cfg.encoder.path_or_name), "cache": str(self.cache.dir)}
        return state, meta, {WHISPER_DIR: lambda path: save_whisper_dir(self.cfg.encoder.path_or_name,
                                                                        state, path)}


def save_whisper_dir(base: str, encoder_state: dict, out: str | Path) -> Path:
    """A complete transformers Whisper dir at ``out``: ``base``'s model and processor (when it has one) with the encoder
    weights replaced by ``encoder_state`` (a :class:`~encoders.whisper.WhisperStreamingEncoder` state dict)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from speech_common.hf import quiet_transformers

    renames = {"embed.conv1.": "conv1.", "embed.conv2.": "conv2."}
    mapped = {}
    for key, value in encoder_state.items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old):]
        mapped[key] = value
    with quiet_transformers():
        model = WhisperForConditionalGeneration.from_pretrained(str(base))
        try:
            processor = WhisperProcessor.from_pretrained(str(base))
        except OSError:   # a bare model dir (no tokenizer / feature extractor files): the model alone
            processor = None
    missing, unexpected = model.model.encoder.load_state_dict(mapped, strict=False)
    if unexpected or [k for k in missing if not k.startswith("embed_positions")]:
        raise ValueError(f"encoder weights do not fit {base}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    with quiet_transformers():
        model.save_pretrained(str(out))
        if processor is not None:
            processor.save_pretrained(str(out))
    return Path(out)


def run_distill_stage(cfg: ExperimentConfig, exp_dir: str | Path, resume: bool = True, cpu: bool = False,
                      stop_after: int | None = None, progress_bar: bool = True) -> TrainResult:
    """Distill the encoder into ``<exp_dir>/distill``; resumes from ``distill/last`` when ``resume``."""
    stage_dir = Path(exp_dir) / "distill"
    return run_training(lambda: DistillStage(cfg, exp_dir, progress=progress_bar), cfg, stage_dir, resume, cpu,
                        stop_after, progress_bar)


__all__ = ["DistillStage", "LAST", "WHISPER_DIR", "cache_root", "run_distill_stage", "save_whisper_dir"]
