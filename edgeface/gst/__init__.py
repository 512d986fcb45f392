"""``edgeface gst-plugin-path``: where the ``edgeface`` GStreamer element (``python/edgeface_element.py``, written
with gst-python) lives, for ``GST_PLUGIN_PATH``; ``--env`` prints the shell lines that also give the Python
GStreamer embeds (gst-launch-1.0's, not this venv's) edgeface and its dependencies on ``PYTHONPATH``."""

from __future__ import annotations

import argparse
import os
import shlex
import sysconfig
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent  # gst-python loads the *.py files of its python/ folder


def plugin_env() -> dict[str, str]:
    """``GST_PLUGIN_PATH`` and ``PYTHONPATH`` for a process that should find the element (existing entries kept
    after ours): the folder holding the edgeface package, then this interpreter's site-packages."""
    paths = sysconfig.get_paths()
    python = [str(PLUGIN_DIR.parents[1]), *dict.fromkeys([paths["purelib"], paths["platlib"]])]
    env = {"GST_PLUGIN_PATH": [str(PLUGIN_DIR)], "PYTHONPATH": python}
    return {name: os.pathsep.join(dict.fromkeys([*ours, *filter(None, os.environ.get(name, "").split(os.pathsep))]))
            for name, ours in env.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", action="store_true",
                        help="print export lines for GST_PLUGIN_PATH and PYTHONPATH: eval \"$(edgeface gst-plugin-path "
                             "--env)\" and gst-launch-1.0 finds the edgeface element")


def main(args: argparse.Namespace) -> int:
    if args.env:
        for name, value in plugin_env().items():
            print(f"export {name}={shlex.quote(value)}")
    else:
        print(PLUGIN_DIR)
    return 0
