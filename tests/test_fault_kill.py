"""Fault suite, kill -9 (issue 15, "done when"): convert and train killed with SIGKILL at 20 seeded random points
leave the previous output or the new one, whole, and the next run leaves no temporary file or folder behind.

Four chains run side by side (two convert, two train, each on its own folder): a complete run (the "old" output,
and the run's length T), then five runs each killed after a random share of T (0.15 T .. 1.0 T; a run that ends
first must have succeeded, and counts as a new output), each followed by the checks, then a final complete run in
this process. Train refuses to start over a run, so each train run resumes the last one with two more epochs."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import torch

from edgeface.card import ModelCard
from edgeface.cli import main as cli_main
from edgeface.fileio import remove_stale
from edgeface.labels import AGE
from edgeface.manifest import load_manifest, verify_artifact
from edgeface.models import create_model
from edgeface.models.checkpoint import read_checkpoint, save_checkpoint
from edgeface.preprocess import PreprocessSpec

REPO = Path(__file__).resolve().parents[1]
SEED = 15  # the number: the kill points are the same on every run of the suite
KILLS_PER_CHAIN = 5
TEMP_NAME = re.compile(r"^\..+\.(tmp|building|old)-\d+-")


def convert_args(checkpoint: Path, out: Path, run: int) -> list[str]:
    return ["convert", str(checkpoint), "--to", "onnx,onnx-fp16", "--out", str(out), "--no-simplify",
            "--no-progress", "--threads", "1", "--cache-dir", str(out.parent / "cache")]


def train_args(out: Path, run: int) -> list[str]:
    return ["train", "--model", "tinyagenet", "--input-size", "32", "--epochs", str(2 + 2 * run),
            "--synthetic-size", "64", "--batch-size", "16", "--workers", "0", "--threads", "1", "--no-progress",
            "--out", str(out), "--cache-dir", str(out.parent / "cache"),
            *(["--resume"] if (out / "last.pt").is_file() else [])]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def convert_state(out: Path, old: dict[str, bytes]) -> str:
    """'old' or 'new' (a whole convert: every artifact built and matching its manifest); raises otherwise."""
    if not out.exists():  # killed between the two renames of the swap: the next writer puts the old folder back
        remove_stale(out)
    now = snapshot(out)
    if now == old:
        return "old"
    manifest = load_manifest(out)
    for name, entry in manifest["artifacts"].items():
        assert entry["status"] == "ok", (name, entry)
        verify_artifact(out / entry["file"], entry)
    return "new"


def train_state(out: Path, old: dict[str, bytes]) -> str:
    """'old' or 'new': every file of the run (its checkpoints, JSON, log and curves) whole; raises otherwise."""
    now = {name: data for name, data in snapshot(out).items() if not name.startswith(".")}
    for name in now:
        path = out / name
        if path.suffix == ".pt":
            read_checkpoint(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            rows = list(csv.DictReader(path.open()))
            assert rows and all(None not in row.values() for row in rows), path
        elif path.suffix == ".png":
            assert cv2.imread(str(path)) is not None, path
    return "old" if now == {k: v for k, v in old.items() if not k.startswith(".")} else "new"


def run_chain(args_for, out: Path, state, rng: random.Random, record: list, errors: list) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    try:
        start = time.perf_counter()
        first = subprocess.run([sys.executable, "-m", "edgeface", *args_for(0)], env=env, capture_output=True,
                               text=True)
        length = time.perf_counter() - start
        assert first.returncode == 0, first.stderr
        old = snapshot(out)
        for run in range(1, KILLS_PER_CHAIN + 1):
            at = rng.uniform(0.15, 1.0) * length
            process = subprocess.Popen([sys.executable, "-m", "edgeface", *args_for(run)], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                process.wait(timeout=at)
                killed = False
                assert process.returncode == 0, process.stderr.read()  # ended by itself: it must have succeeded
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                killed = True
            process.stderr.close()
            record.append((out.name, round(at / length, 2), killed, state(out, old)))
            old = snapshot(out)
    except BaseException as e:  # reported by the test in the main thread
        errors.append(f"{out.name}: {type(e).__name__}: {e}")


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TEMP_NAME.match(p.name))


def test_kill9_at_20_random_points_of_convert_and_train_loses_nothing_and_leaks_nothing(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(checkpoint, create_model("tinyagenet", label_space=AGE),
                    ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), AGE, data="untrained test model"))
    rng = random.Random(SEED)
    chains = []
    for i in range(2):
        out = tmp_path / f"convert{i}" / "out"
        out.parent.mkdir()
        chains.append((lambda run, out=out: convert_args(checkpoint, out, run), out, convert_state))
        out = tmp_path / f"train{i}" / "run"
        out.parent.mkdir()
        chains.append((lambda run, out=out: train_args(out, run), out, train_state))
    record: list[tuple] = []
    errors: list[str] = []
    threads = [threading.Thread(target=run_chain, args=(args_for, out, state, random.Random(rng.random()), record,
                                                        errors)) for args_for, out, state in chains]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(record) == 4 * KILLS_PER_CHAIN
    assert sum(killed for *_, killed, _ in record) >= len(record) // 2, record  # most runs were cut short
    threads_before = torch.get_num_threads()
    try:
        for args_for, out, state in chains:  # the next run, to its end: whole output, nothing left beside it
            assert cli_main(args_for(KILLS_PER_CHAIN + 1)) == 0
            assert state(out, {}) == "new"
            assert leftovers(out.parent) == [], leftovers(out.parent)
    finally:
        torch.set_num_threads(threads_before)
