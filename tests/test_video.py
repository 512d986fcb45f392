"""Video runtime: sources and their faults, the threaded pipeline, `edgeface run` outputs and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_helpers import FACE_SIZE, face_video, nearest_known, tiny_models

from edgeface.cli import main as cli_main
from edgeface.runtime.gstreamer import gst_missing
from edgeface.runtime.predictor import Predictor
from edgeface.runtime.sinks import AnnotatedVideoWriter
from edgeface.runtime.sources import SourceSpec, VideoSource, gstreamer_available, parse_source
from edgeface.runtime.tracker import IoUTracker
from edgeface.runtime.video import VideoPipeline

FRAMES = 16


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, utkface_dir) -> dict:
    root = tmp_path_factory.mktemp("video")
    video = root / "faces.mp4"
    boxes = face_video(video, utkface_dir, faces=3, frames=FRAMES)
    return {"root": root, "models": tiny_models(root / "models"), "video": video, "boxes": boxes}


def count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


class ScriptedCapture:
    """A cv2.VideoCapture stand-in that replays (ok, frame) pairs."""

    def __init__(self, script: list[tuple[bool, np.ndarray | None]]):
        self.script = list(script)

    def isOpened(self) -> bool:  # noqa: N802 -- cv2's name
        return True

    def read(self):
        return self.script.pop(0) if self.script else (False, None)

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


def good(value: int) -> tuple[bool, np.ndarray]:
    return True, np.full((48, 64, 3), value, np.uint8)


def test_parse_source(tmp_path):
    assert parse_source("0") == SourceSpec("camera", 0)
    assert parse_source("rtsp://cam.local/stream").live
    with pytest.raises(FileNotFoundError, match="video source not found"):
        parse_source(str(tmp_path / "missing.mp4"))
    pipeline = "videotestsrc num-buffers=5 ! videoconvert ! appsink"
    if gstreamer_available() or not gst_missing():
        assert parse_source(pipeline) == parse_source("gst:" + pipeline) == SourceSpec("gstreamer", pipeline)
    else:
        with pytest.raises(ValueError, match="no GStreamer"):
            parse_source(pipeline)


def test_corrupt_and_empty_frames_are_skipped_and_counted():
    script = [good(1), (True, None), (True, np.zeros((0, 0, 3), np.uint8)), good(2),
              (True, np.zeros((48, 64), np.uint8)), (True, np.zeros((48, 64, 4), np.uint8)), good(3)]
    source = VideoSource(SourceSpec("file", "scripted"), opener=lambda spec: ScriptedCapture(script))
    frames = list(source.frames())
    assert [f[0, 0, 0] for f in frames] == [1, 2, 0, 3]  # the grey frame is converted, not dropped
    assert all(f.shape == (48, 64, 3) for f in frames)
    assert source.bad_frames == 3


def test_dropped_stream_reconnects_with_backoff_up_to_the_limit():
    opened = []

    def opener(spec):
        opened.append(time.perf_counter())
        if len(opened) in (1, 2):  # the stream gives two frames, drops, comes back once, then is gone
            return ScriptedCapture([good(len(opened)), good(len(opened))])
        return None

    source = VideoSource(SourceSpec("url", "rtsp://cam/stream"), max_reconnects=3, backoff_s=0.01, opener=opener)
    frames = list(source.frames())
    assert len(frames) == 4 and source.reconnects == 1
    assert len(opened) == 2 + 3  # initial, one good reconnect, then three failed attempts
    gaps = np.diff(opened[1:])
    assert gaps[-1] > gaps[-2] > gaps[0] * 1.5  # exponential backoff


def test_file_loop_restarts_the_video(workdir):
    source = VideoSource(str(workdir["video"]), loop=True)
    frames = source.frames()
    assert sum(1 for _, _ in zip(range(FRAMES * 2 + 3), frames, strict=False)) == FRAMES * 2 + 3
    source.release()


@pytest.mark.parametrize("every_frame", [False, True], ids=["per-track", "every-frame"])
def test_edgeface_run_writes_video_and_jsonl(workdir, yunet_path, capsys, every_frame):
    out, jsonl = workdir["root"] / "out" / "annotated.mp4", workdir["root"] / "out" / "faces.jsonl"
    code = cli_main(["run", str(workdir["video"]), "--models", str(workdir["models"]), "--detector", str(yunet_path),
                     "--out", str(out), "--jsonl", str(jsonl), "--threads", "1", "--window", "5"]
                    + (["--infer-every-frame"] if every_frame else []))
    assert code == 0
    report = capsys.readouterr().out
    assert "FPS" in report and "detect" in report and "infer" in report
    assert count_frames(out) == FRAMES
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    capture.release()
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    ids_by_band = {}
    inferences: dict[int, int] = {}  # per track: frames its models ran on so far
    for record, known in zip(records, workdir["boxes"], strict=True):
        assert len(record["faces"]) == 3
        for face in record["faces"]:
            band, distance = nearest_known(face["box"], known)
            assert distance < 0.25 * FACE_SIZE
            ids_by_band.setdefault(band, set()).add(face["track_id"])
            inferences[face["track_id"]] = inferences.get(face["track_id"], 0) + (face["stale_frames"] == 0)
            assert face["fused_frames"] == min(inferences[face["track_id"]], 5)
            assert face["stale_frames"] == 0 if every_frame or record["frame"] == 0 else face["stale_frames"] < 10
            assert {"age", "age_std", "attributes", "decisions", "model_landmarks"} <= set(face)
    assert sum(inferences.values()) == (3 * FRAMES if every_frame else 6)  # per track: frames 0 and 10
    assert sorted(len(ids) for ids in ids_by_band.values()) == [1, 1, 1]  # one stable id per face
    assert not list(out.parent.glob(".*.tmp*"))  # no temporary files left behind


def test_detect_every_n_follows_faces_between_detections(workdir, yunet_path):
    with Predictor(workdir["models"] / "age.pt", yunet_path, threads=1) as predictor:
        pipeline = VideoPipeline(VideoSource(str(workdir["video"])), predictor, IoUTracker(predictor.cards),
                                 detect_every=4, max_frames=12)
        calls = []
        detect = predictor.detect
        predictor.detect = lambda frame: calls.append(1) or detect(frame)
        seen = []
        stats = pipeline.run(lambda index, frame, results: seen.append((index, results)))
    assert stats.frames == 12 and len(calls) == 3
    for index, results in seen:
        assert len(results) == 3
        for r in results:
            assert nearest_known(r.box, workdir["boxes"][index])[1] < 0.3 * FACE_SIZE
    assert len({r.track_id for _, results in seen for r in results}) == 3


def test_a_failing_stage_leaves_no_output(workdir, yunet_path, tmp_path):
    with Predictor(workdir["models"] / "age.pt", yunet_path, threads=1) as predictor:
        def broken(frame, faces, rgb=False):
            raise RuntimeError("model exploded")

        predictor.infer = broken
        writer = AnnotatedVideoWriter(tmp_path / "out.mp4", 25.0)
        pipeline = VideoPipeline(VideoSource(str(workdir["video"])), predictor)
        with pytest.raises(RuntimeError, match="model exploded"):
            try:
                pipeline.run(lambda index, frame, results: writer.write(frame))
            except RuntimeError:
                writer.close(commit=False)
                raise
    assert list(tmp_path.iterdir()) == []


def test_bad_input_exit_codes(workdir, yunet_path, tmp_path, capsys):
    base = ["run", str(workdir["video"]), "--models", str(workdir["models"]), "--detector", str(yunet_path)]
    assert cli_main(["run", str(tmp_path / "missing.mp4"), *base[2:]]) == 2
    assert "video source not found" in capsys.readouterr().err
    assert cli_main([*base[:-1], str(tmp_path / "missing.onnx")]) == 2
    assert "face detector model not found" in capsys.readouterr().err
    assert cli_main([*base[:3], str(tmp_path), *base[4:]]) == 2
    assert "holds no model" in capsys.readouterr().err
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    assert cli_main(["run", str(not_a_video), *base[2:], "--out", str(tmp_path / "o.mp4")]) != 0
    assert not (tmp_path / "o.mp4").exists()


def test_ctrl_c_stops_cleanly_with_valid_outputs(workdir, yunet_path, tmp_path, utkface_dir):
    long_video = tmp_path / "long.mp4"
    face_video(long_video, utkface_dir, faces=1, frames=400)
    out, jsonl = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", str(long_video), "--models", str(workdir["models"] / "age.pt"),
         "--detector", str(yunet_path), "--out", str(out), "--jsonl", str(jsonl), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and not any(
            p.stat().st_size > 2000 for p in tmp_path.glob(".o.jsonl.tmp-*.jsonl")):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stdout
    lines = jsonl.read_text().splitlines()
    assert 0 < len(lines) < 400
    assert count_frames(out) == len(lines)


def test_a_live_source_drops_the_oldest_frames_when_the_pipeline_is_behind(workdir, yunet_path):
    captures = [ScriptedCapture([good(i % 250) for i in range(40)])]
    source = VideoSource(SourceSpec("url", "rtsp://cam/stream"), max_reconnects=1, backoff_s=0.01,
                         opener=lambda spec: captures.pop() if captures else None)
    with Predictor(workdir["models"] / "age.pt", yunet_path, threads=1) as predictor:
        seen = []
        stats = VideoPipeline(source, predictor).run(lambda index, frame, results: seen.append(index)
                                                     or time.sleep(0.02))
    assert stats.dropped_frames > 0 and stats.frames + stats.dropped_frames == 40
    assert seen == sorted(seen) and seen[-1] == 39  # the newest frame is never the one dropped


def test_a_paced_file_replay_is_live_and_skips_the_frames_its_reader_was_late_for():
    source = VideoSource(SourceSpec("file", "clip.mp4"), pace_fps=100.0,
                         opener=lambda spec: ScriptedCapture([good(i) for i in range(8)]))
    assert source.live and not source.spec.live
    seen, due = [], []
    for frame in source.frames():
        seen.append(int(frame[0, 0, 0]))
        due.append(source.frame_time)
        if len(seen) == 2:
            time.sleep(0.05)  # five frame periods behind: the camera has moved on
    assert seen[:2] == [0, 1] and source.late_frames >= 1 and len(seen) + source.late_frames == 8
    ticks = np.round((np.array(due) - due[0]) * 100.0, 6)
    assert ticks.tolist() == [float(v) for v in seen]  # each frame is due at its own tick of the 100 FPS clock
    with pytest.raises(ValueError, match="pace_fps"):
        VideoSource(SourceSpec("file", "clip.mp4"), pace_fps=0, opener=lambda spec: ScriptedCapture([]))


def test_a_pipeline_without_pygobject_is_one_line_naming_the_packages(tmp_path):
    from import_blocker import without

    if gstreamer_available():
        pytest.skip("this OpenCV runs GStreamer pipelines itself")
    run = subprocess.run([sys.executable, "-m", "edgeface", "run", "gst:videotestsrc", "--models", "tinyagenet"],
                         env=without("gi", tmp_path), capture_output=True, text=True, timeout=120)
    ours = [line for line in run.stderr.splitlines() if not line.startswith("[ WARN")]  # OpenCV's own log
    assert run.returncode == 2 and len(ours) == 1 and "install python3-gi, python3-gst-1.0" in ours[0]
