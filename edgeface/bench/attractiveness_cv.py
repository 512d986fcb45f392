"""Facial attractiveness on 3DSK, fine-tuned from an age (or attribute) checkpoint, measured by k-fold.

3DSK has 100 rated faces: too few to train a network from scratch (pooled Pearson 0.16 that way), enough to
fine-tune one whose trunk already learned faces on UTKFace. Each fold trains with ``--init CHECKPOINT``
(the label-distribution head is re-initialised for the 1-7 score bins; the raters' std is each face's
distribution width), picks its best epoch on its own validation fold, and predicts that fold; the pooled
out-of-fold predictions give Pearson, MAE and RMSE next to predicting the training-fold mean. Faces are raw
photos: YuNet detects and aligns them with the shared preprocessing. Writes ``attractiveness_cv.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeface.bench.experiments import YUNET, add_common_arguments, command_line, write_results
from edgeface.fileio import save_figure


def fold_config(args: argparse.Namespace, model: str, input_size: int, fold: int):
    from edgeface.train.config import load_config

    out = args.work / f"fold{fold}"
    return load_config("dldl_attractiveness", {
        "model": model, "data": str(args.data / "labels.csv"), "label_col": "attractiveness_mean",
        "std_col": "attractiveness_std", "detector": str(args.detector), "input_size": input_size,
        "epochs": args.epochs, "batch_size": 16, "lr": args.lr, "schedule": "cosine", "warmup_epochs": 1,
        "init": str(args.init), "folds": args.folds, "fold": fold, "workers": 0, "threads": args.threads,
        "out": str(out), "resume": (out / "last.pt").is_file(), "progress": False})


def run_folds(args: argparse.Namespace) -> dict:
    """Train (or reuse) every fold; pooled out-of-fold metrics."""
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices
    from edgeface.fileio import cache_dir
    from edgeface.labels import expectation
    from edgeface.models.checkpoint import load_checkpoint
    from edgeface.runtime import open_runner
    from edgeface.train.evaluate import evaluate_runner
    from edgeface.train.tasks import regression_metrics
    from edgeface.train.trainer import train_model

    _, init_card, _ = load_checkpoint(args.init)
    model, size = init_card.model, init_card.preprocess.input_size
    start = time.perf_counter()
    folds, labels, preds, baseline = [], [], [], []
    for fold in range(args.folds):
        cfg = fold_config(args, model, size, fold)
        best = Path(cfg.out) / "best.pt"
        if not (Path(cfg.out) / "config.json").is_file():
            train_model(cfg)
        with open_runner(best) as runner:
            issues = DataIssues()
            samples = load_samples("csv", cfg.data, issues, runner.card.label_space, label_col=cfg.label_col,
                                   std_col=cfg.std_col)
            faces = prepare_faces(samples, runner.card.preprocess, issues, "csv:" + cfg.data, cfg.detector,
                                  cache_dir("faces"), progress=False)
            train_idx, val_idx = split_indices(faces, folds=args.folds, fold=fold, seed=cfg.seed)
            val = faces.subset(val_idx)
            metrics, outputs = evaluate_runner(runner, val.crops, val.targets)
        folds.append({"fold": fold, "images": int(len(val_idx)), "pearson": float(metrics["pearson"]),
                      "mae": float(metrics["mae"])})
        labels.append(val.targets["label"])
        preds.append(expectation(outputs["probs"], runner.card.label_space))
        baseline.append(np.full(len(val_idx), faces.targets["label"][train_idx].mean()))
    y, p = np.concatenate(labels), np.concatenate(preds)
    return {"model": model, "input_size": size, "init": {"file": Path(args.init).name,
                                                         "data": init_card.data, "task": init_card.task},
            "epochs": args.epochs, "folds": args.folds, "images": int(len(y)),
            "seconds": round(time.perf_counter() - start, 1),
            "pooled": regression_metrics(p, y, cs_threshold=None),
            "baseline_train_mean": regression_metrics(np.concatenate(baseline), y, cs_threshold=None),
            "per_fold": folds, "labels": y.round(3).tolist(), "predictions": p.round(3).tolist()}


def markdown(report: dict) -> str:
    p, b = report["pooled"], report["baseline_train_mean"]
    return "\n".join([
        f"# Attractiveness on 3DSK, fine-tuned ({report['date']})", "",
        f"{report['images']} faces, {report['folds']}-fold (seeded), YuNet-aligned, 1-7 scale, raters' std as the "
        f"label-distribution width. {report['model']} at {report['input_size']} px warm-started from "
        f"`{report['init']['file']}` ({report['init']['task']} model trained on {report['init']['data']}), "
        f"{report['epochs']} epochs per fold (cosine), best epoch per fold on its own validation fold; "
        f"{report['seconds'] / 60:.1f} min in all.", "",
        f"Command: `{report['command']}`", "",
        "| predictor | Pearson (pooled) | MAE | RMSE |", "|---|---:|---:|---:|",
        f"| fine-tuned {report['model']} | {p['pearson']:.3f} | {p['mae']:.3f} | {p['rmse']:.3f} |",
        f"| training-fold mean | - | {b['mae']:.3f} | {b['rmse']:.3f} |", "",
        "Per fold: " + ", ".join(f"fold {f['fold']} Pearson {f['pearson']:.2f}" for f in report["per_fold"]), ""])


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(report["labels"], report["predictions"], s=18, alpha=0.7)
    lo, hi = min(report["labels"]) - 0.2, max(report["labels"]) + 0.2
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel("mean rater score (1-7)")
    ax.set_ylabel("predicted (out of fold)")
    ax.set_title(f"3DSK attractiveness: Pearson {report['pooled']['pearson']:.2f}", fontsize=11)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--init", type=Path, required=True, help="edgeface checkpoint to fine-tune from (age model)")
    add_common_arguments(parser, threads=1, threads_help="torch threads while training",
                         data=("data/3dsk-attractiveness", "3DSK folder with labels.csv"),
                         detector=(YUNET, "YuNet ONNX for detection + alignment"))
    parser.add_argument("--epochs", type=int, default=15, help="epochs per fold (cosine schedule)")
    parser.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--work", type=Path, default=Path("runs/attractiveness_cv"), help="fold runs (reused)")


def main(args: argparse.Namespace) -> int:
    for path, what in ((args.init, "--init"), (args.data / "labels.csv", "--data labels.csv"),
                       (args.detector, "--detector")):
        if not path.is_file():
            raise FileNotFoundError(f"{what} not found: {path}")
    report = run_folds(args)
    report["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    report["command"] = command_line(args)
    write_results(args.out, "attractiveness_cv", report, markdown(report))
    plot(report, args.out / "attractiveness_cv.png")
    return 0

