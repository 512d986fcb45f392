"""Fault suite, outputs (issue 15 cases 1, 2, 3 and the leaks of 12): a command replaces only what it made, a
failed run never replaces a good earlier output, outputs never overwrite inputs, killed runs leave nothing behind
for long. Generated files only: an untrained 32 px model, noise videos, the shipped YuNet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgeface.card import ModelCard
from edgeface.cli import main as cli_main
from edgeface.convert import precision
from edgeface.fileio import PendingDir, PendingFile, atomic_dir, remove_stale, sha256_file
from edgeface.labels import AGE
from edgeface.manifest import load_manifest
from edgeface.models import create_model
from edgeface.models.checkpoint import save_checkpoint
from edgeface.preprocess import PreprocessSpec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained TinyAgeNet at 32 px: each convert to ONNX takes about a second."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, create_model("tinyagenet", label_space=AGE),
                    ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), AGE, data="untrained test model"))
    return path


def convert(capsys, checkpoint: Path, out: Path, *args) -> tuple[int, str]:
    code = cli_main(["convert", str(checkpoint), "--out", str(out), "--no-progress", "--no-simplify",
                     "--cache-dir", str(out.parent / "cache"), *map(str, args)])
    return code, capsys.readouterr().err.strip()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def dead_pid() -> int:
    """The id of a process that has ended (a temporary name carrying it is stale)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_case1_foreign_out_is_refused_unless_force(tmp_path, capsys, checkpoint):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plan.md").write_text("mine")
    (notes / "ages.csv").write_text("a,b\n")
    code, err = convert(capsys, checkpoint, notes, "--to", "onnx")
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--out {notes} is not empty and is not a convert output" in err and "--force" in err
    assert snapshot(notes) == {"ages.csv": b"a,b\n", "plan.md": b"mine"}
    code, err = convert(capsys, checkpoint, notes, "--to", "onnx", "--force")
    assert code == 0, err
    assert (notes / "manifest.json").is_file() and not (notes / "plan.md").exists()
    # an earlier convert output (it carries manifest.json) is replaced without --force
    code, err = convert(capsys, checkpoint, notes, "--to", "onnx")
    assert code == 0, err
    assert oct(notes.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def test_case1_out_holding_the_working_folder_or_inputs_is_refused_before_work(tmp_path, capsys, checkpoint,
                                                                                monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    for out in (Path("."), tmp_path):
        code, err = convert(capsys, checkpoint, out, "--to", "onnx", "--force")
        assert code == 2 and "is the working folder" in err and len(err.splitlines()) == 1, err
    monkeypatch.chdir(tmp_path)
    code, err = convert(capsys, checkpoint, checkpoint.parent, "--to", "onnx", "--force")
    assert code == 2 and f"holds the input {checkpoint.name}" in err, err
    assert checkpoint.is_file() and (work / "keep.txt").read_text() == "x"
    assert [p.name for p in checkpoint.parent.iterdir()] == [checkpoint.name]


def test_case2_failed_reconvert_keeps_the_good_one_and_leaves_the_attempt_beside(tmp_path, capsys, checkpoint,
                                                                                 monkeypatch):
    out = tmp_path / "out"
    assert convert(capsys, checkpoint, out, "--to", "onnx")[0] == 0
    good = snapshot(out)

    def disk_full(job):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(precision, "build_fp16", disk_full)
    code = cli_main(["convert", str(checkpoint), "--out", str(out), "--to", "onnx,onnx-fp16", "--no-progress",
                     "--no-simplify", "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    attempt = tmp_path / "out.failed"
    assert code == 2 and len(captured.err.strip().splitlines()) == 1
    assert f"kept the previous convert in {out}, the new attempt is in {attempt}" in captured.err
    assert "No space left on device" in captured.err and "onnx-fp16" in captured.out  # the attempt's report
    assert snapshot(out) == good
    assert load_manifest(attempt)["artifacts"]["onnx-fp16"]["status"] == "failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.failed"]  # no temp folder
    # a failed first convert (nothing good to keep) still writes its folder, and the run exits 1
    code, _ = convert(capsys, checkpoint, tmp_path / "fresh", "--to", "onnx,onnx-fp16")
    assert code == 1 and load_manifest(tmp_path / "fresh")["artifacts"]["onnx-fp16"]["status"] == "failed"


def test_case12_stale_temp_folders_of_a_killed_run_are_removed_and_a_half_swap_is_undone(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as work:
        (work / "manifest.json").write_text("previous")
    pid = dead_pid()
    building = tmp_path / f".out.building-{pid}-abc"  # a convert killed while building
    (building / "sub").mkdir(parents=True)
    stale_file = tmp_path / f".out.tmp-{pid}-abc.json"  # an atomic file write killed before its rename
    stale_file.write_text("half")
    live = tmp_path / f".out.building-{os.getpid()}-live"  # a run still going: left alone
    live.mkdir()
    other = tmp_path / f".outer.building-{pid}-abc"  # another output's: left to its own writer
    other.mkdir()
    pending = PendingDir(out)
    assert not building.exists() and not stale_file.exists() and live.is_dir() and other.is_dir()
    pending.discard()
    live.rmdir()
    # killed between the two renames of a swap: the output is aside, nothing in its place; the next writer puts
    # it back before anything else
    os.replace(out, tmp_path / f".out.old-{pid}-xyz")
    PendingFile(tmp_path / "out.json").discard()  # a writer of another path does not touch it
    assert not out.exists()
    assert [p.name for p in remove_stale(out)] == [f".out.old-{pid}-xyz"]
    assert (out / "manifest.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".outer.building-" + f"{pid}-abc", "out"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- edgeface run


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(root / "age.pt", create_model("tinyagenet", label_space=AGE),
                    ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), AGE, data="untrained test model"))
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(root / "noise.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(20):  # noise: no face, and hardly compressible, so the annotated video is ~300 kB
        writer.write(rng.integers(0, 255, (120, 160, 3), np.uint8))
    writer.release()
    data = bytearray((root / "noise.avi").read_bytes())
    start = 0
    while (start := data.find(b"\xff\xd8", start)) >= 0:  # every JPEG frame broken: opens, no frame decodes
        data[start:start + 400] = bytes(400)
        start += 400
    (root / "undecodable.avi").write_bytes(bytes(data))
    return {"root": root, "model": root / "age.pt", "video": root / "noise.avi",
            "undecodable": root / "undecodable.avi"}


def run_args(inputs: dict, source: Path, **outputs) -> list[str]:
    args = ["run", str(source), "--models", str(inputs["model"]), "--threads", "1"]
    for flag, path in outputs.items():
        args += [f"--{flag}", str(path)]
    return args


def run_cli(capsys, args: list[str]) -> tuple[int, str]:
    code = cli_main(args)
    return code, capsys.readouterr().err.strip()


def test_case3_outputs_equal_to_an_input_or_each_other_or_a_folder_are_refused_before_the_run(tmp_path, capsys,
                                                                                                run_inputs):
    video = tmp_path / "in.avi"
    video.write_bytes(run_inputs["video"].read_bytes())
    before = sha256_file(video)
    (tmp_path / "link.avi").symlink_to(video)
    cases = [
        (dict(out=video), "is an input of this run"),
        (dict(out=tmp_path / "link.avi"), "is an input of this run"),
        (dict(jsonl=run_inputs["model"]), "is an input of this run"),
        (dict(out=tmp_path / "same.mp4", jsonl=tmp_path / "same.mp4"), "both name"),
        (dict(jsonl=tmp_path), "is a folder: name a file"),
        (dict(out=tmp_path), "is a folder: name a file"),
    ]
    for outputs, message in cases:
        code, err = run_cli(capsys, run_args(run_inputs, video, **outputs))
        assert code == 2 and message in err and len(err.splitlines()) == 1, (outputs, err)
    assert sha256_file(video) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.avi", "link.avi"]


def test_case3_a_source_without_a_decodable_frame_keeps_the_previous_outputs(tmp_path, capsys, run_inputs):
    out, jsonl = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    code, err = run_cli(capsys, run_args(run_inputs, run_inputs["video"], out=out, jsonl=jsonl))
    assert code == 0, err
    before = {p: sha256_file(p) for p in (out, jsonl)}
    assert len(jsonl.read_text().splitlines()) == 20
    code, err = run_cli(capsys, run_args(run_inputs, run_inputs["undecodable"], out=out, jsonl=jsonl))
    assert code == 1 and "no decodable frame" in err
    assert {p: sha256_file(p) for p in (out, jsonl)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "o.mp4"]


FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from edgeface.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_case3_a_full_disk_under_the_video_fails_the_run_and_keeps_the_previous_outputs(tmp_path, capsys,
                                                                                       run_inputs):
    """The real writer, in a process whose files may not grow past 20 kB (as on a full disk: EFBIG for ENOSPC);
    OpenCV's writer reports nothing, so only the check of the written video catches it."""
    outputs = {"out": tmp_path / "o.mp4", "jsonl": tmp_path / "o.jsonl"}
    assert run_cli(capsys, run_args(run_inputs, run_inputs["video"], **outputs))[0] == 0
    before = {p: sha256_file(p) for p in outputs.values()}
    assert outputs["out"].stat().st_size > 20_000  # the new run cannot write it whole
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", FULL_DISK.format(limit=20_000),
                          *run_args(run_inputs, run_inputs["video"], **outputs)],
                         capture_output=True, text=True, env=env, timeout=120)
    errors = [line for line in run.stderr.splitlines() if line.startswith("edgeface")]
    assert run.returncode == 2, run.stderr
    assert errors == [f"edgeface run: error: cannot write {outputs['out']}: the written video does not play back "
                      "whole (disk full?); the previous o.mp4 is kept (free space, or write elsewhere)"], run.stderr
    assert {p: sha256_file(p) for p in outputs.values()} == before  # the whole JSON lines were not committed either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "o.mp4"]


class FullDisk:
    """A text file that takes ``room`` characters, then fails as a full disk does."""

    def __init__(self, path, mode: str, room: int):
        self._file, self._room = open(path, mode), room  # noqa: SIM115 -- closed by its user

    def write(self, text: str) -> int:
        self._room -= len(text)
        if self._room < 0:
            raise OSError(28, "No space left on device")
        return self._file.write(text)

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


def test_case3_a_full_disk_under_the_jsonl_fails_the_run_and_keeps_the_previous_outputs(tmp_path, capsys, run_inputs,
                                                                                       monkeypatch):
    from edgeface.runtime import sinks

    jsonl = tmp_path / "o.jsonl"
    assert run_cli(capsys, run_args(run_inputs, run_inputs["video"], jsonl=jsonl))[0] == 0
    before = sha256_file(jsonl)
    monkeypatch.setattr(sinks, "open", lambda path, mode: FullDisk(path, mode, 300), raising=False)
    code, err = run_cli(capsys, run_args(run_inputs, run_inputs["video"], jsonl=jsonl))
    assert code == 2 and err == (f"edgeface run: error: cannot write {jsonl}: No space left on device; the previous "
                                 "o.jsonl is kept (free space, or write elsewhere)")
    assert sha256_file(jsonl) == before and [p.name for p in tmp_path.iterdir()] == ["o.jsonl"]
