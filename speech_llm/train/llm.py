"""Stage ``llm``: train the projector, the LoRA adapter and the ``<wait>`` token rows (DESIGN.md §2).

The model is built by :func:`speech_llm.model.build.build_speech_llm` on the encoder of a CTC checkpoint
(``<exp>/ctc/best``, or ``encoder_checkpoint``). Each training utterance gets its target here:

* its target words are tokenized with the LLM tokenizer in context: ``"WORD"`` for the first word,
  ``" WORD"`` for the others. For ``llm.task=asr`` they are the transcript's words with their end
  times from the manifest's ``words`` alignment; for ``llm.task=st`` they are the words (split on
  spaces) of the manifest's ``translation[llm.target_lang]``, each given the end time of a source word by
  the monotonic proportional rule of :func:`speech_llm.lm.targets.target_word_ends` (the last target word
  waits for the last source word);
* a share ``streaming.batch_mode_share`` of the samples (drawn per sample from the global RNG, so a
  resumed run draws the same) gets the batch-mode target ``words <eos>`` seeing the whole source;
* the others get the streaming target of :func:`speech_llm.lm.targets.streaming_target`: the words whose
  end time falls in chunks ``1..i-L`` are written after chunk ``i`` (chunk = ``streaming.chunk_ms``,
  ``L`` = ``streaming.delay_chunks``), each chunk closed by ``<wait>``;
* with ``streaming.chunk_ms_choices`` (e.g. ``[320, 480, 640, 960, 1280]``) each sample draws its chunk
  (and with ``delay_choices`` its shift) from the global torch RNG, so one checkpoint decodes at every
  chunk size; its target and its encoder chunk mask are built for the chunk it drew (validation fixes the
  draw per key). Without choices nothing is drawn (the RNG stream is that of a single-chunk run);
* the encoder runs with the chunk mask of that same chunk (``SpeechLLM`` does this), so training sees
  exactly the audio tokens streaming inference produces; the loss is on target tokens only.

Validation uses the same mix, the mode chosen per utterance from a hash of its key (fixed across
epochs). The frozen encoder (and CMVN) stays in eval mode; SpecAugment is not used in this stage.

Output: ``<exp>/llm/{best,last}`` holding the projector, LoRA, wait-token rows, CMVN stats (and the
encoder if ``train.freeze_encoder`` is false), the tokenizer, and references to the base LLM and to
the CTC checkpoint (see :mod:`speech_llm.model.checkpoint`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from encoders.feature_cache import state_digest
from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig, LLMConfig
from speech_llm.lm.framing import word_token_ids
from speech_llm.lm.targets import (
    Target,
    assign_words_to_chunks,
    batch_target,
    streaming_target,
    target_word_ends,
)
from speech_llm.model.build import build_encoder_from_config, build_speech_llm, check_same_encoder
from speech_llm.model.checkpoint import (
    LAST,
    MODEL,
    TOKENIZER_DIR,
    file_digest,
    find_checkpoint,
    is_checkpoint,
    llm_reference,
    load_ctc_model,
    path_reference,
    read_checkpoint,
    trained_state,
)
from speech_llm.train.ctc import load_datasets
from speech_llm.train.data import FbankDataset
from speech_llm.train.trainer import Stage, TrainResult, run_training


def words_of(records: list[dict], need_times: bool,
             source: str) -> list[tuple[list[str], list[float] | None]]:
    """Per record: its words and their end times (from ``words``), or the transcript's words without times."""
    missing = [r["key"] for r in records if not r.get("words")]
    if need_times and missing:
        raise UserError(f"{source}: {len(missing)} utterance(s) have no word alignments (e.g. "
                        f"{', '.join(missing[:3])}); run `speech-llm train --stage align` first, or train in "
                        "batch mode only (streaming.batch_mode_share=1)")
    out = []
    for r in records:
        if r.get("words"):
            out.append(([w["word"] for w in r["words"]], [float(w["end"]) for w in r["words"]]))
        else:
            out.append((r["text"].split(), None))
    return out


def target_words_of(records: list[dict], llm: LLMConfig, need_times: bool,
                    source: str) -> list[tuple[list[str], list[float] | None]]:
    """Per record: the words the LLM must write and their end times (None without an alignment).

    ``llm.task`` asr: :func:`words_of`. st: the words of ``translation[llm.target_lang]``, timed by
    :func:`~speech_llm.lm.targets.target_word_ends` from the source word alignment. A record without that
    translation is a UserError naming ``source`` (the manifest), the key and some utterances.
    """
    src = words_of(records, need_times, source)
    if llm.task == "asr":
        return src if llm.target_case == "as_is" else [([w.lower() for w in ws], ends) for ws, ends in src]
    lang = llm.target_lang
    missing = [r["key"] for r in records if not str((r.get("translation") or {}).get(lang) or "").strip()]
    if missing:
        have = sorted({k for r in records for k in (r.get("translation") or {})})
        raise UserError(f"{source}: {len(missing)} of {len(records)} utterance(s) have no 'translation' "
                        f"{lang!r} (manifest key translation.{lang}), e.g. {', '.join(missing[:3])}; "
                        f"llm.task={llm.task} trains on it (languages found: {', '.join(have) or 'none'}; "
                        "set llm.target_lang)")
    out = []
    for r, (_, ends) in zip(records, src):
        words = r["translation"][lang].split()
        if llm.target_case == "lower":
            words = [w.lower() for w in words]
        out.append((words, None if ends is None else target_word_ends(ends, len(words))))
    return out


def silence_level() -> float:
    """An RMS level for a silent sample: digital zeros one time in five, else white noise at a log-uniform level
    between -80 and -30 dBFS (drawn from the global torch RNG, so a resumed run draws the same)."""
    return 0.0 if float(torch.rand(())) < 0.2 else 10.0 ** (-(30.0 + 50.0 * float(torch.rand(()))) / 20.0)


def silence_like(feats: torch.Tensor, feat_lens: torch.Tensor, rows: list[bool], features=None) -> torch.Tensor:
    """``feats`` (B, T, F) with the real frames of the marked rows replaced by the features of silence:
    digital zeros (one in five) or white noise at a log-uniform level between -80 and -30 dBFS (RMS). Drawn
    from the global torch RNG, so a resumed run draws the same. ``features``: the encoder's feature function
    (default fbank)."""
    from encoders.constants import FRAME_SHIFT_MS, SAMPLE_RATE
    from encoders.frontend import compute_fbank

    compute = features or compute_fbank
    out = feats.clone()
    hop = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)
    for b, quiet in enumerate(rows):
        if not quiet:
            continue
        n = int(feat_lens[b])
        level = silence_level()
        fb = compute(torch.randn(n * hop) * level)
        out[b, :n] = fb[:n].to(out.dtype)
    return out


SILENCE_POOL = 24
"""Clips of silence or noise whose encoder frames a cached llm stage draws its silent samples from."""


def silence_frames(encoder, compute, chunk_frames: int, left_chunks: int, n: int = SILENCE_POOL,
                   seconds: float = 12.0) -> list[torch.Tensor]:
    """Encoder frames (T', D) of ``n`` clips of ``seconds`` of digital silence or white noise at a log-uniform
    level between -80 and -30 dBFS (:func:`silence_like`'s draw), for a stage that reads cached frames: its
    silent samples take (a crop of) one of them. Drawn from the global torch RNG."""
    from encoders.constants import SAMPLE_RATE

    out = []
    with torch.inference_mode():
        for _ in range(n):
            level = silence_level()
            feats = compute(torch.randn(int(seconds * SAMPLE_RATE)) * level)
            frames, _ = encoder(feats[None], torch.tensor([feats.size(0)]), chunk_frames, left_chunks)
            out.append(frames[0])
    return out


def with_silence_frames(frames: torch.Tensor, lens: torch.Tensor, rows: list[bool],
                        pool: list[torch.Tensor]) -> torch.Tensor:
    """``frames`` (B, T', D) with the real frames of the marked rows replaced by the start of a pool clip (drawn
    from the global torch RNG; repeated when the row is longer than the clip)."""
    out = frames.clone()
    for b, quiet in enumerate(rows):
        if quiet:
            n, clip = int(lens[b]), pool[int(torch.randint(len(pool), ()))]
            reps = -(-n // clip.size(0))
            out[b, :n] = clip.repeat(reps, 1)[:n].to(out.dtype)
    return out


def uses_pretrained_encoder(cfg: ExperimentConfig, ctc_checkpoint: str | Path | None) -> bool:
    """True when the llm stage takes a pretrained encoder as it is (``encoder.name: whisper``, frozen, e.g. the
    ``distill`` stage's Whisper dir) because no CTC checkpoint exists at ``ctc_checkpoint``."""
    return cfg.encoder.name == "whisper" and cfg.train.llm.freeze_encoder and \
        (ctc_checkpoint is None or not Path(ctc_checkpoint).exists())


def is_batch_mode_key(key: str, share: float) -> bool:
    """Fixed per-utterance choice for validation: batch mode for about ``share`` of the keys."""
    return zlib.crc32(key.encode("utf-8")) % 10000 < share * 10000


class LLMStage(Stage):
    """The ``llm`` stage for the trainer (see the module docstring).

    Args:
        cfg: the experiment config.
        ctc_checkpoint: the CTC checkpoint (or exp/stage dir) whose encoder to use.
        resume_from: the ``last`` checkpoint a resumed run continues (checked to use the same encoder).
    """

    name = "llm"

    def __init__(self, cfg: ExperimentConfig, ctc_checkpoint: str | Path | None, resume_from: Path | None = None,
                 exp_dir: str | Path | None = None):
        if cfg.llm.task not in ("asr", "st"):
            raise UserError(f"llm.task={cfg.llm.task}: the llm stage trains speech recognition (asr) or speech "
                            "translation (st); text translation is `speech-llm train --stage mt`")
        self.cfg = cfg
        tc = cfg.train.llm
        self.ctc_path = None if uses_pretrained_encoder(cfg, ctc_checkpoint) else find_checkpoint(ctc_checkpoint, "ctc")
        if self.ctc_path is None:   # a pretrained (e.g. distilled Whisper) encoder, frozen, from encoder.path_or_name
            encoder, cmvn = build_encoder_from_config(cfg.encoder, dynamic_chunk=False), None
            self.encoder_digest = state_digest(encoder)
        else:
            ctc_model, _, ctc_cfg = load_ctc_model(self.ctc_path, dynamic_chunk=False)
            check_same_encoder(cfg.encoder, ctc_cfg.encoder, str(self.ctc_path))
            encoder, cmvn = ctc_model.encoder, ctc_model.cmvn
            self.encoder_digest = file_digest(self.ctc_path / MODEL)
        if resume_from is not None and is_checkpoint(resume_from):
            meta = read_checkpoint(resume_from).meta
            ref = meta.get("encoder_checkpoint") or meta.get("encoder_pretrained") or {}
            if tc.freeze_encoder and ref.get("sha256") not in (None, self.encoder_digest):
                where = self.ctc_path or cfg.encoder.path_or_name
                raise UserError(f"cannot resume {resume_from}: the encoder ({where}) changed since that run started "
                                "(restart the llm stage)")
        projector_state = None
        if tc.init_projector:
            ckpt = read_checkpoint(find_checkpoint(tc.init_projector, "proj"))
            projector_state = ckpt.state()
            if cfg.projector.kind == "vocab":
                cfg.projector.vocab_size = int(projector_state["vocab_ids"].numel())
        self.model, self.tokenizer = build_speech_llm(cfg, encoder=encoder, cmvn=cmvn)
        if projector_state is not None:
            self.model.projector.load_state_dict(projector_state)
        share = cfg.streaming.batch_mode_share
        self.train_set, self.valid_set, self.dropped = load_datasets(cfg)
        self.words: dict[int, list[tuple[list[list[int]], list[float] | None]]] = {}
        need_times = share < 1.0 and not cfg.streaming.untimed_as_batch
        for ds in (self.train_set, self.valid_set):
            if ds is not None:
                self.words[id(ds)] = [(word_token_ids(self.tokenizer, w), ends)
                                      for w, ends in target_words_of(ds.records, cfg.llm, need_times, ds.source)]
        self.cached = tc.cache_encoder_frames
        if self.cached:
            self._use_cached_frames(exp_dir)

    def _use_cached_frames(self, exp_dir: str | Path | None) -> None:
        """Swap the datasets for the frozen encoder's cached streamed frames (filled here when missing)."""
        from speech_llm.train.proj import CachedFrames, encoder_cache, fill_encoder_cache

        cfg = self.cfg
        if not cfg.train.llm.freeze_encoder or cfg.streaming.chunk_ms_choices:
            raise UserError("train.llm.cache_encoder_frames needs a frozen encoder (train.llm.freeze_encoder) and one "
                            "chunk size (streaming.chunk_ms_choices: [])")
        enc = self.model.encoder.eval()
        self.cache = encoder_cache(cfg, enc, exp_dir or ".", self.model.chunk_frames)
        records = self.train_set.records + (self.valid_set.records if self.valid_set is not None else [])
        compute = self.train_set.compute
        if self.model.cmvn is not None:
            cmvn = self.model.cmvn
            compute = (lambda f: lambda x: cmvn(f(x)))(compute)
        fill_encoder_cache(self.cache, enc, compute, records, self.model.chunk_frames, cfg.encoder.left_chunks)
        if cfg.train.llm.silence_share > 0:
            self.silence_pool = silence_frames(enc, compute, self.model.chunk_frames, cfg.encoder.left_chunks)
        previous = (self.train_set, self.valid_set)
        self.train_set = CachedFrames(self.train_set, self.cache)
        self.valid_set = CachedFrames(self.valid_set, self.cache) if self.valid_set is not None else None
        for ds, prev in zip((self.train_set, self.valid_set), previous):
            if ds is not None:   # the same records: their targets carry over
                self.words[id(ds)] = self.words.pop(id(prev))

    def collate(self, items: list) -> dict:
        if not self.cached:
            return super().collate(items)
        from speech_llm.train.proj import collate_frames

        batch = collate_frames(items)
        return {**batch, "feats": batch.pop("frames"), "feat_lens": batch.pop("frame_lens")}

    def batch_audio_s(self, batch: dict) -> float:
        if not self.cached:
            return super().batch_audio_s(batch)
        return float(batch["feat_lens"].sum()) * self.model.encoder.frame_shift_s

    # ------------------------------------------------------------------ targets
    def target(self, word_ids: list[list[int]], word_ends: list[float] | None, num_audio_tokens: int,
               batch_mode: bool, chunk_ms: int | None = None, delay: int | None = None) -> Target:
        """The target of one utterance with ``num_audio_tokens`` audio tokens (see the module docstring), for
        chunks of ``chunk_ms`` and target shift ``delay`` (defaults: ``streaming.chunk_ms`` / ``delay_chunks``)."""
        m, tok, st = self.model, self.model.tokens, self.cfg.streaming
        source_len = m.prompt_len + num_audio_tokens + len(tok.end_ids)
        if batch_mode or word_ends is None:
            return batch_target(word_ids, source_len, bos_id=tok.bos_id, eos_id=tok.eos_id)
        chunk_ms = st.chunk_ms if chunk_ms is None else chunk_ms
        chunk_ends = m.chunk_source_ends(num_audio_tokens, m.frames_for_chunk(chunk_ms) // m.projector.stack)
        chunks = assign_words_to_chunks(word_ends, chunk_ms / 1000.0, len(chunk_ends),
                                        st.delay_chunks if delay is None else delay)
        return streaming_target(word_ids, chunks, chunk_ends, source_len, bos_id=tok.bos_id,
                                wait_id=tok.wait_id, eos_id=tok.eos_id)

    def draw(self, n: int) -> tuple[list[int], list[int]] | None:
        """Chunk sizes (ms) and target shifts of ``n`` training samples, drawn from the global torch RNG
        (part of the resume state), or None when the config trains one chunk and one shift (no draw)."""
        st = self.cfg.streaming
        if not st.chunk_ms_choices and not st.delay_choices:
            return None
        chunks, delays = st.chunk_ms_choices or [st.chunk_ms], st.delay_choices or [st.delay_chunks]
        return ([chunks[int(torch.randint(len(chunks), ()))] for _ in range(n)],
                [delays[int(torch.randint(len(delays), ()))] for _ in range(n)])

    def fixed_draw(self, keys: list[str]) -> tuple[list[int], list[int]] | None:
        """Validation: a chunk size and shift fixed per utterance key (the same every epoch)."""
        st = self.cfg.streaming
        if not st.chunk_ms_choices and not st.delay_choices:
            return None
        chunks, delays = st.chunk_ms_choices or [st.chunk_ms], st.delay_choices or [st.delay_chunks]
        h = [zlib.crc32(("chunk:" + k).encode("utf-8")) for k in keys]
        return [chunks[x % len(chunks)] for x in h], [delays[(x // 7) % len(delays)] for x in h]

    def targets(self, batch: dict, dataset: FbankDataset, batch_mode: list[bool],
                silent: list[bool] | None = None,
                drawn: tuple[list[int], list[int]] | None = None) -> dict[str, torch.Tensor]:
        """Padded target rows of a batch: ``input_ids``, ``labels``, ``source_visible`` (B, U),
        ``target_lens`` (B,) and, with ``drawn`` (per-sample chunk sizes and shifts), ``chunk_frames`` (B,)
        for the encoder's chunk mask. Rows marked ``silent`` get an empty transcript (see :func:`silence_like`)."""
        m = self.model
        frames = batch["feat_lens"] if self.cached else m.encoder.output_lengths(batch["feat_lens"])
        num_tokens = m.projector.output_lengths(frames).tolist()
        silent = silent or [False] * len(num_tokens)
        chunks, delays = drawn or ([None] * len(num_tokens), [None] * len(num_tokens))
        rows = [self.target(*(([], []) if quiet else self.words[id(dataset)][int(i)]), n, bm, c, d)
                for i, n, bm, quiet, c, d in zip(batch["indices"].tolist(), num_tokens, batch_mode, silent,
                                                 chunks, delays)]
        dev = batch["feats"].device

        def pad(name: str) -> torch.Tensor:
            return pad_sequence([torch.tensor(getattr(t, name), dtype=torch.long) for t in rows],
                                batch_first=True).to(dev)

        out = {"input_ids": pad("input_ids"), "labels": pad("labels"),
               "source_visible": pad("source_visible"),
               "target_lens": torch.tensor([len(t.labels) for t in rows], dtype=torch.long, device=dev)}
        if drawn is not None:
            out["chunk_frames"] = torch.tensor([m.frames_for_chunk(c) for c in chunks], device=dev)
        return out

    # ------------------------------------------------------------------ stage interface
    def set_train_mode(self) -> None:
        self.model.train()
        if self.cfg.train.llm.freeze_encoder:
            self.model.encoder.eval()

    def _loss(self, model, batch: dict, dataset: FbankDataset, batch_mode: list[bool],
              silent: list[bool] | None = None, drawn: tuple[list[int], list[int]] | None = None):
        t = self.targets(batch, dataset, batch_mode, silent, drawn)
        return model(batch["feats"], batch["feat_lens"], t["input_ids"], t["labels"], t["target_lens"],
                     t["source_visible"], t.get("chunk_frames"), encoded=self.cached)

    def train_loss(self, model, batch: dict) -> torch.Tensor:
        share = self.cfg.streaming.batch_mode_share
        batch_mode = (torch.rand(len(batch["keys"])) < share).tolist()
        silent = None
        if self.cfg.train.llm.silence_share > 0:
            silent = (torch.rand(len(batch["keys"])) < self.cfg.train.llm.silence_share).tolist()
            if any(silent) and self.cached:
                batch = {**batch, "feats": with_silence_frames(batch["feats"], batch["feat_lens"], silent,
                                                               self.silence_pool)}
            elif any(silent):
                batch = {**batch, "feats": silence_like(batch["feats"], batch["feat_lens"], silent,
                                                        self.train_set.compute)}
        return self._loss(model, batch, self.train_set, batch_mode, silent, self.draw(len(batch["keys"]))).loss

    def valid_loss(self, model, batch: dict) -> tuple[float, float]:
        share = self.cfg.streaming.batch_mode_share
        out = self._loss(model, batch, self.valid_set, [is_batch_mode_key(k, share) for k in batch["keys"]],
                         drawn=self.fixed_draw(batch["keys"]))
        return float(out.loss) * out.num_tokens, float(out.num_tokens)

    def checkpoint_content(self, out_dir: Path) -> tuple[dict, dict, dict]:
        frozen = self.cfg.train.llm.freeze_encoder
        state = trained_state(self.model, prefixes=("cmvn.", "projector.") if frozen
                              else ("cmvn.", "encoder.", "projector."))
        meta = {"base_llm": llm_reference(self.cfg.llm.path_or_name, out_dir), "encoder_in_checkpoint": not frozen}
        if self.ctc_path is None:
            meta["encoder_pretrained"] = {**path_reference(self.cfg.encoder.path_or_name, out_dir),
                                          "sha256": self.encoder_digest}
        else:
            meta["encoder_checkpoint"] = {**path_reference(self.ctc_path, out_dir), "sha256": self.encoder_digest}
        return state, meta, {TOKENIZER_DIR: self.tokenizer.save_pretrained}


def run_llm_stage(cfg: ExperimentConfig, exp_dir: str | Path, encoder_checkpoint: str | Path | None = None,
                  resume: bool = True, cpu: bool = False, stop_after: int | None = None,
                  progress_bar: bool = True) -> TrainResult:
    """Train the speech LLM into ``<exp_dir>/llm`` on the encoder of ``encoder_checkpoint`` (default
    ``<exp_dir>/ctc``); resumes from ``llm/last`` when ``resume``."""
    stage_dir = Path(exp_dir) / "llm"
    return run_training(lambda: LLMStage(cfg, encoder_checkpoint or Path(exp_dir) / "ctc",
                                         resume_from=stage_dir / LAST, exp_dir=exp_dir),
                        cfg, stage_dir, resume, cpu, stop_after, progress_bar)
