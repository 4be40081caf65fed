"""Checkpoints: what a training stage produced, written atomically, and the model rebuilt from it alone.

An experiment dir holds one dir per stage, each with its ``best`` and ``last`` checkpoint::

    exp/mini/config.yaml                  resolved config of the latest ``speech-llm train``
    exp/mini/ctc/{best,last}/             the CTC encoder
    exp/mini/llm/{best,last}/             the speech LLM
    exp/mini/merged/                      ``speech-llm merge`` output (optional)
    exp/mt/mt/{best,last}/                a text-translation LLM (stage ``mt``)

A checkpoint dir::

    meta.json          format, stage, step, epoch, valid_loss, and references (below)
    config.yaml        the resolved ExperimentConfig it was trained with
    model.pt           the trained tensors only (a state dict, loaded with weights_only=True)
    units.txt|.json    ctc: the CTC units
    tokenizer/         llm, mt: the LLM tokenizer (llm: with the <|wait|> token)
    training_state.pt  'last' only: optimizer, scheduler, progress, RNG states (for resuming)

What ``model.pt`` holds: for ``ctc`` the whole CTC model (encoder, CTC head, CMVN stats); for ``llm``
the projector, the LoRA weights, the wait-token rows and the CMVN stats — plus the encoder only when it
was fine-tuned; for ``mt`` the LoRA weights (or, with ``llm.lora_rank: 0``, every LLM weight: full
fine-tuning). References in ``meta.json`` name the rest: ``base_llm`` (the ``from_pretrained`` path or
hub name, with a path relative to the checkpoint for moved experiments) and ``encoder_checkpoint`` (the
CTC checkpoint, with the sha256 of its ``model.pt`` so a changed encoder is detected). A merged dir
(``meta.merged``) is standalone: ``llm/`` is a plain Hugging Face model dir with the adapter merged in and
``model.pt`` holds encoder, CMVN and projector.

Saving writes everything into a temporary sibling dir and renames it into place, so an interrupted save
leaves the previous checkpoint intact.

Usage:
    model, tokenizer, cfg = load_model("exp/mini")             # exp dir -> llm/best (else llm/last)
    model, tokenizer, cfg = load_model("exp/mini/llm/last", device="cuda")
    ctc_model, units, cfg = load_ctc_model("exp/mini")          # exp dir -> ctc/best (else ctc/last)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from data_prep.fileutil import staged_dir
from speech_common.errors import UserError
from speech_common.files import file_digest
from speech_llm.config import ConfigError, ExperimentConfig, config_from_saved, dump_yaml

FORMAT = 2
"""2: per-stage training sections in config.yaml (``train.ctc``, ``train.llm``, ``train.mt``); stage ``mt``."""
META, CONFIG, MODEL, TRAINING_STATE, TOKENIZER_DIR = (
    "meta.json", "config.yaml", "model.pt", "training_state.pt", "tokenizer")
BEST, LAST = "best", "last"


class CheckpointError(UserError):
    """A checkpoint is missing, incomplete, or does not fit the model it should rebuild."""


@dataclass
class Checkpoint:
    """A checkpoint dir read from disk (the tensors are loaded on demand)."""

    path: Path
    meta: dict
    config: ExperimentConfig

    @property
    def stage(self) -> str:
        return self.meta["stage"]

    def state(self) -> dict[str, torch.Tensor]:
        """The trained tensors (``model.pt``), on CPU."""
        try:
            return torch.load(self.path / MODEL, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise CheckpointError(f"{self.path / MODEL}: cannot read the model tensors: {e}") from None

    def training_state(self) -> dict | None:
        """Optimizer/scheduler/progress/RNG state for resuming, or None (not a 'last' checkpoint)."""
        path = self.path / TRAINING_STATE
        if not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=False)


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, *, stage: str, config: ExperimentConfig, model_state: Mapping[str, Any],
                    meta: Mapping[str, Any] | None = None, training_state: Mapping[str, Any] | None = None,
                    writers: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write a checkpoint dir atomically (see the module docstring); returns ``path``.

    Args:
        stage: ``ctc``, ``llm`` or ``mt``.
        model_state: tensors for ``model.pt``.
        meta: extra ``meta.json`` entries (step, epoch, references, ...).
        training_state: saved as ``training_state.pt`` when given.
        writers: ``{name: write(path)}`` for extra files or dirs (units, tokenizer), each given
            ``<tmp dir>/<name>``.
    """
    path = Path(path)
    with staged_dir(path) as tmp:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; give it the usual permissions
        torch.save(dict(model_state), tmp / MODEL)
        (tmp / CONFIG).write_text(dump_yaml(config), encoding="utf-8")
        for name, write in (writers or {}).items():
            write(tmp / name)
        if training_state is not None:
            torch.save(dict(training_state), tmp / TRAINING_STATE)
        full_meta = {"format": FORMAT, "stage": stage, **(meta or {})}
        (tmp / META).write_text(json.dumps(full_meta, indent=2) + "\n", encoding="utf-8")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def trained_state(model: nn.Module, prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The tensors to save: parameters that require grad, plus every state entry under ``prefixes``.

    Keys are ``model.state_dict()`` names; values are detached CPU copies.
    """
    keep = {name for name, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            if k in keep or k.startswith(prefixes)}


def load_trained_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Copy ``state`` into ``model``; every saved tensor must have a slot of the same shape."""
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CheckpointError(f"{source}: {len(unknown)} saved tensor(s) do not exist in the rebuilt model "
                              f"(was it trained with another config?), e.g. {', '.join(unknown[:3])}")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
           for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{source}: saved tensors have other shapes than the rebuilt model: "
                              + "; ".join(bad[:3]))
    model.load_state_dict(dict(state), strict=False)


def path_reference(target: str | Path, checkpoint_dir: str | Path) -> dict:
    """``{"path": absolute, "relpath": relative to the (final) checkpoint dir}`` for a local file or dir."""
    target = Path(target).resolve()
    return {"path": str(target), "relpath": os.path.relpath(target, Path(checkpoint_dir).resolve())}


def resolve_reference(ref: Mapping[str, str], checkpoint_dir: str | Path) -> Path | None:
    """The referenced path: relative to the checkpoint first (the experiment may have moved), else absolute.
    """
    rel, absolute = ref.get("relpath"), ref.get("path")
    if rel is not None and (Path(checkpoint_dir) / rel).exists():
        return Path(checkpoint_dir) / rel
    if absolute is not None and Path(absolute).exists():
        return Path(absolute)
    return None


def llm_reference(path_or_name: str, checkpoint_dir: str | Path) -> dict:
    """``base_llm`` entry: the name as configured, plus path references when it is a local dir."""
    if Path(path_or_name).exists():
        return {"name": path_or_name, **path_reference(path_or_name, checkpoint_dir)}
    return {"name": path_or_name}


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


def find_checkpoint(path: str | Path, stage: str = "llm") -> Path:
    """A checkpoint dir from a checkpoint, a stage dir (``exp/ctc``) or an experiment dir (``exp``).

    Prefers ``best`` over ``last``. Raises CheckpointError listing the places looked at.
    """
    path = Path(path)
    if is_checkpoint(path):
        return path
    tried = []
    for base in (path / stage, path):
        for name in (BEST, LAST):
            tried.append(base / name)
            if is_checkpoint(base / name):
                return base / name
    raise CheckpointError(f"no {stage} checkpoint in {path} (looked for {', '.join(str(t) for t in tried)})")


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read ``meta.json`` and ``config.yaml`` of a checkpoint dir."""
    path = Path(path)
    if not is_checkpoint(path):
        raise CheckpointError(f"{path} is not a checkpoint dir (no {META})")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except ValueError as e:
        raise CheckpointError(f"{path / META}: not valid JSON: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / META}: checkpoint format {meta.get('format')!r}, "
                              f"this code reads {FORMAT}")
    try:
        data = yaml.safe_load((path / CONFIG).read_text(encoding="utf-8"))
        config = config_from_saved(data, str(path / CONFIG))
    except OSError as e:
        raise CheckpointError(f"{path / CONFIG}: cannot read: {e.strerror}") from None
    except ConfigError as e:
        raise e.from_source(str(path / CONFIG)) from None
    return Checkpoint(path=path, meta=meta, config=config)


def expect_stage(ckpt: Checkpoint, stage: str) -> None:
    if ckpt.stage != stage:
        raise CheckpointError(f"{ckpt.path} is a {ckpt.stage!r} checkpoint, a {stage!r} one is needed here")


def load_ctc_model(exp_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu",
                   dynamic_chunk: bool | None = None):
    """Rebuild the CTC model of a ``ctc`` checkpoint (``dynamic_chunk``: see
    :func:`speech_llm.model.build.build_encoder_from_config`; False for an encoder that a speech LLM runs).

    Returns ``(CTCModel in eval mode on device, Units, ExperimentConfig)``.
    """
    from speech_llm.model.build import build_ctc_model, merge_lora, new_cmvn
    from speech_llm.model.units import load_units

    ckpt = read_checkpoint(find_checkpoint(exp_dir_or_checkpoint, "ctc"))
    expect_stage(ckpt, "ctc")
    cfg = ckpt.config
    units = load_units(ckpt.path / ckpt.meta["units"], cfg.ctc.units)
    state = ckpt.state()
    cmvn = new_cmvn(cfg.encoder.input_dim) if "cmvn.mean" in state else None
    model = build_ctc_model(cfg, units.vocab_size, cmvn, dynamic_chunk=dynamic_chunk, pretrained=False)
    load_trained_state(model, state, ckpt.path / MODEL)
    model.encoder = merge_lora(model.encoder)   # a LoRA-adapted encoder: its adapter folded in
    return model.to(device).eval(), units, cfg


def encoder_checkpoint(ckpt: Checkpoint) -> Path:
    """The CTC checkpoint an ``llm`` checkpoint references, checked against its recorded sha256."""
    ref = ckpt.meta.get("encoder_checkpoint")
    if not ref:
        raise CheckpointError(f"{ckpt.path / META}: no encoder_checkpoint reference")
    path = resolve_reference(ref, ckpt.path)
    if path is None:
        raise CheckpointError(f"{ckpt.path}: the encoder checkpoint it was trained with is gone: "
                              f"{ref.get('path')} (relative: {ref.get('relpath')})")
    digest = ref.get("sha256")
    if digest and file_digest(path / MODEL) != digest:
        raise CheckpointError(f"{ckpt.path}: the encoder checkpoint {path} has changed since this model "
                              "was trained (its model.pt has another sha256); retrain the llm stage or "
                              "restore it")
    return path


def pretrained_encoder(ckpt: Checkpoint):
    """The pretrained encoder an ``llm`` checkpoint was trained on as it is (meta ``encoder_pretrained``:
    e.g. a distilled Whisper dir), rebuilt from that dir and checked against its recorded weights digest."""
    import dataclasses

    from encoders.feature_cache import state_digest
    from speech_llm.model.build import build_encoder_from_config

    ref = ckpt.meta["encoder_pretrained"]
    path = resolve_reference(ref, ckpt.path)
    if path is None:
        raise CheckpointError(f"{ckpt.path}: the pretrained encoder it was trained with is gone: "
                              f"{ref.get('path')} (relative: {ref.get('relpath')})")
    cfg = dataclasses.replace(ckpt.config.encoder, path_or_name=str(path))
    encoder = build_encoder_from_config(cfg, dynamic_chunk=False)
    digest = ref.get("sha256")
    if digest and state_digest(encoder) != digest:
        raise CheckpointError(f"{ckpt.path}: the encoder at {path} has changed since this model was trained "
                              "(another weights digest); retrain the llm stage or restore it")
    return encoder


def base_llm_path(ckpt: Checkpoint) -> str:
    """Where the base LLM of an ``llm`` checkpoint loads from: a local dir, else the recorded hub name."""
    ref = ckpt.meta.get("base_llm")
    if not ref:
        raise CheckpointError(f"{ckpt.path / META}: no base_llm reference")
    if "path" not in ref:
        return ref["name"]
    path = resolve_reference(ref, ckpt.path)
    if path is None:
        raise CheckpointError(f"{ckpt.path}: the base LLM dir it was trained on is gone: {ref.get('path')}")
    return str(path)


def load_model(exp_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the speech LLM of an ``llm`` checkpoint (or merged dir) for decoding.

    Returns ``(SpeechLLM in eval mode on device, tokenizer with the wait token, ExperimentConfig)``.
    The streaming chunk is the trained one (``streaming.chunk_ms``).
    """
    from speech_llm.model.build import (
        build_encoder_from_config,
        build_speech_llm,
        check_same_encoder,
        load_tokenizer,
        new_cmvn,
    )

    ckpt = read_checkpoint(find_checkpoint(exp_dir_or_checkpoint, "llm"))
    expect_stage(ckpt, "llm")
    cfg = ckpt.config
    state = ckpt.state()
    merged = bool(ckpt.meta.get("merged"))
    if merged:
        llm_path = ckpt.path / "llm"
        tokenizer = load_tokenizer(llm_path)
    else:
        llm_path = base_llm_path(ckpt)
        tokenizer = load_tokenizer(ckpt.path / TOKENIZER_DIR)
    if any(k.startswith("encoder.") for k in state):
        encoder = build_encoder_from_config(cfg.encoder, dynamic_chunk=False, pretrained=False)
        cmvn = new_cmvn(cfg.encoder.input_dim) if "cmvn.mean" in state else None
    elif "encoder_pretrained" in ckpt.meta:
        encoder, cmvn = pretrained_encoder(ckpt), None
    else:
        ctc_model, _, ctc_cfg = load_ctc_model(encoder_checkpoint(ckpt), dynamic_chunk=False)
        check_same_encoder(cfg.encoder, ctc_cfg.encoder, str(ckpt.meta["encoder_checkpoint"]["path"]))
        encoder, cmvn = ctc_model.encoder, ctc_model.cmvn
    model, tokenizer = build_speech_llm(cfg, encoder=encoder, cmvn=cmvn, llm_path=llm_path, tokenizer=tokenizer,
                                        adapters=not merged, initialize_rows=False)
    load_trained_state(model, state, ckpt.path / MODEL)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval(), tokenizer, cfg


def merge_checkpoint(exp_dir_or_checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write a standalone model dir: the LoRA adapter and wait-token rows merged into the LLM weights.

    ``out_dir/llm`` is a plain Hugging Face model dir (``from_pretrained`` loads it, tokenizer included);
    ``out_dir/model.pt`` holds encoder, CMVN and projector. :func:`load_model` reads ``out_dir`` like a
    checkpoint, with no reference to the base LLM or the CTC checkpoint.
    """
    src = read_checkpoint(find_checkpoint(exp_dir_or_checkpoint, "llm"))
    if src.meta.get("merged"):
        raise CheckpointError(f"{src.path} is already a merged model dir")
    from speech_llm.model.build import merge_lora

    model, tokenizer, cfg = load_model(src.path)
    lm = merge_lora(model.glm.lm)
    model.glm.lm = lm
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("encoder.", "cmvn.", "projector."))}

    def write_llm(path: Path) -> None:
        lm.save_pretrained(path)
        tokenizer.save_pretrained(path)

    meta = {"merged": True, "merged_from": str(src.path.resolve()), "step": src.meta.get("step"),
            "epoch": src.meta.get("epoch"), "best_valid_loss": src.meta.get("best_valid_loss")}
    return save_checkpoint(out_dir, stage="llm", config=cfg, model_state=state, meta=meta,
                           writers={"llm": write_llm})


def swap_projector(exp_dir_or_checkpoint: str | Path, proj_checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write an ``llm`` checkpoint that is ``exp_dir_or_checkpoint``'s (LoRA, wait rows, references) with its
    projector replaced by a ``proj`` checkpoint's (LegoSLM's encoder swap: a
    :class:`~speech_llm.model.projector.VocabProjector` hands the LLM posterior mixes of its own token embeddings,
    so an LLM adapter trained on one CTC head reads another). The projector section of the config (stacking,
    width, context layers) comes from the proj checkpoint. Both must have been trained on the same encoder's
    frames (the proj checkpoint's cache key names the encoder digest the llm checkpoint records)."""
    src = read_checkpoint(find_checkpoint(exp_dir_or_checkpoint, "llm"))
    expect_stage(src, "llm")
    proj = read_checkpoint(find_checkpoint(proj_checkpoint, "proj"))
    expect_stage(proj, "proj")
    if src.meta.get("merged") or src.config.projector.kind != "vocab" or proj.config.projector.kind != "vocab":
        raise CheckpointError(f"swap_projector: needs an unmerged llm checkpoint with projector.kind vocab and a "
                              f"proj checkpoint ({src.path}, {proj.path})")
    enc = (src.meta.get("encoder_pretrained") or src.meta.get("encoder_checkpoint") or {}).get("sha256")
    if enc is None or enc not in str(proj.meta.get("encoder_cache", "")):
        raise CheckpointError(f"swap_projector: {proj.path} was trained on other encoder frames "
                              f"({proj.meta.get('encoder_cache')}) than {src.path} (encoder {enc})")
    pstate = proj.state()
    state = {k: v for k, v in src.state().items() if not k.startswith("projector.")}
    state.update({f"projector.{k}": v for k, v in pstate.items()})
    cfg = src.config
    cfg.projector = proj.config.projector
    cfg.projector.vocab_size = int(pstate["vocab_ids"].numel())
    meta = {k: v for k, v in src.meta.items() if k not in ("format", "stage")}
    out = Path(out_dir)
    for key in ("base_llm", "encoder_pretrained", "encoder_checkpoint"):
        ref = meta.get(key)
        target = resolve_reference(ref, src.path) if isinstance(ref, Mapping) and "path" in ref else None
        if target is not None:
            meta[key] = {**ref, **path_reference(target, out)}
    meta["projector_from"] = {**path_reference(proj.path, out), "step": proj.meta.get("step")}

    def copy_tokenizer(path: Path) -> None:
        shutil.copytree(src.path / TOKENIZER_DIR, path)

    return save_checkpoint(out, stage="llm", config=cfg, model_state=state, meta=meta,
                           writers={TOKENIZER_DIR: copy_tokenizer})
