"""GStreamer through PyGObject: pipelines as `edgeface run` sources (appsink), an RTSP stream that dies and comes
back, and the `edgeface` element in gst-launch-1.0. Skips where the system's GStreamer and PyGObject are missing
(make test installs them where it runs as root with apt)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from runtime_helpers import FACE_SIZE, face_chips, face_video, nearest_known, tiny_models

from edgeface.bench.synthetic_video import sample_faces_video
from edgeface.cli import main as cli_main
from edgeface.runtime.gstreamer import gst_missing, load_gst
from edgeface.runtime.sources import VideoSource, open_capture

FRAMES = 12
RTSP_FPS, RTSP_CLIP_FRAMES, RTSP_FRAMES = 10.0, 100, 60  # the run stops after 60 frames, the outage in between


def find_element(name: str) -> bool:
    return load_gst().ElementFactory.find(name) is not None


@pytest.fixture(scope="module", autouse=True)
def need_gstreamer():
    if gst_missing():
        pytest.skip(gst_missing())


@pytest.fixture(scope="module")
def clip(tmp_path_factory, utkface_dir) -> dict:
    root = tmp_path_factory.mktemp("gst")
    video = root / "faces.mp4"
    return {"root": root, "video": video, "boxes": face_video(video, utkface_dir, faces=2, frames=FRAMES),
            "models": tiny_models(root / "models")}


def test_a_file_pipeline_is_read_to_its_end_once():
    source = VideoSource("gst:videotestsrc num-buffers=7 ! video/x-raw,width=96,height=64,framerate=15/1")
    assert not source.live and source.fps == 15.0  # videoconvert ! appsink appended; BGR asked of the appsink
    frames = list(source.frames())
    assert len(frames) == 7 and frames[0].shape == (64, 96, 3) and source.reconnects == 0


def test_a_live_pipeline_that_drops_is_reopened_and_the_gap_counted():
    opened = []

    def opener(spec):  # a live stream of three frames that comes back once, then stays away
        opened.append(spec)
        return open_capture(spec) if len(opened) <= 2 else None

    source = VideoSource("videotestsrc is-live=true num-buffers=3 ! video/x-raw,width=64,height=48,framerate=30/1 "
                         "! videoconvert ! appsink", max_reconnects=1, backoff_s=0.3, opener=opener)
    assert source.live
    frames = list(source.frames())
    assert len(frames) == 6 and source.reconnects == 1 and len(opened) == 3  # the last reopen found nothing
    assert source.gap_s >= 0.3  # at least the backoff passed between the last frame before and the first after


def test_edgeface_run_takes_a_gstreamer_pipeline(clip, yunet_path, capsys):
    jsonl = clip["root"] / "out.jsonl"
    code = cli_main(["run", f"filesrc location={clip['video']} ! decodebin ! videoconvert ! appsink",
                     "--models", str(clip["models"] / "age.pt"), "--detector", str(yunet_path),
                     "--jsonl", str(jsonl), "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert "0 dropped" in capsys.readouterr().out  # a file pipeline is not live: nothing dropped
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert all(len(r["faces"]) == 2 and "age" in r["faces"][0] for r in records)


@pytest.mark.parametrize(("pipeline", "message"), [
    ("gst:videotestsrc ! nosuchelement", "bad GStreamer pipeline: no element \"nosuchelement\""),
    ("videotestsrc num-buffers=2 ! video/x-raw,format=I420 ! appsink", "put videoconvert before the appsink"),
    ("filesrc location=/nonexistent/clip.mp4 ! decodebin", "cannot open video source"),
])
def test_a_bad_pipeline_is_one_line(clip, pipeline, message, capsys):
    assert cli_main(["run", pipeline, "--models", str(clip["models"] / "age.pt")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_rtsp_server(port: int, clip: Path) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("rtsp_server.py")), str(port), str(clip)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout.readline().strip() == "ready"
    return server


def test_rtsp_stream_killed_mid_stream_and_restarted(tmp_path, utkface_dir, yunet_path, clip):
    if missing := [e for e in ("x264enc", "rtph264pay", "avdec_mpeg4") if not find_element(e)]:
        pytest.skip(f"GStreamer elements missing for the RTSP server: {', '.join(missing)}")
    import gi

    try:
        gi.require_version("GstRtspServer", "1.0")
    except ValueError:
        pytest.skip("gst-rtsp-server is not installed (gir1.2-gst-rtsp-server-1.0)")
    video = tmp_path / "faces.mp4"  # two faces that barely move, so their tracks can survive the outage
    sample_faces_video(video, face_chips(utkface_dir, 2), frames=RTSP_CLIP_FRAMES, size=(320, 200), per_frame=2,
                       fps=RTSP_FPS)
    port, jsonl = free_port(), tmp_path / "faces.jsonl"
    server = start_rtsp_server(port, video)
    run = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", f"rtsp://127.0.0.1:{port}/faces", "--models",
         str(clip["models"] / "age.pt"), "--detector", str(yunet_path), "--jsonl", str(jsonl), "--threads", "1",
         "--max-frames", str(RTSP_FRAMES)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120  # bounds for a failure, wide enough for a CPU shared with trainings
        while time.monotonic() < deadline and not list(tmp_path.glob(".faces.jsonl.*")):
            time.sleep(0.1)  # the temporary output appears once the stream is open and frames flow
        time.sleep(2.0)
        server.kill()  # a crash mid-stream: no teardown
        server.wait()
        time.sleep(1.0)
        server = start_rtsp_server(port, video)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
        server.kill()
        server.wait()
    assert run.returncode == 0, stderr
    report = re.search(r"^(\d+) frames, .* (\d+) reconnects \(([\d.]+) s without frames\)", stdout, re.M)
    assert report and int(report[2]) >= 1 and float(report[3]) >= 1.0, stdout  # the outage, counted
    frames = [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()]
    # every frame the run processed, before the outage and after it, is in the one output (a live source's
    # dropped frames leave gaps in the numbers; the newest frame is never dropped)
    assert len(frames) == int(report[1]) and frames == sorted(set(frames)) and frames[-1] == RTSP_FRAMES - 1
    tracks = {face["track_id"] for line in jsonl.read_text().splitlines() for face in json.loads(line)["faces"]}
    assert len(tracks) == 2, stdout  # both people kept their track across the outage


def gst_launch_messages(output: str, element: str) -> list[dict]:
    """The JSON of each 'edgeface' element message ``gst-launch-1.0 -m`` printed for ``element``."""
    Gst = load_gst()
    found = []
    for line in output.splitlines():
        if match := re.search(rf'from element "{element}" \(element\): (edgeface, .*)$', line):
            structure, _ = Gst.Structure.from_string(match[1])
            found.append(json.loads(structure.get_value("json")))
    return found


def greenness(frame, box) -> float:
    """How much greener than grey the top edge of a box is (the annotation draws it in (0, 220, 0))."""
    x, y, w, _ = (int(round(v)) for v in box)
    edge = frame[y:y + 2, x:x + w].astype(float)
    return float((edge[..., 1] - (edge[..., 0] + edge[..., 2]) / 2).mean())


def gst_launch(launch: str) -> subprocess.CompletedProcess:
    """``gst-launch-1.0 -f LAUNCH`` with the element found as the README says (edgeface gst-plugin-path --env). -f: no
    fault handler, so a crash of the embedded Python ends the run (gst-launch's own handler would spin until the
    timeout), and the crash's Python stack is in the output."""
    Gst = load_gst()
    if shutil.which("gst-launch-1.0") is None or Gst.Registry.get().find_plugin("python") is None:
        pytest.skip("gst-launch-1.0 or gst-python's plugin loader (gstreamer1.0-python3-plugin-loader) is missing")
    return subprocess.run(
        ["bash", "-c", f'eval "$("{sys.executable}" -m edgeface gst-plugin-path --env)" && gst-launch-1.0 -f {launch}'],
        capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def test_gst_launch_annotates_frames_and_posts_metadata_with_the_edgeface_element(clip, tmp_path):
    if missing := [e for e in ("x264enc", "mp4mux", "avdec_mpeg4") if not find_element(e)]:
        pytest.skip(f"GStreamer elements missing: {', '.join(missing)}")
    out = tmp_path / "annotated.mp4"
    done = gst_launch(f"-m filesrc location={clip['video']} ! decodebin ! videoconvert ! edgeface models=tinyagenet "
                      f"threads=1 ! videoconvert ! x264enc ! mp4mux ! filesink location={out}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = gst_launch_messages(done.stdout, "edgeface0")
    assert [r["frame"] for r in records] == list(range(FRAMES))
    source, annotated = cv2.VideoCapture(str(clip["video"])), cv2.VideoCapture(str(out))
    for record, known in zip(records, clip["boxes"], strict=True):
        assert len(record["faces"]) == 2 and all(0 < face["age"] < 100 for face in record["faces"])
        assert all(nearest_known(face["box"], known)[1] < 0.25 * FACE_SIZE for face in record["faces"])
        (_, before), (ok, after) = source.read(), annotated.read()
        assert ok, f"the mp4 ends before frame {record['frame']}"
        for face in record["faces"]:  # each face's box is drawn where the metadata says it is
            assert greenness(after, face["box"]) > 120 > 40 > greenness(before, face["box"])
    assert not annotated.read()[0]


def test_cpp_exceptions_still_unwind_after_gstreamer_is_loaded():
    # PyGObject opens libgstreamer, and with it libunwind, globally; a library loaded afterwards (OpenVINO here)
    # used to bind libunwind's _Unwind_Resume, and the C++ exception a torch ONNX export throws through OpenVINO's
    # pybind11 translator then aborted the process (a suite that ran the GStreamer tests before a convert died)
    script = """
import io
import torch
from edgeface.runtime.gstreamer import gst_missing
assert gst_missing() is None
import openvino  # noqa: F401
torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),), io.BytesIO(), dynamo=False)
print("exported")
"""
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "exported" in done.stdout, done.stderr[-1500:]


@pytest.mark.parametrize("models, message", [("", "set the models property"),
                                             ("models=no-such-model.pt", "model not found: no-such-model.pt")])
def test_the_element_refuses_bad_models_in_one_line_and_the_pipeline_fails(models, message):
    done = gst_launch(f"videotestsrc num-buffers=3 ! videoconvert ! edgeface {models} ! fakesink")
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR: from element")]
    assert len(errors) == 1 and f"edgeface: {message}" in errors[0]
