"""``edgeface run SOURCE``: detect, track and predict on a video file, camera, stream or GStreamer pipeline."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgeface.checks import COUNT, POSITIVE, SHARE
from edgeface.errors import OutputError
from edgeface.progress import add_progress_argument, progress

if TYPE_CHECKING:
    from edgeface.runtime.predictor import FaceResult, Predictor
    from edgeface.runtime.scheduler import Schedule
    from edgeface.runtime.threads import ThreadBudget
    from edgeface.runtime.tracker import IoUTracker

SUMMARY_TRACKS = 10  # longest tracks printed at the end
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, camera index (0), rtsp:// or http:// URL, or a GStreamer "
                                       "pipeline ('gst:v4l2src ! ...', or any string with '!'; through PyGObject "
                                       "where python3-gst-1.0 is installed, else an OpenCV built with GStreamer)")
    parser.add_argument("--models", required=True, nargs="+",
                        help="names of shipped weights (tinyagenet dmmcnn; see edgeface models), checkpoints (.pt), "
                             "model files, convert folders, or a folder holding several")
    parser.add_argument("--detector", help="YuNet ONNX file (default: the YuNet shipped with edgeface)")
    parser.add_argument("--out", help="annotated video to write (.mp4 / .avi), written atomically")
    parser.add_argument("--jsonl", help="JSON lines file: one object per frame with its faces")
    parser.add_argument("--show", action="store_true", help="show the annotated video in a window (q quits)")
    parser.add_argument("--detect-every", type=int, default=1, metavar="N",
                        help="run the detector every N frames, following faces by optical flow in between")
    parser.add_argument("--refresh-every", type=int, default=10, metavar="N",
                        help="infer each tracked face again after N frames (earlier when it grew, turned or "
                             "sharpened; new faces at once; default 10)")
    parser.add_argument("--face-budget", type=int, metavar="K",
                        help="infer at most K faces per frame, the most stale first (default: no cap)")
    parser.add_argument("--infer-every-frame", action="store_true",
                        help="run the models on every face of every frame (no per-track schedule)")
    parser.add_argument("--backend", help="runner backend override (torch, onnxruntime, openvino, tensorrt)")
    parser.add_argument("--target", help="convert-folder artifact to use (onnx, onnx-int8, openvino-int8, ...; "
                                         "default: the fastest measured here that passed the drift gate, else "
                                         "the first this machine runs in the target table's preference order)")
    parser.add_argument("--device", help="runner device (cpu, cuda, GPU, AUTO ...)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="load convert-folder artifacts that no longer match their manifest's sha256")
    parser.add_argument("--threads", type=int, help="inference threads per model (default: the thread budget, "
                                                     "every usable core)")
    parser.add_argument("--max-frames", type=COUNT, help="stop after this many frames")
    parser.add_argument("--min-face", type=int, default=24,
                        help="smallest face side in pixels to find; the detector runs on the frame downscaled so "
                             "such a face is 12 px for YuNet (default 24: half size)")
    parser.add_argument("--score-threshold", type=SHARE, default=0.6, help="detector score threshold")
    parser.add_argument("--low-score", type=SHARE, default=0.3,
                        help="detections scored from this up to --score-threshold keep a tracked face's track alive "
                             "and moving (ByteTrack's second association); never reported, inferred or starting "
                             "a track (default 0.3; --score-threshold's value turns it off)")
    parser.add_argument("--flip", action="store_true", help="average with the mirrored face (doubles model cost)")
    parser.add_argument("--window", type=int, default=15, help="frames fused per track")
    parser.add_argument("--max-reconnects", type=int, default=5, help="reconnect attempts for a dropped stream")
    parser.add_argument("--stall-timeout", type=POSITIVE, default=1.0, metavar="S",
                        help="seconds a stream may stay silent (opening or between frames) before it counts as "
                             "dropped and is reopened; Ctrl-C is seen within it (default 1)")
    parser.add_argument("--decoder", choices=["auto", "pyav", "opencv"], default="auto",
                        help="what decodes files and URLs: PyAV (timeouts, reads past damaged stretches, hardware "
                             "decoders; pip install 'edgeface[video]'), OpenCV's FFmpeg, or auto: PyAV where "
                             "installed (default)")
    parser.add_argument("--hwaccel", metavar="DEVICE",
                        help="decode on an FFmpeg hardware device (cuda, vaapi, qsv, videotoolbox, d3d11va ...; "
                             "PyAV only); software decoding where the device or the codec's decoder is missing")
    add_progress_argument(parser)


def open_runtime(args: argparse.Namespace) -> tuple[Predictor, IoUTracker, Schedule | None, ThreadBudget]:
    """The predictor, tracker, inference schedule and thread budget the arguments ask for (the thread budget
    applied): what ``edgeface run`` and the ``edgeface`` GStreamer element (``edgeface/gst``) both run on."""
    from edgeface.runtime.predictor import Predictor
    from edgeface.runtime.scheduler import Schedule
    from edgeface.runtime.threads import thread_budget
    from edgeface.runtime.tracker import IoUTracker

    if args.detect_every < 1:
        raise ValueError("--detect-every must be at least 1")
    if args.min_face < 1:
        raise ValueError("--min-face must be at least 1 pixel")
    if args.target:
        check_target(args.models, args.target)
    schedule = None if args.infer_every_frame else Schedule(refresh_every=args.refresh_every, budget=args.face_budget)
    budget = thread_budget(args.threads)
    budget.apply()
    predictor = Predictor(args.models, args.detector, backend=args.backend, threads=budget.infer,
                          min_face=args.min_face, score_threshold=args.score_threshold, flip=args.flip,
                          target=args.target, device=args.device, verify=args.verify, low_score=args.low_score)
    return predictor, IoUTracker(predictor.cards, window=args.window), schedule, budget


def main(args: argparse.Namespace) -> int:
    from edgeface.manifest import describe_artifact
    from edgeface.runtime.sinks import AnnotatedVideoWriter, JsonlWriter, close_sinks, draw_results, frame_record
    from edgeface.runtime.sources import VideoSource
    from edgeface.runtime.video import VideoPipeline

    check_outputs(args)
    predictor, tracker, schedule, budget = open_runtime(args)
    with predictor:
        source = VideoSource(args.source, max_reconnects=args.max_reconnects, decode_threads=budget.decode,
                             decoder=args.decoder, hwaccel=args.hwaccel, stall_timeout_s=args.stall_timeout)
        video = AnnotatedVideoWriter(args.out, source.fps) if args.out else None
        jsonl = JsonlWriter(args.jsonl) if args.jsonl else None
        show = args.show
        frames = source.frame_count
        bar = progress(None, "frames", args.progress, unit="frame",
                       total=min(frames, args.max_frames or frames) if frames else args.max_frames)
        tracks: dict[int, tuple[int, FaceResult]] = {}  # track id -> (frames seen, latest fused values)

        def on_frame(index, frame, results) -> bool:
            nonlocal show
            for r in results:
                if r.track_id is not None:
                    tracks[r.track_id] = (tracks.get(r.track_id, (0, r))[0] + 1, r)
            if jsonl is not None:
                jsonl.write(frame_record(index, source.fps, results))
            if video is not None or show:
                draw_results(frame, results)
            if video is not None:
                video.write(frame)
            bar.update(1)
            if show:
                import cv2

                cv2.imshow("edgeface", frame)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    return False
            return True

        pipeline = VideoPipeline(source, predictor, tracker,
                                 detect_every=args.detect_every, max_frames=args.max_frames, schedule=schedule)
        committed = False
        try:
            stats = pipeline.run(on_frame)
            committed = True
        finally:
            bar.close()
            close_sinks([video, jsonl], committed)
    models = ", ".join(f"{m.card.model}/{m.card.task}: {describe_artifact(m.runner.path, m.runner.backend)}"
                       for m in predictor.models)
    inference = ("every face every frame" if schedule is None else
                 f"per track, refreshed every {schedule.refresh_every} frames"
                 + (f", at most {schedule.budget} faces per frame" if schedule.budget else ""))
    print(f"models: {models}; decoder {source.decoder}; detection every {args.detect_every} frame(s) at scale "
          f"{predictor.detector.scale:.2f}; inference {inference}; threads {budget.describe()}")
    print(stats.report())
    if tracks:
        print(track_summary(tracks))
    if video is not None:
        print(f"wrote {video.path} ({video.frames} frames)" if video.frames else "no frames: no video written")
    if jsonl is not None:
        print(f"wrote {jsonl.path} ({jsonl.lines} lines)" if jsonl.lines else "no frames: no JSON lines written")
    if stats.frames == 0:
        log.error("edgeface run: error: the source gave no decodable frame")
        return 1
    if stats.interrupted:
        log.info("edgeface run: interrupted after %d frame(s); the outputs hold them", stats.frames)
        return 130
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before the run, outputs that are folders, that name the same file, or that name an input."""
    outputs = {flag: Path(value) for flag, value in (("--out", args.out), ("--jsonl", args.jsonl)) if value}
    for flag, path in outputs.items():
        if path.is_dir():
            example = path / ("annotated.mp4" if flag == "--out" else "results.jsonl")
            raise OutputError(f"{flag} {path} is a folder: name a file, e.g. {example}")
    if len(outputs) == 2 and _same_file(outputs["--out"], outputs["--jsonl"]):
        raise OutputError(f"--out and --jsonl both name {args.out}: name two files")
    inputs = [args.source, args.detector, *args.models]
    for flag, path in outputs.items():
        for item in inputs:
            if item and _same_file(path, Path(item)):
                raise OutputError(f"{flag} {path} is an input of this run ({item}) and would be overwritten: "
                                  "name a new file")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_target(models: list[str], target_name: str) -> None:
    """``--target`` names a built artifact of every convert folder among ``models``: checked from the manifests
    before the detector, the models or the source are opened."""
    from edgeface.manifest import resolve_artifact
    from edgeface.runtime.predictor import find_model_paths

    folders = [p for p in find_model_paths(models) if p.is_dir()]
    if not folders:
        raise ValueError(f"--target {target_name}: no convert folder among --models (it picks one of a folder's "
                         "artifacts)")
    for folder in folders:
        resolve_artifact(folder, target_name)


def track_summary(tracks: dict[int, tuple[int, FaceResult]]) -> str:
    """The longest tracks with their last fused values: what the run saw, without opening its outputs."""
    lines = [f"faces: {len(tracks)} track(s)" + (f", the {SUMMARY_TRACKS} longest:" if len(tracks) > SUMMARY_TRACKS
                                                 else ":")]
    for track_id, (frames, r) in sorted(tracks.items(), key=lambda t: -t[1][0])[:SUMMARY_TRACKS]:
        parts = [f"  #{track_id}: {frames} frame(s)"]
        if r.age is not None:
            parts.append(f"age {r.age:.1f} +- {r.age_std:.1f}")
        if r.attractiveness is not None:
            parts.append(f"attractiveness {r.attractiveness:.2f}")
        if r.decisions:
            parts.append(", ".join(n for n, on in r.decisions.items() if on) or "no attribute")
        lines.append("; ".join(parts))
    return "\n".join(lines)
