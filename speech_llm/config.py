"""The project's experiment config: typed dataclass sections loaded from YAML, with dotted overrides.

Usage:
    from speech_llm.config import load_config, save_config
    cfg = load_config("conf/mini.yaml", ["train.llm.lr=1e-4", "encoder.num_layers=2"])
    cfg.encoder.d_model                      # typed attribute access
    save_config(cfg, "exp/mini/config.yaml") # the resolved config, loadable again
    state = {"config": config_to_dict(cfg)}  # plain dict, to store inside a checkpoint
    cfg2 = config_from_dict(state["config"]) # == cfg

Every key is checked (unknown keys and wrong types are errors naming the dotted key; the rules are in
:mod:`speech_llm.typed_config`). Missing keys take the dataclass defaults, which describe a tiny CPU setup.
Each training stage has its own section (``train.ctc``, ``train.llm``, ``train.mt``), so a recipe keeps
every stage's hyperparameters in its YAML file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import yaml

from encoders.constants import FRAME_SHIFT_MS, NUM_MEL_BINS
from speech_common.endpoint import EndpointConfig
from speech_llm.typed_config import ConfigError, _describe, apply_overrides, dump_yaml, from_dict, to_dict

__all__ = ["ConfigError", "EndpointConfig", "ExperimentConfig", "config_from_dict", "config_from_saved",
           "config_to_dict", "dump_yaml", "load_config", "save_config"]


# ---------------------------------------------------------------------------------------------------
# The project's schema
# ---------------------------------------------------------------------------------------------------


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@dataclass
class EncoderConfig:
    """The chunked streaming encoder (a registry name plus its sizes); no free-form extras."""

    name: str = "conformer"
    """A registry name: ``conformer`` (trained from scratch) or ``whisper`` (a pretrained Whisper encoder)."""
    path_or_name: Optional[str] = None
    """whisper: the HF Whisper checkpoint (hub name such as openai/whisper-tiny.en, or a local dir, e.g.
    from ``speech-llm convert-whisper``). Its sizes come from there; use ``subsampling: 2`` (20 ms frames)."""
    adapt: Literal["full", "lora", "frozen"] = "full"
    """What the ctc stage trains in the encoder: everything (full), a LoRA adapter inside it (lora, merged
    into the saved encoder), or nothing but the CTC head (frozen)."""
    lora_rank: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    input_dim: int = NUM_MEL_BINS
    """Feature dimension (fbank bins)."""
    d_model: int = 144
    num_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 576
    conv_kernel: int = 15
    """Depthwise (causal) convolution kernel size."""
    subsampling: int = 4
    """Frame-rate reduction of the input layer: 10 ms fbank frames -> 40 ms encoder frames at 4."""
    dropout: float = 0.1
    left_chunks: int = -1
    """Chunks of left context each chunk may attend to; -1 = all."""
    dynamic_chunk: bool = True
    """Train with a random chunk size per batch (WeNet U2) so one model serves many chunk sizes. The attention
    chunk itself (validation, static-chunk training, alignment, decoding) is ``streaming.chunk_ms``, in encoder
    frames :func:`speech_llm.model.build.chunk_frames`."""

    removed_keys: ClassVar[dict[str, str]] = {
        "chunk_size": "the chunk has one unit, milliseconds: set streaming.chunk_ms (the encoder's chunk in "
                      "frames follows from it and encoder.subsampling)"}

    def validate(self) -> None:
        for name in ("input_dim", "d_model", "num_layers", "num_heads", "ffn_dim", "conv_kernel",
                     "subsampling"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(self.d_model % self.num_heads == 0, "d_model",
               f"{self.d_model} is not divisible by encoder.num_heads={self.num_heads}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.left_chunks >= -1, "left_chunks", f"must be -1 (all) or >= 0, got {self.left_chunks}")
        _check(self.name != "whisper" or bool(self.path_or_name), "path_or_name",
               "the whisper encoder needs a Whisper checkpoint (hub name or local dir)")
        _check(self.name != "whisper" or self.subsampling == 2, "subsampling",
               f"the whisper encoder has 20 ms frames: subsampling must be 2, got {self.subsampling}")
        _check(self.adapt != "lora" or self.lora_rank > 0, "lora_rank", "must be > 0 for adapt: lora")


@dataclass
class CTCConfig:
    """The CTC head on the encoder: output units and loss weight."""

    units: Literal["char", "bpe"] = "char"
    bpe_vocab_size: int = 256
    """Number of BPE units (used when units is 'bpe')."""
    weight: float = 1.0
    """Weight of the CTC loss (in the CTC stage, or as an auxiliary loss when the encoder is fine-tuned)."""

    def validate(self) -> None:
        _check(self.bpe_vocab_size > 1, "bpe_vocab_size", f"must be > 1, got {self.bpe_vocab_size}")
        _check(self.weight >= 0.0, "weight", f"must be >= 0, got {self.weight}")


@dataclass
class ProjectorConfig:
    """Encoder frames -> LLM embeddings: stack ``stack`` frames, then two linear layers."""

    stack: int = 4
    """Encoder frames stacked into one LLM input token (4 x 40 ms = 160 ms per token)."""
    hidden_dim: int = 256
    kind: Literal["mlp", "vocab"] = "mlp"
    """mlp: stacked frames -> Linear-GELU-Linear -> the LLM's input. vocab: the same MLP, then a softmax over
    the LLM's token embeddings (CTC classes, blank a learned row) whose posterior-weighted mix is the LLM's
    input (:class:`speech_llm.model.projector.VocabProjector`; pre-aligned by ``--stage proj``)."""
    vocab_size: int = 0
    """vocab: the number of CTC classes without blank (0 = the LLM's whole vocabulary); the llm stage sets it
    from the ``proj`` checkpoint it starts from."""
    temperature: float = 1.0
    """vocab: softmax temperature of the mix."""
    context_layers: int = 0
    """Transformer layers after the MLP (before the vocabulary for ``vocab``), under the streaming chunk mask of
    ``streaming.chunk_ms`` (a token sees its own chunk and earlier ones, never a later one), so each token reads
    its neighbours; 0 = none (each token sees its own stack of frames only)."""
    context_heads: int = 4
    """Attention heads of the context layers (the LLM's hidden size / heads must be even)."""
    context_left_chunks: int = -1
    """Chunks of left context the context layers see (-1 = all: the cache grows with the segment)."""
    context_dropout: float = 0.1
    """Dropout inside the context layers (training only)."""

    def validate(self) -> None:
        _check(self.stack > 0, "stack", f"must be positive, got {self.stack}")
        _check(self.context_layers >= 0, "context_layers", f"must be >= 0, got {self.context_layers}")
        _check(self.context_heads > 0, "context_heads", f"must be positive, got {self.context_heads}")
        _check(0.0 <= self.context_dropout < 1.0, "context_dropout", f"must be in [0, 1), got {self.context_dropout}")
        _check(self.hidden_dim > 0, "hidden_dim", f"must be positive, got {self.hidden_dim}")
        _check(self.vocab_size >= 0, "vocab_size", f"must be >= 0, got {self.vocab_size}")
        _check(self.temperature > 0, "temperature", f"must be positive, got {self.temperature}")


@dataclass
class PromptConfig:
    """The instruction text put in front of the audio, per task."""

    asr: str = "Transcribe the audio."
    st: str = "Translate the audio into French."
    mt: str = "Translate the English text into French:\n"
    """Text translation (stage ``mt``): the instruction in front of the source words."""


@dataclass
class LLMConfig:
    """The decoder-only LLM (loaded with ``from_pretrained``) and its LoRA adapter."""

    path_or_name: str = "exp/tiny_llm"
    """A local model dir (e.g. from ``speech-llm build-llm``), a hub name such as Qwen/Qwen2.5-0.5B-Instruct,
    or a GGUF file (a path ending in ``.gguf``)."""
    gguf_file: Optional[str] = None
    """A GGUF file inside ``path_or_name`` to load the model and tokenizer from (transformers dequantizes
    it; needs the ``gguf`` package)."""
    chat_template: bool = False
    """Frame the prompt with the tokenizer's chat template (system message, user turn); for instruction
    models. False: the prompt text as it is."""
    system_prompt: Optional[str] = None
    """With ``chat_template``: the system message (``None``: the template's own default, e.g. SmolLM2's
    31-token "You are a helpful AI assistant named SmolLM ..."; a short one saves source tokens)."""
    target_case: Literal["as_is", "lower"] = "as_is"
    """How the LLM writes the words it is trained on: as in the manifest, or lower-cased (a pretrained
    LLM's usual form, and about half the BPE tokens of LibriSpeech's upper case). Scoring case-folds."""
    phi: int = 0
    """Group position encoding: target position IDs start at phi (DESIGN.md §2)."""
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    """Weights dtype; 'auto' keeps the dtype stored with the model (``from_pretrained(dtype='auto')``)."""
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    lora_rank: int = 8
    """LoRA rank r; 0 trains no adapter (only the projector and the new token rows)."""
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    prompt: PromptConfig = field(default_factory=PromptConfig)
    wait_token: str = "<|wait|>"
    """The read/write boundary token added to the tokenizer."""
    task: str = "asr"
    """What the LLM writes: 'asr' (the transcript) or 'st' (the manifest's translation into target_lang).
    Picks the prompt ``llm.prompt.<task>``; saved with the checkpoint, so decoding uses the same one."""
    target_lang: str = "fr"
    """st: the language key of the manifest's ``translation`` field to train on (``llm.prompt.st`` should
    name that language)."""

    def validate(self) -> None:
        _check(self.path_or_name != "", "path_or_name", "must name a model dir or a hub model")
        _check(self.phi >= 0, "phi", f"must be >= 0, got {self.phi}")
        _check(self.lora_rank >= 0, "lora_rank", f"must be >= 0, got {self.lora_rank}")
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        _check(self.lora_rank == 0 or len(self.lora_target_modules) > 0, "lora_target_modules",
               "must name at least one module when lora_rank > 0")
        _check(self.wait_token != "", "wait_token", "must not be empty")
        tasks = [f.name for f in dataclasses.fields(PromptConfig)]
        _check(self.task in tasks, "task", f"unknown task {self.task!r}; known: {', '.join(tasks)}")
        _check(self.target_lang != "" and not any(c.isspace() for c in self.target_lang), "target_lang",
               f"must be a language key such as 'fr', got {self.target_lang!r}")


@dataclass
class StreamingConfig:
    """How streaming training targets are built (DESIGN.md §2)."""

    chunk_ms: int = 640
    """Source group unit: audio per chunk (the chunk the model decodes with unless told otherwise)."""
    chunk_ms_choices: list[int] = field(default_factory=list)
    """Train over several chunk sizes: each sample draws one (and its encoder chunk mask and targets are
    built for it), so one checkpoint decodes at any of them. Empty = always ``chunk_ms``."""
    delay_choices: list[int] = field(default_factory=list)
    """Each streaming sample draws its target shift from these (empty = always ``delay_chunks``). The model
    is not told which one was drawn: keep it to one value unless that ambiguity is what you want."""
    delay_chunks: int = 0
    """Training target shift L: a word is written after chunk i when it ends inside chunks 1..i-L (the
    model learns to wait L chunks more; not to be confused with ``decode.read_ahead_chunks``)."""
    batch_mode_share: float = 0.3
    """Share of training samples in batch mode (no waits, full visibility)."""
    untimed_as_batch: bool = False
    """Utterances without word times (``words`` in the manifest) train in batch mode only, instead of being an
    error (a synthesizer gives times for most sentences; the llm stage needs them for streaming targets)."""

    def validate(self) -> None:
        _check(self.chunk_ms > 0, "chunk_ms", f"must be positive, got {self.chunk_ms}")
        _check(self.delay_chunks >= 0, "delay_chunks", f"must be >= 0, got {self.delay_chunks}")
        _check(all(c > 0 for c in self.chunk_ms_choices), "chunk_ms_choices",
               f"must be positive, got {self.chunk_ms_choices}")
        _check(all(d >= 0 for d in self.delay_choices), "delay_choices", f"must be >= 0, got {self.delay_choices}")
        _check(0.0 <= self.batch_mode_share <= 1.0, "batch_mode_share",
               f"must be in [0, 1], got {self.batch_mode_share}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one training stage (each stage has its own section, see
    :class:`TrainStages`)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 0
    """Stop after this many optimizer steps; 0 = run all epochs."""
    epochs: int = 10
    grad_accum: int = 1
    grad_clip: float = 5.0
    """Max gradient norm; 0 = no clipping."""
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    """Steps between checkpoints (the last checkpoint is also written at the end of each epoch)."""
    valid_every: int = 0
    """Steps between validations; 0 = at the end of each epoch."""
    num_workers: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """'auto' = bf16 on a GPU that supports it, fp32 on CPU."""

    def validate(self) -> None:
        _check(self.lr > 0.0 and math.isfinite(self.lr), "lr", f"must be positive, got {self.lr}")
        for name in ("weight_decay", "warmup_steps", "max_steps", "grad_clip", "valid_every", "num_workers"):
            _check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("epochs", "grad_accum", "log_every", "save_every"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")


@dataclass
class SpeechTrainConfig(TrainConfig):
    """A stage trained on audio: batches bucketed by duration."""

    max_frames_per_batch: int = 20000
    """Batch budget in 10 ms fbank frames (padding included)."""

    def validate(self) -> None:
        super().validate()
        _check(self.max_frames_per_batch > 0, "max_frames_per_batch",
               f"must be positive, got {self.max_frames_per_batch}")


@dataclass
class CTCTrainConfig(SpeechTrainConfig):
    """Stage ``ctc``: the streaming encoder with a CTC head (``align`` uses its batch budget)."""

    spec_augment: bool = True


@dataclass
class LLMTrainConfig(SpeechTrainConfig):
    """Stage ``llm``: projector + LoRA + the ``<wait>`` rows (speech recognition or translation)."""

    freeze_encoder: bool = True
    """Keep the CTC-trained encoder frozen."""
    silence_share: float = 0.0
    """Share of training samples whose audio is replaced by silence or noise of the same length, with an
    empty transcript (so the model learns to write nothing when nobody speaks)."""
    init_projector: Optional[str] = None
    """A ``proj`` checkpoint (dir) to start the projector from (``projector.kind: vocab``)."""
    freeze_projector: bool = False
    """Keep the projector of ``init_projector`` as the proj stage left it (train only LoRA and the wait rows).
    2026-12-07: the first run's projector, after 200 llm steps that also trained it, read Asterisk worse than
    before them (the same LoRA with the proj stage's projector swapped back: 107.4 -> 78.2 % on the first 100)."""
    cache_encoder_frames: bool = False
    """With a frozen encoder: compute its streamed frames once per utterance and read them from the cache
    (``data.cache_dir``) at every step, instead of running the encoder (one chunk size only: the chunk mix
    and ``silence_share`` read audio)."""

    def validate(self) -> None:
        super().validate()
        _check(0.0 <= self.silence_share < 1.0, "silence_share", f"must be in [0, 1), got {self.silence_share}")
        _check(not self.freeze_projector or bool(self.init_projector), "freeze_projector",
               "needs train.llm.init_projector (a frozen projector must come pre-aligned from --stage proj)")


@dataclass
class MTTrainConfig(TrainConfig):
    """Stage ``mt``: simultaneous text translation (word-level wait-k) on the LLM alone."""

    max_tokens_per_batch: int = 2048
    """Batch budget in source + target tokens (padding included)."""
    k: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Wait-k lags to train: each sentence pair draws one per step (one model for all of them)."""
    batch_share: float = 0.2
    """Share of sentence pairs trained in batch mode (the whole source visible)."""

    def validate(self) -> None:
        super().validate()
        _check(self.max_tokens_per_batch > 0, "max_tokens_per_batch",
               f"must be positive, got {self.max_tokens_per_batch}")
        _check(bool(self.k) and all(x >= 1 for x in self.k), "k", f"must be lags >= 1, got {self.k}")
        _check(0.0 <= self.batch_share <= 1.0, "batch_share", f"must be in [0, 1], got {self.batch_share}")


@dataclass
class DistillTrainConfig(SpeechTrainConfig):
    """Stage ``distill``: a pretrained (Whisper) encoder taught to keep its full-attention output under chunk
    attention masks (self-distillation; no transcripts needed)."""

    chunk_ms_choices: list[int] = field(default_factory=lambda: [640])
    """The student's chunk sizes (ms); each batch draws one. Validation uses ``streaming.chunk_ms``."""
    lr: float = 2e-5

    def validate(self) -> None:
        super().validate()
        _check(bool(self.chunk_ms_choices) and all(c > 0 for c in self.chunk_ms_choices), "chunk_ms_choices",
               f"must be positive chunk sizes in ms, got {self.chunk_ms_choices}")


@dataclass
class ProjTrainConfig(SpeechTrainConfig):
    """Stage ``proj``: the projector pre-aligned with CTC over the LLM's vocabulary (a :class:`VocabProjector`
    on the frozen encoder's cached frames; no LLM forward)."""

    lr: float = 1e-3
    frame_dropout: float = 0.1
    """Dropout on the cached encoder frames (they are the same every epoch: this and ``time_masks`` keep the
    projector from memorising them)."""
    time_masks: int = 2
    """Spans of up to ``time_mask_frames`` encoder frames zeroed per utterance (SpecAugment on the frames)."""
    time_mask_frames: int = 10
    vocab_text: list[str] = field(default_factory=list)
    """Kaldi text files (``key WORDS``) or plain text files (one sentence a line) whose tokens join the CTC
    classes, besides those of the training transcripts (the full vocabulary costs a 49k-way softmax per
    vector; tokens no text shows cannot be learned anyway). Empty = the training transcripts' tokens only."""
    full_vocab: bool = False
    """CTC over the LLM's whole vocabulary instead (slower; ``vocab_text`` is then ignored)."""
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        _check(0.0 <= self.frame_dropout < 1.0, "frame_dropout", f"must be in [0, 1), got {self.frame_dropout}")
        _check(self.time_masks >= 0 and self.time_mask_frames >= 0, "time_masks",
               "time_masks and time_mask_frames must be >= 0")
        _check(self.temperature > 0, "temperature", f"must be positive, got {self.temperature}")


@dataclass
class TrainStages:
    """One training section per stage: ``train.ctc``, ``llm``, ``mt``, ``distill``, ``proj``."""

    ctc: CTCTrainConfig = field(default_factory=CTCTrainConfig)
    llm: LLMTrainConfig = field(default_factory=LLMTrainConfig)
    mt: MTTrainConfig = field(default_factory=MTTrainConfig)
    distill: DistillTrainConfig = field(default_factory=DistillTrainConfig)
    proj: ProjTrainConfig = field(default_factory=ProjTrainConfig)

    def of(self, stage: str) -> TrainConfig:
        """The section of stage ``ctc`` / ``llm`` / ``mt`` (``align`` uses ``ctc``'s)."""
        return getattr(self, "ctc" if stage == "align" else stage)


@dataclass
class DataConfig:
    """Where the data lives (JSONL manifests, DESIGN.md §5); paths are relative to the working dir."""

    train_manifest: Optional[str] = None
    valid_manifest: Optional[str] = None
    cmvn_path: Optional[str] = None
    """Global CMVN statistics; None = no normalisation."""
    units_path: Optional[str] = None
    """CTC units: a character list, or a BPE tokenizer file when ctc.units is 'bpe'."""
    cache_dir: Optional[str] = None
    """Where the outputs of frozen modules are cached per utterance (:mod:`encoders.feature_cache`, keyed
    by weights, settings and audio); None = ``<exp>/cache``."""


@dataclass
class DecodeConfig:
    """How a recognizer decodes: the checkpoint's ``decode`` section gives the defaults, and every entry
    point (``decode``, ``transcribe``, ``live``, ``serve``, the Python API) overrides the same fields."""

    mode: Literal["streaming", "batch"] = "streaming"
    """streaming: chunk by chunk as audio arrives; batch: each segment decoded once its input is complete."""
    chunk_ms: Optional[int] = None
    """Decoding chunk (ms); None = the chunk the model was trained with (``streaming.chunk_ms``)."""
    read_ahead_chunks: int = 0
    """Streaming: extra chunks read before the first write (more context, that much more latency); not to be
    confused with the training target shift ``streaming.delay_chunks``."""
    max_tokens_per_read: int = 20
    """At most this many tokens written after one chunk before a wait is forced."""
    max_tokens_per_segment: int = 200
    """Cap on the tokens of one segment; a segment that hits it is marked ``truncated`` in the result."""
    nonblank_cap: float = 0.0
    """With a CTC-pre-aligned projector (``projector.kind: vocab``): a segment may have written at most
    ``ceil(nonblank_cap * H) + nonblank_slack`` tokens, H being the projector's non-blank CTC mass (about the
    number of text tokens its CTC head hears) summed over the audio read so far; a write that reaches it stops
    (runaway repetition and text after the speech). 0 = off."""
    nonblank_slack: int = 2
    """Tokens allowed beyond ``nonblank_cap * H`` (short prompts)."""
    context_words: int = 0
    """Give the last N words of the previous segments to the next segment as prompt context (0 = none)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Inference dtype of the LLM (bfloat16: half the memory traffic where the CPU/GPU supports it)."""
    quantize: Literal["none", "int8"] = "none"
    """int8: dynamic int8 quantization of the LLM's linear layers (CPU inference, torchao)."""
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def validate(self) -> None:
        _check(self.chunk_ms is None or self.chunk_ms > 0, "chunk_ms", f"must be positive, got {self.chunk_ms}")
        for name in ("max_tokens_per_read", "max_tokens_per_segment"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(self.nonblank_cap >= 0, "nonblank_cap", f"must be >= 0, got {self.nonblank_cap}")
        for name in ("read_ahead_chunks", "context_words", "nonblank_slack"):
            _check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")


@dataclass
class ExperimentConfig:
    """One experiment: model, training and decoding settings. Stored in the exp dir and checkpoints."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ctc: CTCConfig = field(default_factory=CTCConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    train: TrainStages = field(default_factory=TrainStages)
    data: DataConfig = field(default_factory=DataConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @property
    def llm_token_ms(self) -> float:
        """Audio per LLM input token: fbank shift x encoder subsampling x projector stacking."""
        return FRAME_SHIFT_MS * self.encoder.subsampling * self.projector.stack

    def validate(self) -> None:
        """Cross-section checks: a chunk must hold a whole number of LLM input tokens."""
        chunks = [("streaming.chunk_ms", self.streaming.chunk_ms), ("decode.chunk_ms", self.decode.chunk_ms)]
        chunks += [("streaming.chunk_ms_choices", c) for c in self.streaming.chunk_ms_choices]
        for key, chunk_ms in chunks:
            if chunk_ms is None:
                continue
            _check(chunk_ms % self.llm_token_ms == 0, key,
                   f"{chunk_ms} ms is not a multiple of the {self.llm_token_ms:g} ms per LLM input token "
                   f"({FRAME_SHIFT_MS:g} ms x encoder.subsampling={self.encoder.subsampling} "
                   f"x projector.stack={self.projector.stack})")


# ---------------------------------------------------------------------------------------------------
# Files and checkpoints
# ---------------------------------------------------------------------------------------------------


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as a plain nested dict (to store inside a checkpoint)."""
    return to_dict(cfg)


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Inverse of :func:`config_to_dict`, with the same strict checks as a YAML file."""
    return from_dict(ExperimentConfig, data)


def config_from_saved(data: Mapping[str, Any] | None, source: str | None = None) -> ExperimentConfig:
    """A config saved by an earlier version (a checkpoint's ``config.yaml``), migrated, then read as
    :func:`config_from_dict` reads it. ``source`` names the file in messages.

    Migrations: ``encoder.chunk_size`` (encoder frames, removed) is dropped with a one-line warning when it is
    the chunk of ``streaming.chunk_ms`` (or translated into it when the file has no ``streaming.chunk_ms``),
    and refused when the two disagree. A config a user writes gets no migration: a removed key there is an
    error (:attr:`EncoderConfig.removed_keys`).
    """
    data = dict(data or {})
    encoder = data.get("encoder")
    if isinstance(encoder, Mapping) and "chunk_size" in encoder:
        data["encoder"] = dict(encoder)
        frames = data["encoder"].pop("chunk_size")
        _migrate_chunk_size(data, frames, source)
    return config_from_dict(data)


def _migrate_chunk_size(data: dict[str, Any], frames: Any, source: str | None) -> None:
    """``encoder.chunk_size`` of a saved config checked against (or turned into) ``streaming.chunk_ms``."""
    subsampling = data["encoder"].get("subsampling", EncoderConfig.subsampling)
    if not isinstance(frames, int) or isinstance(frames, bool) or not isinstance(subsampling, int):
        raise ConfigError("encoder.chunk_size", f"expected int, got {_describe(frames)}", source)
    frame_ms = FRAME_SHIFT_MS * subsampling
    old_ms = frames * frame_ms
    streaming = dict(data.get("streaming") or {})
    where = f"{source}: " if source else ""
    if "chunk_ms" not in streaming:
        streaming["chunk_ms"] = int(old_ms) if float(old_ms).is_integer() else old_ms
        data["streaming"] = streaming
        logging.getLogger(__name__).warning(
            "%sencoder.chunk_size=%d (removed) read as streaming.chunk_ms=%g", where, frames, old_ms)
        return
    if streaming["chunk_ms"] != old_ms:
        raise ConfigError("encoder.chunk_size", f"{frames} frames of {frame_ms:g} ms = {old_ms:g} ms disagrees with "
                          f"streaming.chunk_ms={streaming['chunk_ms']}; the chunk has one unit now "
                          "(streaming.chunk_ms): delete encoder.chunk_size from this file to keep "
                          f"streaming.chunk_ms, or set streaming.chunk_ms: {old_ms:g} to keep the encoder's chunk",
                          source)
    logging.getLogger(__name__).warning("%sencoder.chunk_size=%d (removed) dropped: it equals streaming.chunk_ms=%g",
                                        where, frames, old_ms)


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read a YAML config (None = all defaults), then apply ``dotted.key=value`` overrides in order."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(None, f"cannot read config file: {e.strerror}", str(path)) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(None, f"not valid YAML: {e}", str(path)) from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(None, f"the top level must be a mapping of sections, got {_describe(data)}",
                              str(path))
    source = str(path) if path is not None else None
    try:
        cfg = from_dict(ExperimentConfig, data, validate=False)  # values are checked after the overrides
    except ConfigError as e:
        if source:
            raise e.from_source(source) from None
        raise
    return apply_overrides(cfg, overrides, source=source)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (creating parent dirs); :func:`load_config` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(cfg), encoding="utf-8")
