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
from edgeface.card import OUTPUT_ATTRIBUTES
from edgeface.checks import number_type
from edgeface.fileio import atomic_path, cache_dir, write_text

RUNS = {  # run name -> task_options switched off
    "full": {},
    "no_dynamic_weights": {"dynamic_weights": False},
    "no_landmarks": {"landmarks": False},
}
OBJECTIVES = ("accuracy", "balanced", "f1")  # threshold objectives reported for every run (refit on val)


def run_folder(name: str, landmark_weight: float) -> str:
    """One folder per distinct training: the landmark weight is part of the name where the run uses it."""
    return name if name == "no_landmarks" else f"{name}-lmw{landmark_weight:g}"


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
    p.add_argument("--landmark-weights", type=number_type(minimum=0), nargs="+", default=[1.0], metavar="W",
                   help="landmark loss weights for the full method (default 1.0, the recipe's); with several, each "
                        "is trained and the best on validation mean accuracy is the full method the ablations use")
    p.add_argument("--init", type=Path, default=None,
                   help="warm-start checkpoint for every run (--init of train); it must not have seen these faces")
    p.add_argument("--work", type=Path, default=Path("runs/bench_attributes"),
                   help="run folders and crop cache (default runs/bench_attributes)")


def write_split(data: Path, work: Path, args: argparse.Namespace) -> tuple[Path, Path, Path, dict]:
    """Seeded train/val/test split of the CelebA folder as attributes CSVs (train+val for training, val alone
    for refitting thresholds, test)."""
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

    train_csv, val_csv, test_csv = work / "train_val.csv", work / "val.csv", work / "test.csv"
    write(train_csv, [(p, int(i)) for p in ("train", "val") for i in parts[p]])
    write(val_csv, [("", int(i)) for i in parts["val"]])
    write(test_csv, [("", int(i)) for i in parts["test"]])
    sizes = {p: len(v) for p, v in parts.items()}
    sizes["without_landmarks"] = int(sum(samples[int(i)].landmarks is None for i in order[:need]))
    sizes["skipped"] = len(issues.items)
    return train_csv, val_csv, test_csv, sizes


def train_run(name: str, landmark_weight: float, train_csv: Path, work: Path,
              args: argparse.Namespace) -> tuple[Path, float]:
    """Train one run through the product's trainer (reusing a finished one); (best.pt, training seconds)."""
    from edgeface.train.config import load_config
    from edgeface.train.trainer import train_model

    out = work / run_folder(name, landmark_weight)
    marker = out / "train_seconds.txt"
    if marker.is_file() and (out / "best.pt").is_file():
        return out / "best.pt", float(marker.read_text())
    cfg = load_config("dmmcnn", {
        "data": str(train_csv), "format": "attributes-csv", "input_size": args.input_size,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "lr_step": max(args.epochs, 1) * 10,
        **({"schedule": "cosine", "warmup_epochs": 1} if args.schedule == "cosine" else {}),
        "seed": args.seed, "out": str(out), "cache_dir": str(work / "cache"), "workers": 0,
        "threads": args.threads, "resume": (out / "last.pt").is_file(), "val_flip": args.flip,
        "init": str(args.init) if args.init else None, "progress": args.progress,
    })
    cfg.task_options = {**cfg.task_options, "landmark_weight": landmark_weight, **RUNS[name]}
    start = time.perf_counter()
    best = train_model(cfg)
    seconds = time.perf_counter() - start
    write_text(marker, f"{seconds:.1f}\n")
    return best, seconds


def predict(runner, csv_path: Path, work: Path, flip: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """(attribute probabilities, labels, landmark metrics) of an open runner on one split, through the product's
    evaluation path."""
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces
    from edgeface.train.evaluate import evaluate_runner

    issues = DataIssues()
    samples = load_samples("attributes-csv", csv_path, issues)
    faces = prepare_faces(samples, runner.card.preprocess, issues, f"celeba-dev {csv_path.stem}", None,
                          cache_dir("faces", work / "cache"))
    metrics, outputs = evaluate_runner(runner, faces.crops, faces.targets, flip=flip, progress=False)
    landmarks = {k: v for k, v in metrics.items() if k.startswith("landmark")}
    return outputs[OUTPUT_ATTRIBUTES], faces.targets["attributes"], landmarks


def evaluate(best: Path, val_csv: Path, test_csv: Path, work: Path, flip: bool) -> dict:
    """Test-split metrics of a checkpoint with thresholds refit on the validation faces for each objective
    (the card's own thresholds are the ``accuracy`` ones), beside 0.5 and the majority baseline."""
    from edgeface.runtime import open_runner
    from edgeface.train.attributes import attribute_metrics, fit_thresholds

    with open_runner(best) as runner:
        card = runner.card
        val_probs, val_labels, _ = predict(runner, val_csv, work, flip)
        test_probs, test_labels, landmarks = predict(runner, test_csv, work, flip)
    rate = card.extra.get("train_positive_rate")
    out: dict = {"objectives": {}}
    for objective in OBJECTIVES:
        thresholds = fit_thresholds(val_probs, val_labels, objective)
        out["objectives"][objective] = attribute_metrics(test_probs, test_labels, card.attributes, thresholds, rate)
    out.update(landmarks)
    out["card_threshold_objective"] = card.threshold_objective
    out["val_metrics_at_best_epoch"] = {
        k: v for k, v in card.extra.get("val_metrics", {}).items() if isinstance(v, (int, float))}
    out["best_epoch"] = card.extra.get("best_epoch")
    return out


def select_landmark_weight(sweep: dict[float, dict]) -> float:
    """The full method's landmark weight: best validation mean accuracy at the best epoch (never the test faces)."""
    return max(sweep, key=lambda w: sweep[w]["test"]["val_metrics_at_best_epoch"].get("mean_accuracy", -1.0))


def summary_rows(results: dict) -> list[dict]:
    """The ablation table: one row per configuration, on the test split (accuracy-objective thresholds)."""
    runs, rows = results["runs"], []

    def row(label: str, run: dict, thresholds: str = "accuracy") -> dict:
        m = run["test"]["objectives"]["accuracy"]
        acc, bacc = (m["mean_accuracy_at_0.5"], m["mean_balanced_accuracy_at_0.5"]) if thresholds == "0.5" else (
            m["mean_accuracy"], run["test"]["objectives"]["balanced"]["mean_balanced_accuracy"])
        fitted = thresholds != "0.5"
        return {"run": label, "val_acc": run["test"]["val_metrics_at_best_epoch"].get("mean_accuracy") if fitted
                else None, "acc": acc, "bacc": bacc,
                "nme": None if "landmarks" in run["options_off"] else run["test"].get("landmark_nme"),
                "seconds": run["train_seconds"] if fitted else None}

    full = runs.get(results.get("full_run", ""))
    if full:
        w = results["landmark_weight"]
        rows.append(row(f"full method (dynamic weights, fitted thresholds, landmarks at weight {w:g})", full))
        rows.append(row("thresholds at 0.5 (same model)", full, "0.5"))
    labels = {"no_dynamic_weights": "dynamic weights off (retrained)", "no_landmarks": "landmark task off (retrained)"}
    for name, label in labels.items():
        key = run_folder(name, results.get("landmark_weight", 1.0))
        if key in runs:
            rows.append(row(label, runs[key]))
    for w, key in sorted(results.get("landmark_sweep", {}).items()):
        if key != results.get("full_run"):
            rows.append(row(f"full method, landmark weight {float(w):g} (retrained)", runs[key]))
    any_run = next(iter(runs.values()))["test"]
    base = any_run["objectives"]["accuracy"]
    rows.append({"run": "majority class per attribute (training rates)", "val_acc": None,
                 "acc": base["baseline_mean_accuracy"], "bacc": base["baseline_mean_balanced_accuracy"],
                 "nme": any_run.get("landmark_nme_baseline_template"), "seconds": None})
    return rows


def objective_rows(run: dict) -> list[dict]:
    """The full model's test figures with thresholds refit on validation for each objective, and at 0.5."""
    rows = []
    for objective, m in run["test"]["objectives"].items():
        rows.append({"thresholds": f"fitted for {objective}", "acc": m["mean_accuracy"],
                     "bacc": m["mean_balanced_accuracy"], "f1": m["mean_f1"]})
    m = run["test"]["objectives"]["accuracy"]
    rows.append({"thresholds": "0.5", "acc": m["mean_accuracy_at_0.5"], "bacc": m["mean_balanced_accuracy_at_0.5"],
                 "f1": None})
    return rows


def below_baseline(metrics: dict, points: float = 0.01) -> list[str]:
    """Attributes whose test accuracy is under their majority baseline minus ``points``."""
    return [n for n, a in metrics["per_attribute"].items() if a["accuracy"] < a["baseline_accuracy"] - points]


def per_attribute_table(run: dict) -> list[str]:
    """Markdown rows per attribute: its group, test positive rate, the majority baseline, accuracy with the
    accuracy thresholds and balanced accuracy with the balanced ones."""
    from edgeface.models.dmmcnn import SUBJECTIVE_ATTRIBUTES

    acc, bal = run["test"]["objectives"]["accuracy"], run["test"]["objectives"]["balanced"]
    lines = ["## Per attribute (full model, test faces)", "",
             "| attribute | group | positive rate | majority accuracy | accuracy | balanced accuracy "
             "| threshold (accuracy) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, a in acc["per_attribute"].items():
        group = "subjective" if name in SUBJECTIVE_ATTRIBUTES else "objective"
        lines.append(f"| {name} | {group} | {a['positive_rate']:.3f} | {a['baseline_accuracy']:.3f} "
                     f"| {a['accuracy']:.3f} | {bal['per_attribute'][name]['balanced_accuracy']:.3f} "
                     f"| {a['threshold']:.3f} |")
    return lines


def fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(results: dict, command: str) -> str:
    s = results["setup"]
    init = f"warm start from `{s['init']}`" if s["init"] else "trained from scratch"
    lines = [
        "# DMM-CNN on CelebA dev faces (CPU)",
        "",
        f"`{command}`",
        "",
        f"{s['model']}, input {s['input_size']} px (reduced from the paper's 224 for the CPU budget), {s['epochs']} "
        f"epochs, batch {s['batch_size']}, Adam lr {s['lr']} ({s['schedule']} schedule), {init}, test-time flip "
        f"{'on' if s['flip'] else 'off'}, {s['threads']} torch thread(s) per run on a shared 2-core CPU. Seeded split "
        f"(seed {s['seed']}) of `celeba-dev`: {s['split']['train']} train / {s['split']['val']} val (model "
        f"selection, landmark-weight choice and threshold fitting) / {s['split']['test']} test faces; every figure "
        f"below is on the **test** faces, which neither training, selection nor threshold fitting saw. Landmarks "
        f"are the data set's YuNet-made points; NME is the mean point error over the inter-ocular distance in the "
        f"aligned crop.",
        "",
        "## Ablations (thresholds fitted on validation for plain accuracy; balanced accuracy with thresholds "
        "fitted for it)",
        "",
        "| configuration | val mean accuracy | test mean accuracy | test mean balanced accuracy | landmark NME "
        "| training s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in summary_rows(results):
        secs = f"{r['seconds']:.0f}" if r["seconds"] is not None else "-"
        lines.append(f"| {r['run']} | {fmt(r['val_acc'])} | {r['acc']:.4f} | {r['bacc']:.4f} | {fmt(r['nme'])} "
                     f"| {secs} |")
    full = results["runs"].get(results.get("full_run", ""))
    if full:
        lines += ["", "## Threshold objective (full model; thresholds refit on the validation faces)", "",
                  "| thresholds | test mean accuracy | test mean balanced accuracy | test mean F1 |",
                  "|---|---:|---:|---:|"]
        for r in objective_rows(full):
            lines.append(f"| {r['thresholds']} | {r['acc']:.4f} | {r['bacc']:.4f} | {fmt(r['f1'])} |")
        low = below_baseline(full["test"]["objectives"]["accuracy"])
        lines += ["", "Attributes below their majority baseline minus 1 point (accuracy objective): "
                  + (", ".join(low) if low else "none") + ".", ""]
        lines += per_attribute_table(full)
    lines += ["", "The landmark baseline in the last ablation row is the mean shape (always predicting the alignment "
              "template). Training seconds depend on how busy the shared CPU was during each run; they do not "
              "compare the configurations' cost.", "",
              "Per-attribute figures of every run: `train_attributes.json`; chart of the full model: "
              "`train_attributes.png`; its training curves: `train_attributes_curves.png`."]
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    data = args.data
    if not data.is_dir():
        raise FileNotFoundError(f"CelebA dev data not found at {data} (clone the project with ../shared beside it)")
    if args.init is not None and not args.init.is_file():
        raise FileNotFoundError(f"--init {args.init}: no such checkpoint")
    import torch

    from edgeface.bench.experiments import command_line, write_results
    from edgeface.train.attributes import plot_attribute_bars

    torch.set_num_threads(args.threads)
    work, results_dir = args.work, args.out
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_csv, val_csv, test_csv, sizes = write_split(data, work, args)
    results: dict = {
        "setup": {"model": "dmmcnn", "data": str(data.name), "input_size": args.input_size, "epochs": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr, "schedule": args.schedule, "seed": args.seed,
                  "threads": args.threads, "flip": args.flip, "init": args.init.name if args.init else None,
                  "split": sizes, "recipe": "train/configs/dmmcnn.yaml"},
        "runs": {},
    }

    def run(name: str, weight: float) -> str:
        key = run_folder(name, weight)
        if key not in results["runs"]:
            best, seconds = train_run(name, weight, train_csv, work, args)
            test = evaluate(best, val_csv, test_csv, work, args.flip)
            results["runs"][key] = {"options_off": list(RUNS[name]), "landmark_weight": weight,
                                    "train_seconds": round(seconds, 1), "test": test}
            acc = test["objectives"]["accuracy"]["mean_accuracy"]
            print(f"{key}: test mean accuracy {acc:.4f} ({seconds:.0f} s)", flush=True)
        return key

    if "full" in args.runs:
        sweep = {w: run("full", w) for w in args.landmark_weights}
        weight = select_landmark_weight({w: results["runs"][k] for w, k in sweep.items()})
        results["landmark_sweep"] = {f"{w:g}": k for w, k in sweep.items()}
        results["full_run"] = sweep[weight]
    else:
        weight = args.landmark_weights[0]
    results["landmark_weight"] = weight
    for name in args.runs:
        if name != "full":
            run(name, weight)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["ablation"] = summary_rows(results)
    command = command_line(args)
    results["command"] = command
    write_results(results_dir, "train_attributes", results, markdown(results, command))
    if "full_run" in results:
        full = results["runs"][results["full_run"]]["test"]["objectives"]["accuracy"]
        plot_attribute_bars(full, results_dir / "train_attributes.png",
                            f"dmmcnn, {args.input_size} px, CelebA dev test split, thresholds fitted for accuracy")
        curves = work / results["full_run"] / "curves.png"
        if curves.is_file():
            shutil.copyfile(curves, results_dir / "train_attributes_curves.png")
    return 0
