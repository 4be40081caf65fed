"""Write a trained speech LLM as self-contained ONNX steps plus plain files (issue #27).

An export dir holds everything :mod:`speech_runtime` needs to recognise speech with onnxruntime and numpy
(no torch, no checkpoint, no base LLM)::

    speech_llm_onnx.json   the manifest (marker file): format version, shapes, special tokens, decode config
    encoder.onnx           one streaming encoder chunk with its caches as explicit inputs/outputs
    projector.onnx         the projector's MLP on stacked frames (the stacking is done by the runtime)
    llm.onnx               one LLM step: embeddings, group positions, additive mask, past keys/values in;
                           last-row logits and the keys/values of all slots (past + new) out
    embeddings.npy         (V, D) float32 token embedding table of the LLM (LoRA merged)
    tokenizer.json         the LLM tokenizer (``tokenizers`` format), ``<|wait|>`` included
    cmvn.json              global CMVN ``{"mean": [...], "std": [...]}`` (only when the model has one)
    *.int8.onnx            with ``int8``: dynamically quantized copies (onnxruntime ``quantize_dynamic``)

The steps (tensor names as in the ONNX graphs; ``B`` streams, ``N`` encoder layers, ``H`` heads, ``C`` cached
encoder frames, ``Nl`` LLM layers, ``Hkv`` key/value heads, ``L`` cached LLM slots, ``n`` new slots):

=============  =====================================================  ============================================
model          inputs                                                 outputs
=============  =====================================================  ============================================
encoder        feats (B, T, F) (CMVN applied), offset (B,) int64,     frames (B, c, D), att_k_out/att_v_out
               att_k/att_v (N, B, H, C, Dh), conv (N, B, D, K-1)      (N, B, H, C + c, Dh), conv_out
projector      stacked (B, n, D_enc * stack)                          tokens (B, n, D_llm)
llm            inputs_embeds (B, n, D), position_ids (B, n) int64,    logits (B, V) of the last row,
               attention_mask (B, 1, n, L + n) additive float,        present_key_i/present_value_i
               past_key_i/past_value_i (B, Hkv, L, Dh) per layer      (B, Hkv, L + n, Dh)
=============  =====================================================  ============================================

The encoder step is :meth:`ConformerEncoder._forward_chunk` with unlimited left context: the runtime keeps
the last ``left_chunks * chunk`` frames of the returned caches itself (exactly what the torch encoder does).
The LLM step is the Hugging Face model with the LoRA adapter merged
(:func:`speech_llm.model.build.prepare_for_inference`), run on a cache built from the past keys/values; masks
and positions are the runtime's (the rules of
:mod:`speech_llm.lm.masks` and :mod:`speech_llm.lm.positions`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.constants import FRAME_LENGTH_MS, FRAME_SHIFT_MS, NUM_MEL_BINS, SAMPLE_RATE
from speech_common.errors import UserError

MANIFEST = "speech_llm_onnx.json"
"""The manifest of an export dir; its presence marks a directory as one (:func:`is_export_dir`)."""
FORMAT = "speech-llm-onnx"
VERSION = 1
OPSET = 17


def is_export_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory written by :func:`export_recognizer`."""
    return (Path(path) / MANIFEST).is_file()


class ConformerChunkStep(nn.Module):
    """One chunk of the streaming Conformer with its caches as tensors (see the module docstring)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, feats: torch.Tensor, offset: torch.Tensor, att_k: torch.Tensor, att_v: torch.Tensor,
                conv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states = {"offset": offset, "att_k": att_k, "att_v": att_v, "conv": conv}
        x, new = self.encoder._forward_chunk(feats, states, -1)
        return x, new["att_k"], new["att_v"], new["conv"]


class LMStep(nn.Module):
    """One forward of the (merged) causal LM over new slots after a KV cache given as tensors."""

    def __init__(self, lm: nn.Module, num_layers: int):
        super().__init__()
        self.lm = lm
        self.num_layers = num_layers

    def forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache()
        for i in range(self.num_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                      cache=cache, use_cache=True, logits_to_keep=1)
        present = []
        for layer in out.cache.layers:
            present += [layer.keys, layer.values]
        return (out.logits[:, -1], *present)


def _onnx_export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                 dynamic: dict[str, dict[int, str]]) -> None:
    """TorchScript-based ``torch.onnx.export`` (the dynamo exporter needs onnxscript, which we do not ship)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")     # tracer warnings about Python values taken from shapes
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True)


def _export_encoder(model, chunk_frames: int, out: Path) -> dict:
    from encoders.conformer import ConformerEncoder
    from encoders.subsampling import _convs

    enc = model.encoder
    if not isinstance(enc, ConformerEncoder):
        raise UserError(f"export: only the Conformer encoder can be exported so far, not {type(enc).__name__}")
    p = next(enc.parameters())
    n, h, d = len(enc.layers), enc.num_heads, enc.output_dim
    dh = d // h
    ctx = enc.layers[0].conv.context if n else 0
    b, cached = 2, 3
    feats = torch.randn(b, enc.embed.stride * (chunk_frames - 1) + enc.embed.receptive_field, enc.input_dim)
    args = (feats.to(p), torch.tensor([5, 1]), torch.randn(n, b, h, cached, dh).to(p),
            torch.randn(n, b, h, cached, dh).to(p), torch.randn(n, b, d, ctx).to(p))
    dyn = {"feats": {0: "B", 1: "T"}, "offset": {0: "B"}, "att_k": {1: "B", 3: "C"}, "att_v": {1: "B", 3: "C"},
           "conv": {1: "B"}, "frames": {0: "B", 1: "c"}, "att_k_out": {1: "B", 3: "C_out"},
           "att_v_out": {1: "B", 3: "C_out"}, "conv_out": {1: "B"}}
    _onnx_export(ConformerChunkStep(enc), args, out / "encoder.onnx", ["feats", "offset", "att_k", "att_v", "conv"],
                 ["frames", "att_k_out", "att_v_out", "conv_out"], dyn)
    return {"type": "conformer", "file": "encoder.onnx", "input_dim": enc.input_dim, "output_dim": d,
            "num_layers": n, "num_heads": h, "head_dim": dh, "conv_context": ctx, "stride": enc.embed.stride,
            "receptive_field": enc.embed.receptive_field, "subsampling_convs": [list(c) for c in _convs(
                enc.subsampling_rate)], "frame_shift_s": enc.frame_shift_s, "chunk_frames": model.chunk_frames,
            "left_chunks": model.left_chunks}


def _export_projector(model, out: Path) -> dict:
    proj = model.projector
    width = model.encoder.output_dim * proj.stack
    p = next(proj.parameters())
    _onnx_export(proj.net, (torch.randn(2, 3, width).to(p),), out / "projector.onnx", ["stacked"], ["tokens"],
                 {"stacked": {0: "B", 1: "n"}, "tokens": {0: "B", 1: "n"}})
    return {"file": "projector.onnx", "stack": proj.stack, "input_dim": model.encoder.output_dim,
            "output_dim": proj.net[-1].out_features}


def _export_llm(model, out: Path) -> dict:
    lm = model.glm.lm
    cfg = lm.config
    num_layers = cfg.num_hidden_layers
    step = LMStep(lm, num_layers).eval()
    p = next(lm.parameters())
    if p.dtype != torch.float32:
        raise UserError(f"export: the LLM must be float32 (got {p.dtype}); export with decode.dtype=float32")
    d = cfg.hidden_size
    with torch.no_grad():   # the key/value shapes from a real forward (head_dim and kv heads vary by model)
        probe = lm(inputs_embeds=torch.zeros(1, 1, d), position_ids=torch.zeros(1, 1, dtype=torch.long),
                   use_cache=True, logits_to_keep=1)
    _, hkv, _, dh = probe.cache.layers[0].keys.shape
    b, n, past = 2, 3, 4
    low = torch.finfo(torch.float32).min
    mask = torch.zeros(b, 1, n, past + n)
    mask[..., past:] = torch.ones(n, n).triu(1) * low
    args = (torch.randn(b, n, d), torch.arange(n).expand(b, n).contiguous(), mask,
            *[torch.randn(b, hkv, past, dh) for _ in range(2 * num_layers)])
    past_names = [f"past_{kind}_{i}" for i in range(num_layers) for kind in ("key", "value")]
    present_names = [f"present_{kind}_{i}" for i in range(num_layers) for kind in ("key", "value")]
    dyn = {"inputs_embeds": {0: "B", 1: "n"}, "position_ids": {0: "B", 1: "n"},
           "attention_mask": {0: "B", 2: "n", 3: "T"}, "logits": {0: "B"}}
    dyn.update({k: {0: "B", 2: "L"} for k in past_names})
    dyn.update({k: {0: "B", 2: "T"} for k in present_names})
    _onnx_export(step, args, out / "llm.onnx", ["inputs_embeds", "position_ids", "attention_mask", *past_names],
                 ["logits", *present_names], dyn)
    emb = lm.get_input_embeddings().weight.detach().float().cpu().numpy()
    np.save(out / "embeddings.npy", emb)
    return {"file": "llm.onnx", "embeddings": "embeddings.npy", "num_layers": num_layers, "num_kv_heads": int(hkv),
            "head_dim": int(dh), "hidden_size": d, "vocab_size": int(probe.logits.shape[-1]), "phi": model.glm.phi}


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamically quantized copy of an ONNX model: int8 weights of MatMul/Gemm, activations at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)    # its advice to run shape pre-processing first, on every call
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.setLevel(level)


def export_recognizer(rec, out_dir: str | os.PathLike, int8: bool = False) -> Path:
    """Write ``rec`` (a float32 :class:`~speech_llm.decoding.recognizer.Recognizer`) as an export dir (module
    docstring).

    The decode config of ``rec`` (its chunk, caps, ...) becomes the runtime's default; ``int8`` adds
    dynamically quantized copies of the three models (the runtime picks them with ``int8=True``).
    """
    if rec.config.quantize != "none" or rec.config.dtype != "float32":
        raise UserError("export: build the recognizer with decode.dtype=float32 and decode.quantize=none")
    model = rec.model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "version": VERSION, "sample_rate": SAMPLE_RATE}
    manifest["frontend"] = {"type": "kaldi_fbank", "num_mel_bins": NUM_MEL_BINS, "frame_length_ms": FRAME_LENGTH_MS,
                            "frame_shift_ms": FRAME_SHIFT_MS, "dither": 0.0, "snip_edges": False, "cmvn": None}
    if model.cmvn is not None:
        (out / "cmvn.json").write_text(json.dumps({"mean": model.cmvn.mean.tolist(),
                                                   "std": model.cmvn.std.tolist()}) + "\n")
        manifest["frontend"]["cmvn"] = "cmvn.json"
    manifest["encoder"] = _export_encoder(model, rec.chunk_frames, out)
    manifest["projector"] = _export_projector(model, out)
    manifest["llm"] = _export_llm(model, out)
    tk = model.tokens
    manifest["tokens"] = {"prompt_ids": list(tk.prompt_ids), "end_ids": list(tk.end_ids), "bos_id": tk.bos_id,
                          "eos_id": tk.eos_id, "wait_id": tk.wait_id}
    rec.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    manifest["tokenizer"] = "tokenizer.json"
    decode = dataclasses.asdict(rec.config)
    for key in ("dtype", "quantize"):   # torch-side choices; the runtime has int8=True instead
        decode.pop(key)
    decode["chunk_ms"] = round(rec.chunk_frames * model.encoder.frame_shift_s * 1000.0, 6)
    manifest["decode"] = decode
    manifest["int8"] = None
    if int8:
        manifest["int8"] = {}
        for part in ("encoder", "projector", "llm"):
            name = manifest[part]["file"].replace(".onnx", ".int8.onnx")
            quantize_int8(out / manifest[part]["file"], out / name)
            manifest["int8"][part] = name
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def export_checkpoint(exp_dir_or_checkpoint: str | os.PathLike, out_dir: str | os.PathLike, int8: bool = False,
                      overrides: tuple[str, ...] = ()) -> Path:
    """Rebuild the recognizer of a checkpoint (or exp dir) in float32 and export it (:func:`export_recognizer`).

    ``overrides`` are decode-config overrides (``["chunk_ms=320", "max_tokens_per_read=10"]``) baked into
    the export's default decode config.
    """
    from speech_llm.decoding.recognizer import Recognizer

    rec = Recognizer.from_checkpoint(exp_dir_or_checkpoint, overrides=[*overrides, "dtype=float32", "quantize=none"])
    return export_recognizer(rec, out_dir, int8=int8)
