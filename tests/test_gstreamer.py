"""GStreamer through PyGObject: pipelines as `edgeface run` sources (appsink). Skips where the system's GStreamer
and PyGObject are missing (make test installs them where it runs as root with apt)."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import face_video, tiny_models

from edgeface.cli import main as cli_main
from edgeface.runtime.gstreamer import gst_missing
from edgeface.runtime.sources import VideoSource, open_capture

FRAMES = 12


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
