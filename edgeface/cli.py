"""The ``edgeface`` command: one entry point, one subcommand per stage.

Each subcommand lives in a module with ``add_arguments(parser)`` and ``main(args) -> int``; those
modules import their heavy libraries inside ``main`` so ``edgeface --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import traceback

from edgeface import __version__
from edgeface.errors import UserError, first_line
from edgeface.fileio import text_path
from edgeface.log import setup_logging

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("edgeface.zoo", "list the model zoo: parameters, MACs, size vs the VGG-16 baseline"),
    "train": ("edgeface.train.cli", "train a model (DLDL-v2 age / attractiveness) on face data or the SYNTHETIC set"),
    "eval": ("edgeface.train.eval_cli", "evaluate a checkpoint or exported model on labelled face data"),
    "bench": ("edgeface.bench.bench", "benchmark models or convert folders: latency, throughput, memory"),
    "report": ("edgeface.bench.report", "merge benchmark results from several devices into a report with plots"),
    "experiment": ("edgeface.bench.experiments", "run one of the measured experiments behind the README's figures"),
    "pipeline": ("edgeface.pipeline", "the main job: train, convert, benchmark vs VGG-16, report"),
    "convert": ("edgeface.convert.cli", "checkpoint -> ONNX / OpenVINO / TensorRT + manifest, with a drift gate"),
    "register": ("edgeface.convert.register", "add an externally built TensorRT engine to a convert folder, "
                                              "after checking it against the folder's ONNX"),
    "export": ("edgeface.convert.serving", "export a convert folder for Triton or DeepStream"),
    "weights": ("edgeface.weights.pack", "pack a trained checkpoint as shipped weights (maintainers)"),
    "run": ("edgeface.runtime.cli", "detect, track and predict age / attributes on a video, camera or stream"),
    "gst-plugin-path": ("edgeface.gst", "where the edgeface GStreamer element is (for GST_PLUGIN_PATH)"),
}


OPENCV_MISSING = ("OpenCV (cv2) is not importable: on a Jetson use JetPack's python3-opencv from a venv made with "
                  "--system-site-packages; elsewhere pip install 'edgeface[opencv]'")
# OSError covers the filesystem's own refusals (read-only, full, not a folder): each names its file
EXPECTED_ERRORS = (UserError, OSError, ValueError, ImportError, RuntimeError)


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after a subcommand too (it only sets the flag; the top level gives the default)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error (also EDGEFACE_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeface", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgeface {__version__}")
    parser.add_argument("--debug", action="store_true", default=os.environ.get("EDGEFACE_DEBUG") == "1",
                        help="show the full traceback of an error (also EDGEFACE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        add_debug_argument(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    log = setup_logging(debug=os.environ.get("EDGEFACE_DEBUG") == "1")
    try:
        parser = build_parser()
    except ModuleNotFoundError as e:  # the commands' modules import cv2: say what to install, not a traceback
        if e.name != "cv2":
            raise
        log.error("edgeface: error: %s", OPENCV_MISSING)
        return 2
    args = parser.parse_args(argv)
    if args.debug:
        log.setLevel(logging.DEBUG)
    try:
        check_text_arguments(args)
        code = int(args._main(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except KeyboardInterrupt:
        log.error("edgeface: interrupted")
        return 130
    except BrokenPipeError:
        return quiet_broken_pipe()
    except EXPECTED_ERRORS as e:
        if args.debug:
            traceback.print_exc()
        message = first_line(e)
        log.error("edgeface %s: error: %s", args.command, message)
        return 2


def check_text_arguments(args: argparse.Namespace) -> None:
    """Refuse any argument that is not text (a file name with bytes that are not UTF-8) before a stage hands it to
    OpenCV, which crashes on it, or prints it."""
    for value in vars(args).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                text_path(item)


def quiet_broken_pipe() -> int:
    """The reader of stdout went away (``edgeface models --json | head``): exit quietly as a Unix tool killed by
    SIGPIPE would. Later writes go to /dev/null so the interpreter's final flush raises nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing to silence
        pass
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
