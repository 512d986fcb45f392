"""How much accuracy DeepStream-style box crops cost vs edgeface's 5-point aligned crops.

DeepStream's secondary nvinfer feeds a model the detector box stretched to the input size; edgeface aligns
the face onto its template first. On held-out UTKFace faces (the training stage's own seeded split) this
detects each face with YuNet and predicts three ways with the same model: the aligned crop, the plain box
crop (:func:`edgeface.deepstream_probe.box_crop`) and, for reference, the chip as training saw it. No
test-time flip (the DeepStream probe decodes a single pass). Writes JSON, Markdown and a PNG.

    python -m edgeface.benchmarks.alignment_vs_boxcrop CHECKPOINT --data ../shared/data/utkface-dev \\
        --detector ../shared/models/yunet_s_640_640.onnx --out benchmarks/results
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

RESULT_NAME = "alignment_vs_boxcrop"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="age checkpoint or artifact (anything edgeface.runtime opens)")
    parser.add_argument("--data", type=Path, required=True, help="UTKFace folder (AGE_GENDER_RACE_DATE names)")
    parser.add_argument("--detector", type=Path, required=True, help="YuNet ONNX face detector")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="held-out share (training's split)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (training's default 0)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate at most this many held-out images")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def paired_delta(err_box: np.ndarray, err_aligned: np.ndarray) -> tuple[float, float]:
    """Mean extra absolute error of box crops over aligned crops on the same faces, and its standard error."""
    diff = np.abs(err_box) - np.abs(err_aligned)
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return float(diff.mean()), se


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    from edgeface.deepstream_probe import box_crop
    from edgeface.detector import FaceDetector
    from edgeface.faces import read_image
    from edgeface.fileio import write_json, write_text
    from edgeface.preprocess import align_face
    from edgeface.runtime.base import open_runner
    from edgeface.train.datasets import DataIssues, load_samples, prepare_faces, split_indices
    from edgeface.train.evaluate import evaluate_runner

    detector = FaceDetector(args.detector)
    runner = open_runner(args.model, threads=args.threads)
    card = runner.card
    if card.task != "age":
        raise SystemExit(f"{args.model} is a {card.task} model; this measurement needs an age model")
    spec = card.preprocess
    issues = DataIssues()
    chips = prepare_faces(load_samples("utkface", args.data, issues, label_space=card.label_space), spec, issues,
                          "utkface", progress=True)
    _, val = split_indices(chips, args.val_fraction, args.seed)
    if args.limit:
        val = val[: args.limit]
    aligned, boxed, kept, missed = [], [], [], 0
    for i in tqdm(val, desc="detect + crop", unit="img"):
        image = read_image(chips.paths[i])
        faces = detector.detect(image)
        if not faces:
            missed += 1
            continue
        aligned.append(align_face(image, faces[0].landmarks, spec))
        boxed.append(box_crop(image, faces[0].box, spec))
        kept.append(int(i))
    if not kept:
        raise SystemExit("the detector found no face in the held-out images")
    targets = {k: v[kept] for k, v in chips.targets.items()}
    labels = targets["label"]
    results, errors = {}, {}
    for name, crops in (("aligned", np.stack(aligned)), ("box", np.stack(boxed)), ("chip", chips.crops[kept])):
        metrics, outputs = evaluate_runner(runner, crops, targets, flip=False)
        results[name] = {"mae": metrics["mae"], "cs5": metrics["cs@5"], "rmse": metrics["rmse"],
                         "pearson": metrics["pearson"]}
        errors[name] = outputs["expectation"] - labels
    runner.close()
    delta, delta_se = paired_delta(errors["box"], errors["aligned"])
    report = {
        "benchmark": RESULT_NAME,
        "model": card.model,
        "input_size": spec.input_size,
        "artifact": Path(args.model).name,
        "card_data": card.data,
        "dataset": f"UTKFace ({args.data.name}, val {args.val_fraction:g} seed {args.seed})",
        "images": len(kept),
        "held_out": int(len(val)),
        "no_face": missed,
        "flip": False,
        "aligned": results["aligned"],
        "box": results["box"],
        "chip": results["chip"],
        "delta_mae": delta,
        "delta_mae_se": delta_se,
        "command": "python -m edgeface.benchmarks.alignment_vs_boxcrop " + " ".join(shlex.quote(a) for a in (
            argv if argv is not None else sys.argv[1:])),
        "machine": platform.machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{RESULT_NAME}.json", report)
    write_text(args.out / f"{RESULT_NAME}.md", markdown(report))
    plot(args.out / f"{RESULT_NAME}.png", labels, errors, report)
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    rows = [f"| {name} | {r[k]['mae']:.2f} | {100 * r[k]['cs5']:.1f} | {r[k]['rmse']:.2f} | {r[k]['pearson']:.3f} |"
            for k, name in (("aligned", "aligned (edgeface runtime)"), ("box", "detector box (DeepStream nvinfer)"),
                              ("chip", "UTKFace chip resized (as trained)"))]
    return "\n".join([
        "# Aligned crops vs DeepStream box crops",
        "",
        f"{r['model']} at {r['input_size']} px (`{r['artifact']}`), {r['images']} held-out faces of {r['dataset']} "
        f"({r['no_face']} of {r['held_out']} without a YuNet detection left out), single pass, no flip.",
        "",
        "| crop | MAE (years) | CS@5 (%) | RMSE | Pearson |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Box crops vs aligned crops on the same faces: **{r['delta_mae']:+.2f} years MAE** "
        f"(paired standard error {r['delta_mae_se']:.2f}).",
        "",
        f"Command: `{r['command']}`",
        "",
    ])


def plot(path: Path, labels: np.ndarray, errors: dict[str, np.ndarray], report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decades = (labels // 10).astype(int)
    ticks = np.unique(decades)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.38
    for k, name in enumerate(("aligned", "box")):
        mae = [np.abs(errors[name][decades == d]).mean() for d in ticks]
        ax.bar(ticks + (k - 0.5) * width, mae, width, label=f"{name}: MAE {report[name]['mae']:.2f}")
    ax.set_xticks(ticks, [f"{d * 10}-{d * 10 + 9}" for d in ticks])
    ax.set_xlabel("true age")
    ax.set_ylabel("MAE (years)")
    ax.set_title(f"{report['model']} {report['input_size']}px: aligned vs box crops ({report['images']} faces)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
