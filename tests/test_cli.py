"""The top-level CLI: --debug / EDGEFACE_DEBUG tracebacks, and train flags derived from TrainConfig."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from edgeface.cli import build_parser
from edgeface.cli import main as cli_main
from edgeface.train.config import TrainConfig, config_overrides, flag_name

MISSING_MODEL = ["eval", "no-such-model.pt", "--data", "anywhere", "--aligned"]


def test_errors_are_one_line_without_debug(capsys, monkeypatch):
    monkeypatch.delenv("EDGEFACE_DEBUG", raising=False)
    assert cli_main(MISSING_MODEL) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeface eval: error: model not found: no-such-model.pt is ")


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_debug_shows_the_traceback(how, capsys, monkeypatch):
    monkeypatch.delenv("EDGEFACE_DEBUG", raising=False)
    argv = {"flag-before": ["--debug", *MISSING_MODEL], "flag-after": [*MISSING_MODEL, "--debug"],
            "env": MISSING_MODEL}[how]
    if how == "env":
        monkeypatch.setenv("EDGEFACE_DEBUG", "1")
    assert cli_main(argv) == 2  # same exit code, plus the traceback
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "UnknownModel" in err
    assert err.strip().splitlines()[-1].startswith("edgeface eval: error: model not found: no-such-model.pt is ")


def sample_value(f: dataclasses.Field, kind: typing.Any) -> tuple[list[str], typing.Any]:
    """Command-line words for one config field and the value they should give."""
    if f.name == "task":
        return ["attractiveness"], "attractiveness"
    if f.name in ("schedule", "protocol"):
        return [f.metadata["argparse"]["choices"][-1]], f.metadata["argparse"]["choices"][-1]
    if kind is bool:
        return [], not f.default
    if kind is dict:
        return ["a=1", "b=[1, 2]"], {"a": 1, "b": [1, 2]}
    if typing.get_origin(kind) is list:
        return ["1", "5"], [1.0, 5.0]
    return {int: (["7"], 7), float: (["0.25"], 0.25), str: (["x"], "x")}[kind]


def test_every_train_config_field_is_a_flag():
    """A new TrainConfig field becomes an `edgeface train` flag with no second list to edit."""
    from edgeface.train.config import _unwrap_optional

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        words, expected = sample_value(f, _unwrap_optional(hints[f.name]))
        flag = flag_name(f)
        repeated = _unwrap_optional(hints[f.name]) is dict  # KEY=VALUE flags repeat, one pair each
        argv = ["train", *(word for w in words for word in (flag, w))] if repeated else ["train", flag, *words]
        overrides = config_overrides(build_parser().parse_args(argv))
        assert overrides[f.name] == expected, (f.name, argv)
        assert [k for k, v in overrides.items() if v is not None] == [f.name], f"{flag} sets only {f.name}"


def test_train_flag_names_keep_their_meaning():
    args = build_parser().parse_args(["train", "--lambda", "2", "--no-amp", "--no-progress", "--no-dynamic-weights",
                                      "--schedule", "cosine", "--warmup-epochs", "2", "--init", "a.pt",
                                      "--channels-last", "--no-val-flip"])
    overrides = config_overrides(args)
    assert (overrides["lam"], overrides["amp"], overrides["progress"], overrides["val_flip"]) == (2.0, False, False,
                                                                                                  False)
    assert (overrides["schedule"], overrides["warmup_epochs"], overrides["init"]) == ("cosine", 2, "a.pt")
    assert overrides["channels_last"] is True and args.no_dynamic_weights
    unset = config_overrides(build_parser().parse_args(["train"]))
    assert all(v is None for v in unset.values())  # unset flags leave the recipe's values alone
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--label-space", "age"])  # the old alias of --task is gone


@pytest.mark.parametrize("name", ["train-age", "train-attributes", "runtime-fps", "soak", "alignment-vs-boxcrop",
                                  "age-sweep"])
def test_experiments_share_one_convention(name, tmp_path):
    """Every experiment takes --out and --threads; its recorded command line repeats the run exactly."""
    from edgeface.bench.experiments import command_line, settings

    required = {"train-age": ["--data-dir", "d", "--detector", "y.onnx"],
                "train-attributes": ["--data", "d"],
                "runtime-fps": ["--data", "d", "--detector", "y.onnx"],
                "soak": ["--data", "d", "--detector", "y.onnx"],
                "alignment-vs-boxcrop": ["m.pt", "--data", "d", "--detector", "y.onnx"],
                "age-sweep": ["tinyagenet:64", "thinagenet:96", "--data", "d", "--no-progress"]}[name]
    parser = build_parser()
    args = parser.parse_args(["experiment", name, *required, "--out", str(tmp_path), "--threads", "3"])
    assert args.out == tmp_path and args.threads == 3
    recorded = settings(args)
    assert not {"command", "experiment", "debug"} & set(recorded) and not any(k.startswith("_") for k in recorded)
    positional = {"alignment-vs-boxcrop": ("model",), "age-sweep": ("runs",)}.get(name, ())
    line = command_line(args, positional)
    assert line.startswith(f"edgeface experiment {name} ")
    import shlex

    assert settings(parser.parse_args(shlex.split(line)[1:])) == recorded


def test_missing_opencv_is_one_line_naming_the_fix(tmp_path):
    """OpenCV is any importable cv2 (not a pip requirement), so its absence must say how to get one."""
    import subprocess
    import sys

    from import_blocker import without

    run = subprocess.run([sys.executable, "-m", "edgeface", "models"], env=without("cv2", tmp_path),
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "--system-site-packages" in run.stderr and "edgeface[opencv]" in run.stderr


LONG_COMMANDS = {  # every long command and the words it needs to parse
    "train": [], "eval": ["m.pt", "--data", "d"], "bench": ["tinyagenet"], "convert": ["m.pt", "--to", "onnx"],
    "run": ["v.mp4", "--models", "tinyagenet"], "register": ["folder", "model.fp16.engine"], "pipeline": [],
    **{f"experiment {name}": words for name, words in {
        "train-age": ["--data-dir", "d", "--detector", "y.onnx"], "train-attributes": ["--data", "d"],
        "runtime-fps": ["--data", "d", "--detector", "y.onnx"], "soak": ["--data", "d", "--detector", "y.onnx"],
        "alignment-vs-boxcrop": ["m.pt", "--data", "d", "--detector", "y.onnx"], "age-sweep": ["tinyagenet:64",
        "--data", "d"], "attractiveness-cv": ["--init", "a.pt", "--data", "d"], "sample-faces": [],
        "tracker-comparison": [], "claims": []}.items()},
}


@pytest.mark.parametrize("command", sorted(LONG_COMMANDS))
def test_every_long_command_takes_no_progress(command):
    parser = build_parser()
    words = [*command.split(), *LONG_COMMANDS[command]]
    assert parser.parse_args(words).progress in (True, None)  # None: train's config keeps its recipe's value
    assert parser.parse_args([*words, "--no-progress"]).progress is False


def test_experiment_list_is_covered():
    from edgeface.bench.experiments import EXPERIMENTS

    assert {f"experiment {name}" for name in EXPERIMENTS} <= set(LONG_COMMANDS)


def test_progress_is_drawn_only_on_a_terminal(monkeypatch):
    import io

    from edgeface.progress import QuietBar, progress

    monkeypatch.setattr("sys.stderr", io.StringIO())  # a log file, a CI transcript
    bar = progress([1, 2, 3], "work")
    assert isinstance(bar, QuietBar) and list(bar) == [1, 2, 3]
    counted = progress(None, "frames", total=3)
    counted.update(1)
    counted.set_postfix_str("x")
    counted.close()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    pytest.importorskip("tqdm")
    assert list(progress([1, 2], "work")) == [1, 2] and "work" in terminal.getvalue()
    assert isinstance(progress([1], "work", enabled=False), QuietBar)


def test_warnings_and_messages_are_one_line_without_source(tmp_path):
    """A warning (the project's or a library's) prints as one `warning:` line: no file, line number or code."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "warns.py"
    script.write_text("import logging, warnings\n"
                      "from edgeface.log import setup_logging\n"
                      "setup_logging()\n"
                      "warnings.warn('first line\\nsecond line', UserWarning)\n"
                      "logging.getLogger('edgeface.x').info('wrote\\n  out.json')\n"
                      "logging.getLogger('edgeface.x').debug('not shown without --debug')\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": ""})
    assert run.returncode == 0
    assert run.stderr.splitlines() == ["warning: first line", "wrote; out.json"]
