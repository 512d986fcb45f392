"""Accuracy vs latency of the age networks across input sizes, so a user can pick the point that fits a device.

Each run spec ``MODEL:SIZE`` (optionally ``MODEL:SIZE@INIT.pt`` to warm-start from another checkpoint) is
trained with the ``utkface_cpu`` recipe on the seeded 80/20 split of the UTKFace dev chips (cosine schedule,
``--epochs``), then its ``best.pt`` (chosen on validation MAE) is

* evaluated on the validation split, flip-averaged, through the torch Runner (FP32);
* converted to ONNX / OpenVINO FP32 and INT8, calibrated on 512 *training-split* chips, each artifact
  evaluated on the same validation faces (INT8 drift = MAE change against FP32);
* timed at batch 1 on this CPU (OpenVINO INT8 and ONNX Runtime INT8, 2 threads, after a warm-up).

Finished trainings are reused and unfinished ones resumed, so runs can be spread over time or processes
(``--only`` trains one spec and stops). Writes ``age_sweep.{json,md,png}`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Hashable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeface.bench.experiments import UTKFACE_CHIPS, add_common_arguments, command_line, write_results
from edgeface.fileio import save_figure

CONVERT_TARGETS = ["onnx", "onnx-int8", "openvino", "openvino-int8"]
TIMED_TARGETS = ["openvino-int8", "onnx-int8"]
CALIB_IMAGES = 512


def parse_spec(text: str) -> dict:
    """``MODEL:SIZE[@INIT]`` -> {model, size, init, name}."""
    head, _, init = text.partition("@")
    model, _, size = head.partition(":")
    if not model or not size.isdigit() or not 16 <= int(size) <= 448:
        raise ValueError(f"run spec {text!r}: expected MODEL:SIZE[@INIT.pt] with SIZE 16..448, e.g. tinyagenet:64")
    name = f"{model}-{size}" + (f"-init-{Path(init).parent.name or Path(init).stem}" if init else "")
    return {"model": model, "size": int(size), "init": init or None, "name": name}


def train_run(spec: dict, args: argparse.Namespace) -> Path:
    """Train (or resume, or reuse) one spec; returns its run folder."""
    from edgeface.train.config import load_config
    from edgeface.train.trainer import train_model

    out = Path(args.work) / spec["name"]
    if (out / "config.json").is_file():
        return out
    cfg = load_config("utkface_cpu", {
        "model": spec["model"], "input_size": spec["size"], "epochs": args.epochs, "schedule": "cosine",
        "warmup_epochs": 1, "init": spec["init"], "data": str(args.data), "out": str(out),
        "resume": (out / "last.pt").is_file(), "threads": args.threads, "workers": 0, "progress": args.progress})
    train_model(cfg)
    return out


def split_faces(run: Path):
    """(train FaceSet, val FaceSet, image paths of the training split) exactly as the run's trainer split them."""
    import json

    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices, subsample
    from edgeface.fileio import cache_dir
    from edgeface.labels import AGE
    from edgeface.preprocess import PreprocessSpec
    from edgeface.train.config import TrainConfig

    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    issues = DataIssues()
    samples = subsample(load_samples(cfg.format, cfg.data, issues, AGE), cfg.max_images, cfg.seed)
    faces = prepare_faces(samples, PreprocessSpec(input_size=cfg.input_size), issues, f"{cfg.format}:{cfg.data}",
                          None, cache_dir("faces", cfg.cache_dir), progress=False)
    train_idx, val_idx = split_indices(faces, cfg.val_fraction, cfg.seed, cfg.folds, cfg.fold, cfg.protocol)
    train = faces.subset(train_idx)
    return train, faces.subset(val_idx), train.paths, cfg


def calibration_folder(paths: list[str], folder: Path, count: int = CALIB_IMAGES) -> Path:
    """A folder of links to ``count`` evenly spread training-split images (never validation faces)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).round().astype(int):
        source = Path(paths[i]).resolve()
        os.symlink(source, folder / source.name)
    return folder


def measure_run(spec: dict, run: Path, args: argparse.Namespace) -> dict:
    """Validation MAE of every artifact (FP32 checkpoint, ONNX and OpenVINO FP32 / INT8)."""
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint
    from edgeface.manifest import load_manifest
    from edgeface.runtime import open_runner
    from edgeface.train.evaluate import evaluate_runner

    train, val, train_paths, cfg = split_faces(run)
    calib = calibration_folder(train_paths, run / "calibration")
    folder = run / "convert"
    if not (folder / "manifest.json").is_file():
        convert_checkpoint(run / "best.pt", CONVERT_TARGETS, calib=calib, out_dir=folder,
                           options=ConvertOptions(allow_drift=True, progress=False, threads=args.threads))
    manifest = load_manifest(folder)
    artifacts: dict[str, dict] = {}
    for name, path in [("pytorch", run / "best.pt")] + [(t, folder / manifest["artifacts"][t]["file"])
                                                         for t in CONVERT_TARGETS]:
        with open_runner(path, threads=2) as runner:
            metrics, _ = evaluate_runner(runner, val.crops, val.targets, flip=True)
            artifacts[name] = {"mae": round(float(metrics["mae"]), 4), "cs@5": round(float(metrics["cs@5"]), 4),
                               "file": str(path.relative_to(run))}
    fp32 = artifacts["pytorch"]["mae"]
    for entry in artifacts.values():
        entry["delta_mae"] = round(entry["mae"] - fp32, 4)
    log = (run / "log.csv").read_text().splitlines()
    return {**spec, "run": run.name, "epochs": cfg.epochs, "train_images": len(train), "val_images": len(val),
            "best_epoch": int(np.argmin([float(r.split(",")[log[0].split(",").index("val_mae")])
                                         for r in log[1:]]) + 1),
            "train_seconds": round(sum(float(r.split(",")[-1]) for r in log[1:]), 1),
            "params": _params(run / "best.pt"), "artifacts": artifacts}


def interleaved_latency(artifacts: dict[Hashable, Path], seconds: float, rounds: int = 10
                        ) -> dict[Hashable, dict]:
    """Batch-1 latency (ms) of several artifacts ({key: path}), all loaded at once and timed in
    interleaved rounds (A, B, C, A, B, C, ...; :func:`edgeface.bench.interleaved.timed_rounds`): load from other
    processes falls on every artifact alike, so their ratios hold on a shared machine. ``seconds`` per artifact in
    all, after a one-second warm-up each."""
    from edgeface.bench.interleaved import timed_rounds
    from edgeface.bench.timing import latency_stats, runner_input
    from edgeface.runtime import open_runner

    runners, calls = [], {}
    rng = np.random.default_rng(0)
    try:
        for key, path in artifacts.items():
            runners.append(open_runner(path, threads=2))
            x = runner_input(runners[-1], 1, rng)
            calls[key] = lambda r=runners[-1], x=x: r.infer(x)
        samples = timed_rounds(calls, rounds, seconds / rounds, warmup_s=1.0, min_calls=10)
    finally:
        for runner in runners:
            runner.deactivate()
    return {key: latency_stats([s for turn in turns for s in turn]) for key, turns in samples.items()}


def _params(checkpoint: Path) -> int:
    from edgeface.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(checkpoint)
    return int(sum(p.numel() for p in model.parameters()))


def markdown(document: dict) -> str:
    rows = ["| run | input | epochs | train min | val MAE FP32 | CS@5 | OV INT8 MAE (delta) | ORT INT8 MAE (delta) "
            "| OV INT8 p50 ms | ORT INT8 p50 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in document["runs"]:
        a = r["artifacts"]
        rows.append(f"| {r['run']} | {r['size']} | {r['epochs']} | {r['train_seconds'] / 60:.1f} "
                    f"| {a['pytorch']['mae']:.2f} | {a['pytorch']['cs@5']:.2f} | {a['openvino-int8']['mae']:.2f} "
                    f"({a['openvino-int8']['delta_mae']:+.2f}) | {a['onnx-int8']['mae']:.2f} "
                    f"({a['onnx-int8']['delta_mae']:+.2f}) | {a['openvino-int8']['latency_ms']['p50']:.2f} "
                    f"| {a['onnx-int8']['latency_ms']['p50']:.2f} |")
    return "\n".join([f"# Age: accuracy vs latency across input sizes ({document['date']})", "",
                      document["setup"], "", f"Command: `{document['command']}`", "", *rows, ""])


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model, colour in (("tinyagenet", "C0"), ("thinagenet", "C1")):
        runs = sorted((r for r in document["runs"] if r["model"] == model and not r["init"]), key=lambda r: r["size"])
        xs = [r["artifacts"]["openvino-int8"]["latency_ms"]["p50"] for r in runs]
        ys = [r["artifacts"]["pytorch"]["mae"] for r in runs]
        ax.plot(xs, ys, marker="o", color=colour, label=model)
        for r, x, y in zip(runs, xs, ys, strict=True):
            ax.annotate(f"{r['size']} px", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
        for r in (r for r in document["runs"] if r["model"] == model and r["init"]):
            ax.plot(r["artifacts"]["openvino-int8"]["latency_ms"]["p50"], r["artifacts"]["pytorch"]["mae"],
                    marker="*", markersize=12, color=colour, linestyle="none",
                    label=f"{model} {r['size']} px, warm-started")
    ax.set_xscale("log")
    ax.set_xlabel("OpenVINO INT8 batch-1 latency, p50 (ms, log scale, this CPU)")
    ax.set_ylabel("validation MAE (years, flip-averaged)")
    ax.set_title("UTKFace dev: accuracy vs latency", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run specs MODEL:SIZE[@INIT.pt], e.g. tinyagenet:64 thinagenet:96")
    add_common_arguments(parser, threads=1, threads_help="torch threads while training (1 per process)",
                         data=(UTKFACE_CHIPS, "UTKFace chips folder"))
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per run (cosine schedule)")
    parser.add_argument("--work", type=Path, default=Path("runs/age_sweep"), help="run folders (reused, resumed)")
    parser.add_argument("--only", action="store_true", help="train the given specs and stop (no measurement)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per artifact (over 10 rounds)")


def main(args: argparse.Namespace) -> int:
    specs = [parse_spec(s) for s in args.runs]
    if not args.data.is_dir():
        raise ValueError(f"--data {args.data}: not a folder of UTKFace chips")
    runs = [(spec, train_run(spec, args)) for spec in specs]
    if args.only:
        return 0
    start = time.perf_counter()
    document = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": command_line(args, positional=("runs",)),
        "setup": (f"UTKFace dev chips, seeded 80/20 split ({args.data.name}); recipe `train/configs/utkface_cpu.yaml` "
                  f"with a cosine schedule over {args.epochs} epochs, 1 training thread; best.pt chosen on validation "
                  "MAE; every figure on the validation split, flip-averaged; INT8 calibrated on 512 training-split "
                  "chips; latency: batch 1, 2 threads, this machine's CPU, every artifact loaded at once and timed in "
                  "10 interleaved rounds so that load from other processes falls on all alike (load average "
                  f"{os.getloadavg()[0]:.1f} at the start)."),
        "runs": [measure_run(spec, run, args) for spec, run in runs],
    }
    timed = {(i, target): run / document["runs"][i]["artifacts"][target]["file"]
             for i, (_spec, run) in enumerate(runs) for target in TIMED_TARGETS}
    document["load_average_timing"] = round(os.getloadavg()[0], 2)
    for (i, target), stats in interleaved_latency(timed, args.seconds).items():
        document["runs"][i]["artifacts"][target]["latency_ms"] = stats
    document["measure_seconds"] = round(time.perf_counter() - start, 1)
    write_results(args.out, "age_sweep", document, markdown(document))
    plot(document, args.out / "age_sweep.png")
    return 0

