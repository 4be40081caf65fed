"""Stage ``llm``: train the projector, the LoRA adapter and the ``<wait>`` token rows (DESIGN.md §2).

The model is built by :func:`speech_llm.build.build_speech_llm` on the encoder of a CTC checkpoint
(``<exp>/ctc/best``, or ``encoder_checkpoint``). Each training utterance gets its target here:

* its target words are tokenized with the LLM tokenizer in context: ``"WORD"`` for the first word,
  ``" WORD"`` for the others. For ``llm.task=asr`` they are the transcript's words with their end
  times from the manifest's ``words`` alignment; for ``llm.task=st`` they are the words (split on
  spaces) of the manifest's ``translation[llm.target_lang]``, each given the end time of a source word by
  the monotonic proportional rule of :func:`speech_llm.targets.target_word_ends` (the last target word
  waits for the last source word);
* a share ``streaming.batch_mode_share`` of the samples (drawn per sample from the global RNG, so a
  resumed run draws the same) gets the batch-mode target ``words <eos>`` seeing the whole source;
* the others get the streaming target of :func:`speech_llm.targets.streaming_target`: the words whose
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
the CTC checkpoint (see :mod:`speech_llm.checkpoint`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from speech_common.errors import UserError
from speech_llm.build import build_speech_llm, check_same_encoder
from speech_llm.checkpoint import (
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
from speech_llm.config import ExperimentConfig, LLMConfig
from speech_llm.framing import word_token_ids
from speech_llm.targets import (
    Target,
    assign_words_to_chunks,
    batch_target,
    streaming_target,
    target_word_ends,
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
    :func:`~speech_llm.targets.target_word_ends` from the source word alignment. A record without that
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
        level = 0.0 if float(torch.rand(())) < 0.2 else 10.0 ** (-(30.0 + 50.0 * float(torch.rand(()))) / 20.0)
        fb = compute(torch.randn(n * hop) * level)
        out[b, :n] = fb[:n].to(out.dtype)
    return out


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

    def __init__(self, cfg: ExperimentConfig, ctc_checkpoint: str | Path, resume_from: Path | None = None):
        if cfg.llm.task not in ("asr", "st"):
            raise UserError(f"llm.task={cfg.llm.task}: the llm stage trains speech recognition (asr) or speech "
                            "translation (st); text translation is `speech-llm train --stage mt`")
        self.cfg = cfg
        self.ctc_path = find_checkpoint(ctc_checkpoint, "ctc")
        self.ctc_digest = file_digest(self.ctc_path / MODEL)
        if resume_from is not None and is_checkpoint(resume_from):
            ref = read_checkpoint(resume_from).meta.get("encoder_checkpoint") or {}
            if cfg.train.llm.freeze_encoder and ref.get("sha256") not in (None, self.ctc_digest):
                raise UserError(f"cannot resume {resume_from}: the encoder checkpoint {self.ctc_path} "
                                "changed since that run started (restart the llm stage)")
        ctc_model, _, ctc_cfg = load_ctc_model(self.ctc_path, dynamic_chunk=False)
        check_same_encoder(cfg.encoder, ctc_cfg.encoder, str(self.ctc_path))
        self.model, self.tokenizer = build_speech_llm(cfg, encoder=ctc_model.encoder, cmvn=ctc_model.cmvn)
        share = cfg.streaming.batch_mode_share
        self.train_set, self.valid_set, self.dropped = load_datasets(cfg)
        self.words: dict[int, list[tuple[list[list[int]], list[float] | None]]] = {}
        for ds in (self.train_set, self.valid_set):
            if ds is not None:
                self.words[id(ds)] = [(word_token_ids(self.tokenizer, w), ends)
                                      for w, ends in target_words_of(ds.records, cfg.llm, share < 1.0,
                                                                     ds.source)]

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
        num_tokens = m.projector.output_lengths(m.encoder.output_lengths(batch["feat_lens"])).tolist()
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
                     t["source_visible"], t.get("chunk_frames"))

    def train_loss(self, model, batch: dict) -> torch.Tensor:
        share = self.cfg.streaming.batch_mode_share
        batch_mode = (torch.rand(len(batch["keys"])) < share).tolist()
        silent = None
        if self.cfg.train.llm.silence_share > 0:
            silent = (torch.rand(len(batch["keys"])) < self.cfg.train.llm.silence_share).tolist()
            if any(silent):
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
        state = trained_state(self.model, prefixes=("cmvn.",) if frozen else ("cmvn.", "encoder."))
        meta = {"base_llm": llm_reference(self.cfg.llm.path_or_name, out_dir),
                "encoder_checkpoint": {**path_reference(self.ctc_path, out_dir), "sha256": self.ctc_digest},
                "encoder_in_checkpoint": not frozen}
        return state, meta, {TOKENIZER_DIR: self.tokenizer.save_pretrained}


def run_llm_stage(cfg: ExperimentConfig, exp_dir: str | Path, encoder_checkpoint: str | Path | None = None,
                  resume: bool = True, cpu: bool = False, stop_after: int | None = None,
                  progress_bar: bool = True) -> TrainResult:
    """Train the speech LLM into ``<exp_dir>/llm`` on the encoder of ``encoder_checkpoint`` (default
    ``<exp_dir>/ctc``); resumes from ``llm/last`` when ``resume``."""
    stage_dir = Path(exp_dir) / "llm"
    return run_training(lambda: LLMStage(cfg, encoder_checkpoint or Path(exp_dir) / "ctc",
                                         resume_from=stage_dir / LAST),
                        cfg, stage_dir, resume, cpu, stop_after, progress_bar)
