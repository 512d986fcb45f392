"""``edgeface pipeline``: the main job in one command and one folder.

Train TinyAgeNet and ThinAgeNet briefly (built-in SYNTHETIC data unless ``--data``), convert each to every
target this machine can build (the skipped ones are listed with the reason), benchmark them against the
``vgg16-dldl`` baseline, and write the report, claims table, plots, manifests and raw results into ``--out``::

    OUT/train/<model>/        best.pt, log.csv, curves.png        (edgeface train)
    OUT/models/<model>/       artifacts + manifest.json           (edgeface convert)
    OUT/data/heldout/         SYNTHETIC calibration / drift set   (only without --data)
    OUT/bench.json            the benchmark run                   (edgeface bench)
    OUT/REPORT.md, *.png      report with the claims check        (edgeface report)
    OUT/claims.md             the claims table alone
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgeface.bench.bench import _int_list, _threads_list
from edgeface.bench.jobs import BASELINE, CPU_BACKENDS

MODELS = ("tinyagenet", "thinagenet")


def write_synthetic_set(folder: str | Path, n: int, input_size: int, seed: int = 1) -> Path:
    """``n`` SYNTHETIC faces as UTKFace-named files (``AGE_0_0_INDEX.jpg``): calibration and drift data that the
    convert step reads like real aligned chips. A seed other than training's keeps them held out."""
    import cv2
    import numpy as np

    from edgeface.data.synthetic import SYNTHETIC_NAME, synthetic_faces
    from edgeface.labels import AGE
    from edgeface.preprocess import PreprocessSpec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec(input_size=input_size)
    faces = synthetic_faces(n, spec, AGE, seed=seed)
    for i, (crop, age) in enumerate(zip(faces.crops, faces.targets["label"], strict=True)):
        rgb = crop if spec.color == "RGB" else crop[..., ::-1]
        ok = cv2.imwrite(str(folder / f"{int(np.clip(round(float(age)), 0, 116))}_0_0_{i:05d}.jpg"),
                         np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise OSError(f"cannot write into {folder}")
    (folder / "README.txt").write_text(f"{SYNTHETIC_NAME}: {n} generated pictures, seed {seed}; not real faces.\n")
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="aligned UTKFace-style face chips (default: the built-in SYNTHETIC set)")
    parser.add_argument("--out", type=Path, default=Path("edgeface-out"), help="output folder (default edgeface-out)")
    parser.add_argument("--models", default=",".join(MODELS), help="models to train (default %(default)s)")
    parser.add_argument("--input-size", type=int, default=224, help="input side (default 224, the paper's)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per model (default 1: brief)")
    parser.add_argument("--synthetic-size", type=int, default=400, help="SYNTHETIC training pictures (default 400)")
    parser.add_argument("--max-images", type=int, default=400, help="with --data: at most this many training images")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    parser.add_argument("--eval-images", type=int, default=200, help="calibration / drift faces (default 200)")
    parser.add_argument("--targets", default="all", help="convert targets (default: all this machine can build)")
    parser.add_argument("--batch", type=_int_list, default=[1, 8], help="benchmark batch sizes (default 1,8)")
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per config (default 2)")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per config (default 0.5)")
    parser.add_argument("--threads", type=_threads_list, default=[2], help="intra-op threads to compare (default 2)")
    parser.add_argument("--streams", type=int, default=2, help="parallel requests in throughput mode (default 2)")
    parser.add_argument("--no-baseline", action="store_true", help=f"skip the {BASELINE} baseline")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _step(n: int, total: int, text: str, t0: float) -> None:
    print(f"[{n}/{total}] {text} (t+{time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    from edgeface.bench.claims import claims_markdown, claims_table
    from edgeface.bench.jobs import backend_options, expand_variants, export_models, folder_jobs
    from edgeface.bench.measure import run_benchmark
    from edgeface.bench.report import write_report
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint, target_availability
    from edgeface.fileio import write_json, write_text
    from edgeface.models import list_models
    from edgeface.runtime.base import available_backends
    from edgeface.train.config import TrainConfig
    from edgeface.train.trainer import train_model

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in list_models():
            raise ValueError(f"unknown model {m!r}; available: {', '.join(list_models())}")
    if args.data and not Path(args.data).exists():
        raise FileNotFoundError(f"--data not found: {args.data}")
    if args.epochs < 1 or args.duration <= 0:
        raise ValueError("--epochs must be at least 1 and --duration positive")
    out: Path = args.out
    if (out / "train").exists():
        raise ValueError(f"{out} already holds a pipeline run; pass another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    t0 = time.perf_counter()
    total = 5
    label = "your data" if args.data else "the built-in SYNTHETIC data (generated pictures, not faces)"

    _step(1, total, f"held-out calibration / drift set from {label}", t0)
    if args.data:
        heldout = Path(args.data)
    else:
        heldout = write_synthetic_set(out / "data" / "heldout", args.eval_images, args.input_size)

    checkpoints = {}
    for i, model in enumerate(models):
        _step(2, total, f"train {model} ({i + 1}/{len(models)}) for {args.epochs} epoch(s) on {label}", t0)
        cfg = TrainConfig(model=model, task="age", data=args.data, aligned=bool(args.data), input_size=args.input_size,
                          epochs=args.epochs, batch_size=args.batch_size, lr_step=max(args.epochs, 1),
                          synthetic_size=args.synthetic_size, max_images=args.max_images if args.data else 0,
                          out=str(out / "train" / model), cache_dir=str(out / "cache"), workers=0, threads=2,
                          progress=progress)
        checkpoints[model] = train_model(cfg)

    skipped = {t: r for t, r in target_availability().items() if r}
    _step(3, total, "convert to every target this machine can build"
          + (f"; skipped: {'; '.join(f'{t} ({r})' for t, r in skipped.items())}" if skipped else ""), t0)
    options = ConvertOptions(eval_images=args.eval_images, calib_images=args.eval_images,
                             min_calib_faces=min(100, args.eval_images), cache_dir=str(out / "cache"),
                             allow_drift=True, progress=progress)
    folders = []
    for model, ckpt in checkpoints.items():
        folder = out / "models" / model
        convert_checkpoint(ckpt, args.targets, calib=heldout, eval_data=heldout, out_dir=folder, options=options)
        folders.append(folder)
    if not args.no_baseline:
        print(f"    {BASELINE} baseline: untrained weights (timing and size only), FP32 targets", file=sys.stderr)
        folders += export_models([BASELINE], ["onnx", "openvino"], out / "models", args.input_size)

    backends = [b for b in (*CPU_BACKENDS, "tensorrt") if b in available_backends()]
    _step(4, total, f"benchmark {len(folders)} models on {', '.join(backends)}", t0)
    jobs = [j for f in folders for j in folder_jobs(f, backends, "cpu", baseline=f.name == BASELINE)]
    jobs = expand_variants(jobs, args.threads, backend_options("LATENCY"))
    settings = {"batches": args.batch, "duration_s": args.duration, "warmup_s": args.warmup,
                "streams": args.streams, "backends": backends, "device": "cpu"}
    document = run_benchmark(jobs, settings, progress=progress, label="bench")
    write_json(out / "bench.json", document)

    _step(5, total, "report, claims table and plots", t0)
    title = "edgeface pipeline report" + ("" if args.data else " (SYNTHETIC data)")
    report = write_report([document], out / "REPORT.md", title)
    claims = claims_markdown(claims_table([document]))
    write_text(out / "claims.md", ("SYNTHETIC data: accuracy-related figures are not about real faces.\n\n"
                                   if not args.data else "") + claims + "\n")
    print(claims)
    print(f"\nedgeface pipeline: done in {time.perf_counter() - t0:.0f} s: {report}, {out / 'claims.md'}, "
          f"manifests in {out / 'models'}", file=sys.stderr)
    return 0
