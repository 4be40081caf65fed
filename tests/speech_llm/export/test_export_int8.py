"""``--int8`` (speech_llm.export.quantize): 8-bit block-wise weights (MatMulNBits) for the body, the
vocabulary-wide products (the LLM's output head, the vocabulary projector's class table) left in float32 and recorded
in the manifest; the int8 LLM step's logits stay within a stated tolerance of float32's on the tiny models;
``--int8-scope all`` quantizes the head too. And the vocabulary projector stores its class table once."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from speech_common.export_dir import INT8_PARTS
from speech_llm.export import export_recognizer
from speech_llm.export.onnx_export import MANIFEST, float_tables
from speech_llm.export.quantize import nodes_reading

# The int8 LLM step on real token embeddings (8 rows of 12 tokens): max |logit difference| to float32, as a fraction
# of the float logits' standard deviation. Measured on the tiny Llama: 0.07 with onnxruntime's quantize_dynamic
# defaults (per-tensor, head quantized), 0.02 with per-channel weights and the head in float32.
LOGIT_TOL = 0.05


def manifest(d):
    return json.loads((d / MANIFEST).read_text())


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def weight_of(model, node) -> np.ndarray | None:
    """The constant (initializer) input of ``node``, if any."""
    inits = {t.name: t for t in model.graph.initializer}
    for name in node.input:
        if name in inits and len(inits[name].dims) == 2:
            return numpy_helper.to_array(inits[name])
    return None


def llm_logits(export_dir, file) -> np.ndarray:
    """Last-row logits of the LLM step (no cache) for 8 rows of 12 real token embeddings, causal mask."""
    m = manifest(export_dir)["llm"]
    emb = np.load(export_dir / m["embeddings"])
    rng = np.random.default_rng(0)
    b, n = 8, 12
    mask = np.broadcast_to(np.triu(np.full((n, n), np.finfo(np.float32).min, np.float32), 1), (b, 1, n, n))
    feed = {"inputs_embeds": emb[rng.integers(0, len(emb), (b, n))], "position_ids": np.tile(np.arange(n), (b, 1)),
            "attention_mask": np.ascontiguousarray(mask)}
    feed.update({f"past_{k}_{i}": np.zeros((b, m["num_kv_heads"], 0, m["head_dim"]), np.float32)
                 for i in range(m["num_layers"]) for k in ("key", "value")})
    return session(export_dir / file).run(["logits"], feed)[0]


@pytest.mark.parametrize("fixture", ["export_dir", "whisper_export"])
def test_head_and_class_table_stay_float(request, fixture):
    """The nodes named in the manifest are still float MatMuls in the int8 graphs, reading the very tables (found
    again here by value); every other MatMul with a constant weight became an 8-bit MatMulNBits."""
    d = request.getfixturevalue(fixture)
    rec = request.getfixturevalue({"export_dir": "torch_rec", "whisper_export": "whisper_rec"}[fixture])
    q = manifest(d)["int8"]
    assert q["scope"] == "body" and q["op"] == "MatMulNBits" and q["bits"] == 8
    tables = float_tables(rec.model)
    vocab = fixture == "whisper_export"
    assert len(q["float_nodes"]["llm"]) == 1 and len(q["float_nodes"]["projector"]) == (2 if vocab else 0)
    assert q["float_nodes"]["encoder"] == []
    for part in ("projector", "llm"):
        model = onnx.load(str(d / q[part]))
        kept = [n for n in model.graph.node if n.name in q["float_nodes"][part]]
        assert len(kept) == len(q["float_nodes"][part])
        assert sorted(nodes_reading(model, tables[part])) == sorted(q["float_nodes"][part])
        for node in kept:
            assert node.op_type in ("MatMul", "Gemm")
            w = weight_of(model, node)
            assert w is not None and w.dtype == np.float32
            assert any(np.array_equal(w, t) or np.array_equal(w, t.T) for t in tables[part])
        nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
        assert nbits and all(a.i == 8 for n in nbits for a in n.attribute if a.name == "bits")
        float_matmuls = [n.name for n in model.graph.node if n.op_type == "MatMul" and weight_of(model, n) is not None]
        assert sorted(float_matmuls) == sorted(n.name for n in kept if n.op_type == "MatMul")


def test_int8_llm_logits_close(export_dir):
    ref = llm_logits(export_dir, "llm.onnx")
    got = llm_logits(export_dir, manifest(export_dir)["int8"]["llm"])
    err = float(np.abs(got - ref).max())
    assert err < LOGIT_TOL * float(ref.std()), (err, float(ref.std()))
    assert (got.argmax(-1) == ref.argmax(-1)).all()


def test_scope_all_quantizes_the_head(torch_rec, export_dir, tmp_path):
    """``int8_scope="all"``: nothing kept in float, the head's MatMul is gone, the int8 LLM is smaller, and its
    logits are further from float32 than the default's (the reason for the default)."""
    d = export_recognizer(torch_rec, tmp_path / "all", int8=True, int8_scope="all", int8_parts=INT8_PARTS)
    q = manifest(d)["int8"]
    assert q["scope"] == "all" and q["float_nodes"] == {"encoder": [], "projector": [], "llm": []}
    model = onnx.load(str(d / q["llm"]))
    assert nodes_reading(model, float_tables(torch_rec.model)["llm"]) == []
    assert (d / q["llm"]).stat().st_size < (export_dir / manifest(export_dir)["int8"]["llm"]).stat().st_size
    ref = llm_logits(export_dir, "llm.onnx")
    err_all = np.abs(llm_logits(d, q["llm"]) - ref).max()
    err_body = np.abs(llm_logits(export_dir, manifest(export_dir)["int8"]["llm"]) - ref).max()
    assert err_body < err_all


def test_unknown_scope_is_refused(torch_rec, tmp_path):
    from speech_common.errors import UserError

    with pytest.raises(UserError, match="int8-scope"):
        export_recognizer(torch_rec, tmp_path / "out", int8=True, int8_scope="head")
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_class_table_stored_once(whisper_rec, whisper_export):
    """projector.onnx holds the (|V| + 1, D) class table once (not also transposed), read by both products."""
    table = whisper_rec.model.projector.classes().detach().numpy()
    model = onnx.load(str(whisper_export / "projector.onnx"))
    copies = [t.name for t in model.graph.initializer
              if tuple(t.dims) in (table.shape, table.shape[::-1])]
    assert len(copies) == 1
    assert len(nodes_reading(model, [table])) == 2


def test_int8_parts_quantize_only_the_named_models(torch_rec, export_dir, tmp_path):
    """The default ``int8_parts=("llm",)``: only the LLM step gets an int8 file; the manifest's int8 entry names the
    float files of the encoder and the projector (the runtime's int8 recogniser loads those and decodes), and its
    int8 LLM's logits equal the all-int8 export's."""
    from runtime_testutil import audio, feed

    import speech_runtime

    d = export_recognizer(torch_rec, tmp_path / "llm_only", int8=True)   # the default: the LLM step only
    q = manifest(d)["int8"]
    assert q["parts"] == ["llm"] and q["encoder"] == "encoder.onnx" and q["projector"] == "projector.onnx"
    assert q["llm"] == "llm.int8.onnx" and set(q["float_nodes"]) == {"llm"}
    assert not (d / "encoder.int8.onnx").exists() and not (d / "projector.int8.onnx").exists()
    assert np.array_equal(llm_logits(d, q["llm"]), llm_logits(export_dir, manifest(export_dir)["int8"]["llm"]))
    streams, results = feed(speech_runtime.load_recognizer(d, int8=True, threads=1), [audio(1.1, 1)], fixed=1600)
    assert results[0].finished and streams[0].trace


def test_unknown_int8_part_is_refused(torch_rec, tmp_path):
    from speech_common.errors import UserError

    with pytest.raises(UserError, match="int8-parts"):
        export_recognizer(torch_rec, tmp_path / "out", int8=True, int8_parts=("decoder",))
    assert not (tmp_path / "out" / MANIFEST).exists()
