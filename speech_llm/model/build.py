"""Build the models of an experiment from its :class:`~speech_llm.config.ExperimentConfig`.

* :class:`CTCModel` — CMVN -> chunked streaming encoder -> CTC head (the ``ctc`` stage's model).
* :func:`build_speech_llm` — the one assembly of a :class:`~speech_llm.model.speech_model.SpeechLLM` (training,
  checkpoint loading, benches and tests): the encoder and CMVN (of a CTC model in the ``llm`` stage,
  frozen unless ``train.llm.freeze_encoder`` is false), a fresh MLP projector, and the
  LLM loaded with ``AutoModelForCausalLM.from_pretrained(llm.path_or_name)`` (a local dir or a hub name)
  with the ``<|wait|>`` token added to its tokenizer, wrapped with a peft LoRA adapter
  (``llm.lora_rank/alpha/dropout/target_modules``) whose trainable token rows are the wait token's
  embedding and LM-head rows (one tied row for models that tie them, such as Qwen2.5; two rows for
  untied ones, such as Llama). With ``lora_rank: 0`` only those rows (and the projector) train.
* :func:`special_tokens` — the framing tokens (:mod:`speech_llm.lm.framing`), the same for training and
  decoding. The prompt is ``llm.prompt.<llm.task>`` (``asr``: transcribe, ``st``: translate); a checkpoint's saved
  config carries ``llm.task``, so a rebuilt model frames its source with the prompt it was trained on.

Everything that :mod:`speech_llm.model.checkpoint` needs to rebuild a trained model comes from these
functions, so training and decoding build the very same module tree.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from encoders.constants import FRAME_SHIFT_MS, NUM_MEL_BINS
from speech_common.chunking import chunk_frames_of
from speech_common.errors import UserError
from speech_common.hf import quiet_transformers
from speech_llm.config import EncoderConfig, ExperimentConfig, LLMConfig
from speech_llm.lm.framing import SpecialTokens, make_tokens
from speech_llm.model.projector import Projector
from speech_llm.model.speech_model import SpeechLLM

ENCODER_ARCH_KEYS = ("name", "input_dim", "d_model", "num_layers", "num_heads", "ffn_dim", "conv_kernel",
                     "subsampling")
"""Encoder config keys that change the parameter shapes (the others may differ between stages)."""


# ---------------------------------------------------------------------------------------------------
# Encoder and CTC model
# ---------------------------------------------------------------------------------------------------


def build_encoder_from_config(enc: EncoderConfig, dynamic_chunk: bool | None = None,
                              pretrained: bool = True) -> nn.Module:
    """The streaming encoder of ``enc`` through the registry (:func:`encoders.build_encoder`).

    ``dynamic_chunk``: draw a chunk size per training batch (WeNet U2); default ``enc.dynamic_chunk``
    (the CTC stage). The speech LLM passes False: it runs the encoder with its own chunk.
    ``pretrained``: a pretrained encoder (whisper) loads its weights; False builds its architecture only,
    for a checkpoint whose state dict fills it.
    """
    from encoders import build_encoder

    dyn = enc.dynamic_chunk if dynamic_chunk is None else dynamic_chunk
    if enc.name == "whisper":
        return build_encoder("whisper", path_or_name=enc.path_or_name, pretrained=pretrained, dropout=enc.dropout,
                             dynamic_chunk=dyn)
    return build_encoder(enc.name, input_dim=enc.input_dim, d_model=enc.d_model, num_layers=enc.num_layers,
                         num_heads=enc.num_heads, subsampling=enc.subsampling, ffn_dim=enc.ffn_dim,
                         conv_kernel=enc.conv_kernel, dropout=enc.dropout, dynamic_chunk=dyn)


def feature_fn(enc: EncoderConfig):
    """The offline features the encoder of ``enc`` reads, ``(N,) samples -> (T, F)``: the same frames its
    streaming front end (``encoder.make_frontend()``) gives. fbank for the Conformer, Whisper's log-mel for
    Whisper."""
    if enc.name == "whisper":
        import functools

        from encoders.whisper_frontend import compute_log_mel

        return functools.partial(compute_log_mel, n_mels=enc.input_dim)
    from encoders.frontend import compute_fbank

    return compute_fbank


def new_cmvn(dim: int = NUM_MEL_BINS) -> nn.Module:
    """An identity GlobalCMVN (mean 0, std 1) whose buffers a state dict then fills."""
    from encoders.frontend import GlobalCMVN

    return GlobalCMVN(torch.zeros(dim), torch.ones(dim))


class CTCModel(nn.Module):
    """Features -> global CMVN -> SpecAugment (training only) -> streaming encoder -> CTC log-probabilities.

    Args:
        encoder: streaming encoder (``forward(feats, lens, chunk_size, left_chunks)``, ``output_dim``).
        vocab_size: CTC units, blank = 0.
        cmvn: a :class:`~encoders.frontend.GlobalCMVN`, or None for no normalisation.
        spec_augment: a :class:`~encoders.frontend.SpecAugment` (identity in eval mode), or None.
    """

    def __init__(self, encoder: nn.Module, vocab_size: int, cmvn: nn.Module | None = None,
                 spec_augment: nn.Module | None = None):
        super().__init__()
        from encoders.ctc import CTCHead

        self.cmvn = cmvn
        self.spec_augment = spec_augment
        self.encoder = encoder
        self.ctc = CTCHead(encoder.output_dim, vocab_size, blank=0)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, chunk_size: int = 0,
                left_chunks: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F), (B,) -> CTC log-probs (B, T', V) float32 and lengths (B,).

        ``chunk_size`` (encoder frames, <= 0 = full attention) and ``left_chunks`` go to the encoder, which
        draws its own chunk per batch instead when it trains with dynamic chunks.
        """
        if self.cmvn is not None:
            feats = self.cmvn(feats)
        if self.spec_augment is not None:
            feats = self.spec_augment(feats)
        enc, lens = self.encoder(feats, feat_lens, chunk_size, left_chunks)
        return self.ctc(enc), lens


def build_ctc_model(cfg: ExperimentConfig, vocab_size: int, cmvn: nn.Module | None = None,
                    dynamic_chunk: bool | None = None, pretrained: bool = True, adapt: bool = True) -> CTCModel:
    """A fresh :class:`CTCModel` for ``cfg.encoder`` over ``vocab_size`` units (``dynamic_chunk``,
    ``pretrained``: see :func:`build_encoder_from_config`). With ``adapt``, ``encoder.adapt`` decides what of
    the encoder trains: all of it, a LoRA adapter inside it (:func:`add_encoder_lora`), or nothing."""
    model = CTCModel(build_encoder_from_config(cfg.encoder, dynamic_chunk, pretrained), vocab_size, cmvn)
    if adapt and cfg.encoder.adapt == "lora":
        model.encoder = add_encoder_lora(model.encoder, cfg.encoder)
    elif adapt and cfg.encoder.adapt == "frozen":
        model.encoder.requires_grad_(False)
    return model


def add_encoder_lora(encoder: nn.Module, enc: EncoderConfig) -> nn.Module:
    """The encoder wrapped with a peft LoRA adapter on ``enc.lora_targets`` (rank ``enc.lora_rank``, alpha
    2 x rank); only the adapter trains. :func:`merge_lora` folds it back into plain weights."""
    from peft import LoraConfig
    from peft.tuners.lora import LoraModel

    config = LoraConfig(r=enc.lora_rank, lora_alpha=2 * enc.lora_rank, lora_dropout=0.0,
                        target_modules=list(enc.lora_targets))
    try:
        wrapped = LoraModel(encoder, config, "default")
    except ValueError as e:
        raise UserError(f"encoder.lora_targets {enc.lora_targets}: {e}") from None
    for name, p in wrapped.named_parameters():
        p.requires_grad_("lora_" in name)
    return wrapped


def merge_lora(module: nn.Module) -> nn.Module:
    """The plain module with its peft adapters (LoRA, trained token rows) merged into the weights, unchanged
    when it has none: an LLM (:func:`prepare_for_inference`, merged checkpoints) or an encoder. Without
    peft's note that tied adapters cannot be re-tied (nothing to re-tie)."""
    if not hasattr(module, "merge_and_unload"):
        return module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return module.merge_and_unload()


def check_same_encoder(cfg: EncoderConfig, other: EncoderConfig, where: str) -> None:
    """Raise a UserError naming the keys whose values differ between two encoder configs' architectures."""
    keys = ("name", "path_or_name", "input_dim", "subsampling") if cfg.name == "whisper" else ENCODER_ARCH_KEYS
    diff = [f"encoder.{k}: {getattr(cfg, k)!r} here, {getattr(other, k)!r} in {where}"
            for k in keys if getattr(cfg, k) != getattr(other, k)]
    if diff:
        raise UserError("the encoder config does not match the encoder checkpoint:\n  " + "\n  ".join(diff))


# ---------------------------------------------------------------------------------------------------
# LLM, tokenizer, wait token, LoRA
# ---------------------------------------------------------------------------------------------------


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "auto": "auto"}


def gguf_location(path_or_name: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(dir or hub name, GGUF file name or None)``: a path ending in ``.gguf`` is split into its dir and
    file; otherwise ``gguf_file`` (``llm.gguf_file``) names a file inside ``path_or_name``."""
    text = str(path_or_name)
    if text.endswith(".gguf"):
        return str(Path(text).parent), Path(text).name
    return text, gguf_file


def load_tokenizer(path_or_name: str | Path, gguf_file: str | None = None):
    """``AutoTokenizer.from_pretrained`` (from a GGUF file with ``gguf_file``) with a UserError naming the
    path when it fails."""
    from transformers import AutoTokenizer

    where, gguf = gguf_location(path_or_name, gguf_file)
    try:
        with quiet_transformers(errors_only=False, gguf=bool(gguf)):
            return AutoTokenizer.from_pretrained(where, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from {path_or_name}{f' ({gguf})' if gguf else ''}: {e}") from None


def load_causal_lm(path_or_name: str | Path, llm_cfg: LLMConfig, gguf: bool = True) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` with the configured dtype and attention implementation: a hub
    name, a local model dir, or a GGUF file (``llm.gguf_file``, or a path ending in ``.gguf``; the ``gguf``
    package dequantizes it). ``gguf=False``: ignore ``llm.gguf_file`` (a merged model dir is plain)."""
    from transformers import AutoModelForCausalLM

    where, gguf_file = gguf_location(path_or_name, llm_cfg.gguf_file if gguf else None)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with quiet_transformers(errors_only=False, gguf=bool(gguf_file)):
            return AutoModelForCausalLM.from_pretrained(where, dtype=_DTYPES[llm_cfg.dtype],
                                                        attn_implementation=llm_cfg.attn_implementation, **extra)
    except (OSError, ValueError) as e:
        raise UserError(f"llm.path_or_name: cannot load a causal LM from {path_or_name}"
                        f"{f' ({gguf_file})' if gguf_file else ''}: {e}") from None


def add_wait_token(tokenizer, wait_token: str) -> int:
    """Add ``wait_token`` to the tokenizer as a special token (if it is not there yet); return its id."""
    if wait_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([wait_token], special_tokens=True)
    return tokenizer.convert_tokens_to_ids(wait_token)


def ensure_embedding_rows(llm: nn.Module, num_tokens: int, initialize: bool = True) -> None:
    """Grow the LLM's embedding (and untied LM head) to ``num_tokens`` rows if it has fewer.

    Models whose embedding is already larger than the tokenizer (Qwen2.5 pads it) are left alone.
    With ``initialize`` (training), new rows are drawn around the mean of the old ones (transformers'
    ``mean_resizing``). Loading a trained checkpoint passes False: the trained rows replace the new ones
    (peft's trainable tokens store values, not deltas), so drawing them would only print a notice.
    """
    if llm.get_input_embeddings().num_embeddings < num_tokens:
        llm.resize_token_embeddings(num_tokens, mean_resizing=initialize)


def _module_name(model: nn.Module, module: nn.Module | None) -> str | None:
    if module is None:
        return None
    return next((name for name, m in model.named_modules() if m is module), None)


def token_row_targets(llm: nn.Module) -> list[str]:
    """Module names whose wait-token row must train: the input embedding, plus the LM head when untied."""
    emb = _module_name(llm, llm.get_input_embeddings())
    head = _module_name(llm, llm.get_output_embeddings())
    tied = llm.get_output_embeddings() is not None and \
        llm.get_output_embeddings().weight is llm.get_input_embeddings().weight
    return [emb] if tied or head is None else [emb, head]


def lora_config(llm_cfg: LLMConfig, **extra):
    """The LLM's LoRA adapter as ``llm.*`` sets it (rank, alpha, dropout, target modules); ``extra``: more
    ``peft.LoraConfig`` fields."""
    from peft import LoraConfig

    return LoraConfig(r=llm_cfg.lora_rank, lora_alpha=llm_cfg.lora_alpha, lora_dropout=llm_cfg.lora_dropout,
                      target_modules=list(llm_cfg.lora_target_modules), **extra)


def wrap_peft(llm: nn.Module, peft_cfg, llm_cfg: LLMConfig) -> nn.Module:
    """``peft.get_peft_model`` (speech and text LLMs alike): a target the LLM lacks is a UserError naming
    ``llm.lora_target_modules``; without the FutureWarning peft itself triggers inside transformers (it
    reads the deprecated ``is_gradient_checkpointing``; nothing of ours calls it)."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        try:
            return get_peft_model(llm, peft_cfg)
        except ValueError as e:
            raise UserError(f"llm.lora_target_modules {llm_cfg.lora_target_modules}: {e}") from None


def apply_adapters(llm: nn.Module, llm_cfg: LLMConfig, wait_id: int) -> nn.Module:
    """Wrap the LLM with peft: LoRA (rank > 0) and trainable wait-token rows; the base weights freeze."""
    from peft import TrainableTokensConfig

    targets = token_row_targets(llm)
    if llm_cfg.lora_rank > 0:
        peft_cfg = lora_config(llm_cfg, trainable_token_indices={name: [wait_id] for name in targets})
    else:
        peft_cfg = TrainableTokensConfig(target_modules=targets, token_indices=[wait_id])
    dim = llm.get_input_embeddings().embedding_dim
    model = wrap_peft(llm, peft_cfg, llm_cfg)
    wrapper = model.get_input_embeddings()
    if not hasattr(wrapper, "embedding_dim"):  # peft's trainable-token wrapper hides it; callers read it
        wrapper.embedding_dim = dim
    return model


def special_tokens(tokenizer, cfg: ExperimentConfig, task: str | None = None) -> SpecialTokens:
    """The framing tokens of source and target (:func:`speech_llm.lm.framing.make_tokens`).

    ``task`` picks the prompt ``llm.prompt.<task>``; None = ``llm.task``, the task the model is trained
    for (and, read back from a checkpoint's config, decoded with).
    """
    task = cfg.llm.task if task is None else task
    prompt = getattr(cfg.llm.prompt, task, None)
    if prompt is None:
        raise UserError(f"unknown task {task!r}: llm.prompt has {', '.join(vars(cfg.llm.prompt))}")
    if cfg.llm.chat_template:
        framed = chat_prompt(tokenizer, prompt, cfg.llm.system_prompt)
        return make_tokens(tokenizer, framed, cfg.llm.wait_token, add_bos=False)
    return make_tokens(tokenizer, prompt, cfg.llm.wait_token)


_AUDIO = "\u2063AUDIO\u2063"   # a placeholder for where the audio goes (invisible separators around it)


def chat_prompt(tokenizer, instruction: str, system: str | None = None) -> str:
    """The source prompt in the model's own chat format (``llm.chat_template``): the template rendered for
    one user turn holding ``instruction`` and then the audio (after a ``system`` message when one is given),
    cut where the audio starts. The audio tokens follow it and the end marker (the tokenizer's eos, e.g.
    ``<|im_end|>``) closes the user turn."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise UserError(f"llm.chat_template: the tokenizer of {getattr(tokenizer, 'name_or_path', '?')} has no "
                        "chat template")
    turns = [] if system is None else [{"role": "system", "content": system}]
    turns.append({"role": "user", "content": f"{instruction}\n{_AUDIO}"})
    text = tokenizer.apply_chat_template(turns,
                                         tokenize=False, add_generation_prompt=False)
    if _AUDIO not in text:
        raise UserError("llm.chat_template: the chat template does not keep the user message as given")
    return text.split(_AUDIO)[0]


# ---------------------------------------------------------------------------------------------------
# SpeechLLM
# ---------------------------------------------------------------------------------------------------


def chunk_frames(cfg: ExperimentConfig, chunk_ms: int | None = None) -> int:
    """Encoder frames per streaming chunk of ``chunk_ms`` (default ``streaming.chunk_ms``)
    (:func:`speech_common.chunking.chunk_frames_of`)."""
    chunk_ms = cfg.streaming.chunk_ms if chunk_ms is None else chunk_ms
    try:
        return chunk_frames_of(chunk_ms, FRAME_SHIFT_MS * cfg.encoder.subsampling, cfg.projector.stack)
    except ValueError as e:
        raise UserError(str(e)) from None


def prepare_for_inference(model: SpeechLLM, dtype: str = "float32", quantize: str = "none") -> SpeechLLM:
    """The model made ready for decoding (in place; a second call with the same choice changes nothing).

    * The LoRA adapter and the trained token rows are merged into the LLM weights (peft
      ``merge_and_unload``): one matmul per projection instead of three, the same function.
    * ``dtype="bfloat16"``: the LLM's weights in bfloat16 (half the memory traffic per forward).
    * ``quantize="int8"``: dynamic int8 quantization of the LLM's linear layers (torchao's
      ``Int8DynamicActivationInt8WeightConfig``: int8 weights, activations quantized per token at run time).
    """
    done = getattr(model, "_inference", None)
    if done is not None:
        if done != (dtype, quantize):
            raise ValueError(f"the model was already prepared for inference as {done}, not {(dtype, quantize)}")
        return model
    model.glm.lm = lm = merge_lora(model.glm.lm)
    if dtype == "bfloat16":
        lm.to(torch.bfloat16)
    elif dtype != "float32":
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    if quantize == "int8":
        try:
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
        except ImportError as e:
            raise UserError("decode.quantize=int8 needs torchao (pip install torchao)") from e
        # torchao 0.17's layout-based int8 path: its fast CPU kernel (the version=2 tensor subclass ran about
        # 20x slower on a 896x4864 linear here); it announces its own deprecation on every new call site
        warnings.filterwarnings("ignore", message=r"Deprecation: \w+ is deprecated and will be removed in a "
                                "future release of torchao", category=UserWarning)
        quantize_(lm, Int8DynamicActivationInt8WeightConfig())
    elif quantize != "none":
        raise ValueError(f"quantize must be 'none' or 'int8', got {quantize!r}")
    model._inference = (dtype, quantize)
    return model


def build_llm_with_adapters(cfg: ExperimentConfig, path_or_name: str | Path, tokenizer=None,
                            adapters: bool = True, initialize_rows: bool = True,
                            gguf: bool = True) -> tuple[nn.Module, object]:
    """Load the LLM (and its tokenizer unless given), add the wait token, wrap with peft if ``adapters``.
    ``initialize_rows``: draw the new token rows (training); False when a checkpoint fills them."""
    if tokenizer is None:
        tokenizer = load_tokenizer(path_or_name, cfg.llm.gguf_file)
    wait_id = add_wait_token(tokenizer, cfg.llm.wait_token)
    llm = load_causal_lm(path_or_name, cfg.llm, gguf=gguf)
    ensure_embedding_rows(llm, max(len(tokenizer), wait_id + 1), initialize=initialize_rows)
    if adapters:
        llm = apply_adapters(llm, cfg.llm, wait_id)
    return llm, tokenizer


def set_trainable(model: SpeechLLM, freeze_encoder: bool, freeze_projector: bool = False) -> None:
    """Freeze everything but the projector (unless frozen), the peft parameters and (unless frozen) the
    encoder."""
    for name, p in model.named_parameters():
        if name.startswith("projector."):
            p.requires_grad_(not freeze_projector)
        elif name.startswith("encoder."):
            p.requires_grad_(not freeze_encoder)
        elif name.startswith("glm."):
            p.requires_grad_("lora_" in name or "trainable_tokens_delta" in name)
        else:
            p.requires_grad_(False)


def base_embedding_weight(llm: nn.Module) -> torch.Tensor:
    """The LLM's input embedding matrix (V, D) itself, under peft's wrappers (trainable-token rows are deltas
    on top of it)."""
    emb = llm.get_input_embeddings()
    for attr in ("token_adapter", "base_layer"):
        while hasattr(emb, attr):
            emb = getattr(emb, attr)
    return emb.weight


def projector_options(cfg: ExperimentConfig) -> dict:
    """The keyword arguments of :class:`~speech_llm.model.projector.Projector` (and ``VocabProjector``) that
    ``cfg.projector`` gives besides the dimensions: stacking, hidden width and the context layers (their chunk
    is ``streaming.chunk_ms`` in projector tokens). The proj stage, the llm stage and the benches build with
    these."""
    pc = cfg.projector
    return {"stack": pc.stack, "hidden_dim": pc.hidden_dim, "context_layers": pc.context_layers,
            "context_heads": pc.context_heads, "chunk_tokens": chunk_frames(cfg) // pc.stack,
            "left_chunks": pc.context_left_chunks, "dropout": pc.context_dropout}


def build_projector(cfg: ExperimentConfig, input_dim: int, llm: nn.Module, tokenizer) -> Projector:
    """The projector of ``cfg.projector`` from ``input_dim`` encoder channels to ``llm``'s hidden size: the MLP,
    or (``kind: vocab``) a :class:`~speech_llm.model.projector.VocabProjector` over ``llm``'s input embeddings, its
    CTC classes ``projector.vocab_size`` placeholder ids (a checkpoint fills in the real ones) or, with 0,
    every token but the added wait token."""
    pc = cfg.projector
    if pc.kind == "mlp":
        return Projector(input_dim, llm.config.hidden_size, **projector_options(cfg))
    from speech_llm.model.projector import VocabProjector

    weight = base_embedding_weight(llm)
    wait_id = tokenizer.convert_tokens_to_ids(cfg.llm.wait_token)
    ids = torch.arange(pc.vocab_size) if pc.vocab_size else \
        torch.tensor([i for i in range(weight.size(0)) if i != wait_id], dtype=torch.long)
    return VocabProjector(input_dim, weight, vocab_ids=ids, temperature=pc.temperature, **projector_options(cfg))


def build_speech_llm(cfg: ExperimentConfig, *, encoder: nn.Module | None = None, cmvn: nn.Module | None = None,
                     llm_path: str | Path | None = None, tokenizer=None, adapters: bool = True,
                     initialize_rows: bool = True) -> tuple[SpeechLLM, object]:
    """The one assembly of a speech LLM: training, checkpoint loading, the benches and the tests call it.

    Args:
        cfg: the experiment config (encoder, projector, llm, streaming sections).
        encoder: the streaming encoder; default a fresh one from ``cfg.encoder``. It is built without
            dynamic chunk sampling (:func:`build_encoder_from_config`), because the speech LLM always runs
            it with the streaming chunk's mask; pass the encoder of a CTC checkpoint loaded the same way
            (``load_ctc_model(..., dynamic_chunk=False)``).
        cmvn: global CMVN module, or None.
        llm_path: where the LLM loads from (default ``cfg.llm.path_or_name``).
        tokenizer: the LLM's tokenizer, when it does not come from ``llm_path`` (a checkpoint's own copy).
        adapters: wrap the LLM with peft (LoRA + the wait token's rows); False for a merged model.
        initialize_rows: draw the new token rows (training); False when a checkpoint fills them.

    Returns:
        The model (with :func:`set_trainable` applied for ``train.llm.freeze_encoder``) and the tokenizer
        (with the wait token).
    """
    if encoder is None:
        encoder = build_encoder_from_config(cfg.encoder, dynamic_chunk=False)
    llm, tokenizer = build_llm_with_adapters(cfg, llm_path or cfg.llm.path_or_name, tokenizer, adapters=adapters,
                                             initialize_rows=initialize_rows, gguf=adapters)
    projector = build_projector(cfg, encoder.output_dim, llm, tokenizer)
    model = SpeechLLM(encoder, projector, llm, special_tokens(tokenizer, cfg), chunk_frames=chunk_frames(cfg),
                      left_chunks=cfg.encoder.left_chunks, phi=cfg.llm.phi, cmvn=cmvn)
    set_trainable(model, cfg.train.llm.freeze_encoder, cfg.train.llm.freeze_projector)
    return model, tokenizer
