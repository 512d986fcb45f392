"""Measured training on real faces: TinyAgeNet and ThinAgeNet on UTKFace, and attractiveness on 3DSK.

Runs the same code as ``edgeface train`` / ``edgeface eval`` (``train_model`` then ``evaluate_runner`` on the
checkpoint through the torch Runner) on the seeded 80/20 split of ``../shared/data/utkface-dev`` with the
``utkface_cpu`` recipe (reduced input, short schedule), next to the predict-the-median baseline on the same
split; and TinyAgeNet 5-fold on ``3dsk-attractiveness`` (YuNet-aligned; Pearson), next to predicting the
training mean. Writes ``train_age.{json,md}`` and one learning-curve PNG per run into ``--out``.

    nice -n 10 edgeface experiment train-age            # about 25 minutes on a busy 2-core CPU
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeface.bench.experiments import YUNET, add_common_arguments
from edgeface.bench.fingerprint import fingerprint
from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices, subsample
from edgeface.fileio import cache_dir, write_json, write_text
from edgeface.labels import expectation
from edgeface.runtime import open_runner
from edgeface.train.config import load_config


def run_dir(work: Path, name: str) -> Path:
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def train_and_evaluate(overrides: dict, work: Path, name: str, results: Path) -> dict:
    """Train one configuration, evaluate best.pt on its validation split through the Runner, keep its curves."""
    from edgeface.train.evaluate import evaluate_runner
    from edgeface.train.trainer import train_model

    cfg = load_config("utkface_cpu", {**overrides, "out": str(run_dir(work, name))})
    start = time.perf_counter()
    best = train_model(cfg)
    seconds = time.perf_counter() - start
    with open_runner(best) as runner:
        issues = DataIssues()
        samples = subsample(load_samples(cfg.format, cfg.data, issues, runner.card.label_space), cfg.max_images,
                            cfg.seed)
        faces = prepare_faces(samples, runner.card.preprocess, issues, cfg.format,
                              None if cfg.aligned else cfg.detector, cache_dir("faces", cfg.cache_dir),
                              progress=False)
        train_idx, val_idx = split_indices(faces, cfg.val_fraction, cfg.seed, cfg.folds, cfg.fold, cfg.protocol)
        val = faces.subset(val_idx)
        metrics, _ = evaluate_runner(runner, val.crops, val.targets, flip=True)
    shutil.copyfile(Path(cfg.out) / "curves.png", results / f"train_age_{name}.png")
    log = (Path(cfg.out) / "log.csv").read_text()
    return {"name": name, "model": cfg.model, "input_size": cfg.input_size, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "lr_step": cfg.lr_step, "train_seconds": round(seconds, 1),
            "train_images": len(train_idx), "val_images": len(val_idx), "skipped": len(issues.items),
            "val": metrics, "labels_train": faces.targets["label"][train_idx], "labels_val": val.targets["label"],
            "log_csv": log, "curves": f"train_age_{name}.png"}


def median_baseline(labels_train: np.ndarray, labels_val: np.ndarray) -> dict:
    from edgeface.train.tasks import regression_metrics

    pred = np.full(len(labels_val), np.median(labels_train))
    return regression_metrics(pred, labels_val, cs_threshold=5.0, per_decade=False) | {"predict": float(pred[0])}


def attractiveness_folds(data: Path, detector: Path, work: Path, results: Path, epochs: int, input_size: int,
                         cache: Path, threads: int, folds: int = 5) -> dict:
    """k-fold TinyAgeNet attractiveness on 3DSK; Pearson over the pooled out-of-fold predictions and per fold."""
    from edgeface.train.evaluate import evaluate_runner
    from edgeface.train.tasks import regression_metrics
    from edgeface.train.trainer import train_model

    per_fold, pooled_pred, pooled_label, baseline_pred = [], [], [], []
    start = time.perf_counter()
    for fold in range(folds):
        name = f"attractiveness_fold{fold}"
        cfg = load_config("dldl_attractiveness", {
            "model": "tinyagenet", "data": str(data / "labels.csv"), "label_col": "attractiveness_mean",
            "std_col": "attractiveness_std", "detector": str(detector), "input_size": input_size,
            "epochs": epochs, "batch_size": 16, "lr": 0.002, "lr_step": max(1, int(epochs * 0.7)),
            "folds": folds, "fold": fold, "workers": 0, "threads": threads, "cache_dir": str(cache),
            "out": str(run_dir(work, name)), "progress": False})
        best = train_model(cfg)
        with open_runner(best) as runner:
            issues = DataIssues()
            samples = load_samples("csv", cfg.data, issues, runner.card.label_space, label_col=cfg.label_col,
                                   std_col=cfg.std_col)
            faces = prepare_faces(samples, runner.card.preprocess, issues, "3dsk", detector, cache_dir("faces", cache),
                                  progress=False)
            train_idx, val_idx = split_indices(faces, folds=folds, fold=fold, seed=cfg.seed)
            val = faces.subset(val_idx)
            metrics, outputs = evaluate_runner(runner, val.crops, val.targets)
        per_fold.append(metrics)
        pooled_label.append(val.targets["label"])
        pooled_pred.append(expectation(outputs["probs"], runner.card.label_space))
        baseline_pred.append(np.full(len(val_idx), faces.targets["label"][train_idx].mean()))
        if fold == 0:
            shutil.copyfile(Path(cfg.out) / "curves.png", results / "train_age_attractiveness_fold0.png")
    labels, preds = np.concatenate(pooled_label), np.concatenate(pooled_pred)
    return {"model": "tinyagenet", "input_size": input_size, "epochs": epochs, "folds": folds,
            "train_seconds": round(time.perf_counter() - start, 1), "images": int(len(labels)),
            "pooled": regression_metrics(preds, labels, cs_threshold=None),
            "mean_fold_pearson": float(np.mean([m["pearson"] for m in per_fold])),
            "per_fold": per_fold,
            "baseline_train_mean": regression_metrics(np.concatenate(baseline_pred), labels, cs_threshold=None)}


def markdown(report: dict) -> str:
    age = report["age"]
    lines = [
        "# Training on real faces (CPU)",
        "",
        f"Created {report['created']} on {report['device']} (load average at start {report['load_average']}; "
        "the CPU was shared with other jobs, so times are wall-clock under contention).",
        "",
        f"UTKFace dev chips ({report['utkface']}), seeded 80/20 split by file (seed 0), ages 0-100 "
        f"(images outside the label space skipped), input {age['runs'][0]['input_size']} px (reduced from the "
        "paper's 224 for the CPU budget), trained from scratch (no face-recognition pretraining), "
        "recipe `train/configs/utkface_cpu.yaml`, flip-averaged evaluation of best.pt through the torch Runner.",
        "",
        "| model | epochs | train time | val MAE (years) | RMSE | CS@5 | Pearson | curves |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in age["runs"]:
        v = run["val"]
        lines.append(f"| {run['model']} | {run['epochs']} | {run['train_seconds'] / 60:.1f} min | {v['mae']:.2f} | "
                     f"{v['rmse']:.2f} | {v['cs@5']:.3f} | {v['pearson']:.3f} | ![]({run['curves']}) |")
    b = age["median_baseline"]
    lines.append(f"| predict the median ({b['predict']:g}) | - | - | {b['mae']:.2f} | {b['rmse']:.2f} | "
                 f"{b['cs@5']:.3f} | - | - |")
    best = min(age["runs"], key=lambda r: r["val"]["mae"])
    lines += ["", f"Best: {best['model']} val MAE {best['val']['mae']:.2f} years "
              f"(target <= 8.0: {'met' if best['val']['mae'] <= 8.0 else 'NOT met'}).", "",
              "MAE per age decade (best model):", "",
              "| decade | " + " | ".join(best["val"]["mae_per_decade"]) + " |",
              "|---|" + "---|" * len(best["val"]["mae_per_decade"]),
              "| MAE | " + " | ".join(f"{v:.1f}" for v in best["val"]["mae_per_decade"].values()) + " |"]
    attr = report.get("attractiveness")
    if attr:
        p, bl = attr["pooled"], attr["baseline_train_mean"]
        lines += ["", f"## Attractiveness, 3DSK ({attr['images']} faces, YuNet-aligned, 1-7 scale)", "",
                  f"TinyAgeNet, {attr['folds']}-fold (seeded), {attr['input_size']} px, {attr['epochs']} epochs per "
                  f"fold, from scratch, {attr['train_seconds'] / 60:.1f} min in all; raters' std as the label "
                  "distribution width.", "",
                  "| predictor | Pearson (pooled) | mean fold Pearson | MAE | RMSE |", "|---|---|---|---|---|",
                  f"| TinyAgeNet | {p['pearson']:.3f} | {attr['mean_fold_pearson']:.3f} | {p['mae']:.3f} | "
                  f"{p['rmse']:.3f} |",
                  f"| training-fold mean | - | - | {bl['mae']:.3f} | {bl['rmse']:.3f} |"]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, threads=1, threads_help="torch threads per run (the utkface_cpu recipe's)",
                         data_dir=("data", "folder holding utkface-dev/ and 3dsk-attractiveness/"),
                         detector=(YUNET, "YuNet face detector ONNX (aligns the 3DSK photos)"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgeface-train-bench"),
                        help="run folders and crop cache (default /tmp/edgeface-train-bench)")
    parser.add_argument("--models", nargs="+", default=["tinyagenet", "thinagenet"], help="age models to train")
    parser.add_argument("--epochs", nargs="+", type=int, default=[16, 3],
                        help="epochs per model (same order as --models), sized to a ~25 min budget; lr x0.1 at 75%%")
    parser.add_argument("--attr-epochs", type=int, default=8, help="epochs per attractiveness fold (default 8)")
    parser.add_argument("--skip-attractiveness", action="store_true", help="only the UTKFace age runs")
    parser.add_argument("--max-images", type=int, default=0, help="UTKFace subset (smoke runs only)")


def main(args: argparse.Namespace) -> int:
    utk = args.data_dir / "utkface-dev" / "images"
    if not utk.is_dir():
        raise FileNotFoundError(f"UTKFace dev data not found at {utk}")
    cache = args.work / "cache"
    args.out.mkdir(parents=True, exist_ok=True)  # curves are copied there as each run ends
    report: dict = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "device": "", "load_average": [], "utkface": str(utk.relative_to(args.data_dir.parent))}
    fp = fingerprint()
    report["device"] = f"{fp['cpu']['model']} ({fp['cpu']['logical_cores']} logical cores)"
    report["load_average"] = fp["load_average"]
    runs = []
    for model, epochs in zip(args.models, args.epochs, strict=True):
        run = train_and_evaluate({"model": model, "epochs": epochs, "lr_step": max(1, round(0.75 * epochs)),
                                  "data": str(utk), "cache_dir": str(cache), "max_images": args.max_images,
                                  "threads": args.threads},
                                 args.work, model, args.out)
        runs.append(run)
        print(f"{model}: val MAE {run['val']['mae']:.2f}, CS@5 {run['val']['cs@5']:.3f}, "
              f"{run['train_seconds'] / 60:.1f} min", flush=True)
    baseline = median_baseline(runs[0]["labels_train"], runs[0]["labels_val"])  # the same split for every run
    for run in runs:
        del run["labels_train"], run["labels_val"]
    report["age"] = {"runs": runs, "median_baseline": baseline}
    if not args.skip_attractiveness:
        report["attractiveness"] = attractiveness_folds(args.data_dir / "3dsk-attractiveness", args.detector,
                                                        args.work, args.out, args.attr_epochs, 32, cache,
                                                        args.threads)
    write_json(args.out / "train_age.json", report)
    write_text(args.out / "train_age.md", markdown(report))
    print(markdown(report))
    return 0
