"""Write a trained speech LLM as self-contained ONNX steps plus plain files (issue #27).

An export dir holds everything :mod:`speech_runtime` needs to recognise speech with onnxruntime and numpy
(no torch, no checkpoint, no base LLM)::

    speech_llm_onnx.json   the manifest (marker file): format version, shapes, special tokens, decode config
    encoder.onnx           one streaming encoder chunk (Conformer or Whisper) with its caches as explicit
                           inputs/outputs
    projector.onnx         the projector on stacked frames (the stacking is done by the runtime): the MLP, its
                           context layers over one chunk with their caches (``projector.context_layers > 0``),
                           and for ``projector.kind: vocab`` the posterior-weighted mix of the LLM's token
                           embeddings and each token's non-blank CTC mass (``decode.nonblank_cap`` reads it)
    llm.onnx               one LLM step: embeddings, group positions, additive mask, past keys/values in;
                           last-row logits and the keys/values of all slots (past + new) out
    embeddings.npy         (V, D) float32 token embedding table of the LLM (LoRA merged)
    tokenizer.json         the LLM tokenizer (``tokenizers`` format), ``<|wait|>`` included
    cmvn.json              global CMVN ``{"mean": [...], "std": [...]}`` (only when the model has one)
    *.int8.onnx            with ``int8``: int8 copies (8-bit block-wise weights, ``MatMulNBits`` with int8 compute;
                           the LM head and the projector's class table in float32 unless ``int8_scope="all"``:
                           :mod:`speech_llm.export.quantize`)

The steps (tensor names as in the ONNX graphs; ``B`` streams, ``N`` encoder layers, ``H`` heads, ``C`` cached
encoder frames, ``Nl`` LLM layers, ``Hkv`` key/value heads, ``L`` cached LLM slots, ``n`` new slots):

=================  =================================================  ============================================
model              inputs                                             outputs
=================  =================================================  ============================================
encoder            feats (B, T, F) (CMVN applied), offset (B,) int64, frames (B, c, D), att_k_out/att_v_out
(Conformer)        att_k/att_v (N, B, H, C, Dh), conv (N, B, D, K-1)  (N, B, H, C + c, Dh), conv_out
encoder            feats (B, m + 1, F): m features + their right      frames (B, ceil(m/2), D), att_k_out,
(Whisper)          context (zeros at the end), offset, att_k, att_v,  att_v_out, mel_out (B, 1, F),
                   mel (B, 1, F), conv (B, D, 1)                      conv_out (B, D, 1)
projector          stacked (B, n, D_enc * stack); with context        tokens (B, n, D_llm); vocab: nonblank (B, n);
                   layers: offset, att_k/att_v (Nc, B, Hc, C, Dc)     context: att_k_out/att_v_out (.., C + n, ..)
llm                inputs_embeds (B, n, D), position_ids (B, n) int64, logits (B, V) of the last row,
                   attention_mask (B, 1, n, L + n) additive float,    present_key_i/present_value_i
                   past_key_i/past_value_i (B, Hkv, L, Dh) per layer  (B, Hkv, L + n, Dh)
=================  =================================================  ============================================

The encoder step is the encoder's ``_forward_chunk`` with unlimited left context: the runtime keeps the last
``left_chunks * chunk`` frames of the returned caches itself (exactly what the torch encoder does). Whisper's
chunk is fed as :meth:`encoders.whisper.WhisperConvEmbed.forward_lookahead` reads it: a whole chunk of ``c``
frames is its ``2c + 1`` features (the last one only as right context, as in the torch loop), the final
partial chunk its ``n`` remaining features and one zero row (Whisper's padding), giving ``ceil(n / 2)``
frames. The manifest's ``encoder.caches`` names each encoder's own caches, their shapes for one stream and
their batch axis. The LLM step is the Hugging Face model with the LoRA adapter merged
(:func:`speech_llm.model.build.prepare_for_inference`), run on a cache built from the past keys/values; masks
and positions are the runtime's (the rules of :mod:`speech_llm.lm.masks` and :mod:`speech_llm.lm.positions`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.constants import FRAME_LENGTH_MS, FRAME_SHIFT_MS, NUM_MEL_BINS, SAMPLE_RATE
from speech_common.errors import UserError
from speech_common.export_dir import INT8_DEFAULT_PARTS, INT8_PARTS, MANIFEST
from speech_llm.export.quantize import ACCURACY_LEVEL, BLOCK, DEFAULT_SCOPE, SCOPES, quantize_int8

FORMAT = "speech-llm-onnx"
VERSION = 1
OPSET = 17


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


class WhisperChunkStep(nn.Module):
    """One chunk of the streaming Whisper encoder with its caches as tensors (see the module docstring).

    ``feats`` (B, m + 1, F) are the chunk's ``m`` features and, last, their right context (the next feature,
    zeros at the input end): :meth:`encoders.whisper.WhisperConvEmbed.forward_lookahead`, then the layers
    of :meth:`encoders.streaming_state.ChunkedStreamingEncoder._forward_chunk`."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, feats: torch.Tensor, offset: torch.Tensor, att_k: torch.Tensor, att_v: torch.Tensor,
                mel: torch.Tensor, conv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, mel_out, conv_out = self.encoder.embed.forward_lookahead(feats, mel, conv)
        y, new = self.encoder._chunk_layers(x, {"offset": offset, "att_k": att_k, "att_v": att_v}, -1)
        return y, new["att_k"], new["att_v"], mel_out, conv_out


class ProjectorStep(nn.Module):
    """The projector on stacked frames: the MLP; with context layers, those layers over one chunk of tokens against
    their caches (:meth:`~speech_llm.model.projector.Projector._context_chunk`, every slot returned: the runtime
    keeps its window); and for a :class:`~speech_llm.model.projector.VocabProjector` the posterior-weighted mix of
    the LLM's token embeddings (:meth:`~speech_llm.model.projector.VocabProjector.mix`) and each token's non-blank
    CTC mass (:meth:`~speech_llm.model.projector.VocabProjector.nonblank`, for ``decode.nonblank_cap``).

    The CTC classes' table is one constant ``table_t`` (D, |V| + 1), read by both products: the logits as
    ``h @ table_t``, the mix as ``(table_t @ p^T)^T``. (Written as ``h @ table.t()`` then ``p @ table``, constant
    folding stored the table twice, once transposed; a Gemm with ``transB`` is no way out, as onnxruntime's
    quantizer turns it into a MatMul on a transposed copy.)"""

    def __init__(self, projector: nn.Module):
        super().__init__()
        self.projector = projector
        self.vocab = hasattr(projector, "mix")
        self.context = len(getattr(projector, "context", ())) > 0
        if self.vocab:
            self.register_buffer("table_t", projector.classes().detach().t().contiguous())

    def forward(self, stacked: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.projector.net(stacked)
        new: tuple[torch.Tensor, ...] = ()
        if self.context:
            offset, att_k, att_v = caches
            h, state = self.projector._context_chunk(h, {"offset": offset, "att_k": att_k, "att_v": att_v},
                                                     window=False)
            new = (state["att_k"], state["att_v"])
        if not self.vocab:
            return (h, *new)
        p = torch.softmax(h @ self.table_t / self.projector.temperature, dim=-1)
        tokens = (self.table_t @ p.transpose(1, 2)).transpose(1, 2)
        return (tokens, 1.0 - p[..., -1], *new)


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
    from encoders.whisper import WhisperStreamingEncoder

    enc = model.encoder
    if isinstance(enc, WhisperStreamingEncoder):
        info = export_whisper_encoder(enc, chunk_frames, out / "encoder.onnx")
    elif isinstance(enc, ConformerEncoder):
        info = _export_conformer(enc, chunk_frames, out / "encoder.onnx")
    else:
        raise UserError(f"export: the Conformer and Whisper encoders can be exported, not {type(enc).__name__}")
    return {**info, "file": "encoder.onnx", "frame_shift_s": enc.frame_shift_s, "chunk_frames": model.chunk_frames,
            "left_chunks": model.left_chunks}


def _encoder_dims(enc) -> dict:
    n, h, d = len(enc.layers), enc.num_heads, enc.output_dim
    return {"input_dim": enc.input_dim, "output_dim": d, "num_layers": n, "num_heads": h, "head_dim": d // h,
            "stride": enc.embed.stride, "receptive_field": enc.embed.receptive_field}


def _export_conformer(enc, chunk_frames: int, path: Path) -> dict:
    from encoders.subsampling import _convs

    dims = _encoder_dims(enc)
    n, h, d, dh = dims["num_layers"], dims["num_heads"], dims["output_dim"], dims["head_dim"]
    ctx = enc.layers[0].conv.context if n else 0
    p = next(enc.parameters())
    b, cached = 2, 3
    feats = torch.randn(b, enc.embed.stride * (chunk_frames - 1) + enc.embed.receptive_field, enc.input_dim)
    args = (feats.to(p), torch.tensor([5, 1]), torch.randn(n, b, h, cached, dh).to(p),
            torch.randn(n, b, h, cached, dh).to(p), torch.randn(n, b, d, ctx).to(p))
    dyn = {"feats": {0: "B", 1: "T"}, "offset": {0: "B"}, "att_k": {1: "B", 3: "C"}, "att_v": {1: "B", 3: "C"},
           "conv": {1: "B"}, "frames": {0: "B", 1: "c"}, "att_k_out": {1: "B", 3: "C_out"},
           "att_v_out": {1: "B", 3: "C_out"}, "conv_out": {1: "B"}}
    _onnx_export(ConformerChunkStep(enc), args, path, ["feats", "offset", "att_k", "att_v", "conv"],
                 ["frames", "att_k_out", "att_v_out", "conv_out"], dyn)
    return {"type": "conformer", **dims, "conv_context": ctx,
            "subsampling_convs": [list(c) for c in _convs(enc.subsampling_rate)],
            "caches": {"conv": {"shape": [n, 1, d, ctx], "batch_axis": 1}}}


def export_whisper_encoder(enc, chunk_frames: int, path: Path) -> dict:
    """Write :class:`WhisperChunkStep` of ``enc`` (a :class:`~encoders.whisper.WhisperStreamingEncoder`, float32)
    to ``path``; returns its manifest entry (less the model's chunk settings)."""
    dims = _encoder_dims(enc)
    n, h, d, dh = dims["num_layers"], dims["num_heads"], dims["output_dim"], dims["head_dim"]
    p = next(enc.parameters())
    b, cached = 2, 3
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(b, 2 * chunk_frames + 1, enc.input_dim, generator=g).to(p), torch.tensor([5, 1]),
            torch.randn(n, b, h, cached, dh, generator=g).to(p), torch.randn(n, b, h, cached, dh, generator=g).to(p),
            torch.randn(b, 1, enc.input_dim, generator=g).to(p), torch.randn(b, d, 1, generator=g).to(p))
    dyn = {"feats": {0: "B", 1: "T"}, "offset": {0: "B"}, "att_k": {1: "B", 3: "C"}, "att_v": {1: "B", 3: "C"},
           "mel": {0: "B"}, "conv": {0: "B"}, "frames": {0: "B", 1: "c"}, "att_k_out": {1: "B", 3: "C_out"},
           "att_v_out": {1: "B", 3: "C_out"}, "mel_out": {0: "B"}, "conv_out": {0: "B"}}
    _onnx_export(WhisperChunkStep(enc), args, path, ["feats", "offset", "att_k", "att_v", "mel", "conv"],
                 ["frames", "att_k_out", "att_v_out", "mel_out", "conv_out"], dyn)
    return {"type": "whisper", **dims, "max_positions": enc.max_positions, "long_positions": enc.long_positions,
            "caches": {"mel": {"shape": [1, 1, enc.input_dim], "batch_axis": 0},
                       "conv": {"shape": [1, d, 1], "batch_axis": 0}}}


def _export_projector(model, out: Path) -> dict:
    proj = model.projector
    step = ProjectorStep(proj)
    width = model.encoder.output_dim * proj.stack
    p = next(proj.parameters())
    g = torch.Generator().manual_seed(0)
    args: tuple = (torch.randn(2, 3, width, generator=g).to(p),)
    inputs, outputs = ["stacked"], ["tokens", *(["nonblank"] if step.vocab else [])]
    dyn = {"stacked": {0: "B", 1: "n"}, "tokens": {0: "B", 1: "n"}, "nonblank": {0: "B", 1: "n"}}
    entry = {"file": "projector.onnx", "kind": "vocab" if step.vocab else "mlp", "stack": proj.stack,
             "input_dim": model.encoder.output_dim, "output_dim": proj.net[-1].out_features,
             "nonblank": step.vocab, "context": None}
    if step.context:
        layers, heads = len(proj.context), proj.num_heads
        dh = entry["output_dim"] // heads
        cached = 4
        args += (torch.tensor([5, 2]), torch.randn(layers, 2, heads, cached, dh, generator=g).to(p),
                 torch.randn(layers, 2, heads, cached, dh, generator=g).to(p))
        inputs += ["offset", "att_k", "att_v"]
        outputs += ["att_k_out", "att_v_out"]
        dyn.update({"offset": {0: "B"}, "att_k": {1: "B", 3: "C"}, "att_v": {1: "B", 3: "C"},
                    "att_k_out": {1: "B", 3: "C_out"}, "att_v_out": {1: "B", 3: "C_out"}})
        entry["context"] = {"layers": layers, "heads": heads, "head_dim": dh, "left_chunks": proj.left_chunks}
    _onnx_export(step, args, out / "projector.onnx", inputs, outputs, {k: v for k, v in dyn.items()
                                                                        if k in inputs + outputs})
    return entry


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


def _frontend(encoder) -> dict:
    """The manifest's front end: what ``encoder.make_frontend()`` computes (the runtime's numpy twin)."""
    from encoders.whisper import WhisperStreamingEncoder

    if isinstance(encoder, WhisperStreamingEncoder):
        return {"type": "whisper_log_mel", "n_mels": encoder.input_dim, "ceiling": encoder.log_mel_ceiling,
                "cmvn": None}
    return {"type": "kaldi_fbank", "num_mel_bins": NUM_MEL_BINS, "frame_length_ms": FRAME_LENGTH_MS,
            "frame_shift_ms": FRAME_SHIFT_MS, "dither": 0.0, "snip_edges": False, "cmvn": None}


def float_tables(model) -> dict[str, list[np.ndarray]]:
    """Per exported part, the vocabulary-wide weights that ``--int8-scope body`` keeps in float32
    (:mod:`speech_llm.export.quantize`): the LLM's output head, the vocabulary projector's class table."""
    head = model.glm.lm.get_output_embeddings().weight.detach().float().cpu().numpy()
    tables = {"encoder": [], "projector": [], "llm": [head]}
    if hasattr(model.projector, "mix"):
        tables["projector"].append(model.projector.classes().detach().float().cpu().numpy())
    return tables


def _export_int8(model, manifest: dict, out: Path, scope: str, parts: tuple[str, ...]) -> dict:
    """The int8 copies of the models of ``parts`` and their manifest entry (the files, the scope, the parts, the
    float nodes); a part left out is named by its float32 file, so the runtime's ``int8=True`` runs it in float."""
    tables = float_tables(model)
    entry: dict = {"scope": scope, "op": "MatMulNBits", "bits": 8, "block_size": BLOCK,
                   "accuracy_level": ACCURACY_LEVEL, "parts": list(parts), "float_nodes": {}}
    for part in INT8_PARTS:
        if part not in parts:
            entry[part] = manifest[part]["file"]
            continue
        name = manifest[part]["file"].replace(".onnx", ".int8.onnx")
        entry["float_nodes"][part] = quantize_int8(out / manifest[part]["file"], out / name, tables[part], scope)
        entry[part] = name
    return entry


def export_recognizer(rec, out_dir: str | os.PathLike, int8: bool = False, int8_scope: str = DEFAULT_SCOPE,
                      int8_parts: tuple[str, ...] = INT8_DEFAULT_PARTS) -> Path:
    """Write ``rec`` (a float32 :class:`~speech_llm.decoding.recognizer.Recognizer`) as an export dir (module
    docstring).

    The decode config of ``rec`` (its chunk, caps, ...) becomes the runtime's default; ``int8`` adds int8 copies of
    the models of ``int8_parts`` (default the LLM step only, :data:`speech_common.export_dir.INT8_DEFAULT_PARTS`;
    the others run in float32 under the runtime's ``int8=True`` too), with the vocabulary-wide products in float32
    unless ``int8_scope="all"`` (:mod:`speech_llm.export.quantize`).
    """
    if rec.config.quantize != "none" or rec.config.dtype != "float32":
        raise UserError("export: build the recognizer with decode.dtype=float32 and decode.quantize=none")
    if int8_scope not in SCOPES:
        raise UserError(f"export: --int8-scope must be one of {', '.join(SCOPES)}, not {int8_scope!r}")
    if not int8_parts or set(int8_parts) - set(INT8_PARTS):
        raise UserError(f"export: --int8-parts must name some of {', '.join(INT8_PARTS)}, not {','.join(int8_parts)!r}")
    model = rec.model
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "version": VERSION, "sample_rate": SAMPLE_RATE}
    manifest["frontend"] = _frontend(model.encoder)
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
    manifest["int8"] = _export_int8(model, manifest, out, int8_scope, tuple(int8_parts)) if int8 else None
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def export_checkpoint(exp_dir_or_checkpoint: str | os.PathLike, out_dir: str | os.PathLike, int8: bool = False,
                      overrides: tuple[str, ...] = (), int8_scope: str = DEFAULT_SCOPE,
                      int8_parts: tuple[str, ...] = INT8_DEFAULT_PARTS) -> Path:
    """Rebuild the recognizer of a checkpoint (or exp dir) in float32 and export it (:func:`export_recognizer`).

    ``overrides`` are decode-config overrides (``["chunk_ms=320", "max_tokens_per_read=10"]``) baked into
    the export's default decode config.
    """
    from speech_llm.decoding.recognizer import Recognizer

    rec = Recognizer.from_checkpoint(exp_dir_or_checkpoint, overrides=[*overrides, "dtype=float32", "quantize=none"])
    return export_recognizer(rec, out_dir, int8=int8, int8_scope=int8_scope, int8_parts=int8_parts)
