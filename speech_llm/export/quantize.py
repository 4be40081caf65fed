"""int8 copies of the exported models: onnxruntime's dynamic quantization, with the vocabulary-wide products kept in
float32 (``speech-llm export --int8 [--int8-scope body|all]``).

Dynamic quantization stores the weights of MatMul nodes in int8 and quantizes their activations on the fly, per
call, to uint8 with one scale per tensor. Two choices decide how far the int8 model drifts from the float one:

- **per-channel weights** (``per_channel=True``): one scale per output column of each weight, instead of one per
  matrix, so a column of small weights is not rounded away next to a column of large ones. Always on here.
- **scope**: which MatMuls are quantized at all.

  ``body`` (the default) keeps in float32 every MatMul or Gemm that reads a vocabulary-wide table: the LLM's
  output head (the tied embedding matrix in SmolLM2, one (D, V) product per written token, whose argmax *is* the
  text) and, for ``projector.kind: vocab``, the class table of the projector (its logits and the posterior mix
  of the LLM's token embeddings). One uint8 scale over a whole (B, D) hidden state then rounds the logits of
  49,152 tokens at once: two close candidates swap and the text changes. The body (attention projections,
  feed-forwards, the encoder, the projector's MLP) is where the work is and is quantized.
  ``all`` quantizes every MatMul with a constant weight (onnxruntime's default: smaller and faster, lower
  fidelity).

  The LLM's input embeddings are never in a graph: the runtime looks them up in ``embeddings.npy`` (float32).

The tables are found by what the nodes read, not by node names: a MatMul/Gemm whose constant input (an
initializer, possibly behind Transpose/Identity nodes) equals one of the given float arrays or its transpose.
The export passes the arrays it knows (the LM head weight, the projector's class table); the names of the nodes
kept in float are recorded in the manifest (``int8.float_nodes``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speech_common.export_dir import INT8_SCOPES

SCOPES = INT8_SCOPES
DEFAULT_SCOPE = INT8_SCOPES[0]
OP_TYPES = ("MatMul", "Gemm")
_PASS_THROUGH = ("Transpose", "Identity")


def nodes_reading(model, tables: Sequence[np.ndarray], op_types: Sequence[str] = OP_TYPES) -> list[str]:
    """Names of the ``op_types`` nodes of ``model`` (an ``onnx.ModelProto``) with a constant input equal to one of
    ``tables`` (2-D arrays) or its transpose, directly or through Transpose/Identity nodes."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    shapes = {tuple(t.shape) for t in tables} | {tuple(t.shape[::-1]) for t in tables}
    cache: dict[str, bool] = {}

    def is_table(name: str) -> bool:
        if name in cache:
            return cache[name]
        hit = False
        if name in inits:
            if tuple(inits[name].dims) in shapes:
                arr = numpy_helper.to_array(inits[name])
                hit = any(arr.shape == t.shape and np.array_equal(arr, t) or
                          arr.shape == t.shape[::-1] and np.array_equal(arr, t.T) for t in tables)
        elif name in producer and producer[name].op_type in _PASS_THROUGH:
            hit = is_table(producer[name].input[0])
        cache[name] = hit
        return hit

    return [node.name for node in model.graph.node if node.op_type in op_types and any(map(is_table, node.input))]


def quantize_int8(src: Path, dst: Path, float_tables: Sequence[np.ndarray] = (), scope: str = DEFAULT_SCOPE
                  ) -> list[str]:
    """Write a dynamically quantized copy of the ONNX model ``src`` to ``dst`` (int8 per-channel weights of
    MatMul/Gemm, activations quantized at run time); with ``scope="body"`` the nodes reading one of
    ``float_tables`` stay float32. Returns the names of the nodes kept in float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if scope not in SCOPES:
        raise ValueError(f"int8 scope must be one of {SCOPES}, got {scope!r}")
    keep: list[str] = []
    if scope == "body" and len(float_tables):
        model = onnx.load(str(src))
        keep = nodes_reading(model, float_tables)
        if not keep or not all(keep):   # nodes_to_exclude works by name (the torch exporter names every node)
            raise RuntimeError(f"{src}: found no named MatMul/Gemm reading the tables to keep in float32")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)    # its advice to run shape pre-processing first, on every call
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=list(OP_TYPES), nodes_to_exclude=keep)
    finally:
        root.setLevel(level)
    return keep
