"""Decoding: damaged files are read past (both decoders), stalled streams time out instead of hanging, hardware
decoding falls back to software, and Ctrl-C on a stalled stream ends `edgeface run` at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_helpers import tiny_models

from edgeface.errors import BackendUnavailable
from edgeface.runtime.source_pyav import pyav_available
from edgeface.runtime.sources import VideoSource

FRAMES = 120
needs_pyav = pytest.mark.skipif(not pyav_available(), reason="PyAV is not installed (pip install 'edgeface[video]')")
DECODERS = [pytest.param("pyav", marks=needs_pyav), "opencv"]


def numbered_frame(t: int) -> np.ndarray:
    """A frame that tells its index in 7 black or white squares along the top, with a moving disc below so the
    codec has motion to code."""
    frame = np.full((96, 128, 3), 128, np.uint8)
    for bit in range(7):
        frame[:16, 16 * bit:16 * bit + 16] = 255 * ((t >> bit) & 1)
    cv2.circle(frame, (t % 128, 60), 12, (0, 0, 255), -1)
    return frame


def frame_number(frame: np.ndarray) -> int:
    return sum(1 << bit for bit in range(7) if frame[4:12, 16 * bit + 4:16 * bit + 12].mean() > 128)


def write_clip(path: Path, frames: int, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (128, 96))
    assert writer.isOpened()
    for t in range(frames):
        writer.write(numbered_frame(t))
    writer.release()
    return path


@pytest.fixture(scope="module")
def damaged_clip(tmp_path_factory) -> Path:
    """An mp4 with random bytes over 30-40 % of its length: the middle of the frames, index intact."""
    path = write_clip(tmp_path_factory.mktemp("decoding") / "damaged.mp4", FRAMES)
    data = bytearray(path.read_bytes())
    start, end = int(len(data) * 0.30), int(len(data) * 0.40)
    data[start:end] = np.random.default_rng(0).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_damaged_file_is_read_past_its_damage_and_the_lost_frames_counted(damaged_clip, decoder):
    source = VideoSource(str(damaged_clip), decoder=decoder)
    levels = [frame_number(frame) for frame in source.frames()]
    source.release()
    assert 0 < source.bad_frames <= FRAMES * 0.6  # OpenCV seeks 1, 2, 4 ... frames ahead: it may overshoot
    assert len(levels) + source.bad_frames == FRAMES  # every frame is either read or counted as lost
    assert max(levels) >= FRAMES - 3  # it reached the end of the file, not the start of the damage
    missing = sorted(set(range(FRAMES)) - set(levels))
    assert missing and FRAMES * 0.2 < missing[0] < FRAMES * 0.6  # the frames lost are the damaged stretch


@needs_pyav
def test_pyav_reads_a_clean_file_whole_with_its_rate(tmp_path):
    source = VideoSource(str(write_clip(tmp_path / "clean.mp4", 20)), decoder="pyav")
    frames = list(source.frames())
    assert len(frames) == 20 and source.bad_frames == 0 and source.fps == 25.0
    assert [frame_number(f) for f in frames] == list(range(20))
    assert source.decoder.startswith("PyAV")


@needs_pyav
def test_a_missing_hardware_decoder_falls_back_to_software(tmp_path):
    source = VideoSource(str(write_clip(tmp_path / "clean.mp4", 5)), decoder="pyav", hwaccel="cuda")
    assert len(list(source.frames())) == 5
    assert "cuda" in source.decoder  # decoding on the GPU, or in software with the reason


def test_hardware_decoding_needs_pyav(tmp_path):
    with pytest.raises(BackendUnavailable, match="PyAV"):
        VideoSource(str(write_clip(tmp_path / "clean.mp4", 2)), decoder="opencv", hwaccel="cuda")


class StallingServer:
    """A TCP server on loopback that sends the first ``stream`` connections a stream's first half, then goes
    silent with the connection open (a stalled camera); later connections are accepted and get nothing."""

    def __init__(self, payload: bytes, streams: int):
        self.payload, self.streams = payload, streams
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.sent = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(connection)
            if len(self.connections) <= self.streams:
                connection.sendall(self.payload)
                self.sent.set()

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture(scope="module")
def stream_half(tmp_path_factory) -> bytes:
    """The first half of an MPEG-TS clip (a streamable container: it decodes as it arrives)."""
    path = write_clip(tmp_path_factory.mktemp("stream") / "clip.ts", 100, fourcc="mp4v")
    data = path.read_bytes()
    return data[:len(data) // 2]


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_stalled_stream_counts_as_dropped_and_a_silent_one_fails_to_open(stream_half, decoder):
    server = StallingServer(stream_half, streams=1)
    try:
        source = VideoSource(server.url, decoder=decoder, max_reconnects=2, backoff_s=0.01)
        frames = list(source.frames())  # ends: the stall drops the stream and the silent reconnects fail
        assert 10 < len(frames) < 100 and source.reconnects == 0
        assert len(server.connections) == 3  # the stream, then two reconnect attempts
        with pytest.raises(ValueError, match="cannot open video source"):
            VideoSource(server.url, decoder=decoder)
    finally:
        server.close()


def test_ctrl_c_on_a_stalled_stream_ends_the_run_within_two_seconds(stream_half, tmp_path, yunet_path):
    """Timed from the signal to the run's one-line goodbye (its outputs closed by then); the interpreter's own
    teardown after it is not the run's and only has to end."""
    server = StallingServer(stream_half, streams=1000)  # every (re)connection stalls after half a clip
    models = tiny_models(tmp_path / "models")
    jsonl = tmp_path / "faces.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", server.url, "--models", str(models / "age.pt"),
         "--detector", str(yunet_path), "--jsonl", str(jsonl), "--threads", "1", "--max-reconnects", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    stderr: list[tuple[float, str]] = []  # (arrival time, line)
    reader = threading.Thread(target=lambda: stderr.extend((time.monotonic(), line) for line in process.stderr))
    reader.start()
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None and not server.sent.is_set():
            time.sleep(0.05)
        time.sleep(1.0)  # the half clip is decoded and the reader waits on the silent connection
        assert process.poll() is None, stderr
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        process.wait(timeout=120)
        reader.join()
        stdout = process.stdout.read()  # the report comes at the end: far below a pipe's buffer
    finally:
        if process.poll() is None:
            process.kill()
        server.close()
    assert process.returncode == 130, stderr
    goodbye = [(t, line) for t, line in stderr if "interrupted" in line]
    assert len(goodbye) == 1 and goodbye[0][1].startswith("edgeface run: interrupted after"), stderr
    took = goodbye[0][0] - sent
    assert took < 2.0, f"Ctrl-C took {took:.1f} s"
    assert "(interrupted)" in stdout and jsonl.is_file()
