"""The generic trainer: config, data, loop, checkpoints, resume, DDP, logs and learning curves.

Everything specific to a kind of model lives in its :class:`edgeface.train.tasks.TrainingTask`; this module only
moves batches, steps the optimiser and keeps the run reproducible:

* augmentation is seeded per (seed, epoch, sample) and the sampler per (seed, epoch), and every epoch
  writes ``last.pt`` atomically with model, optimiser, scheduler, AMP scaler, RNG and task state, so
  ``resume`` continues to the same weights as an uninterrupted run;
* ``best.pt`` follows the task's primary validation metric and carries the card finalised on the
  validation predictions; both checkpoints carry the training config (as given: paths stay as the user
  passed them), so ``edgeface eval --split val`` finds the same split;
* under ``torchrun`` (``WORLD_SIZE`` > 1) it runs DDP with a DistributedSampler (gloo on CPU, NCCL on
  CUDA); rank 0 validates and writes files.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeface.assets import DETECTOR
from edgeface.data.augment import AugmentConfig, augment_crop, transform_landmarks
from edgeface.data.datasets import DataIssues, FaceSet, load_samples, prepare_faces, split_indices, subsample
from edgeface.errors import TrainingDiverged
from edgeface.fileio import (
    cache_dir,
    portable_path,
    save_figure,
    sha256_file,
    writable_folder,
    write_json,
    write_text,
)
from edgeface.models.checkpoint import read_checkpoint, save_checkpoint, warm_start
from edgeface.preprocess import PreprocessSpec, to_input
from edgeface.progress import progress as progress_bar
from edgeface.train.config import TrainConfig
from edgeface.train.evaluate import model_infer, predict_outputs
from edgeface.train.tasks import TrainingTask, training_task_from_config

log = logging.getLogger(__name__)


class FaceDataset:
    """In-memory crops -> (normalised input, targets); augmentation seeded by (seed, epoch, index), landmark
    targets moved with the pixels."""

    def __init__(self, faces: FaceSet, spec: PreprocessSpec, augment: AugmentConfig | None, seed: int):
        self.faces, self.spec, self.augment, self.seed = faces, spec, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        crop = self.faces.crops[i]
        targets = {k: v[i] for k, v in self.faces.targets.items()}
        if self.augment is not None:
            crop, matrix = augment_crop(crop, np.random.default_rng((self.seed, self.epoch, int(i))), self.augment)
            if "landmarks" in targets:  # the landmark targets move with the pixels
                targets["landmarks"] = transform_landmarks(targets["landmarks"], matrix, crop.shape[0])
        return to_input(crop, self.spec)[0], targets


class _TrainForward(nn.Module):
    """Routes ``forward`` to ``forward_train`` so DDP's gradient hooks see the training pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_train(x)


@dataclass
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_finite(self, value: float, device: torch.device) -> bool:
        """Whether ``value`` is finite on every process (so all of them stop together, none waits forever)."""
        finite = math.isfinite(value)
        if self.world > 1:
            flag = torch.tensor([float(finite)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
            finite = bool(flag.item())
        return finite


def _init_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(world, torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here")
    return device


def load_faces(cfg: TrainConfig, task: TrainingTask, spec: PreprocessSpec, dist: Dist) -> FaceSet:
    """The aligned data set the config names (or the task's SYNTHETIC set); rank 0 fills the cache first."""
    if cfg.data is None:
        return task.synthetic_faces(cfg.synthetic_size, spec, cfg.seed)
    issues = DataIssues(cfg.strict)
    samples = load_samples(cfg.format, cfg.data, issues, task.label_space, task.name, image_col=cfg.image_col,
                           label_col=cfg.label_col, std_col=cfg.std_col,
                           image_root=Path(cfg.image_root) if cfg.image_root else None)
    samples = subsample(samples, cfg.max_images, cfg.seed)
    cache = cache_dir("faces", cfg.cache_dir)
    detector = None if cfg.aligned else cfg.detector or DETECTOR
    faces = None
    for turn in (True, False):  # rank 0 aligns (and caches), then the others read the cache
        if dist.main == turn:
            faces = prepare_faces(samples, spec, issues, f"{cfg.format}:{portable_path(cfg.data)}",
                                  detector, cache, progress=cfg.progress and dist.main)
        dist.barrier()
    if dist.main:
        issues.warn(f"data {cfg.data}")
    return faces


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _scalars(prefix: str, metrics: dict) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def write_log(path: Path, rows: list[dict]) -> None:
    """The per-epoch CSV log (rewritten atomically each epoch; columns are the union over epochs)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else f"{row[c]:.6g}" if isinstance(row[c], float)
                              else str(row[c]) for c in columns))
    write_text(path, "\n".join(lines) + "\n")


def plot_curves(rows: list[dict], path: Path, primary: str, title: str) -> None:
    """Learning curves PNG: training loss and the primary validation metric per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train loss")
    if all("val_loss" in r for r in rows):
        ax_loss.plot(epochs, [r["val_loss"] for r in rows], marker="o", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_val.plot(epochs, [r.get(f"val_{primary}", math.nan) for r in rows], marker="o", color="C2")
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel(f"validation {primary}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def train_model(config: TrainConfig, task: TrainingTask | None = None) -> Path:
    """Train as the config says; returns the path of ``best.pt`` (files in ``config.out``:
    last.pt, best.pt, log.csv, curves.png, config.json, metrics.json).

    ``task`` defaults to the registered task named by ``config.task``."""
    cfg = config
    torch.set_num_threads(max(1, cfg.threads))
    device = resolve_device(cfg.device)
    dist = _init_distributed(device)
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    out = writable_folder(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume and not last_path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint to resume at {last_path}")
    if not cfg.resume and last_path.exists():
        raise ValueError(f"{out} already holds a run (last.pt); use --resume or another --out")

    torch.manual_seed(cfg.seed)
    task = task or training_task_from_config(cfg)
    spec = PreprocessSpec(input_size=cfg.input_size)
    faces = load_faces(cfg, task, spec, dist)
    train_idx, val_idx = split_indices(faces, cfg.val_fraction, cfg.seed, cfg.folds, cfg.fold, cfg.protocol)
    train_set, val_set = faces.subset(train_idx), faces.subset(val_idx)
    card = task.make_card(cfg.model, spec, faces.name)

    model = task.build_model(cfg.model)
    init_facts = None
    if cfg.init and not cfg.resume:
        copied, fresh = warm_start(model, cfg.init)
        init_facts = {"from": Path(cfg.init).name, "sha256": sha256_file(cfg.init), "copied": len(copied),
                      "reinitialised": fresh}
        if dist.main:
            log.info(f"--init {cfg.init}: {len(copied)} tensors copied, {len(fresh)} re-initialised"
                     + (f" ({', '.join(sorted({k.rsplit('.', 1)[0] for k in fresh}))})" if fresh else ""))
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    train_forward: nn.Module = _TrainForward(model)
    if dist.world > 1:
        train_forward = nn.parallel.DistributedDataParallel(
            train_forward, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, rows, best_value = 0, [], None
    if cfg.resume:
        ckpt = read_checkpoint(last_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        task.load_state_dict(ckpt["task_state"])
        _set_rng_state(ckpt["rng"])
        start_epoch, rows, best_value = ckpt["epoch"] + 1, list(ckpt["history"]), ckpt["best"]
        init_facts = ckpt.get("init")

    dataset = FaceDataset(train_set, spec, AugmentConfig.from_dict(cfg.augment), cfg.seed)
    drop_last = len(dataset) > cfg.batch_size * dist.world

    def loader_for(epoch: int) -> torch.utils.data.DataLoader:
        dataset.epoch = epoch
        if dist.world > 1:
            sampler = torch.utils.data.DistributedSampler(dataset, dist.world, dist.rank, shuffle=True,
                                                          seed=cfg.seed, drop_last=drop_last)
            sampler.set_epoch(epoch)
        else:
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
        return torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                           num_workers=cfg.workers, drop_last=drop_last,
                                           pin_memory=device.type == "cuda")

    run_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        task.on_epoch_start(epoch)
        train_forward.train()
        sums: dict[str, float] = {}
        seen = 0
        bar = progress_bar(loader_for(epoch), f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress and dist.main,
                           unit="batch", leave=False)
        for x, targets in bar:
            x = x.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            targets = task.prepare_targets(targets, device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                outputs = train_forward(x)
            loss, parts = task.loss(outputs, targets)
            loss_value = float(loss.detach())
            if not dist.all_finite(loss_value, device):  # before the step: the weights stay the last finite ones
                raise diverged(f"the training loss is {loss_value} at epoch {epoch + 1}", epoch, out)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = x.shape[0]
            seen += n
            for key, value in {"loss": loss_value, **parts}.items():
                sums[key] = sums.get(key, 0.0) + value * n
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}")
        train_parts = _reduce_means(sums, seen, dist, device)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        hook_values = task.on_epoch_end(epoch, train_parts)
        if not all(torch.isfinite(p).all() for p in model.parameters()):  # identical on every rank under DDP
            raise diverged(f"the weights are not finite after epoch {epoch + 1}", epoch, out)

        if dist.main:
            model.eval()
            outputs = predict_outputs(model_infer(model, device), val_set.crops, spec, card, cfg.val_flip,
                                      batch_size=max(cfg.batch_size, 64))
            metrics = task.metrics(outputs, val_set.targets)
            row = {"epoch": epoch + 1, "lr": lr, **_scalars("train_", train_parts), **_scalars("val_", metrics),
                   **_scalars("", hook_values), "epoch_seconds": time.perf_counter() - epoch_start}
            rows.append(row)
            value = float(metrics[task.primary_metric])
            improved = best_value is None or (value < best_value if task.mode == "min" else value > best_value)
            if improved:
                best_value = value
                best_card = task.finalize_card(card, outputs, val_set.targets)
                best_card.extra = {**best_card.extra, "best_epoch": epoch + 1, "val_metrics": metrics,
                                   "train_images": len(train_set), "val_images": len(val_set)}
                if init_facts:
                    best_card.extra["init"] = init_facts
                save_checkpoint(best_path, model, best_card, epoch=epoch, config=cfg.to_dict())
                write_json(out / "metrics.json", {"best_epoch": epoch + 1, "data": faces.name, "val": metrics})
            save_checkpoint(last_path, model, card, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                            task_state=task.state_dict(), rng=_rng_state(), epoch=epoch, history=rows,
                            best=best_value, config=cfg.to_dict(), init=init_facts)
            write_log(out / "log.csv", rows)
            if cfg.progress:
                log.info(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_parts['loss']:.4f}, "
                         f"val {task.primary_metric} {value:.4f} ({row['epoch_seconds']:.0f} s)")
        dist.barrier()

    if dist.main:
        write_json(out / "config.json", cfg.to_dict())
        if rows:
            plot_curves(rows, out / "curves.png", task.primary_metric,
                        f"{cfg.model} {cfg.task} on {faces.name} ({cfg.input_size}px)")
        if cfg.progress:
            log.info(f"trained in {time.perf_counter() - run_start:.0f} s; best {task.primary_metric} "
                     f"{best_value:.4f} -> {best_path}")
    dist.barrier()
    return best_path


def diverged(what: str, epoch: int, out: Path) -> TrainingDiverged:
    """The error that stops a run whose loss or weights left the finite numbers; nothing of this epoch is saved, so
    last.pt / best.pt keep the last finite epoch."""
    kept = f"{out / 'last.pt'} keeps epoch {epoch}, the last finite one" if epoch else "nothing was saved"
    return TrainingDiverged(f"training stopped: {what}; {kept} (look for extreme labels or landmarks in the data, "
                            f"or lower --lr)")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule: the paper's step decay, or cosine to zero with a linear warm-up
    (short CPU schedules end better when the rate reaches zero at the last epoch)."""
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    if cfg.schedule != "cosine":
        raise ValueError(f"schedule must be step or cosine, got {cfg.schedule!r}")
    warmup, total = max(0, cfg.warmup_epochs), max(1, cfg.epochs)

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return 0.1 + 0.9 * epoch / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _reduce_means(sums: dict[str, float], seen: int, dist: Dist, device: torch.device) -> dict[str, float]:
    """Epoch means of the loss parts (averaged over all processes under DDP)."""
    keys = sorted(sums)
    if dist.world > 1:
        t = torch.tensor([sums[k] for k in keys] + [float(seen)], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        sums, seen = dict(zip(keys, t[:-1].tolist(), strict=True)), int(t[-1].item())
    return {k: sums[k] / max(seen, 1) for k in keys}
