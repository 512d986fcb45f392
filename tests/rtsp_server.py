"""An RTSP server on 127.0.0.1 for the reconnect test (run as a child process, so that killing it is a real crash):
``python rtsp_server.py PORT CLIP`` serves CLIP (any video decodebin reads) at rtsp://127.0.0.1:PORT/faces as
H.264 in real time, one shared stream from the start of the clip, and prints "ready" once it listens."""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MOUNT = "/faces"


def main(port: int, clip: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory.new()
    factory.set_launch(f"( filesrc location={clip} ! decodebin ! videoconvert ! x264enc tune=zerolatency "
                       "speed-preset=ultrafast key-int-max=5 ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
