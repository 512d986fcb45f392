"""Soak run of the video runtime: 10,000 frames through the threaded pipeline, resident memory sampled.

A short generated video with real faces loops as the source (``VideoSource(loop=True)``); every frame is
detected, inferred, tracked, drawn, written to an mp4 and a JSON-lines file (both discarded at the end).
Memory must stay flat: the report gives RSS after warm-up and at the end, and the growth per 1,000 frames.

    nice -n 10 edgeface experiment soak --out benchmarks/results
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
from edgeface.checks import COUNT, PIXELS, number_type
from edgeface.progress import progress as progress_bar


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, threads_help="inference threads", data=(UTKFACE_CHIPS, "face chips for the video"),
                         detector=(YUNET, "YuNet face detector ONNX"))
    p = parser
    p.add_argument("--frames", type=COUNT, default=10_000, help="frames to run (default 10,000)")
    p.add_argument("--model", default="tinyagenet", help="age model (untrained; default tinyagenet)")
    p.add_argument("--input-size", type=PIXELS, default=64, help="small input: the soak is about memory, not speed")
    p.add_argument("--size", type=PIXELS, nargs=2, default=[320, 240], metavar=("W", "H"), help="video frame size")
    p.add_argument("--sample-every", type=COUNT, default=250, help="frames between RSS samples")
    p.add_argument("--warmup-frames", type=number_type(minimum=0, integer=True), default=500,
                   help="RSS 'start' is taken after these frames")


def main(args: argparse.Namespace) -> int:
    from edgeface.bench.fingerprint import fingerprint
    from edgeface.bench.jobs import fresh_checkpoint
    from edgeface.bench.synthetic_video import moving_faces_video
    from edgeface.faces import image_files
    from edgeface.fileio import write_json, write_text
    from edgeface.runtime.predictor import Predictor
    from edgeface.runtime.sinks import AnnotatedVideoWriter, JsonlWriter, draw_results, frame_record
    from edgeface.runtime.sources import VideoSource
    from edgeface.runtime.tracker import IoUTracker
    from edgeface.runtime.video import VideoPipeline

    machine = fingerprint()
    samples: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        chips = [cv2.imread(str(p)) for p in image_files(args.data)[:2]]
        video = work / "loop.mp4"
        moving_faces_video(video, chips, 100, size=tuple(args.size), face_size=min(args.size) // 3, laps=1.0)
        ckpt = fresh_checkpoint(args.model, work, args.input_size)
        rss_before_models = rss_mib()
        with Predictor(ckpt, args.detector, threads=args.threads) as predictor:
            source = VideoSource(str(video), loop=True)
            writer, jsonl = AnnotatedVideoWriter(work / "out.mp4", source.fps), JsonlWriter(work / "out.jsonl")
            pipeline = VideoPipeline(source, predictor, IoUTracker(predictor.cards), max_frames=args.frames)
            bar = progress_bar(None, "soak", args.progress, total=args.frames, mininterval=5)

            def on_frame(index: int, frame: np.ndarray, results: list) -> None:
                jsonl.write(frame_record(index, source.fps, results))
                writer.write(draw_results(frame, results))
                if index % args.sample_every == 0 or index == args.frames - 1:
                    samples.append((index, rss_mib()))
                bar.update(1)

            try:
                stats = pipeline.run(on_frame, handle_sigint=False)
            finally:
                bar.close()
                writer.close(commit=True)
                jsonl.close(commit=True)
            written = writer.frames
            video_bytes = (work / "out.mp4").stat().st_size if written else 0
    frames, rss = np.array(samples, dtype=np.float64).T
    after_warmup = frames >= args.warmup_frames
    slope = float(np.polyfit(frames[after_warmup], rss[after_warmup], 1)[0] * 1000) if after_warmup.sum() > 2 else None
    start = float(rss[after_warmup][0]) if after_warmup.any() else float(rss[0])
    document = {
        "benchmark": "soak", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command_line(args),
        "machine": machine, "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "settings": settings(args),
        "frames": stats.frames, "bad_frames": stats.bad_frames, "faces_seen": stats.faces, "fps": round(stats.fps, 2),
        "frames_written": written, "video_bytes": video_bytes,
        "rss_mib": {"before_models": round(rss_before_models, 1), "first_sample": round(float(rss[0]), 1),
                    "start_after_warmup": round(start, 1), "end": round(float(rss[-1]), 1),
                    "max": round(float(rss.max()), 1), "growth_after_warmup": round(float(rss[-1]) - start, 1),
                    "slope_per_1000_frames": round(slope, 3) if slope is not None else None},
        "samples": [[int(f), round(float(r), 2)] for f, r in zip(frames, rss, strict=True)],
        "stages": stats.summary()["stages"],
    }
    out = args.out
    write_json(out / "soak.json", document)
    write_text(out / "soak.md", markdown(document))
    plot(out / "soak.png", frames, rss, args.warmup_frames)
    print(markdown(document))
    return 0


def markdown(doc: dict) -> str:
    m, s = doc["rss_mib"], doc["settings"]
    return "\n".join([
        "# Runtime soak (resident memory over a long run)", "",
        f"`{doc['command']}`: {doc['frames']:,} frames of a looping {s['size'][0]}x{s['size'][1]} generated video "
        f"(2 real faces), {s['model']} at {s['input_size']} px via the torch runner, detection every frame, "
        "tracker, annotated mp4 + JSON lines written. The CPU was shared with other jobs "
        f"(load average after: {doc['load_average_after']}).", "",
        "| frames | FPS | bad frames | frames written | RSS after warm-up MiB | RSS end MiB | growth MiB | "
        "slope MiB / 1000 frames |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {doc['frames']:,} | {doc['fps']:.1f} | {doc['bad_frames']} | {doc['frames_written']:,} | "
        f"{m['start_after_warmup']:.1f} | {m['end']:.1f} | {m['growth_after_warmup']:+.1f} | "
        f"{m['slope_per_1000_frames']:+.3f} |", "",
        f"RSS at the first sample (frame 0): {m['first_sample']:.1f} MiB; max {m['max']:.1f} MiB; warm-up = first "
        f"{s['warmup_frames']} frames. Plot: `soak.png`.", "",
    ])


def plot(path: Path, frames: np.ndarray, rss: np.ndarray, warmup: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(frames, rss, marker=".")
    ax.axvline(warmup, color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("frame")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(0, rss.max() * 1.15)
    ax.set_title("edgeface runtime soak: RSS over the run")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
