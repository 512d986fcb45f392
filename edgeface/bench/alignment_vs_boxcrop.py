"""How much accuracy DeepStream-style box crops cost vs edgeface's 5-point aligned crops.

DeepStream's secondary nvinfer feeds a model the detector box stretched to the input size; edgeface aligns
the face onto its template first. On held-out UTKFace faces (the training stage's own seeded split) this
detects each face with YuNet and predicts three ways with the same model: the aligned crop, the plain box
crop (:func:`edgeface.deepstream_probe.box_crop`) and, for reference, the chip as training saw it. No
test-time flip (the DeepStream probe decodes a single pass). Writes JSON, Markdown and a PNG.

    edgeface experiment alignment-vs-boxcrop CHECKPOINT --data ../shared/data/utkface-dev/images \\
        --detector ../shared/models/yunet_s_640_640.onnx --out benchmarks/results
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from edgeface.bench.experiments import UTKFACE_CHIPS, YUNET, add_common_arguments, command_line
from edgeface.progress import progress as progress_bar

RESULT_NAME = "alignment_vs_boxcrop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="age checkpoint or artifact (anything edgeface.runtime opens)")
    add_common_arguments(parser, threads_help="inference threads",
                         data=(UTKFACE_CHIPS, "UTKFace folder (AGE_GENDER_RACE_DATE names)"),
                         detector=(YUNET, "YuNet ONNX face detector"))
    parser.add_argument("--val-fraction", type=float, default=0.2, help="held-out share (training's split)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (training's default 0)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate at most this many held-out images")
    parser.add_argument("--roll", type=float, nargs="+", default=[0.0, 20.0],
                        help="head-roll conditions in degrees: each held-out image is turned by a seeded angle in "
                             "+-ROLL before detection (UTKFace chips are upright already; video faces are not)")


def paired_delta(err_box: np.ndarray, err_aligned: np.ndarray) -> tuple[float, float]:
    """Mean extra absolute error of box crops over aligned crops on the same faces, and its standard error."""
    diff = np.abs(err_box) - np.abs(err_aligned)
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return float(diff.mean()), se


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """The image turned about its centre (edges replicated): a head roll as video shows it."""
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def measure(runner, detector, chips, val: np.ndarray, roll: float, seed: int, progress: bool = True) -> dict:
    """Aligned vs box crops of the held-out faces, each image first rolled by a seeded angle in +-roll degrees."""
    from edgeface.deepstream_probe import box_crop
    from edgeface.faces import read_image
    from edgeface.preprocess import align_face
    from edgeface.train.evaluate import evaluate_runner

    spec = runner.card.preprocess
    angles = np.random.default_rng(seed).uniform(-roll, roll, len(val)) if roll else np.zeros(len(val))
    aligned, boxed, kept = [], [], []
    for i, angle in progress_bar(list(zip(val, angles, strict=True)), f"detect + crop, roll {roll:g}", progress,
                                 unit="img"):
        image = read_image(chips.paths[i])
        image = rotate(image, float(angle)) if angle else image
        faces = detector.detect(image)
        if faces:
            aligned.append(align_face(image, faces[0].landmarks, spec))
            boxed.append(box_crop(image, faces[0].box, spec))
            kept.append(int(i))
    if not kept:
        raise ValueError("the detector found no face in the held-out images")
    targets = {k: v[kept] for k, v in chips.targets.items()}
    sets = [("aligned", np.stack(aligned)), ("box", np.stack(boxed))]
    if not roll:
        sets.append(("chip", chips.crops[kept]))
    result: dict = {"roll_deg": roll, "images": len(kept), "no_face": int(len(val) - len(kept))}
    errors = {}
    for name, crops in sets:
        metrics, outputs = evaluate_runner(runner, crops, targets, flip=False)
        result[name] = {"mae": metrics["mae"], "cs5": metrics["cs@5"], "rmse": metrics["rmse"],
                        "pearson": metrics["pearson"]}
        errors[name] = outputs["expectation"] - targets["label"]
    result["delta_mae"], result["delta_mae_se"] = paired_delta(errors["box"], errors["aligned"])
    decades = (targets["label"] // 10).astype(int)
    result["mae_per_decade"] = {name: {f"{d * 10}s": float(np.abs(e[decades == d]).mean()) for d in np.unique(decades)}
                                for name, e in errors.items()}
    return result


def main(args: argparse.Namespace) -> int:
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices
    from edgeface.detector import FaceDetector
    from edgeface.fileio import write_json, write_text
    from edgeface.runtime.base import open_runner

    detector = FaceDetector(args.detector)
    runner = open_runner(args.model, threads=args.threads)
    card = runner.card
    if card.task != "age":
        raise ValueError(f"{args.model} is a {card.task} model; this measurement needs an age model")
    spec = card.preprocess
    issues = DataIssues()
    chips = prepare_faces(load_samples("utkface", args.data, issues, label_space=card.label_space), spec, issues,
                          "utkface", progress=args.progress)
    _, val = split_indices(chips, args.val_fraction, args.seed)
    if args.limit:
        val = val[: args.limit]
    conditions = [measure(runner, detector, chips, val, roll, args.seed, args.progress) for roll in args.roll]
    runner.deactivate()
    report = {
        "benchmark": RESULT_NAME,
        "model": card.model,
        "input_size": spec.input_size,
        "artifact": Path(args.model).name,
        "card_data": card.data,
        "dataset": f"UTKFace ({args.data.name}, val {args.val_fraction:g} seed {args.seed})",
        "held_out": int(len(val)),
        "flip": False,
        "conditions": conditions,
        "command": command_line(args, positional=("model",)),
        "machine": platform.machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{RESULT_NAME}.json", report)
    write_text(args.out / f"{RESULT_NAME}.md", markdown(report))
    plot(args.out / f"{RESULT_NAME}.png", report)
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    names = {"aligned": "aligned (edgeface runtime)", "box": "detector box (DeepStream nvinfer)",
             "chip": "UTKFace chip resized (as trained)"}
    rows, deltas = [], []
    for c in r["conditions"]:
        for key in ("aligned", "box", "chip"):
            if key in c:
                m = c[key]
                rows.append(f"| +-{c['roll_deg']:g} | {c['images']} | {names[key]} | {m['mae']:.2f} | "
                            f"{100 * m['cs5']:.1f} | {m['rmse']:.2f} | {m['pearson']:.3f} |")
        deltas.append(f"- head roll +-{c['roll_deg']:g} deg: box crops vs aligned crops on the same faces "
                      f"**{c['delta_mae']:+.2f} years MAE** (paired standard error {c['delta_mae_se']:.2f}); "
                      f"{c['no_face']} of {r['held_out']} images without a YuNet detection left out")
    return "\n".join([
        "# Aligned crops vs DeepStream box crops",
        "",
        f"{r['model']} at {r['input_size']} px (`{r['artifact']}`), held-out faces of {r['dataset']}, "
        "single pass, no flip. Each image is first turned by a seeded random angle within the roll range "
        "(UTKFace chips are upright; faces in video are not).",
        "",
        "| roll (deg) | faces | crop | MAE (years) | CS@5 (%) | RMSE | Pearson |",
        "|---|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
        *deltas,
        "",
        f"Command: `{r['command']}`",
        "",
    ])


def plot(path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    conditions = report["conditions"]
    fig, axes = plt.subplots(1, len(conditions), figsize=(6 * len(conditions), 3.6), squeeze=False)
    for ax, c in zip(axes[0], conditions, strict=True):
        decades = list(c["mae_per_decade"]["aligned"])
        ticks = np.arange(len(decades))
        width = 0.38
        for k, name in enumerate(("aligned", "box")):
            ax.bar(ticks + (k - 0.5) * width, [c["mae_per_decade"][name][d] for d in decades], width,
                   label=f"{name}: MAE {c[name]['mae']:.2f}")
        ax.set_xticks(ticks, decades)
        ax.set_xlabel("true age")
        ax.set_ylabel("MAE (years)")
        ax.set_title(f"roll +-{c['roll_deg']:g} deg, {c['images']} faces")
        ax.legend()
    fig.suptitle(f"{report['model']} {report['input_size']} px: aligned vs DeepStream box crops")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
