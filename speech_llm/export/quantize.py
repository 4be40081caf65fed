"""int8 copies of the exported models (``speech-llm export --int8 [--int8-scope body|all]``): 8-bit weights in blocks,
activations quantized per block at run time, the vocabulary-wide products kept in float32 by default.

Every MatMul with a constant weight ``W`` (K, N) becomes onnxruntime's ``com.microsoft.MatMulNBits`` with 8 bits:
one scale per block of :data:`BLOCK` weights along K in each output column, and ``accuracy_level``
:data:`ACCURACY_LEVEL`: the activations are quantized to int8 per block of K at run time and the products are int8
dot products. Measured on SmolLM2-135M's LLM step (bench/RESULTS.md, "int8 quality"), onnxruntime's
``quantize_dynamic`` (uint8 activations with **one scale per tensor**) kept the float model's top token on only
47 % of rows, per-channel weights 46 %, and keeping the LM head in float32 49 %: its MLP down-projections read
activations up to 3,300 in a few channels, so one per-tensor scale rounds every other channel to a handful of
levels. Weights alone in int8 keep 97 %; this scheme keeps 96 % (top-5: 100 %), with int8 compute.

``scope``: ``body`` (the default) keeps in float32 every MatMul or Gemm that reads a vocabulary-wide table: the
LLM's output head (the tied embedding matrix in SmolLM2, whose argmax *is* the text) and, for ``projector.kind:
vocab``, the projector's class table (its CTC logits and the posterior mix of the LLM's token embeddings); ``all``
quantizes those too (smaller; further from float32). The LLM's input embeddings are never in a graph: the runtime
looks them up in ``embeddings.npy`` (float32).

The tables are found by what the nodes read, not by node names: a MatMul/Gemm whose constant input (an
initializer, possibly behind Transpose/Identity nodes) equals one of the given float arrays or its transpose.
The export passes the arrays it knows (the LM head weight, the projector's class table); the names of the nodes
kept in float are recorded in the manifest (``int8.float_nodes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speech_common.export_dir import INT8_SCOPES

SCOPES = INT8_SCOPES
DEFAULT_SCOPE = INT8_SCOPES[0]
OP_TYPES = ("MatMul", "Gemm")
BLOCK = 32
"""Weights per scale, along the reduction axis K."""
ACCURACY_LEVEL = 4
"""MatMulNBits' compute type: 4 quantizes the activations to int8 per block of K at run time (int8 dot products),
so one large activation only coarsens its own block, not the whole tensor."""
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
    """Write an int8 copy of the ONNX model ``src`` to ``dst`` (module docstring): every MatMul with a constant
    2-D weight becomes a ``MatMulNBits`` (8 bits, blocks of :data:`BLOCK` along K, ``accuracy_level``
    :data:`ACCURACY_LEVEL`); with ``scope="body"`` the nodes reading one of ``float_tables`` stay float32.
    Returns the names of the nodes kept in float."""
    import onnx

    if scope not in SCOPES:
        raise ValueError(f"int8 scope must be one of {SCOPES}, got {scope!r}")
    model = onnx.load(str(src))
    keep: list[str] = []
    if scope == "body" and len(float_tables):
        keep = nodes_reading(model, float_tables)
        if not keep:
            raise RuntimeError(f"{src}: found no MatMul/Gemm reading the tables to keep in float32")
    _to_matmul_nbits(model, set(keep))
    onnx.save(model, str(dst))
    return keep


def _to_matmul_nbits(model, keep: set[str]) -> None:
    """Replace, in place, each MatMul ``A @ W`` of ``model`` with a constant (K, N) ``W`` (and not in ``keep``) by
    ``com.microsoft.MatMulNBits``: W^T in blocks of :data:`BLOCK` along K (zero-padded), one float scale per
    block (``max |w| / 127``), stored as ``round(w / scale) + 128`` in uint8 (symmetric: the default zero point)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes, quantized = [], {}
    for node in model.graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and node.name not in keep else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
            nodes.append(node)
            continue
        if w.name not in quantized:
            quantized[w.name] = _quantize_blocks(numpy_helper.to_array(w), w.name)
            model.graph.initializer.extend(quantized[w.name])
        k, n = w.dims
        q, scales = quantized[w.name]
        nodes.append(helper.make_node("MatMulNBits", [node.input[0], q.name, scales.name], list(node.output),
                                      f"{node.name}_Q8", domain="com.microsoft", K=k, N=n, bits=8,
                                      block_size=BLOCK, accuracy_level=ACCURACY_LEVEL))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used or t.name not in quantized]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if quantized and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def _quantize_blocks(w: np.ndarray, name: str) -> tuple:
    """(K, N) float32 -> MatMulNBits' ``B`` (N, ceil(K / BLOCK), BLOCK) uint8 and ``scales`` (N * blocks,)."""
    from onnx import numpy_helper

    k, n = w.shape
    blocks = -(-k // BLOCK)
    wt = np.zeros((n, blocks * BLOCK), np.float32)
    wt[:, :k] = w.T
    wt = wt.reshape(n, blocks, BLOCK)
    scale = np.abs(wt).max(axis=-1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    q = (np.clip(np.round(wt / scale), -127, 127) + 128).astype(np.uint8)
    return (numpy_helper.from_array(q, f"{name}_q8"),
            numpy_helper.from_array(scale.reshape(-1).astype(np.float32), f"{name}_scales"))

