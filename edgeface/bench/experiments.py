"""``edgeface experiment NAME``: the measured experiments behind the README's figures, one subcommand each.

One convention for all of them: results go to ``--out`` (default ``benchmarks/results``, relative to where the
command runs) as ``<name>.{json,md,png}``; real-data paths default to the ``../shared`` folder beside the checkout
(a missing one is one line naming the flag before the experiment starts); ``--threads`` sets the CPU threads.
Each experiment module has ``add_arguments(parser)`` and ``main(args)`` like every other command, and imports
torch only inside ``main``.

They are not ``edgeface bench`` subcommands because bench takes model names and folders as positional inputs,
and an experiment's name could be a folder's.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from pathlib import Path

from edgeface.cli import add_debug_argument
from edgeface.fileio import portable_path
from edgeface.progress import add_progress_argument

EXPERIMENTS: dict[str, tuple[str, str]] = {
    "train-age": ("edgeface.bench.train_age", "TinyAgeNet / ThinAgeNet on UTKFace and attractiveness on 3DSK"),
    "train-attributes": ("edgeface.bench.train_attributes", "DMM-CNN on CelebA dev with the method's ablations"),
    "runtime-fps": ("edgeface.bench.runtime_fps", "end-to-end FPS of the video runtime per backend and precision"),
    "soak": ("edgeface.bench.soak", "10,000 frames through the video pipeline with resident memory sampled"),
    "alignment-vs-boxcrop": ("edgeface.bench.alignment_vs_boxcrop",
                             "accuracy cost of DeepStream-style box crops vs 5-point aligned crops"),
    "age-sweep": ("edgeface.bench.age_sweep", "age accuracy vs INT8 drift vs batch-1 latency across input sizes"),
    "attractiveness-cv": ("edgeface.bench.attractiveness_cv", "3DSK attractiveness fine-tuned from an age model"),
    "sample-faces": ("edgeface.bench.sample_faces", "the shipped weights on the shipped sample faces: README picture"),
    "tracker-comparison": ("edgeface.bench.tracker_comparison",
                           "the runtime's IoU tracker against ByteTrack on crossing, occluded faces"),
    "claims": ("edgeface.bench.claims_check", "the paper's speed-ups over VGG-16, measured in interleaved rounds"),
}
RESULTS = Path("benchmarks/results")
SHARED = Path(__file__).resolve().parents[2].parent / "shared"  # real face data and models beside the checkout
YUNET = "models/yunet_s_640_640.onnx"  # paths under SHARED the experiments default to
UTKFACE_CHIPS = "data/utkface-dev/images"
NOT_SETTINGS = ("command", "experiment", "debug", "progress")  # how it ran, not an experiment's settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, (module_name, help_text) in EXPERIMENTS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(cmd)
        add_progress_argument(cmd)
        add_debug_argument(cmd)
        cmd.set_defaults(_experiment=module.main)


def main(args: argparse.Namespace) -> int:
    for name in getattr(args, "_shared_paths", ()):
        path = getattr(args, name)
        if not path.exists():
            flag = f"--{name.replace('_', '-')}"
            raise FileNotFoundError(f"{flag} {portable_path(path)} not found: clone the project with ../shared beside "
                                    f"it, or give {flag}")
    return int(args._experiment(args) or 0)


def add_common_arguments(parser: argparse.ArgumentParser, threads: int | None = 2, threads_help: str = "CPU threads",
                         **shared: tuple[str, str]) -> None:
    """``--out`` and ``--threads``, plus one path flag per ``shared`` item (``name=(path under ../shared, help)``)
    that defaults to that path; :func:`main` refuses a path that is not there before the experiment starts."""
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    parser.add_argument("--threads", type=int, default=threads, help=f"{threads_help} (default {threads})")
    for name, (relative, help_text) in shared.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, default=SHARED / relative,
                            help=f"{help_text} (default ../shared/{relative})")
    parser.set_defaults(_shared_paths=tuple(shared))


def write_results(out: Path, name: str, document: dict, text: str) -> None:
    """How an experiment ends: ``out/NAME.json`` and ``out/NAME.md`` written atomically, the Markdown printed."""
    from edgeface.fileio import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", document)
    write_text(out / f"{name}.md", text)
    print(text)


def settings(args: argparse.Namespace) -> dict:
    """An experiment's settings as given or defaulted, JSON-ready (paths as text), for its results file."""
    return {k: portable_path(v) if isinstance(v, Path) else v for k, v in vars(args).items()
            if not k.startswith("_") and k not in NOT_SETTINGS}


def command_line(args: argparse.Namespace, positional: tuple[str, ...] = ()) -> str:
    """The ``edgeface experiment`` command that repeats this run with every setting spelled out (each flag's dest
    is its name, and switches are store_true, so a setting maps back to its flag)."""
    words = ["edgeface", "experiment", args.experiment]
    for name in positional:
        value = getattr(args, name)
        values = value if isinstance(value, list) else [value]
        words += [_word(v) for v in values]
    for key, value in settings(args).items():
        if key in positional or value is None or value is False:
            continue
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *(_word(v) for v in value)]
        else:
            words += [flag, _word(value)]
    return shlex.join(words)


def _word(value: object) -> str:
    """A command-line word; paths as :func:`edgeface.fileio.portable_path` records them."""
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith("/")):
        return portable_path(value)
    return str(value)
