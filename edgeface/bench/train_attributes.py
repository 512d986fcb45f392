"""DMM-CNN on real faces: train on the CelebA dev set on this CPU, judge on held-out faces, ablate the method.

    edgeface experiment train-attributes [--data ../shared/data/celeba-dev] [--input-size 48]

A seeded split of the CelebA folder: ``--test`` faces for the reported figures, ``--val`` faces for
model selection and threshold fitting, ``--train-images`` for training. The split is written as an
attributes CSV (``partition`` column, landmark columns) so training goes through the product's own
reader, trainer (``train/configs/dmmcnn.yaml`` recipe, reduced input and epochs for the CPU budget)
and evaluation path. Runs: the full method, then dynamic weights off and landmark task off (retrained
with the same settings); adaptive thresholds off is the full model judged at 0.5 (no retraining).
Writes ``train_attributes.{json,md,png}`` into ``--out``; finished runs are reused when rerun.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path

import numpy as np

from edgeface.bench.experiments import add_common_arguments
from edgeface.fileio import atomic_path, cache_dir, write_json, write_text

RUNS = {  # run name -> task_options switched off
    "full": {},
    "no_dynamic_weights": {"dynamic_weights": False},
    "no_landmarks": {"landmarks": False},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, threads_help="torch threads", data=("data/celeba-dev", "CelebA-format folder"))
    p = parser
    p.add_argument("--input-size", type=int, default=32, help="reduced input side for the CPU budget (paper 224)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run (default 2)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--train-images", type=int, default=2000, help="training faces (default 2000)")
    p.add_argument("--val", type=int, default=800, help="validation faces: model selection, thresholds (default 800)")
    p.add_argument("--test", type=int, default=1000, help="test faces for the reported figures (default 1000)")
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="learning rate: constant (the committed 2-epoch runs) or cosine to zero with 1 warm-up epoch")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--flip", action="store_true", help="test-time flip averaging (doubles inference; off by default)")
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="runs to train (default all)")
    p.add_argument("--work", type=Path, default=Path("runs/bench_attributes"),
                   help="run folders and crop cache (default runs/bench_attributes)")


def write_split(data: Path, work: Path, args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """Seeded train/val/test split of the CelebA folder as two attributes CSVs (train+val, test)."""
    from edgeface.data.celeba import LANDMARK_COLUMNS, attribute_names
    from edgeface.data.datasets import DataIssues, load_samples

    names = attribute_names("celeba", data)
    issues = DataIssues()
    samples = load_samples("celeba", data, issues)
    need = args.test + args.val + args.train_images
    if len(samples) < need:
        raise ValueError(f"{data}: {len(samples)} usable faces, the split needs {need}")
    order = np.random.default_rng(args.seed).permutation(len(samples))
    parts = {"test": order[: args.test], "val": order[args.test: args.test + args.val],
             "train": order[args.test + args.val: need]}

    def write(path: Path, rows: list[tuple[str, int]]) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "partition", *names, *LANDMARK_COLUMNS])
            for part, i in rows:
                s = samples[i]
                lm = [f"{v:.1f}" for v in s.landmarks.reshape(10)] if s.landmarks is not None else [""] * 10
                w.writerow([str(s.path), part, *s.targets["attributes"].astype(int).tolist(), *lm])

    train_csv, test_csv = work / "train_val.csv", work / "test.csv"
    write(train_csv, [(p, int(i)) for p in ("train", "val") for i in parts[p]])
    write(test_csv, [("", int(i)) for i in parts["test"]])
    sizes = {p: len(v) for p, v in parts.items()}
    sizes["without_landmarks"] = int(sum(samples[int(i)].landmarks is None for i in order[:need]))
    sizes["skipped"] = len(issues.items)
    return train_csv, test_csv, sizes


def train_run(name: str, train_csv: Path, work: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """Train one run through the product's trainer (reusing a finished one); (best.pt, training seconds)."""
    from edgeface.train.config import load_config
    from edgeface.train.trainer import train_model

    out = work / name
    marker = out / "train_seconds.txt"
    if marker.is_file() and (out / "best.pt").is_file():
        return out / "best.pt", float(marker.read_text())
    cfg = load_config("dmmcnn", {
        "data": str(train_csv), "format": "attributes-csv", "input_size": args.input_size,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "lr_step": max(args.epochs, 1) * 10,
        **({"schedule": "cosine", "warmup_epochs": 1} if args.schedule == "cosine" else {}),
        "seed": args.seed, "out": str(out), "cache_dir": str(work / "cache"), "workers": 0,
        "threads": args.threads, "resume": (out / "last.pt").is_file(), "val_flip": args.flip,
    })
    cfg.task_options = {**cfg.task_options, **RUNS[name]}
    start = time.perf_counter()
    best = train_model(cfg)
    seconds = time.perf_counter() - start
    write_text(marker, f"{seconds:.1f}\n")
    return best, seconds


def evaluate(best: Path, test_csv: Path, work: Path, flip: bool) -> dict:
    """Test-split metrics of a checkpoint through the product's evaluation path."""
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces
    from edgeface.runtime import open_runner
    from edgeface.train.evaluate import evaluate_runner

    with open_runner(best) as runner:
        issues = DataIssues()
        samples = load_samples("attributes-csv", test_csv, issues)
        faces = prepare_faces(samples, runner.card.preprocess, issues, "celeba-dev test", None,
                              cache_dir("faces", work / "cache"))
        metrics, _ = evaluate_runner(runner, faces.crops, faces.targets, flip=flip, progress=True)
        metrics["val_metrics_at_best_epoch"] = {
            k: v for k, v in runner.card.extra.get("val_metrics", {}).items() if isinstance(v, (int, float))}
        metrics["best_epoch"] = runner.card.extra.get("best_epoch")
    return metrics


def summary_rows(results: dict) -> list[dict]:
    """The ablation table: one row per configuration, on the test split."""
    rows = []
    full = results["runs"].get("full")
    if full:
        m = full["test"]
        rows.append({"run": "full method (dynamic weights, adaptive thresholds, landmarks)",
                     "acc": m["mean_accuracy"], "bacc": m["mean_balanced_accuracy"], "nme": m.get("landmark_nme"),
                     "seconds": full["train_seconds"]})
        rows.append({"run": "adaptive thresholds off (same model, 0.5)", "acc": m["mean_accuracy_at_0.5"],
                     "bacc": m["mean_balanced_accuracy_at_0.5"], "nme": m.get("landmark_nme"), "seconds": None})
    labels = {"no_dynamic_weights": "dynamic weights off (retrained)", "no_landmarks": "landmark task off (retrained)"}
    for name, label in labels.items():
        run = results["runs"].get(name)
        if run:
            m = run["test"]
            rows.append({"run": label, "acc": m["mean_accuracy"], "bacc": m["mean_balanced_accuracy"],
                         "nme": m.get("landmark_nme") if name != "no_landmarks" else None,
                         "seconds": run["train_seconds"]})
    any_run = next(iter(results["runs"].values()))["test"]
    rows.append({"run": "majority class per attribute (training rates)", "acc": any_run["baseline_mean_accuracy"],
                 "bacc": any_run["baseline_mean_balanced_accuracy"],
                 "nme": any_run.get("landmark_nme_baseline_template"), "seconds": None})
    return rows


def markdown(results: dict) -> str:
    s = results["setup"]
    lines = [
        "# DMM-CNN on CelebA dev faces (CPU)",
        "",
        f"`edgeface experiment train-attributes` — {s['model']}, input {s['input_size']} px "
        f"(reduced from the paper's 224 for the CPU budget), {s['epochs']} epochs, batch {s['batch_size']}, "
        f"Adam lr {s['lr']}, test-time flip {'on' if s['flip'] else 'off'}, {s['threads']} torch threads on a shared "
        f"2-core CPU (with other jobs running). Seeded split (seed {s['seed']}) of "
        f"`celeba-dev`: {s['split']['train']} train / {s['split']['val']} val (model selection and threshold "
        f"fitting) / {s['split']['test']} test faces; every figure below is on the **test** faces, which "
        f"neither training nor threshold fitting saw. Landmarks are the data set's YuNet-made points; "
        f"NME is the mean point error over the inter-ocular distance in the aligned crop.",
        "",
        "| configuration | mean accuracy | mean balanced accuracy | landmark NME | training s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in summary_rows(results):
        nme = f"{r['nme']:.4f}" if r["nme"] is not None else "-"
        secs = f"{r['seconds']:.0f}" if r["seconds"] is not None else "-"
        lines.append(f"| {r['run']} | {r['acc']:.4f} | {r['bacc']:.4f} | {nme} | {secs} |")
    lines += ["", "The landmark baseline in the last row is the mean shape (always predicting the alignment "
              "template). Training seconds depend on how busy the shared CPU was during each run; they do not "
              "compare the configurations' cost.", "",
              f"Total wall time: {results['wall_seconds']:.0f} s. Per-attribute figures of the full model: "
              "`train_attributes.json`, chart `train_attributes.png`."]
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    data = args.data
    if not data.is_dir():
        raise FileNotFoundError(f"CelebA dev data not found at {data} (clone the project with ../shared beside it)")
    import torch

    from edgeface.train.attributes import plot_attribute_bars

    torch.set_num_threads(args.threads)
    work, results_dir = args.work, args.out
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_csv, test_csv, sizes = write_split(data, work, args)
    results: dict = {
        "setup": {"model": "dmmcnn", "data": str(data.name), "input_size": args.input_size, "epochs": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "threads": args.threads,
                  "flip": args.flip,
                  "split": sizes, "recipe": "train/configs/dmmcnn.yaml"},
        "runs": {},
    }
    for name in args.runs:
        best, seconds = train_run(name, train_csv, work, args)
        results["runs"][name] = {"options_off": list(RUNS[name]), "train_seconds": round(seconds, 1),
                                 "test": evaluate(best, test_csv, work, args.flip)}
        print(f"{name}: {results['runs'][name]['test']['mean_balanced_accuracy']:.4f} mean balanced accuracy "
              f"({seconds:.0f} s)", flush=True)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["ablation"] = summary_rows(results)
    write_json(results_dir / "train_attributes.json", results)
    write_text(results_dir / "train_attributes.md", markdown(results))
    if "full" in results["runs"]:
        plot_attribute_bars(results["runs"]["full"]["test"], results_dir / "train_attributes.png",
                            f"dmmcnn, {args.input_size} px, CelebA dev test split, fitted thresholds")
        curves = work / "full" / "curves.png"
        if curves.is_file():
            shutil.copyfile(curves, results_dir / "train_attributes_curves.png")
    print((results_dir / "train_attributes.md").read_text())
    return 0
