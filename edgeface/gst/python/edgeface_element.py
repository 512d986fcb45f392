"""The ``edgeface`` GStreamer element: faces found, tracked and predicted (age, attractiveness, attributes) on raw
video in place, with the same Predictor, tracker, inference schedule and backends as ``edgeface run``.

gst-python's plugin loader (``gstreamer1.0-python3-plugin-loader``) registers it from any ``python/`` folder on
``GST_PLUGIN_PATH``: ``eval "$(edgeface gst-plugin-path --env)"`` sets that folder's parent and the ``PYTHONPATH``
that lets the Python GStreamer embeds import edgeface and its dependencies. Each frame's results go on the bus as
an element message named ``edgeface`` (fields ``frame``, ``faces`` and ``json``: the object ``edgeface run --jsonl``
writes for the frame), not as a GstMeta: a new GstMeta type must be registered in C, while bus messages reach
any application, in any language, and ``gst-launch-1.0 -m`` prints them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstBase, GstVideo  # noqa: E402

if importlib.util.find_spec("edgeface") is None:  # the embedded Python was not given edgeface's folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from edgeface.runtime import cli as run_cli  # noqa: E402 -- argparse only; models load when the element starts

Gst.init(None)
FORMATS = ("RGB", "BGR", "BGRx")
CAPS = Gst.Caps.from_string(f"video/x-raw,format={{{','.join(FORMATS)}}}")
RW = GObject.ParamFlags.READWRITE


def run_defaults() -> argparse.Namespace:
    """``edgeface run``'s defaults: the element's properties are its flags, with the same meaning."""
    parser = argparse.ArgumentParser()
    run_cli.add_arguments(parser)
    return parser.parse_args(["-", "--models", "-"])


DEFAULTS = run_defaults()
PROPERTIES = {
    "models": (str, "models", "shipped weights names, checkpoints, model files or convert folders, separated by "
               "spaces or commas (as edgeface run --models)", None, RW),
    "detector": (str, "detector", "YuNet ONNX file (default: the shipped YuNet)", None, RW),
    "backend": (str, "backend", "runner backend: torch, onnxruntime, openvino, tensorrt (default: by file)", None, RW),
    "target": (str, "target", "convert-folder artifact: onnx, onnx-int8, openvino-int8, trt-fp16 ...", None, RW),
    "device": (str, "device", "runner device: cpu, cuda, GPU, AUTO ...", None, RW),
    "threads": (int, "threads", "inference threads per model (0: the thread budget)", 0, 1024, 0, RW),
    "detect-every": (int, "detect every", "run the detector every N frames, following faces by optical flow in "
                     "between", 1, 1_000_000, DEFAULTS.detect_every, RW),
    "refresh-every": (int, "refresh every", "infer each tracked face again after N frames", 1, 1_000_000,
                      DEFAULTS.refresh_every, RW),
    "face-budget": (int, "face budget", "infer at most K faces per frame (0: no cap)", 0, 1_000_000, 0, RW),
    "infer-every-frame": (bool, "infer every frame", "run the models on every face of every frame",
                          DEFAULTS.infer_every_frame, RW),
    "min-face": (int, "min face", "smallest face side in pixels to find", 1, 100_000, DEFAULTS.min_face, RW),
    "score-threshold": (float, "score threshold", "detector score threshold", 0.0, 1.0, DEFAULTS.score_threshold, RW),
    "low-score": (float, "low score", "detections scored from this up to score-threshold keep a tracked face's track "
                  "alive and moving, never reported (score-threshold's value turns it off)", 0.0, 1.0,
                  DEFAULTS.low_score, RW),
    "flip": (bool, "flip", "average with the mirrored face (doubles model cost)", DEFAULTS.flip, RW),
    "window": (int, "window", "inferences fused per track", 1, 10_000, DEFAULTS.window, RW),
    "annotate": (bool, "annotate", "draw boxes, track ids and values onto the frames", True, RW),
}


class EdgefaceElement(GstBase.BaseTransform):
    __gtype_name__ = "GstEdgeface"  # elements are named edgeface0, edgeface1 ...
    __gstmetadata__ = ("edgeface", "Filter/Analyzer/Video",
                       "Detects, tracks and predicts age / attractiveness / attributes of faces; annotates the "
                       "frames and posts each frame's results as an 'edgeface' element message (JSON)",
                       "edgeface")
    __gsttemplates__ = (Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, CAPS),
                        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, CAPS))
    __gproperties__ = PROPERTIES

    def __init__(self) -> None:
        super().__init__()
        self.set_in_place(True)
        self._values = {name: spec[-2] for name, spec in PROPERTIES.items()}
        self._predictor = self._analysis = self._info = None
        self._index = 0

    def do_get_property(self, prop: GObject.ParamSpec) -> object:
        return self._values[prop.name]

    def do_set_property(self, prop: GObject.ParamSpec, value: object) -> None:
        self._values[prop.name] = value

    def _arguments(self) -> argparse.Namespace:
        args = argparse.Namespace(**vars(DEFAULTS))
        for name, value in self._values.items():
            setattr(args, name.replace("-", "_"), value)
        args.models = (self._values["models"] or "").replace(",", " ").split()
        if not args.models:
            raise ValueError("set the models property (shipped weights names or model paths)")
        args.threads, args.face_budget = args.threads or None, args.face_budget or None
        return args

    def do_start(self) -> bool:
        try:
            from edgeface.runtime.video import FrameAnalysis

            predictor, tracker, schedule, _ = run_cli.open_runtime(self._arguments())
        except Exception as e:  # a bad property or model, or edgeface's dependencies missing from this Python
            hint = (" (the Python GStreamer embeds cannot import it: eval \"$(edgeface gst-plugin-path --env)\")"
                    if isinstance(e, ImportError) else "")
            self.post_message(Gst.Message.new_error(
                self, GLib.Error.new_literal(Gst.LibraryError.quark(), f"edgeface: {e}{hint}",
                                             Gst.LibraryError.INIT), type(e).__name__))
            return False
        self._predictor = predictor
        self._analysis = FrameAnalysis(predictor, tracker, self._values["detect-every"], schedule)
        self._index = 0
        return True

    def do_stop(self) -> bool:
        if self._predictor is not None:
            self._predictor.close()
        self._predictor = self._analysis = None
        return True

    def do_set_caps(self, incaps: Gst.Caps, outcaps: Gst.Caps) -> bool:
        self._info = GstVideo.VideoInfo.new_from_caps(incaps)
        return self._info is not None

    def do_transform_ip(self, buffer: Gst.Buffer) -> Gst.FlowReturn:
        from edgeface.runtime.gstreamer import frame_view
        from edgeface.runtime.sinks import draw_results, frame_record

        ok, mapped = buffer.map(Gst.MapFlags.READ | Gst.MapFlags.WRITE)
        if not ok:
            return Gst.FlowReturn.ERROR
        try:
            frame = frame_view(mapped.data, self._info)
            layout = self._info.finfo.name
            bgr = frame if layout == "BGR" else frame[..., 2::-1].copy() if layout == "RGB" else frame[..., :3].copy()
            results = self._analysis.infer(bgr, self._analysis.detect(self._index, bgr))
            if self._values["annotate"]:
                draw_results(bgr, results)
                if layout == "RGB":
                    frame[...] = bgr[..., ::-1]
                elif layout == "BGRx":
                    frame[..., :3] = bgr
        finally:
            buffer.unmap(mapped)
        fps = self._info.fps_n / self._info.fps_d if self._info.fps_n and self._info.fps_d else 25.0
        record = frame_record(self._index, fps, results)
        if buffer.pts != Gst.CLOCK_TIME_NONE:
            record["time_s"] = round(buffer.pts / Gst.SECOND, 3)
        message = Gst.Structure.new_empty("edgeface")
        message.set_value("frame", self._index)
        message.set_value("faces", len(results))
        message.set_value("json", json.dumps(record))
        self.post_message(Gst.Message.new_element(self, message))
        self._index += 1
        return Gst.FlowReturn.OK


GObject.type_register(EdgefaceElement)
__gstelementfactory__ = ("edgeface", Gst.Rank.NONE, EdgefaceElement)
