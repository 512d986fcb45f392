"""End-to-end FPS and latency of the video runtime: today's per-frame inference vs inference per track, A/B.

Two configurations run on the same generated 640x480 video with real faces, in interleaved rounds (A, B, A, B,
...) so that load from other processes hits both alike and the per-round ratio stays meaningful:

- ``per-frame``: every model on every face of every frame, YuNet on the full frame, the libraries' default
  thread pools (the runtime before per-track scheduling);
- ``per-track``: new tracks inferred at once, every track refreshed at least every ``--refresh-every`` frames,
  YuNet on the frame downscaled from ``--min-face``, the thread budget (:mod:`edgeface.runtime.threads`);
- ``per-track-full-frame`` and ``per-track-default-threads``: per-track with YuNet on the full frame, or with the
  libraries' default thread pools, which tell what the detector pass and the thread budget add.

Both detect on every frame (``--detect-every``). Throughput comes from the video read as fast as possible;
latency from the same video replayed live at ``--live-fps`` (drop-oldest queues, frames the runtime is late for
are dropped and counted). Age models are untrained (speed does not depend on the weights); INT8 artifacts are
calibrated on real face chips. The accuracy check runs a trained checkpoint (``--accuracy-checkpoint``) on
clips of labelled UTKFace faces and compares the per-track fused age of both schedules.

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
from edgeface.bench.fingerprint import machine_busy
from edgeface.checks import COUNT, PIXELS, POSITIVE
from edgeface.progress import progress as progress_bar

CONFIGS = ("per-frame", "per-track", "per-track-full-frame", "per-track-default-threads")
BASE, NEW = CONFIGS[:2]
GOALS_FPS = {"tinyagenet": 40.0, "thinagenet": 25.0}  # INT8, 3 faces, 224 px, per-track
GOAL_P50_MS = 80.0
GOAL_MAE_DIFF = 0.3  # years: scheduling must not cost accuracy
ACCURACY_MODEL = "tinyagenet"  # the shipped weights (trained on UTKFace dev, which the accuracy clips come from)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, threads=None, threads_help="per-track runner threads (default: the thread budget)",
                         data=(UTKFACE_CHIPS, "labelled UTKFace face chips (video faces, INT8 calibration, "
                                              "accuracy clips)"),
                         detector=(YUNET, "YuNet face detector ONNX"))
    p = parser
    p.add_argument("--models", nargs="+", default=["tinyagenet", "thinagenet"], help="age models (untrained)")
    p.add_argument("--target", default="openvino-int8", help="convert target to run (default openvino-int8)")
    p.add_argument("--faces", type=COUNT, default=3, help="faces in the generated video (default 3)")
    p.add_argument("--detect-every", type=COUNT, default=1, help="detect every N frames (default 1)")
    p.add_argument("--refresh-every", type=COUNT, default=10, help="per-track refresh interval (default 10)")
    p.add_argument("--min-face", type=COUNT, default=24, help="per-track: smallest face wanted (default 24, "
                                                            "as edgeface run)")
    p.add_argument("--frames", type=COUNT, default=60, help="frames per throughput round (default 60)")
    p.add_argument("--rounds", type=COUNT, default=5, help="interleaved throughput rounds (default 5)")
    p.add_argument("--live-fps", type=POSITIVE, default=30.0, help="live replay rate for latency (default 30)")
    p.add_argument("--live-seconds", type=POSITIVE, default=8.0, help="seconds per live round (default 8)")
    p.add_argument("--live-rounds", type=COUNT, default=2, help="interleaved live rounds (default 2)")
    p.add_argument("--input-size", type=PIXELS, default=224, help="model input side (default 224)")
    p.add_argument("--accuracy-checkpoint", default=ACCURACY_MODEL,
                   help=f"trained age model (checkpoint path or shipped weights name) for the accuracy check "
                        f"(default {ACCURACY_MODEL})")
    p.add_argument("--accuracy-clips", type=COUNT, default=6, help="clips of 3 labelled faces (default 6)")
    p.add_argument("--accuracy-frames", type=COUNT, default=60, help="frames per accuracy clip (default 60)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one)")


def build_model(name: str, target: str, data: Path, work: Path, input_size: int) -> Path:
    """A convert output folder holding ``target`` for an untrained ``name`` (raises when it was not built)."""
    from edgeface.bench.jobs import fresh_checkpoint
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint

    ckpt = fresh_checkpoint(name, work, input_size)
    if target == "torch":
        return ckpt
    folder = work / f"{name}-convert"
    options = ConvertOptions(calib_images=128, min_calib_faces=64, threads=2, progress=False)
    entry = convert_checkpoint(ckpt, targets=[target], calib=data, out_dir=folder, options=options)["artifacts"][target]
    if entry.get("status") != "ok":
        raise RuntimeError(f"{name} {target}: {entry.get('status')}: {entry.get('reason', '')}")
    return folder


class Runtime:
    """One configuration: its predictor, schedule and thread settings, applied before each of its rounds."""

    def __init__(self, config: str, model: Path, target: str, detector: Path, args: argparse.Namespace,
                 cv2_default_threads: int):
        from edgeface.runtime.predictor import Predictor
        from edgeface.runtime.scheduler import Schedule
        from edgeface.runtime.threads import thread_budget

        self.config = config
        artifact = None if target == "torch" else target
        budget = thread_budget(args.threads)
        if config in (BASE, "per-track-default-threads"):  # the libraries size their own pools
            self.cv2_threads, self.decode_threads, runner_threads = cv2_default_threads, None, None
        else:
            self.cv2_threads, self.decode_threads, runner_threads = budget.detect, budget.decode, budget.infer
        self.schedule = None if config == BASE else Schedule(refresh_every=args.refresh_every)
        self.predictor = Predictor(model, detector, target=artifact, threads=runner_threads, min_face=args.min_face,
                                   downscale=config not in (BASE, "per-track-full-frame"))
        self.detect_every = args.detect_every

    def run(self, video: Path, max_frames: int | None, pace_fps: float | None = None) -> dict:
        from edgeface.runtime.sinks import frame_record
        from edgeface.runtime.sources import VideoSource
        from edgeface.runtime.tracker import IoUTracker
        from edgeface.runtime.video import VideoPipeline

        cv2.setNumThreads(self.cv2_threads)
        source = VideoSource(str(video), pace_fps=pace_fps, decode_threads=self.decode_threads)
        pipeline = VideoPipeline(source, self.predictor, IoUTracker(self.predictor.cards),
                                 detect_every=self.detect_every, max_frames=max_frames, schedule=self.schedule)
        stats = pipeline.run(lambda index, frame, results: frame_record(index, source.fps, results),
                             handle_sigint=False)
        summary = stats.summary()
        summary["inferred_per_frame"] = round(stats.inferred_faces / max(stats.frames, 1), 3)
        summary["load_1min"] = round(os.getloadavg()[0], 2)
        return summary

    def close(self) -> None:
        self.predictor.close()


def measure_model(name: str, model: Path, video: Path, args: argparse.Namespace, cv2_default_threads: int) -> dict:
    """Interleaved throughput and live rounds of both configurations for one model."""
    from edgeface.bench.timing import interleaved_ratios

    runtimes = [Runtime(c, model, args.target, args.detector, args, cv2_default_threads) for c in CONFIGS]
    try:
        for runtime in runtimes:  # warm-up: first calls allocate and pick kernels
            runtime.run(video, 10)
        throughput: dict[str, list[dict]] = {c: [] for c in CONFIGS}
        live: dict[str, list[dict]] = {c: [] for c in CONFIGS}
        for _ in range(args.rounds):
            for runtime in runtimes:
                throughput[runtime.config].append(runtime.run(video, args.frames))
        live_frames = int(args.live_fps * args.live_seconds)
        for _ in range(args.live_rounds):
            for runtime in runtimes:
                live[runtime.config].append(runtime.run(video, live_frames, pace_fps=args.live_fps))
        backend = runtimes[0].predictor.models[0].runner.backend
    finally:
        for runtime in runtimes:
            runtime.close()
    configs = {}
    for c in CONFIGS:
        fps = [r["fps"] for r in throughput[c]]
        configs[c] = {
            "fps_rounds": fps, "fps_median": round(float(np.median(fps)), 2),
            "fps_iqr": [round(float(v), 2) for v in np.percentile(fps, [25, 75])],
            "stage_mean_ms": {s: round(float(np.mean([r["stages"][s]["mean_ms"] for r in throughput[c]])), 2)
                              for s in ("decode", "detect", "infer")},
            "inferred_per_frame": round(float(np.mean([r["inferred_per_frame"] for r in throughput[c]])), 3),
            "live_p50_ms": round(float(np.median([r["latency"]["p50_ms"] for r in live[c]])), 1),
            "live_p95_ms": round(float(np.median([r["latency"]["p95_ms"] for r in live[c]])), 1),
            "live_fps": round(float(np.median([r["fps"] for r in live[c]])), 2),
            "live_dropped": [r["dropped_frames"] for r in live[c]],
            "live_frames": [r["frames"] for r in live[c]],
            "throughput_rounds": throughput[c], "live_rounds": live[c],
        }
    speedup = {c: interleaved_ratios(configs[c]["fps_rounds"], configs[BASE]["fps_rounds"]) for c in CONFIGS[1:]}
    return {"model": name, "target": args.target, "backend": backend, "configs": configs,
            "speedup_vs_per_frame": speedup}


def utkface_faces(data: Path, count: int) -> list[tuple[np.ndarray, float]]:
    """``count`` labelled faces spread evenly over the ages present (chip, age in years)."""
    from edgeface.data.datasets import DataIssues, read_utkface

    samples = sorted(read_utkface(data, DataIssues()), key=lambda s: (s.targets["label"], s.path.name))
    if len(samples) < count:
        raise ValueError(f"{data} holds {len(samples)} labelled UTKFace faces; the accuracy check needs {count}")
    picks = np.linspace(0, len(samples) - 1, count).round().astype(int)
    return [(cv2.imread(str(samples[i].path)), float(samples[i].targets["label"])) for i in picks]


def accuracy_check(args: argparse.Namespace, work: Path) -> dict:
    """Per-track fused age, scheduled vs every face every frame, on clips of labelled faces (same detector)."""
    from edgeface.bench.synthetic_video import moving_faces_video
    from edgeface.fileio import portable_path
    from edgeface.runtime.predictor import Predictor
    from edgeface.runtime.scheduler import Schedule
    from edgeface.runtime.sources import VideoSource
    from edgeface.runtime.tracker import IoUTracker
    from edgeface.runtime.video import VideoPipeline

    faces = utkface_faces(args.data, 3 * args.accuracy_clips)
    schedules = (BASE, NEW)
    errors: dict[str, list[float]] = {c: [] for c in schedules}
    final: dict[str, list[float]] = {c: [] for c in schedules}
    fused: dict[str, list[float]] = {c: [] for c in schedules}
    inferred = {c: 0 for c in schedules}
    with Predictor(args.accuracy_checkpoint, args.detector, min_face=args.min_face) as predictor:
        for clip in range(args.accuracy_clips):
            chips, ages = zip(*faces[3 * clip:3 * clip + 3], strict=True)
            video = work / f"accuracy{clip}.mp4"
            boxes = moving_faces_video(video, list(chips), args.accuracy_frames, size=(640, 480), face_size=128)
            for config in schedules:
                schedule = None if config == BASE else Schedule(refresh_every=args.refresh_every)
                last: dict[int, float] = {}
                seen: list[tuple[int, int, float]] = []

                def on_frame(index: int, frame: np.ndarray, results: list, seen=seen, last=last, boxes=boxes) -> None:
                    for r in results:
                        centres = [np.hypot(r.box[0] + r.box[2] / 2 - x - w / 2, r.box[1] + r.box[3] / 2 - y - h / 2)
                                   for x, y, w, h in boxes[index]]
                        band = int(np.argmin(centres))
                        if centres[band] < 64 and r.age is not None:
                            seen.append((index, band, r.age))
                            last[band] = r.age

                stats = VideoPipeline(VideoSource(str(video)), predictor, IoUTracker(predictor.cards),
                                      schedule=schedule).run(on_frame, handle_sigint=False)
                inferred[config] += stats.inferred_faces
                errors[config] += [abs(age - ages[band]) for _, band, age in seen]
                fused[config] += [age for _, _, age in sorted(seen)]
                final[config] += [abs(last[b] - ages[b]) for b in sorted(last)]
    mae = {c: round(float(np.mean(errors[c])), 3) for c in schedules}
    out = {"checkpoint": portable_path(args.accuracy_checkpoint), "clips": args.accuracy_clips, "faces": len(faces),
           "frames_per_clip": args.accuracy_frames, "mae_every_face_frame": mae,
           "mae_final_per_track": {c: round(float(np.mean(final[c])), 3) for c in schedules},
           "face_frames": {c: len(errors[c]) for c in schedules}, "inferred_faces": inferred,
           "mae_difference": round(mae[NEW] - mae[BASE], 3)}
    if len(fused[BASE]) == len(fused[NEW]):
        out["mean_abs_gap_between_schedules"] = round(float(np.mean(np.abs(np.subtract(fused[NEW], fused[BASE])))), 3)
    return out


def main(args: argparse.Namespace) -> int:
    from edgeface.bench.fingerprint import fingerprint, preflight_warnings
    from edgeface.bench.synthetic_video import moving_faces_video
    from edgeface.faces import image_files
    from edgeface.fileio import write_json, write_text

    machine = fingerprint()
    cv2_default_threads = cv2.getNumThreads()
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        chips = [cv2.imread(str(p)) for p in image_files(args.data)[:args.faces]]
        video = work / f"faces{args.faces}.mp4"
        length = max(args.frames, int(args.live_fps * args.live_seconds)) + 10
        moving_faces_video(video, chips, length, size=(640, 480), face_size=128, fps=args.live_fps, laps=1.0)
        for name in progress_bar(args.models, "runtime fps", args.progress):
            try:
                model = build_model(name, args.target, args.data, work, args.input_size)
                rows.append({"status": "ok", **measure_model(name, model, video, args, cv2_default_threads)})
            except Exception as e:  # one model failing must not hide the other
                rows.append({"model": name, "target": args.target, "status": "failed",
                             "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
        accuracy = accuracy_check(args, work)
    document = {
        "benchmark": "runtime_fps", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command_line(args), "machine": machine, "warnings": preflight_warnings(machine),
        "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "settings": {k: v for k, v in settings(args).items() if k != "work"},
        "goals": {"fps_int8_3faces": GOALS_FPS, "live_p50_ms": GOAL_P50_MS, "mae_difference": GOAL_MAE_DIFF},
        "rows": rows, "accuracy": accuracy,
    }
    write_json(args.out / "runtime_fps.json", document)
    write_text(args.out / "runtime_fps.md", markdown(document))
    plot(args.out / "runtime_fps.png", rows)
    print(markdown(document))
    return 0


def markdown(doc: dict) -> str:
    s, cpu = doc["settings"], doc["machine"]["cpu"]
    lines = [
        "# Runtime end-to-end: per-frame vs per-track inference (A/B, interleaved)", "",
        f"`{doc['command']}`", "",
        f"{cpu.get('model')} ({cpu.get('usable_cores')} usable cores). 640x480 mp4v video with {s['faces']} real "
        f"faces (128 px) moving across, detection every {s['detect_every']} frame(s), {s['target']} age models at "
        f"{s['input_size']} px with untrained weights (speed only), YuNet `{Path(s['detector']).name}`, IoU tracker, "
        "JSON records built, no video encoding. per-frame: every face inferred on every frame, YuNet on the full "
        "frame, default thread pools (the runtime before this change); per-track: inference per track (refresh "
        f"every {s['refresh_every']} frames), YuNet downscaled from --min-face {s['min_face']}, the thread budget; "
        "the other two are per-track with one of those changes undone. Throughput: "
        f"{s['rounds']} interleaved rounds of {s['frames']} frames per configuration (A, B, C, D, A, ...); latency: "
        "the video replayed live at "
        f"{s['live_fps']:g} FPS, {s['live_rounds']} interleaved rounds of {s['live_seconds']:g} s.", "",
        f"1-min load average before: {doc['load_average_before'][0]}, after: {doc['load_average_after'][0]} "
        + ("(the machine was shared with other jobs: absolute FPS are lower bounds; the per-round ratio is what "
           "interleaving keeps meaningful)." if machine_busy(doc["load_average_before"][0], cpu.get("usable_cores", 1))
           else "(a quiet machine)."), "",
        "| model | configuration | FPS median (IQR) | detect ms | infer ms | faces inferred / frame | "
        "live p50 ms | live p95 ms | live FPS | live dropped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['status']}: {r.get('reason', '')[:100]} | | | | | | | | |")
            continue
        for c, v in r["configs"].items():
            lines.append(f"| {r['model']} | {c} | {v['fps_median']:.1f} ({v['fps_iqr'][0]:.1f}-{v['fps_iqr'][1]:.1f}) "
                         f"| {v['stage_mean_ms']['detect']:.1f} | {v['stage_mean_ms']['infer']:.1f} | "
                         f"{v['inferred_per_frame']:.2f} | {v['live_p50_ms']:.0f} | {v['live_p95_ms']:.0f} | "
                         f"{v['live_fps']:.1f} | {sum(v['live_dropped'])} of "
                         f"{sum(v['live_dropped']) + sum(v['live_frames'])} |")
    lines += ["", "Speed-up vs per-frame, from the per-round FPS ratios:", ""]
    for r in doc["rows"]:
        for c, x in r.get("speedup_vs_per_frame", {}).items():
            lines.append(f"- {r['model']} {c}: median {x['median']:.2f}x (IQR {x['q1']:.2f}-{x['q3']:.2f}, bootstrap "
                         f"95 % CI {x['ci95'][0]:.2f}-{x['ci95'][1]:.2f}, {x['rounds']} rounds)")
    lines += ["", "Goals (per-track, INT8, 3 faces, 224 px): " + "; ".join(goal_verdicts(doc)), ""]
    a = doc["accuracy"]
    if "skipped" in a:
        lines += [f"Accuracy check skipped: {a['skipped']}.", ""]
    else:
        verdict = "met" if abs(a["mae_difference"]) <= doc["goals"]["mae_difference"] else "missed"
        lines += [
            "## Accuracy: does scheduling cost accuracy?", "",
            f"Trained checkpoint `{a['checkpoint']}` (torch), {a['clips']} clips of 3 labelled UTKFace faces "
            f"({a['faces']} faces spread over the ages; the checkpoint was trained on this data set, so the MAE "
            f"itself is optimistic: the difference is the point), {a['frames_per_clip']} frames each, same detector "
            "for both. Per-track fused age vs the label over every face-frame:", "",
            "| schedule | MAE (years, every face-frame) | MAE (final fused age per track) | faces inferred |",
            "|---|---:|---:|---:|",
            *(f"| {c} | {a['mae_every_face_frame'][c]:.3f} | {a['mae_final_per_track'][c]:.3f} | "
              f"{a['inferred_faces'][c]} |" for c in (BASE, NEW)), "",
            f"MAE difference (per-track - per-frame): {a['mae_difference']:+.3f} years (goal: within "
            f"{doc['goals']['mae_difference']:g}): **{verdict}**."
            + (f" Mean absolute gap between the two schedules' fused ages: "
               f"{a['mean_abs_gap_between_schedules']:.3f} years." if "mean_abs_gap_between_schedules" in a else ""),
            ""]
    return "\n".join(lines)


def goal_verdicts(doc: dict) -> list[str]:
    """Per model: the per-track FPS and live p50 latency against the issue's goals."""
    out = []
    for r in doc["rows"]:
        goal = doc["goals"]["fps_int8_3faces"].get(r["model"])
        if r["status"] != "ok" or goal is None:
            continue
        fps, p50 = r["configs"][NEW]["fps_median"], r["configs"][NEW]["live_p50_ms"]
        limit = doc["goals"]["live_p50_ms"]
        out.append(f"{r['model']} >= {goal:g} FPS: {'met' if fps >= goal else 'missed'} ({fps:.1f}), live p50 <= "
                   f"{limit:g} ms: {'met' if p50 <= limit else 'missed'} ({p50:.0f} ms)")
    return out


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return
    fig, (ax_fps, ax_lat) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(CONFIGS)
    x = np.arange(len(ok))
    colors = ("tab:gray", "tab:blue", "tab:cyan", "tab:purple")
    for k, (config, color) in enumerate(zip(CONFIGS, colors, strict=True)):
        med = [r["configs"][config]["fps_median"] for r in ok]
        iqr = np.array([[m - r["configs"][config]["fps_iqr"][0], r["configs"][config]["fps_iqr"][1] - m]
                        for m, r in zip(med, ok, strict=True)]).T
        offset = (k - (len(CONFIGS) - 1) / 2) * width
        ax_fps.bar(x + offset, med, width, yerr=iqr, color=color, label=config, capsize=3)
        ax_lat.bar(x + offset, [r["configs"][config]["live_p50_ms"] for r in ok], width, color=color, label=config)
    for ax, title in ((ax_fps, "throughput FPS (median, IQR over rounds)"),
                      (ax_lat, "live end-to-end p50 latency (ms)")):
        ax.set_xticks(x, [r["model"] for r in ok])
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
