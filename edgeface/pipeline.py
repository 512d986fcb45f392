"""``edgeface pipeline``: the main job in one command and one folder.

By default on the shipped weights (``--weights``): convert each to every target this machine can build (the
skipped ones are listed with the reason), with INT8 calibration and the drift gate on the shipped sample faces;
benchmark them against the ``vgg16-dldl`` baseline at the same input size; run the video runtime on a short
clip assembled from the sample faces; write the report, claims table, plots, manifests and raw results into
``--out``. ``--train`` instead trains TinyAgeNet and ThinAgeNet briefly first (built-in SYNTHETIC data unless
``--data``), the full train-to-engine path::

    OUT/train/<model>/        best.pt, log.csv, curves.png        (--train only: edgeface train)
    OUT/data/heldout/         SYNTHETIC calibration / drift set   (--train without --data)
    OUT/models/<model>/       artifacts + manifest.json           (edgeface convert)
    OUT/bench.json            the benchmark run                   (edgeface bench)
    OUT/video/                sample clip, annotated.mp4, faces.jsonl   (edgeface run)
    OUT/REPORT.md, *.png      report with the claims check        (edgeface report)
    OUT/claims.md             the claims table alone
"""

from __future__ import annotations

import argparse
import inspect
import logging
import time
from pathlib import Path

from edgeface.bench.bench import _int_list, _threads_list
from edgeface.bench.jobs import BASELINE, CPU_BACKENDS
from edgeface.progress import add_progress_argument

MODELS = ("tinyagenet", "thinagenet")
log = logging.getLogger(__name__)
SEGMENT_FRAMES = 16  # per set of sample faces on screen (3 sets)


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
    parser.add_argument("--out", type=Path, default=Path("edgeface-out"), help="output folder (default edgeface-out)")
    parser.add_argument("--weights", default=",".join(MODELS),
                        help="shipped weights to convert and benchmark (default %(default)s; see edgeface models)")
    parser.add_argument("--video-models", nargs="+",
                        help="models for the video step, as edgeface run --models takes them (default: the first "
                             "model converted here, plus the shipped weights of the other tasks)")
    parser.add_argument("--video-target", default="openvino-int8",
                        help="artifact of the converted age model the video step runs (default %(default)s, when "
                             "built; not used with --video-models)")
    parser.add_argument("--targets", default="all", help="convert targets (default: all this machine can build)")
    parser.add_argument("--batch", type=_int_list, default=[1, 8], help="benchmark batch sizes (default 1,8)")
    parser.add_argument("--duration", type=float, default=1.0, help="measured seconds per config (default 1)")
    parser.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds per config (default 0.3)")
    parser.add_argument("--threads", type=_threads_list, default=[2], help="intra-op threads to compare (default 2)")
    parser.add_argument("--streams", type=int, default=2, help="parallel requests in throughput mode (default 2)")
    parser.add_argument("--no-baseline", action="store_true", help=f"skip the {BASELINE} baseline")
    parser.add_argument("--no-video", action="store_true", help="skip the video runtime step")
    add_progress_argument(parser)
    g = parser.add_argument_group("--train: the full train-to-engine path instead of the shipped weights")
    g.add_argument("--train", action="store_true", help="train the models briefly first (SYNTHETIC data unless --data)")
    g.add_argument("--data", help="aligned UTKFace-style face chips to train on and gate with")
    g.add_argument("--models", default=",".join(MODELS), help="models to train (default %(default)s)")
    g.add_argument("--input-size", type=int, default=224, help="input side (default 224, the paper's)")
    g.add_argument("--epochs", type=int, default=1, help="training epochs per model (default 1: brief)")
    g.add_argument("--synthetic-size", type=int, default=400, help="SYNTHETIC training pictures (default 400)")
    g.add_argument("--max-images", type=int, default=400, help="with --data: at most this many training images")
    g.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    g.add_argument("--eval-images", type=int, default=200, help="calibration / drift faces (default 200)")


def _step(n: int, total: int, text: str, t0: float) -> None:
    log.info("[%d/%d] %s (t+%.0fs)", n, total, text, time.perf_counter() - t0)


def _names(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _check(args: argparse.Namespace) -> None:
    from edgeface.models import list_models

    if args.duration <= 0:
        raise ValueError("--duration must be positive")
    if args.train:
        for m in _names(args.models):
            if m not in list_models():
                raise ValueError(f"unknown model {m!r}; available: {', '.join(list_models())}")
        if args.data and not Path(args.data).exists():
            raise FileNotFoundError(f"--data not found: {args.data}")
        if args.epochs < 1:
            raise ValueError("--epochs must be at least 1")
    elif args.data:
        raise ValueError("--data is training data: add --train (the default runs the shipped weights)")
    if (args.out / "models").exists():
        raise ValueError(f"{args.out} already holds a pipeline run; pass another --out or remove it")


def _train(args: argparse.Namespace, total: int, t0: float) -> tuple[dict[str, Path], Path, object]:
    """--train: brief training of each model; returns (checkpoints, calibration / drift data, convert options)."""
    from edgeface.convert.pipeline import ConvertOptions
    from edgeface.train.config import TrainConfig
    from edgeface.train.trainer import train_model

    out: Path = args.out
    label = "your data" if args.data else "the built-in SYNTHETIC data (generated pictures, not faces)"
    _step(1, total, f"train {args.models} for {args.epochs} epoch(s) on {label}", t0)
    heldout = Path(args.data) if args.data else write_synthetic_set(out / "data" / "heldout", args.eval_images,
                                                                    args.input_size)
    checkpoints = {}
    for model in _names(args.models):
        cfg = TrainConfig(model=model, task="age", data=args.data, aligned=bool(args.data), input_size=args.input_size,
                          epochs=args.epochs, batch_size=args.batch_size, lr_step=max(args.epochs, 1),
                          synthetic_size=args.synthetic_size, max_images=args.max_images if args.data else 0,
                          out=str(out / "train" / model), cache_dir=str(out / "cache"), workers=0, threads=2,
                          progress=args.progress)
        checkpoints[model] = train_model(cfg)
    options = ConvertOptions(eval_images=args.eval_images, calib_images=args.eval_images,
                             min_calib_faces=min(100, args.eval_images), cache_dir=str(out / "cache"),
                             allow_drift=True, progress=args.progress)
    return checkpoints, heldout, options


def _shipped(args: argparse.Namespace, total: int, t0: float) -> tuple[dict[str, Path], Path, object]:
    """The shipped weights; returns (checkpoints, sample-face labels for calibration / drift, convert options)."""
    from edgeface.assets import FACE_LABELS, sample_faces
    from edgeface.bench.jobs import sample_face_options
    from edgeface.weights import load_index, resolve_model

    names = _names(args.weights)
    checkpoints = {name: resolve_model(name) for name in names}
    index = load_index()
    _step(1, total, f"shipped weights: {', '.join(names)}", t0)
    for name in names:
        entry = index.get(name)
        if entry:
            mae = entry["metrics"].get("mae")
            log.info(f"    {name}: {entry['model']} {entry['task']}, {entry['input_size']} px, "
                     + (f"validation MAE {mae:.2f} years, " if mae is not None else "")
                     + f"trained on {entry['data']} ({entry['data_terms']})")
    log.info(f"    INT8 calibration and drift gate on the {len(sample_faces())} shipped sample faces "
             f"({FACE_LABELS.parent}); the gate compares each artifact with PyTorch on these faces")
    options = sample_face_options(cache_dir=str(args.out / "cache"), allow_drift=True, progress=args.progress)
    return checkpoints, FACE_LABELS, options


def main(args: argparse.Namespace) -> int:
    from edgeface.bench.claims import claims_markdown, claims_table
    from edgeface.bench.jobs import backend_options, baseline_targets_at, expand_variants, export_models, folder_jobs
    from edgeface.bench.measure import run_benchmark
    from edgeface.bench.report import write_report
    from edgeface.convert.pipeline import convert_checkpoint, failed_targets, target_availability
    from edgeface.fileio import write_json, write_text
    from edgeface.manifest import load_manifest
    from edgeface.runtime.base import available_backends

    _check(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress = args.progress
    t0 = time.perf_counter()
    total = 5 if args.no_video else 6
    checkpoints, data, options = (_train if args.train else _shipped)(args, total, t0)
    calib = data.parent if data.is_file() else data  # sample faces: the labels file names the folder of photos

    skipped = {t: r for t, r in target_availability().items() if r}
    _step(2, total, "convert to every target this machine can build"
          + (f"; skipped: {'; '.join(f'{t} ({r})' for t, r in skipped.items())}" if skipped else ""), t0)
    folders, breaches = [], []
    for model, ckpt in checkpoints.items():
        folder = out / "models" / model
        manifest = convert_checkpoint(ckpt, args.targets, calib=calib, eval_data=data, out_dir=folder,
                                      options=options)
        breaches += [f"{model} {t}: {e['drift']['allowed_breach']}" for t, e in manifest["artifacts"].items()
                     if (e.get("drift") or {}).get("allowed_breach")]
        breaches += [f"{model} {t}: failed" for t in failed_targets(manifest)]
        folders.append(folder)
    size = load_manifest(folders[0])["card"]["preprocess"]["input_size"]
    if not args.no_baseline:
        targets = baseline_targets_at(size, ["onnx", "openvino"])
        log.info(f"    {BASELINE} baseline: untrained weights (timing and size only) at {size} px"
                 + ("" if size == 224 else " like the models here (the paper's is 224 px)")
                 + (", FP32 targets" if targets else ", PyTorch only (its 7x7 adaptive pooling does not export to "
                    f"ONNX from a {size // 32}x{size // 32} feature map)"))
        folders += export_models([BASELINE], targets, out / "models", size)

    backends = [b for b in (*CPU_BACKENDS, "tensorrt") if b in available_backends()]
    _step(3, total, f"benchmark {len(folders)} models on {', '.join(backends)} (batch "
          f"{','.join(map(str, args.batch))}, {args.duration:g} s each)", t0)
    jobs = [j for f in folders for j in folder_jobs(f, backends, "cpu", baseline=f.name == BASELINE)]
    jobs = expand_variants(jobs, args.threads, backend_options("LATENCY"))
    settings = {"batches": args.batch, "duration_s": args.duration, "warmup_s": args.warmup,
                "streams": args.streams, "backends": backends, "device": "cpu"}
    document = run_benchmark(jobs, settings, progress=progress, label="bench")
    write_json(out / "bench.json", document)

    outputs = {"convert manifests": out / "models" / "*" / "manifest.json", "benchmark": out / "bench.json"}
    if not args.no_video:
        _step(4, total, "video runtime on a clip of the shipped sample faces", t0)
        outputs.update(run_video(args, out / "video", out / "models"))

    _step(total - 1, total, "report, claims table and plots", t0)
    synthetic = args.train and not args.data
    title = "edgeface pipeline report" + (" (SYNTHETIC data)" if synthetic else "")
    report = write_report([document], out / "REPORT.md", title)
    claims = claims_markdown(claims_table([document]))
    write_text(out / "claims.md", ("SYNTHETIC data: accuracy-related figures are not about real faces.\n\n"
                                   if synthetic else "") + claims + "\n")
    outputs.update({"report": report, "claims": out / "claims.md"})
    print(claims)
    _step(total, total, f"done in {time.perf_counter() - t0:.0f} s", t0)
    if breaches:
        log.info("drift gate breaches (recorded in the manifests):")
        for breach in breaches:
            log.info(f"  {breach}")
    log.info("outputs:")
    for what, path in outputs.items():
        log.info(f"  {what:18s} {path}")
    return 0


def run_video(args: argparse.Namespace, folder: Path, models: Path) -> dict[str, Path]:
    """Assemble a clip from the shipped sample faces and run ``edgeface run`` on it (annotated mp4 + JSON lines)."""
    import cv2

    from edgeface.assets import sample_faces
    from edgeface.bench.synthetic_video import sample_faces_video
    from edgeface.cli import build_parser
    from edgeface.manifest import load_manifest
    from edgeface.runtime.tracker import IoUTracker
    from edgeface.weights import load_index

    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "sample_faces.mp4"
    patience = inspect.signature(IoUTracker).parameters["max_missed"].default
    sample_faces_video(clip, [cv2.imread(str(f.path)) for f in sample_faces()], SEGMENT_FRAMES, gap=patience + 1)
    target = []
    if args.video_models:
        chosen = args.video_models
    else:
        age = next(models / name for name in _names(args.weights if not args.train else args.models))
        others: dict[str, str] = {}
        for name, entry in load_index().items():
            if entry["task"] != "age":
                others.setdefault(entry["task"], name)
        chosen = [str(age), *others.values()]
        built = load_manifest(age)["artifacts"].get(args.video_target, {}).get("status") == "ok"
        target = ["--target", args.video_target] if built else []
    annotated, jsonl = folder / "annotated.mp4", folder / "faces.jsonl"
    argv = ["run", str(clip), "--models", *chosen, "--out", str(annotated), "--jsonl", str(jsonl), *target,
            "--threads", "2", *([] if args.progress else ["--no-progress"])]
    log.info(f"    edgeface {' '.join(argv)}")
    run_args = build_parser().parse_args(argv)
    code = run_args._main(run_args)
    if code:
        raise RuntimeError(f"the video step exited with code {code}")
    return {"sample clip": clip, "annotated video": annotated, "faces (JSON lines)": jsonl}
