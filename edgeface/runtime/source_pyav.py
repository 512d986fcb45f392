"""FFmpeg decoding through PyAV (``pip install 'edgeface[video]'``): the capture behind files and network streams
when PyAV is installed (OpenCV's FFmpeg build is the fallback).

Three things OpenCV's capture cannot do, and why this backend exists:

- **Timeouts.** Opening and each read give up after ``timeout_s`` (FFmpeg's interrupt callback), so a stalled
  stream counts as dropped and is reopened, and Ctrl-C is seen, within about a second instead of OpenCV's 30 s.
- **Damaged files.** A packet that does not decode is skipped and counted (``skipped_frames``) and reading goes on
  with the next one; OpenCV's reader stops at the first damaged stretch of an mp4.
- **Hardware decoders.** ``hwaccel`` names an FFmpeg device type (cuda, vaapi, qsv, videotoolbox, d3d11va, ...);
  where that device cannot be opened, or the stream's codec has no hardware decoder, FFmpeg decodes in
  software and ``decoder`` says so.

PyAV is imported here only; this module is loaded only when a capture is opened with it.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np


def pyav_available() -> bool:
    """Whether PyAV can be imported here."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def hwaccel_types() -> list[str]:
    """FFmpeg device types this PyAV build can decode on (whether such a device is present is another matter)."""
    from av.codec.hwaccel import hwdevices_available

    return list(hwdevices_available())


class PyAVCapture:
    """A ``cv2.VideoCapture``-shaped reader (``isOpened``, ``read``, ``get``, ``release``) over PyAV.

    ``read`` returns ``(False, None)`` at the end of the stream, when the stream stalls for ``timeout_s`` or
    fails; frames whose packets do not decode are skipped inside ``read`` and counted in ``skipped_frames``.
    ``decoder`` describes what decodes (software or the hardware device) and ``error`` why opening failed.
    """

    def __init__(self, target: str, threads: int | None = None, timeout_s: float = 1.0, hwaccel: str | None = None):
        import av

        self._av = av
        self.skipped_frames = 0
        self.returned_frames = 0
        self.decoder = "PyAV " + av.__version__
        self.error: str | None = None
        self._pending: deque = deque()
        self._skip_before: int | None = None  # after a seek: frames before this pts are the keyframe's run-up
        self._container = None
        accel = None
        if hwaccel:
            from av.codec.hwaccel import HWAccel

            accel = HWAccel(hwaccel, allow_software_fallback=True)
        try:
            self._container = self._open(target, timeout_s, accel)
        except (av.error.FFmpegError, OSError) as e:
            if accel is None:
                self.error = str(e)
                return
            # the device could not be opened (no GPU, no driver, no permission): decode in software
            self.decoder += f" software ({hwaccel} unavailable: {e.strerror if isinstance(e, OSError) else e})"
            try:
                self._container = self._open(target, timeout_s, None)
            except (av.error.FFmpegError, OSError) as e2:
                self.error = str(e2)
                return
        if not self._container.streams.video:
            self.error = f"{target} has no video stream"
            self.release()
            return
        self._stream = self._container.streams.video[0]
        context = self._stream.codec_context
        self._stream.thread_type = "AUTO"
        if threads:
            context.thread_count = threads
        if accel is not None and "software" not in self.decoder:
            self.decoder += f" {hwaccel}" if context.is_hwaccel else f" software (no {hwaccel} decoder for " \
                                                                     f"{context.name})"
        self._packets = self._container.demux(self._stream)

    def _open(self, target: str, timeout_s: float, accel):
        return self._av.open(target, timeout=(timeout_s, timeout_s), hwaccel=accel)

    def isOpened(self) -> bool:  # noqa: N802 -- cv2's name
        return self._container is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._container is None:
            return False, None
        av = self._av
        while not self._pending:
            try:
                packet = next(self._packets)
            except StopIteration:
                return False, None
            except av.error.FFmpegError:  # a stall past the timeout (ExitError), a dropped connection, ...
                return False, None
            try:
                self._pending.extend(packet.decode())
            except av.error.FFmpegError:  # damaged data: skip this packet's frame and read on
                self.skipped_frames += 1
            while self._pending and self._skip_before is not None and self._pending[0].pts is not None \
                    and self._pending[0].pts < self._skip_before:
                self._pending.popleft()
        self._skip_before = None
        frame = self._pending.popleft()
        self.returned_frames += 1
        if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
            # OpenCV converts the planes 6x faster than PyAV's own reformat to bgr24 (5 vs 31 ms at 320x240 here)
            return True, cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
        return True, frame.to_ndarray(format="bgr24")

    def set(self, prop: int, value: float) -> bool:
        """Seek to frame ``value`` (``CAP_PROP_POS_FRAMES`` only): the frames jumped over count as skipped."""
        position = self.get(cv2.CAP_PROP_POS_FRAMES)
        fps = self.get(cv2.CAP_PROP_FPS)
        if prop != cv2.CAP_PROP_POS_FRAMES or self._container is None or value <= position or not fps:
            return False
        stream = self._stream
        start = stream.start_time or 0
        target = start + int(round(value / fps / stream.time_base))
        try:
            self._container.seek(target, stream=stream)
        except self._av.error.FFmpegError:
            return False
        self._packets = self._container.demux(stream)
        self._pending.clear()
        self._skip_before = target
        self.skipped_frames += int(value - position)
        return True

    def get(self, prop: int) -> float:
        if self._container is None:
            return 0.0
        if prop == cv2.CAP_PROP_FPS:
            rate = self._stream.average_rate or self._stream.guessed_rate
            return float(rate) if rate else 0.0
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._stream.frames)
        if prop == cv2.CAP_PROP_POS_FRAMES:
            return float(self.returned_frames + self.skipped_frames)
        return 0.0

    def release(self) -> None:
        """Close the stream and free the decoder now (its threads are joined here, not at interpreter exit)."""
        if self._container is not None:
            self._container.close()
            self._container = None
            self._pending.clear()
            self._stream = self._packets = None
