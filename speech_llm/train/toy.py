"""A toy experiment that trains in seconds on CPU: tiny synthetic speech, a tiny LLM, a tiny config.

For tests, benchmarks and trying the pipeline end to end without any download:

    from speech_llm.train.toy import make_toy_experiment
    cfg = make_toy_experiment("/tmp/toy")            # corpus, manifests, tiny LLM; returns the config
    run_ctc_stage(cfg, "/tmp/toy/exp"); run_llm_stage(cfg, "/tmp/toy/exp")

Speech translation: ``make_toy_experiment(root, translations=["fr"], overrides=["llm.task=st"])`` trains
the tiny LLM's tokenizer on the French translations too (a separate LLM dir, ``tiny_llm_<arch>_fr``);
``pretrain_steps=300, llm_hidden_size=64`` give an LLM that already writes the toy English and French,
which the ST adapter then only has to steer (a random 32-wide one learns too slowly for a test).

Everything is cached under the root: calling it again with the same arguments reuses what exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from speech_llm.config import ExperimentConfig, load_config

TOY_OVERRIDES = (
    "encoder.d_model=32", "encoder.num_layers=2", "encoder.num_heads=2", "encoder.ffn_dim=64",
    "encoder.conv_kernel=3", "encoder.dropout=0.1",
    "projector.stack=2", "projector.hidden_dim=32",
    "streaming.chunk_ms=160", "streaming.batch_mode_share=0.3",
    "llm.lora_rank=4", "llm.lora_alpha=8", "llm.lora_dropout=0.0", "llm.lora_target_modules=[q_proj, v_proj]",
    *(f"train.{stage}.{kv}" for stage in ("ctc", "llm") for kv in (
        "lr=3e-3", "warmup_steps=3", "max_steps=30", "epochs=100", "max_frames_per_batch=2000", "log_every=5",
        "save_every=10", "precision=fp32")),
)
"""A 2-layer 32-dim Conformer, 160 ms chunks of 2 LLM tokens, LoRA rank 4 on q/v, 30 steps."""


def make_toy_data(root: str | Path, num_utts: int = 20, seed: int = 0) -> dict[str, Path]:
    """Synthetic corpus (espeak-ng/flite, with word times) prepared into ``root/data/<split>/manifest.jsonl``.

    Returns ``{split: manifest path}`` for ``train``, ``dev`` and ``test``.
    """
    from data_prep.librispeech import prepare_librispeech
    from data_prep.synth import generate_corpus

    root = Path(root)
    manifests = {s: root / "data" / s / "manifest.jsonl" for s in ("train", "dev", "test")}
    if not all(p.is_file() for p in manifests.values()):
        corpus = generate_corpus(root / "corpus", num_utts=num_utts, seed=seed, num_workers=1, progress=False)
        prepare_librispeech(corpus, ["train", "dev", "test"], root / "data")
    return manifests


def make_toy_llm(out_dir: str | Path, texts: Iterable[str], arch: str = "qwen2", seed: int = 0,
                 pretrain_steps: int = 0, hidden_size: int = 32) -> Path:
    """A tiny Qwen2/Llama (2 layers of ``hidden_size``) with a BPE tokenizer trained on ``texts``, saved by path.

    ``pretrain_steps`` > 0 then trains it as a causal LM on ``texts`` (batches of 8 x 32 tokens), so it
    knows the toy language(s) the way a real base LLM does.
    """
    from speech_llm.model.tiny_llm import build_tiny_llm, pretrain_lm, train_tokenizer

    out_dir = Path(out_dir)
    texts = list(texts)
    if not (out_dir / "config.json").is_file():
        train_tokenizer(texts, vocab_size=400, out_dir=out_dir)
        build_tiny_llm(out_dir, out_dir, arch=arch, hidden_size=hidden_size, num_layers=2, num_heads=4,
                       num_kv_heads=2, intermediate_size=2 * hidden_size, seed=seed)
        if pretrain_steps > 0:
            pretrain_lm(out_dir, texts, steps=pretrain_steps, batch_size=8, lr=3e-3, seq_len=32, seed=seed,
                        progress=False)
    return out_dir


def make_toy_experiment(root: str | Path, num_utts: int = 20, seed: int = 0, arch: str = "qwen2",
                        overrides: Iterable[str] = (), translations: Iterable[str] = (),
                        pretrain_steps: int = 0, llm_hidden_size: int = 32) -> ExperimentConfig:
    """Data + tiny LLM under ``root`` and the toy config pointing at them (plus ``overrides``).

    ``translations``: languages (``["fr"]``) whose training translations the tiny LLM's tokenizer also
    learns from, for speech translation. ``pretrain_steps``: LM pre-training of the tiny LLM on those
    texts (see :func:`make_toy_llm`); ``llm_hidden_size``: its width. Each choice gets its own LLM dir,
    ``tiny_llm_<arch>[_<langs>][_lm<steps>][_h<size>]``.
    """
    from data_prep.manifest import read_manifest

    root = Path(root)
    langs = list(translations)
    manifests = make_toy_data(root, num_utts, seed)
    records = read_manifest(manifests["train"])
    texts = [r["text"] for r in records]
    texts += [r["translation"][lang] for lang in langs for r in records if lang in (r.get("translation") or {})]
    name = "_".join([f"tiny_llm_{arch}", *langs] + ([f"lm{pretrain_steps}"] if pretrain_steps > 0 else [])
                    + ([f"h{llm_hidden_size}"] if llm_hidden_size != 32 else []))
    llm = make_toy_llm(root / name, texts * 4, arch=arch, seed=seed, pretrain_steps=pretrain_steps,
                       hidden_size=llm_hidden_size)
    paths = (f"data.train_manifest={manifests['train']}", f"data.valid_manifest={manifests['dev']}",
             f"data.cmvn_path={root / 'data' / 'cmvn.json'}", "data.units_path=null",
             f"llm.path_or_name={llm}")
    return load_config(None, [*TOY_OVERRIDES, *paths, *overrides])
