"""The training loop shared by the stages: accelerate, accumulation, clipping, schedule, checkpoints, resume.

A stage (:class:`Stage`) supplies the model, the data sets and how to compute a loss; :class:`Trainer`
does the rest:

* devices and precision through ``accelerate`` (bf16 autocast on a GPU that supports it, fp32 on CPU;
  ``accelerate launch`` for several GPUs: each process takes its share of the batches);
* AdamW (no weight decay on biases, norms and token rows), linear warm-up then cosine decay to 10 % of
  ``train.<stage>.lr``, gradient accumulation over ``grad_accum`` batches, clipping at ``grad_clip``;
* a tqdm bar with loss, learning rate and throughput (audio seconds per wall second), and
  ``<out>/train_log.jsonl`` (one JSON record per log interval and per validation);
* validation loss every ``valid_every`` steps or at each epoch end; ``<out>/best`` holds the best
  model so far, ``<out>/last`` the latest one plus everything needed to resume: optimizer, scheduler,
  step, epoch, the position inside the epoch (batches consumed) and the RNG states (python, numpy,
  torch, CUDA). ``last`` is written every ``save_every`` steps and at each epoch end.

Resuming from ``last`` after an interruption continues exactly where that checkpoint was taken: on CPU
with a fixed seed the parameters after N steps are the same as without the interruption. (The data
loader draws its worker seed from a private generator, so the global RNG sees the same draws.)

Usage:
    trainer = Trainer(stage, cfg, out_dir="exp/mini/ctc")
    result = trainer.fit()            # resumes from exp/mini/ctc/last when it holds a training state
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from encoders.constants import FRAME_SHIFT_MS
from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig, config_to_dict
from speech_llm.model.checkpoint import (
    BEST,
    LAST,
    is_checkpoint,
    load_trained_state,
    read_checkpoint,
    save_checkpoint,
)
from speech_llm.train.data import BucketBatchSampler, collate, record_frames

LOG_FILE = "train_log.jsonl"
MIN_LR_RATIO = 0.1
RESUMABLE_FIELDS = ("epochs", "max_steps", "log_every", "save_every", "valid_every", "num_workers")
"""Fields of a stage's ``train.<stage>`` section that may change between an interrupted run and its
resumption (besides the ``decode`` section and the other stages' sections)."""


def resumable_keys(stage: str) -> tuple[str, ...]:
    """Config key prefixes a resumed ``stage`` ignores (see :data:`RESUMABLE_FIELDS`)."""
    from speech_llm.config import TrainStages

    own = "ctc" if stage == "align" else stage
    others = tuple(f"train.{f.name}." for f in dataclasses.fields(TrainStages) if f.name != own)
    return (*(f"train.{own}.{k}" for k in RESUMABLE_FIELDS), "decode.", *others)


# ---------------------------------------------------------------------------------------------------
# What a stage provides
# ---------------------------------------------------------------------------------------------------


class Stage:
    """One training stage. Subclasses set the attributes and implement :meth:`train_loss`.

    Attributes:
        name: ``ctc``, ``llm`` or ``mt`` (the checkpoint's stage; its config section is ``train.<name>``).
        model: the (unwrapped) model; parameters with ``requires_grad`` are trained.
        train_set, valid_set: datasets with a ``records`` list (valid may be None); speech stages use
            :class:`~speech_llm.train.data.FbankDataset`.

    The data hooks (:meth:`item_costs`, :meth:`batch_budget`, :meth:`collate`, :meth:`batch_audio_s`)
    default to audio: items cost their fbank frames, batches are bounded by ``max_frames_per_batch``.
    """

    name: str = ""
    model: nn.Module
    train_set: Dataset
    valid_set: Dataset | None = None

    def item_costs(self, dataset: Dataset) -> list[int]:
        """The padded size of each item, for bucketing batches under :meth:`batch_budget`."""
        return [record_frames(r) for r in dataset.records]

    def batch_budget(self, tc) -> int:
        """Largest batch (``len * longest`` in :meth:`item_costs` units) for the stage's train section."""
        return tc.max_frames_per_batch

    def collate(self, items: list) -> dict:
        return collate(items)

    def batch_audio_s(self, batch: dict) -> float:
        """Seconds of audio in a batch (the throughput shown while training; 0 for text)."""
        return float(batch["feat_lens"].sum()) * FRAME_SHIFT_MS / 1000

    def train_loss(self, model: Callable, batch: dict) -> torch.Tensor:
        """Scalar training loss of a batch; ``model`` is the (possibly wrapped) model to call."""
        raise NotImplementedError

    def valid_loss(self, model: Callable, batch: dict) -> tuple[float, float]:
        """``(loss summed over the batch's units, number of units)`` for a token/frame-weighted mean."""
        loss = self.train_loss(model, batch)
        return float(loss) * len(batch["keys"]), float(len(batch["keys"]))

    def set_train_mode(self) -> None:
        """Put the model in training mode (a stage may keep frozen parts in eval mode)."""
        self.model.train()

    def checkpoint_content(self, out_dir: Path) -> tuple[dict, dict, dict]:
        """``(model_state, meta, writers)`` for :func:`speech_llm.model.checkpoint.save_checkpoint`."""
        raise NotImplementedError

    def valid_report(self) -> dict:
        """Extra validation metrics (e.g. a greedy WER), computed after the validation loss."""
        return {}


@dataclass
class Progress:
    """Where training stands: optimizer steps done, current epoch, batches of it consumed, best valid loss."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_valid: float | None = None


@dataclass
class TrainResult:
    progress: Progress
    losses: list[float] = field(default_factory=list)
    """Training loss of every optimizer step taken in this call."""
    valid: list[dict] = field(default_factory=list)
    audio_s: float = 0.0
    train_wall_s: float = 0.0
    interrupted: bool = False

    @property
    def throughput(self) -> float:
        """Audio seconds trained per wall second (forward + backward + update, without validation)."""
        return self.audio_s / self.train_wall_s if self.train_wall_s > 0 else 0.0


class WarmupCosine:
    """LR factor: linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""

    def __init__(self, warmup: int, total: int, min_ratio: float = MIN_LR_RATIO):
        self.warmup, self.total, self.min_ratio = warmup, max(total, 1), min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        span = max(self.total - self.warmup, 1)
        t = min(max(step - self.warmup, 0) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


# ---------------------------------------------------------------------------------------------------
# RNG and config helpers
# ---------------------------------------------------------------------------------------------------


def run_training(make_stage: Callable[[], Stage], cfg: ExperimentConfig, stage_dir: str | Path,
                 resume: bool = True, cpu: bool = False, stop_after: int | None = None,
                 progress_bar: bool = True) -> TrainResult:
    """What every stage's ``run_*_stage`` does: clear ``stage_dir`` unless ``resume``, seed from the stage's
    ``train.<stage>.seed``, build the stage (``make_stage()``, on the main process first), report the
    utterances it had to drop, and fit it; resumes from ``stage_dir/last`` when ``resume``."""
    stage_dir = Path(stage_dir)
    name = stage_dir.name
    with main_process_first(cpu):
        if not resume:
            clear_stage(stage_dir)
        seed_everything(cfg.train.of(name).seed)
        stage = make_stage()
    dropped = getattr(stage, "dropped", None)
    if dropped and progress_bar:
        print(f"[{stage.name}] skipping {len(dropped)} utterance(s) too short for the encoder: "
              f"{', '.join(dropped[:5])}")
    trainer = Trainer(stage, cfg, stage_dir, cpu=cpu, progress_bar=progress_bar)
    return trainer.fit(resume=resume, stop_after=stop_after)


def clear_stage(stage_dir: str | Path) -> None:
    """Remove a stage dir's checkpoints and log (to train it again from scratch)."""
    import shutil

    stage_dir = Path(stage_dir)
    for name in (BEST, LAST):
        if (stage_dir / name).is_dir():
            shutil.rmtree(stage_dir / name)
    (stage_dir / LOG_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def main_process_first(cpu: bool = False):
    """Run the block on the main process first, then on the others (so they read what it wrote:
    CMVN stats, units). A no-op with a single process."""
    from accelerate import PartialState

    with PartialState(cpu=cpu).main_process_first():
        yield


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(a: ExperimentConfig, b: ExperimentConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """``"key: old -> new"`` for each dotted key whose value differs (keys starting with an ``ignore``
    entry are skipped)."""
    fa, fb = _flatten(config_to_dict(a)), _flatten(config_to_dict(b))
    return [f"{k}: {fb.get(k)!r} -> {fa.get(k)!r}" for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k) and not any(k == i or k.startswith(i) for i in ignore)]


def mixed_precision(precision: str, cpu: bool) -> str:
    """accelerate's ``mixed_precision`` for ``train.precision``: 'auto' = bf16 on a capable GPU, else none."""
    if precision == "fp32" or cpu or not torch.cuda.is_available():
        if precision == "bf16" and (cpu or not torch.cuda.is_available()):
            raise UserError("train.precision=bf16 needs a GPU; use fp32 or auto on CPU")
        return "no"
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------


class Trainer:
    """Runs a :class:`Stage` with its ``train.<stage>`` section of ``cfg``; checkpoints go to ``out_dir``.

    Args:
        stage: the stage (model, data, loss).
        cfg: the resolved experiment config (saved inside every checkpoint).
        out_dir: the stage dir (``exp/x/ctc``); ``best`` and ``last`` are created inside it.
        cpu: force CPU even when a GPU is present.
        progress_bar: show tqdm.
    """

    def __init__(self, stage: Stage, cfg: ExperimentConfig, out_dir: str | Path, cpu: bool = False,
                 progress_bar: bool = True):
        from accelerate import Accelerator

        self.stage, self.cfg, self.tc = stage, cfg, cfg.train.of(stage.name)
        self.out_dir = Path(out_dir)
        self.progress_bar = progress_bar
        self.acc = Accelerator(mixed_precision=mixed_precision(self.tc.precision, cpu), cpu=cpu)
        budget = stage.batch_budget(self.tc)
        self.sampler = BucketBatchSampler(stage.item_costs(stage.train_set), budget, shuffle=True,
                                          seed=self.tc.seed, num_replicas=self.acc.num_processes,
                                          rank=self.acc.process_index)
        if not self.sampler.batches(0):
            raise UserError("no training batches: the training data holds no usable item")
        self.loader = self._loader(stage.train_set, self.sampler)
        self.valid_loader = None
        if stage.valid_set is not None and len(stage.valid_set):
            valid_sampler = BucketBatchSampler(stage.item_costs(stage.valid_set), budget, shuffle=False,
                                               num_replicas=self.acc.num_processes,
                                               rank=self.acc.process_index)
            self.valid_loader = self._loader(stage.valid_set, valid_sampler)
        self.progress = Progress()

        params = [(n, p) for n, p in stage.model.named_parameters() if p.requires_grad]
        if not params:
            raise UserError(f"stage {stage.name}: the model has no trainable parameters")
        decay = [p for n, p in params if p.dim() >= 2 and "trainable_tokens" not in n]
        no_decay = [p for n, p in params if not (p.dim() >= 2 and "trainable_tokens" not in n)]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.tc.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=self.tc.lr)
        self.schedule = WarmupCosine(self.tc.warmup_steps, self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule)
        self.model, self.optimizer = self.acc.prepare(stage.model, optimizer)

    # ------------------------------------------------------------------ setup
    def _loader(self, dataset: Dataset, sampler: BucketBatchSampler) -> DataLoader:
        # A private generator: creating the loader's iterator must not draw from the global RNG.
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=self.stage.collate,
                          num_workers=self.tc.num_workers,
                          generator=torch.Generator().manual_seed(self.tc.seed))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.sampler.batches(0)) / self.tc.grad_accum)

    @property
    def total_steps(self) -> int:
        return self.tc.max_steps if self.tc.max_steps > 0 else self.tc.epochs * self.steps_per_epoch

    def finished(self) -> bool:
        p = self.progress
        return (self.tc.max_steps > 0 and p.step >= self.tc.max_steps) or p.epoch >= self.tc.epochs

    # ------------------------------------------------------------------ checkpoints
    def _save(self, name: str, training: bool) -> None:
        if self.acc.is_main_process:
            state, meta, writers = self.stage.checkpoint_content(self.out_dir / name)
            meta = {**meta, "step": self.progress.step, "epoch": self.progress.epoch,
                    "best_valid_loss": self.progress.best_valid}
            training_state = None
            if training:
                training_state = {"progress": asdict(self.progress), "optimizer": self.optimizer.state_dict(),
                                  "scheduler": self.scheduler.state_dict(), "rng": rng_state()}
            save_checkpoint(self.out_dir / name, stage=self.stage.name, config=self.cfg, model_state=state,
                            meta=meta, training_state=training_state, writers=writers)
        self.acc.wait_for_everyone()

    def resume(self) -> bool:
        """Load ``<out>/last`` if it holds a training state; returns whether it did."""
        path = self.out_dir / LAST
        if not is_checkpoint(path):
            return False
        ckpt = read_checkpoint(path)
        state = ckpt.training_state()
        if state is None:
            return False
        diff = config_differences(self.cfg, ckpt.config, ignore=resumable_keys(self.stage.name))
        if diff:
            raise UserError(f"cannot resume from {path}: the config differs from the one it was trained with "
                            "(restart the stage to train with the new config):\n  " + "\n  ".join(diff))
        load_trained_state(self.acc.unwrap_model(self.model), ckpt.state(), path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule of *this* config (max_steps or epochs may have grown), for every param group.
        # LambdaLR's state holds its lambdas' attributes, so loading it wrote the old run's total into
        # self.schedule: build it again, and give the next step its learning rate under it.
        self.schedule = WarmupCosine(self.tc.warmup_steps, self.total_steps)
        self.scheduler.lr_lambdas = [self.schedule] * len(self.scheduler.lr_lambdas)
        factor = self.schedule(self.scheduler.last_epoch)
        for group, base_lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_lr * factor
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        self._truncate_log(self.progress.step)
        return True

    # ------------------------------------------------------------------ logging
    def _log(self, record: dict) -> None:
        if self.acc.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _truncate_log(self, step: int) -> None:
        """Drop log records of steps after ``step`` (they were lost with the interruption)."""
        path = self.out_dir / LOG_FILE
        if self.acc.is_main_process and path.is_file():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                     if ln.strip() and json.loads(ln).get("step", 0) <= step]
            path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")

    def _say(self, text: str) -> None:
        """A status line on the main process (above the progress bar, or a plain line without one)."""
        if not self.acc.is_main_process:
            return
        if self.progress_bar:
            tqdm.write(text)
        else:
            print(text, flush=True)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> float | None:
        """Validation loss (saving ``best`` when it improves); None without a validation set."""
        if self.valid_loader is None:
            return None
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.acc.device)
        for batch in self.valid_loader:
            with self.acc.autocast():
                loss_sum, weight = self.stage.valid_loss(self.model, self._to_device(batch))
            total += torch.tensor([loss_sum, weight], dtype=torch.float64, device=self.acc.device)
        total = self.acc.reduce(total, reduction="sum")
        loss = float(total[0] / total[1].clamp_min(1.0))
        extra = self.stage.valid_report()
        record = {"step": self.progress.step, "epoch": self.progress.epoch, "valid_loss": loss, **extra}
        self._log(record)
        improved = self.progress.best_valid is None or loss < self.progress.best_valid
        if improved:
            self.progress.best_valid = loss
            self._save(BEST, training=False)
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items())
        self._say(f"[{self.stage.name}] step {self.progress.step}: valid loss {loss:.4f} {shown}"
                  + (" (best)" if improved else ""))
        self.stage.set_train_mode()
        return loss

    # ------------------------------------------------------------------ training
    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.acc.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _backward(self, batch: dict, sync: bool) -> float:
        """Forward and backward of one batch (gradients accumulate; synced across processes if ``sync``)."""
        with contextlib.nullcontext() if sync else self.acc.no_sync(self.model):
            with self.acc.autocast():
                loss = self.stage.train_loss(self.model, self._to_device(batch))
            self.acc.backward(loss / self.tc.grad_accum)
        return float(loss.detach())

    def _update(self) -> float | None:
        """Clip, step the optimizer and the schedule, clear the gradients; returns the gradient norm."""
        grad_norm = None
        if self.tc.grad_clip > 0:
            params = [q for q in self.model.parameters() if q.requires_grad]
            grad_norm = float(self.acc.clip_grad_norm_(params, self.tc.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.step += 1
        return grad_norm

    def fit(self, resume: bool = True, stop_after: int | None = None) -> TrainResult:
        """Train until ``max_steps`` or ``epochs`` (of ``train.<stage>``); resume from ``last`` first when ``resume``.

        ``stop_after``: stop (without saving) once this global step is reached, as if the process were
        killed there; for tests of resuming.
        """
        if resume and self.resume():
            p = self.progress
            if self.finished():
                self._say(f"[{self.stage.name}] {self.out_dir / LAST} has finished training (step {p.step}); "
                          f"raise train.{self.stage.name}.max_steps or .epochs to train on")
                return TrainResult(progress=p)
            self._say(f"[{self.stage.name}] resumed from {self.out_dir / LAST} at step {p.step} "
                      f"(epoch {p.epoch}, batch {p.batch_in_epoch})")
        tc, p = self.tc, self.progress
        result = TrainResult(progress=p)
        bar = tqdm(total=self.total_steps, initial=p.step, desc=f"train {self.stage.name}", unit="step",
                   disable=not (self.progress_bar and self.acc.is_main_process), dynamic_ncols=True)
        window = _Window()
        saved_at = validated_at = -1
        self.stage.set_train_mode()
        try:
            while not self.finished():
                self.sampler.set_epoch(p.epoch, start=p.batch_in_epoch)
                num_batches = len(self.sampler.batches(p.epoch))
                micro_losses: list[float] = []
                tick = time.perf_counter()
                for batch in self.loader:
                    p.batch_in_epoch += 1
                    sync = p.batch_in_epoch % tc.grad_accum == 0 or p.batch_in_epoch == num_batches
                    micro_losses.append(self._backward(batch, sync))
                    audio = self.stage.batch_audio_s(batch) * self.acc.num_processes
                    result.audio_s += audio
                    window.audio_s += audio
                    if not sync:
                        continue
                    grad_norm = self._update()
                    loss = sum(micro_losses) / len(micro_losses)
                    micro_losses = []
                    elapsed = time.perf_counter() - tick
                    result.losses.append(loss)
                    result.train_wall_s += elapsed
                    window.add(loss, elapsed)
                    lr = self.scheduler.get_last_lr()[0]
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", audio_x=f"{window.throughput:.1f}")
                    if p.step % tc.log_every == 0:
                        record = {"step": p.step, "epoch": p.epoch, "loss": window.mean_loss, "lr": lr,
                                  "grad_norm": grad_norm, "audio_s_per_s": window.throughput,
                                  "step_s": window.step_s}
                        if self.acc.device.type == "cuda":   # peak memory so far, this process
                            record["max_memory_gb"] = round(torch.cuda.max_memory_allocated(self.acc.device) / 1e9, 3)
                        self._log(record)
                        if not self.progress_bar:  # no bar to show progress: one line per log interval
                            self._say(f"[{self.stage.name}] step {p.step} epoch {p.epoch}: loss "
                                      f"{window.mean_loss:.4f} lr {lr:.2e} audio {window.throughput:.1f} s/s")
                        window = _Window()
                    if tc.valid_every and p.step % tc.valid_every == 0:
                        self.validate()
                        validated_at = p.step
                    if self.finished():
                        break
                    if p.step % tc.save_every == 0:
                        self._save(LAST, training=True)
                        saved_at = p.step
                    if stop_after is not None and p.step >= stop_after:
                        result.interrupted = True
                        return result
                    tick = time.perf_counter()
                else:  # the epoch ran to its end
                    p.epoch += 1
                    p.batch_in_epoch = 0
                    if not tc.valid_every:
                        self.validate()
                        validated_at = p.step
                    self._save(LAST, training=True)
                    saved_at = p.step
            if validated_at != p.step:
                self.validate()
            if saved_at != p.step:
                self._save(LAST, training=True)
        finally:
            bar.close()
        self._say(f"[{self.stage.name}] done: {p.step} steps, {result.audio_s:.0f} s of audio in "
                  f"{result.train_wall_s:.1f} s of training ({result.throughput:.1f} audio s per s)")
        return result


@dataclass
class _Window:
    """Losses, audio and time since the last log record."""

    losses: list[float] = field(default_factory=list)
    audio_s: float = 0.0
    wall_s: float = 0.0

    def add(self, loss: float, wall_s: float) -> None:
        self.losses.append(loss)
        self.wall_s += wall_s

    @property
    def mean_loss(self) -> float:
        return sum(self.losses) / max(len(self.losses), 1)

    @property
    def throughput(self) -> float:
        return self.audio_s / max(self.wall_s, 1e-9)

    @property
    def step_s(self) -> float:
        """Mean wall time of one optimizer step in the window."""
        return round(self.wall_s / max(len(self.losses), 1), 4)
