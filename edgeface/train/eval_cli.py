"""``edgeface eval MODEL --data ...``: the task's metrics for any model format, through one code path.

MODEL is a checkpoint or any artifact a runtime Runner opens, a convert output folder with ``--target``, or the
name of shipped weights; the card inside it gives the preprocessing, so the data is aligned exactly as in training.
A checkpoint also carries its training config: data-reader settings not given as flags come from it, and
with ``--split train/val`` so do the subset and split settings, so the split is the one training used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from edgeface.progress import add_progress_argument
from edgeface.train.config import TrainConfig, add_config_arguments
from edgeface.weights import resolve_model

READ_SETTINGS = ("format", "image_col", "label_col", "std_col", "image_root")
SPLIT_SETTINGS = ("max_images", "val_fraction", "seed", "folds", "fold", "protocol")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint / exported model file, a convert output folder, or the name of "
                                      "shipped weights (thinagenet, ...; see edgeface models)")
    parser.add_argument("--target", help="artifact in a convert output folder (onnx, openvino-int8, trt-fp16, ...)")
    parser.add_argument("--backend", help="runtime backend (default: chosen from the file ending)")
    parser.add_argument("--device", help="device for the backend (cpu, cuda, ...)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="load a convert-folder artifact that no longer matches its manifest's sha256")
    parser.add_argument("--split", choices=["all", "train", "val"], default="all",
                        help="evaluate on all images or one side of the seeded split training used (default all)")
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="no test-time flip averaging (on by default, as in the paper)")
    parser.add_argument("--batch-size", type=int, default=64, help="inference batch size")
    parser.add_argument("--predictions", help="write per-image predictions to this CSV")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--plot", help="write a PNG of the metrics (attributes: per-attribute bar chart)")
    add_progress_argument(parser)
    add_config_arguments(parser, ("data",))


def data_settings(args: argparse.Namespace, saved: dict | None, default_format: str) -> dict:
    """Reader and split settings: the flag if given, else the checkpoint's training config (split settings only
    with ``--split train/val``: all-image evaluation is not subsampled as training was), else TrainConfig's
    defaults (the task's default reader for ``format``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | {"format": default_format}
    from_config = READ_SETTINGS + (SPLIT_SETTINGS if args.split != "all" else ())
    settings = {}
    for name in READ_SETTINGS + SPLIT_SETTINGS:
        value = getattr(args, name)
        if value is None and saved and name in from_config:
            value = saved.get(name)
        settings[name] = defaults[name] if value is None else value
    return settings


def saved_config(model: str | Path) -> dict | None:
    """The training config inside a checkpoint (None for other formats and for checkpoints saved without one)."""
    path = Path(model)
    if not (path.is_file() and path.suffix in (".pt", ".pth")):
        return None
    from edgeface.models.checkpoint import read_checkpoint

    return read_checkpoint(path).get("config")


def check_options(args: argparse.Namespace) -> None:
    """Options that are wrong whatever the model: refused before anything is loaded or evaluated."""
    if not args.data:
        raise ValueError("--data is required (a data set path)")
    if not Path(args.data).exists():
        raise FileNotFoundError(f"--data {args.data}: not found")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    for flag, path, suffix in (("--plot", args.plot, ".png"), ("--predictions", args.predictions, ".csv")):
        if path is None:
            continue
        if Path(path).suffix.lower() != suffix:
            raise ValueError(f"{flag} {path}: expected a {suffix} file")
        if not Path(path).resolve().parent.is_dir():
            raise FileNotFoundError(f"{flag} {path}: folder {Path(path).parent} does not exist")


def main(args: argparse.Namespace) -> int:
    from edgeface.assets import DETECTOR
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices, subsample
    from edgeface.fileio import cache_dir
    from edgeface.manifest import describe_artifact
    from edgeface.runtime import open_runner
    from edgeface.train.evaluate import evaluate_runner, write_predictions
    from edgeface.train.tasks import training_task_from_card

    model = resolve_model(args.model)
    check_options(args)
    with open_runner(model, backend=args.backend, device=args.device, target=args.target,
                     verify=args.verify) as runner:
        card = runner.card
        task = training_task_from_card(card)
        if args.plot and not task.plots_metrics:  # before the evaluation, not after it
            raise ValueError(f"--plot is not available for the {task.name} task (only attribute models draw one)")
        issues = DataIssues(bool(args.strict))
        d = data_settings(args, saved_config(model), task.default_format)
        samples = load_samples(d["format"], args.data, issues, task.label_space, card.task, image_col=d["image_col"],
                               label_col=d["label_col"], std_col=d["std_col"],
                               image_root=Path(d["image_root"]) if d["image_root"] else None)
        samples = subsample(samples, d["max_images"], d["seed"])
        faces = prepare_faces(samples, card.preprocess, issues, f"{d['format']}:{args.data}",
                              None if args.aligned else args.detector or DETECTOR,
                              cache_dir("faces", args.cache_dir), progress=args.progress and not args.json)
        if args.split != "all":
            train_idx, val_idx = split_indices(faces, d["val_fraction"], d["seed"], d["folds"], d["fold"],
                                               d["protocol"])
            faces = faces.subset(train_idx if args.split == "train" else val_idx)
        issues.warn(f"data {args.data}")
        metrics, outputs = evaluate_runner(runner, faces.crops, faces.targets, task, flip=args.flip,
                                           batch_size=args.batch_size, progress=args.progress and not args.json)
    report = {"model": str(args.model), "target": args.target, "backend": runner.backend, "task": card.task,
              "trained_on": card.data, "data": str(args.data), "split": args.split, "flip": args.flip,
              "skipped": len(issues.items), "metrics": metrics}
    if args.predictions:
        write_predictions(args.predictions, faces.paths, task.prediction_columns(outputs, faces.targets))
    if args.plot:
        task.plot_metrics(metrics, args.plot, f"{card.model} on {args.data} ({args.split})")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        synthetic = " (model trained on SYNTHETIC data)" if card.synthetic else ""
        artifact = describe_artifact(runner.path, runner.backend)
        print(f"{card.model} [{artifact}] {card.task} on {args.data} ({args.split}, "
              f"{metrics.get('n', len(faces))} faces, flip {'on' if args.flip else 'off'}){synthetic}")
        print(task.format_metrics(metrics))
        if issues.items:
            print(f"  skipped: {len(issues.items)} bad item(s)")
    return 0
