"""GStreamer through PyGObject (Debian / Ubuntu / JetPack: ``python3-gi``, ``python3-gst-1.0``): a pipeline's
appsink as a video capture for :class:`~edgeface.runtime.sources.VideoSource`, so ``edgeface run`` takes
GStreamer pipelines with any OpenCV (the pip wheels are built without GStreamer), and the frame views the
``edgeface`` GStreamer element (``edgeface/gst``) shares. ``gi`` is imported when first needed, never at import.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import time
from typing import Any

import cv2
import numpy as np

POLL_S = 0.1  # how often a waiting read looks at the bus for errors and end of stream
APPSINK = re.compile(r"(^|!)\s*appsink\b")


@functools.cache
def gst_missing() -> str | None:
    """Why GStreamer cannot be used from this Python (one line), or None when it can."""
    _keep_gcc_unwinder()
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        gi.require_version("GstVideo", "1.0")
        from gi.repository import Gst

        Gst.init(None)
    except (ImportError, ValueError) as e:  # no gi; gi without the GStreamer typelibs
        return (f"GStreamer is not usable from this Python ({str(e).splitlines()[0]}): install python3-gi, "
                "python3-gst-1.0 and the gstreamer1.0-plugins packages (make test does so where it runs as root "
                "with apt)")
    return None


def _keep_gcc_unwinder() -> None:
    """Put GCC's unwinder (libgcc_s) in the process's global symbol scope before GStreamer's libraries arrive.

    PyGObject opens libgstreamer globally, and with it libunwind, whose ``_Unwind_Resume`` then wins over GCC's for
    every library loaded afterwards: a C++ exception crossing pybind11 modules loaded later (OpenVINO's translator
    inside a torch call, as in an ONNX export) then aborts the process. Loaded globally first, libgcc_s's symbols
    win. A no-op where it is already there or has another name (musl, macOS)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)


def load_gst() -> Any:
    """The initialised ``Gst`` module; ValueError naming the missing packages when there is none."""
    reason = gst_missing()
    if reason:
        raise ValueError(reason)
    from gi.repository import Gst

    return Gst


def frame_view(data: memoryview, info: Any) -> np.ndarray:
    """A packed RGB / BGR / BGRx frame of a mapped buffer as an HxWxC array over the same memory (rows keep their
    stride); ``info`` is the buffer's ``GstVideo.VideoInfo``."""
    channels = info.finfo.pixel_stride[0]
    rows = np.frombuffer(data, np.uint8, count=info.stride[0] * info.height, offset=info.offset[0])
    return rows.reshape(info.height, info.stride[0])[:, :info.width * channels].reshape(
        info.height, info.width, channels)


class GstCapture:
    """``cv2.VideoCapture``'s interface (isOpened, read, get, release) over a GStreamer pipeline's appsink.

    ``description`` is ``gst-launch-1.0`` syntax; without an appsink, ``! videoconvert ! appsink`` is appended.
    The appsink is asked for BGR. The pipeline is started at once and its first frame awaited: a pipeline that
    fails to start, or ends before a frame, does not open. ``live`` says whether its source is live (GStreamer's
    NO_PREROLL: a camera, an RTSP stream); a read returns no frame at end of stream, after an error, or when a
    live source gave none for ``stall_s`` (a stalled stream), and ``error`` says why.
    """

    def __init__(self, description: str, stall_s: float = 5.0):
        Gst = load_gst()
        from gi.repository import GLib, GstApp, GstVideo  # noqa: F401 -- GstApp gives the appsink its methods

        self._gst, self._video = Gst, GstVideo
        self.stall_s = stall_s
        self.error: str | None = None
        self._fps = 0.0
        text = description.strip()
        if not APPSINK.search(text):
            text += " ! videoconvert ! appsink"
        try:
            self._pipeline = Gst.parse_launch(text)
        except GLib.Error as e:
            raise ValueError(f"bad GStreamer pipeline: {e.message}") from None
        sinks = [e for e in self._elements() if e.get_factory() and e.get_factory().get_name() == "appsink"]
        if len(sinks) != 1:
            self._pipeline.set_state(Gst.State.NULL)
            raise ValueError(f"a GStreamer pipeline for edgeface needs exactly one appsink, not {len(sinks)}")
        self._sink = sinks[0]
        self._sink.set_property("caps", Gst.Caps.from_string("video/x-raw,format=BGR"))
        self._sink.set_property("max-buffers", 2)  # back-pressure for files; live frames are taken at once
        self._sink.set_property("drop", False)
        self._sink.set_property("sync", False)
        self._bus = self._pipeline.get_bus()
        paused = self._pipeline.set_state(Gst.State.PAUSED)
        self.live = paused == Gst.StateChangeReturn.NO_PREROLL
        playing = self._pipeline.set_state(Gst.State.PLAYING)
        self._first: np.ndarray | None = None
        if Gst.StateChangeReturn.FAILURE in (paused, playing):
            self._fail(self._bus_error() or "the pipeline did not start")
        else:
            ok, frame = self.read()
            self._first = frame if ok else None

    def _elements(self) -> list[Any]:
        iterator, found = self._pipeline.iterate_recurse(), []
        while True:
            result, element = iterator.next()
            if result != self._gst.IteratorResult.OK:
                return found
            found.append(element)

    def _bus_error(self) -> str | None:
        """The pipeline's first error message, if one was posted (other messages are discarded)."""
        message = self._bus.pop_filtered(self._gst.MessageType.ERROR)
        if message is None:
            return None
        error, debug = message.parse_error()
        hint = " (not-negotiated: put videoconvert before the appsink)" if "not-negotiated" in (debug or "") else ""
        return error.message + hint

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        self._pipeline.set_state(self._gst.State.NULL)

    def isOpened(self) -> bool:  # noqa: N802 -- cv2's name
        return self._first is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None:
            frame, self._first = self._first, None
            return True, frame
        if self.error is not None:
            return False, None
        deadline = time.monotonic() + self.stall_s
        while True:
            sample = self._sink.try_pull_sample(int(POLL_S * 1e9))
            if sample is not None:
                return True, self._to_frame(sample)
            why = self._bus_error() or ("end of stream" if self._sink.is_eos() else None)
            if why is None and self.live and time.monotonic() > deadline:  # files wait as long as decoding takes
                why = f"no frame for {self.stall_s:g} s"
            if why is not None:
                self._fail(why)
                return False, None

    def _to_frame(self, sample: Any) -> np.ndarray:
        info = self._video.VideoInfo.new_from_caps(sample.get_caps())
        if info.fps_d and info.fps_n:
            self._fps = info.fps_n / info.fps_d
        buffer = sample.get_buffer()
        ok, mapped = buffer.map(self._gst.MapFlags.READ)
        if not ok:
            raise RuntimeError("cannot map a GStreamer buffer")
        try:
            return frame_view(mapped.data, info).copy()
        finally:
            buffer.unmap(mapped)

    def get(self, prop: int) -> float:
        return self._fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self._pipeline.set_state(self._gst.State.NULL)
