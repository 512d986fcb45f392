"""End-to-end FPS of the video runtime: decode -> YuNet -> align -> age model -> tracker, per backend and precision.

Generated 640x480 videos with 1 and 3 real faces moving across the frame; every model / artifact runs the
threaded :class:`~edgeface.runtime.video.VideoPipeline` (JSON records built, no video encoding), with
detection on every frame and every N frames. Models are untrained (speed does not depend on the weights);
INT8 artifacts are calibrated on real face chips.

    nice -n 10 edgeface experiment runtime-fps --out benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeface.bench.experiments import UTKFACE_CHIPS, YUNET, add_common_arguments, command_line, settings

TARGETS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
GOALS = {"tinyagenet": 25.0, "thinagenet": 12.0}  # INT8, 3 faces


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, threads_help="inference threads",
                         data=(UTKFACE_CHIPS, "face chips (video faces and INT8 calibration)"),
                         detector=(YUNET, "YuNet face detector ONNX"))
    p = parser
    p.add_argument("--models", nargs="+", default=["tinyagenet", "thinagenet"], help="age models (untrained)")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), help="torch and convert targets to measure")
    p.add_argument("--faces", nargs="+", type=int, default=[1, 3], help="faces per generated video")
    p.add_argument("--detect-every", nargs="+", type=int, default=[1, 3], help="detect every N frames")
    p.add_argument("--frames", type=int, default=150, help="frames per measurement")
    p.add_argument("--input-size", type=int, default=224, help="model input side (default 224)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one)")


def build_models(names: list[str], targets: list[str], data: Path, work: Path, input_size: int) -> dict:
    """{(model, target): model path or a reason string when it could not be built}."""
    from edgeface.bench.jobs import fresh_checkpoint
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint

    built: dict[tuple[str, str], Path | str] = {}
    for name in names:
        ckpt = fresh_checkpoint(name, work, input_size)
        built[(name, "torch")] = ckpt
        wanted = [t for t in targets if t != "torch"]
        if not wanted:
            continue
        folder = work / f"{name}-convert"
        options = ConvertOptions(calib_images=128, min_calib_faces=64, threads=2, progress=False)
        try:
            manifest = convert_checkpoint(ckpt, targets=wanted, calib=data, out_dir=folder, options=options)
        except Exception as e:  # report the reason next to the row instead of losing the other backends
            built.update({(name, t): f"convert failed: {type(e).__name__}: {e}" for t in wanted})
            continue
        for target in wanted:
            entry = manifest["artifacts"].get(target, {})
            ok = entry.get("status") == "ok"
            built[(name, target)] = folder if ok else f"{entry.get('status', 'missing')}: {entry.get('reason', '')}"
    return built


def measure(model_path: Path, target: str, video: Path, detector: Path, detect_every: int, frames: int,
            threads: int) -> dict:
    from edgeface.runtime.predictor import Predictor
    from edgeface.runtime.sinks import frame_record
    from edgeface.runtime.sources import VideoSource
    from edgeface.runtime.tracker import IoUTracker
    from edgeface.runtime.video import VideoPipeline

    with Predictor(model_path, detector, threads=threads, target=None if target == "torch" else target) as p:
        capture = cv2.VideoCapture(str(video))
        ok, frame = capture.read()
        capture.release()
        for _ in range(5):  # warm-up: first calls allocate and pick kernels
            p.predict(frame)
        source = VideoSource(str(video))
        pipeline = VideoPipeline(source, p, IoUTracker(p.cards), detect_every=detect_every, max_frames=frames)

        def on_frame(index: int, frame: np.ndarray, results: list) -> None:
            frame_record(index, source.fps, results)

        stats = pipeline.run(on_frame, handle_sigint=False)
        backend = p.models[0].runner.backend
    summary = stats.summary()
    summary["faces_seen"] = summary.pop("faces")  # the row's "faces" is faces per frame
    return {"backend": backend, **summary}


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edgeface.bench.fingerprint import fingerprint, preflight_warnings
    from edgeface.bench.synthetic_video import moving_faces_video
    from edgeface.faces import image_files
    from edgeface.fileio import write_json, write_text

    data, detector = args.data, args.detector
    for path in (data, detector):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found (needs ../shared beside the project)")
    machine = fingerprint()
    warnings = preflight_warnings(machine)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        chips = [cv2.imread(str(p)) for p in image_files(data)[:3]]
        videos = {}
        for n in args.faces:
            videos[n] = work / f"faces{n}.mp4"
            moving_faces_video(videos[n], chips[:n], args.frames + 10, size=(640, 480), face_size=128, laps=1.0)
        built = build_models(args.models, args.targets, data, work, args.input_size)
        rows = []
        jobs = [(m, t, n, d) for m in args.models for t in args.targets for n in args.faces for d in args.detect_every]
        for model, target, faces, every in tqdm(jobs, desc="runtime fps"):
            row = {"model": model, "target": target, "faces": faces, "detect_every": every,
                   "input_size": args.input_size}
            path = built[(model, target)]
            if isinstance(path, str):
                rows.append({**row, "status": "skipped", "reason": path})
                continue
            try:
                rows.append({**row, "status": "ok", **measure(path, target, videos[faces], detector, every,
                                                               args.frames, args.threads)})
            except Exception as e:  # one backend failing must not hide the others
                rows.append({**row, "status": "failed", "reason": f"{type(e).__name__}: {str(e).splitlines()[0]}"})
    load_after = [round(v, 2) for v in os.getloadavg()]
    document = {
        "benchmark": "runtime_fps", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command_line(args),
        "machine": machine, "warnings": warnings, "load_average_after": load_after,
        "settings": {k: v for k, v in settings(args).items() if k != "work"}, "goals_int8_3faces": GOALS,
        "rows": rows,
    }
    out = args.out
    write_json(out / "runtime_fps.json", document)
    write_text(out / "runtime_fps.md", markdown(document))
    plot(out / "runtime_fps.png", rows)
    print(markdown(document))
    return 0


def markdown(doc: dict) -> str:
    cpu = doc["machine"]["cpu"]
    lines = [
        "# Runtime end-to-end FPS (video pipeline)", "",
        f"`{doc['command']}` on {cpu.get('model')} ({cpu.get('usable_cores')} usable cores), "
        f"{doc['settings']['threads']} inference threads, 640x480 mp4v video, {doc['settings']['frames']} frames "
        f"per row, age model at {doc['settings']['input_size']} px (untrained weights: speed only), YuNet "
        "`yunet_s_640_640`, IoU tracker, JSON records built, no video encoding.", "",
        f"Load average before: {doc['machine'].get('load_average')}, after: {doc['load_average_after']}. "
        + (" ".join(doc["warnings"]) + ". " if doc["warnings"] else "")
        + "The machine's 2 cores were shared with other jobs, so these are lower bounds.", "",
        "| model | target | backend | faces | detect every | FPS | decode ms | detect ms | infer ms | "
        "end-to-end p50 ms | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['target']} | | {r['faces']} | {r['detect_every']} | | | | | | "
                         f"{r['status']}: {r.get('reason', '')[:80]} |")
            continue
        s = r["stages"]
        lines.append(f"| {r['model']} | {r['target']} | {r['backend']} | {r['faces']} | {r['detect_every']} | "
                     f"{r['fps']:.1f} | {s['decode']['mean_ms']:.1f} | {s['detect']['mean_ms']:.1f} | "
                     f"{s['infer']['mean_ms']:.1f} | {r['latency']['p50_ms']:.0f} | ok |")
    lines += ["", "Goals (INT8, 3 faces, 224 px): " + ", ".join(
        f"{m} >= {g:.0f} FPS: {goal_verdict(doc['rows'], m, g)}" for m, g in doc["goals_int8_3faces"].items()), ""]
    return "\n".join(lines)


def goal_verdict(rows: list[dict], model: str, goal: float) -> str:
    best = {}
    for r in rows:
        if r["model"] == model and r["status"] == "ok" and r["target"].endswith("int8") and r["faces"] == 3:
            best[r["detect_every"]] = max(best.get(r["detect_every"], 0.0), r["fps"])
    if not best:
        return "not measured"
    return "; ".join(f"detect every {d}: best {fps:.1f} ({'met' if fps >= goal else 'missed'})"
                     for d, fps in sorted(best.items()))


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return
    labels = [f"{r['model']}\n{r['target']}\n{r['faces']}f/N{r['detect_every']}" for r in ok]
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(ok)), 4.5))
    colors = ["tab:blue" if r["faces"] == 1 else "tab:orange" for r in ok]
    ax.bar(np.arange(len(ok)), [r["fps"] for r in ok], color=colors)
    ax.set_xticks(np.arange(len(ok)), labels, fontsize=6, rotation=90)
    ax.set_ylabel("end-to-end FPS")
    ax.set_title("edgeface run pipeline FPS (blue: 1 face, orange: 3 faces; N = detect every N frames)")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
