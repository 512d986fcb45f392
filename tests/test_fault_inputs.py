"""Fault suite, inputs (issue 15 cases 8-11): paths that are not text, non-finite labels / landmarks / losses,
huge images, and every bad input that used to end in a traceback. Files are generated in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgeface.cli import main as cli_main
from edgeface.data.celeba import LANDMARK_COLUMNS
from edgeface.data.datasets import DataIssues, load_samples, prepare_faces
from edgeface.errors import CheckpointError, DataError, PathNotText, TrainingDiverged, UserError
from edgeface.fileio import text_path
from edgeface.preprocess import PreprocessSpec

NOT_TEXT = os.fsdecode(b"caf\xe9.mp4")  # latin-1 bytes: Python keeps them as a surrogate escape


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgeface {command}: error: "), err
    return err[0]


def chip(path: Path, seed: int = 0, size: tuple[int, int] = (48, 48)) -> Path:
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8))
    return path


# --- case 8: paths that are not valid text -------------------------------------------------------------------


def test_a_path_that_is_not_text_is_refused_naming_it():
    with pytest.raises(PathNotText, match=r"caf\\xe9\.mp4: the name is not valid UTF-8"):
        text_path(NOT_TEXT)
    assert text_path("café.mp4") == "café.mp4"


@pytest.mark.parametrize("argv", [
    ["run", NOT_TEXT, "--models", "tinyagenet"],
    ["run", "video.mp4", "--models", "tinyagenet", "--out", NOT_TEXT],
    ["convert", "tinyagenet", "--to", "onnx-int8", "--calib", NOT_TEXT, "--out", "out"],
    ["eval", "tinyagenet", "--data", NOT_TEXT, "--aligned"],
    ["train", "--data", NOT_TEXT, "--aligned"],
], ids=["run-source", "run-out", "convert-calib", "eval-data", "train-data"])
def test_commands_refuse_arguments_that_are_not_text(argv, capsys):
    """Before any stage runs: handed to OpenCV, such a string killed the process with SIGSEGV."""
    assert cli_main(argv) == 2
    assert r"caf\xe9.mp4: the name is not valid UTF-8 text" in one_line_error(capsys, argv[0])


def test_opencv_entry_points_refuse_paths_that_are_not_text(tmp_path):
    from edgeface.detector import FaceDetector
    from edgeface.faces import image_files, read_image
    from edgeface.runtime.sinks import AnnotatedVideoWriter
    from edgeface.runtime.sources import parse_source

    bad = tmp_path / NOT_TEXT
    for call in (lambda: read_image(bad), lambda: image_files(bad), lambda: FaceDetector(bad),
                 lambda: parse_source(str(bad)), lambda: AnnotatedVideoWriter(bad, 25.0)):
        with pytest.raises(PathNotText):
            call()


def test_an_image_named_with_bytes_that_are_not_text_is_a_counted_bad_item(tmp_path):
    for i, age in enumerate((20, 30, 40)):
        chip(tmp_path / f"{age}_0_0_2017010{i}.jpg.chip.jpg", seed=i)
    good = tmp_path / "50_1_1_20170104.jpg.chip.jpg"
    chip(good, seed=9)
    os.rename(good, os.fsencode(tmp_path) + b"/50_1_1_20170104\xff.jpg.chip.jpg")
    issues = DataIssues()
    faces = prepare_faces(load_samples("utkface", tmp_path, issues), PreprocessSpec(input_size=32), issues, "utk",
                          cache_dir=tmp_path / "cache", progress=False)
    assert len(faces) == 3 and sorted(faces.targets["label"]) == [20, 30, 40]
    assert len(issues.items) == 1 and "50_1_1_20170104" in issues.items[0]  # its name is no UTKFace name


# --- case 9: non-finite labels, landmarks and losses ---------------------------------------------------------


def celeba_folder(root: Path, attr_rows: list[str], landmark_rows: list[str] | None = None, n: int = 4) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    for i in range(n):
        chip(root / "img_align_celeba" / f"{i:06d}.jpg", seed=i, size=(218, 178))
    (root / "list_attr_celeba.txt").write_text(f"{len(attr_rows)}\nSmiling Male\n" + "\n".join(attr_rows) + "\n")
    if landmark_rows is not None:
        (root / "list_landmarks_align_celeba.txt").write_text(
            f"{len(landmark_rows)}\n{' '.join(LANDMARK_COLUMNS)}\n" + "\n".join(landmark_rows) + "\n")
    return root


LANDMARKS = "69 109 106 113 77 142 73 152 108 154"


def test_celeba_non_finite_attributes_and_landmarks_are_counted_bad_rows(tmp_path):
    root = celeba_folder(tmp_path, ["000000.jpg 1 -1", "000001.jpg inf -1", "000002.jpg 1 nan", "000003.jpg -1 1"],
                         [f"000000.jpg {LANDMARKS}", "000003.jpg 69 109 106 113 nan 142 73 152 108 154"])
    issues = DataIssues()
    samples = load_samples("celeba", root, issues, task="attributes")
    assert [s.path.name for s in samples] == ["000000.jpg", "000003.jpg"]
    assert samples[0].targets["landmark_mask"] == 1.0
    assert samples[1].targets["landmark_mask"] == 0.0 and samples[1].landmarks is None  # attributes only
    assert len(issues.items) == 3
    assert sum("attribute values must be" in m for m in issues.items) == 2
    assert any("10 finite numbers" in m for m in issues.items)


def test_csv_labels_and_attribute_csv_landmarks_must_be_finite(tmp_path):
    for i in range(4):
        chip(tmp_path / f"{i}.jpg", seed=i)
    (tmp_path / "labels.csv").write_text("image,label,label_std\n0.jpg,20,2\n1.jpg,nan,2\n2.jpg,30,inf\n"
                                         "3.jpg,-inf,1\n")
    issues = DataIssues()
    assert [s.path.name for s in load_samples("csv", tmp_path / "labels.csv", issues)] == ["0.jpg"]
    assert len(issues.items) == 3 and all("not a finite number" in m for m in issues.items)
    header = "image,Smiling," + ",".join(LANDMARK_COLUMNS)
    (tmp_path / "attrs.csv").write_text(f"{header}\n0.jpg,1,{','.join(['5'] * 10)}\n"
                                        f"1.jpg,0,{','.join(['5'] * 9)},nan\n")
    issues = DataIssues()
    assert [s.path.name for s in load_samples("attributes-csv", tmp_path / "attrs.csv", issues)] == ["0.jpg"]
    assert len(issues.items) == 1 and "finite" in issues.items[0]


def diverging_task(at_epoch: int):
    from edgeface.train.tasks import DLDLTask

    class Diverging(DLDLTask):
        """A loss that turns NaN from epoch ``at_epoch`` on (as one NaN label or an exploding rate does)."""

        epoch = 0

        def on_epoch_start(self, epoch: int) -> None:
            self.epoch = epoch

        def loss(self, outputs, targets):
            loss, parts = super().loss(outputs, targets)
            return (loss * float("nan"), parts) if self.epoch >= at_epoch else (loss, parts)

    return Diverging()


def test_a_non_finite_loss_stops_training_and_keeps_the_last_finite_checkpoint(tmp_path):
    from edgeface.models.checkpoint import read_checkpoint
    from edgeface.train.config import TrainConfig
    from edgeface.train.trainer import train_model

    config = TrainConfig.from_dict({"model": "tinyagenet", "input_size": 32, "synthetic_size": 32, "batch_size": 16,
                                    "workers": 0, "threads": 1, "epochs": 3, "progress": False, "out": str(tmp_path)})
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2; .*last\.pt keeps epoch 1") as caught:
        train_model(config, diverging_task(at_epoch=1))
    assert isinstance(caught.value, UserError)  # the CLI prints it as one line, exit 2
    for name in ("last.pt", "best.pt"):
        ckpt = read_checkpoint(tmp_path / name)
        assert ckpt["epoch"] == 0
        assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    with pytest.raises(TrainingDiverged, match="nothing was saved"):
        train_model(config.__class__.from_dict({**config.to_dict(), "out": str(tmp_path / "first")}),
                    diverging_task(at_epoch=0))
    assert not (tmp_path / "first" / "last.pt").exists()


# --- case 10: images larger than the detector's pixel cap ----------------------------------------------------


def test_a_huge_image_is_downscaled_for_detection_and_faces_map_back():
    from edgeface.assets import sample_faces
    from edgeface.detector import MAX_DETECT_PIXELS, FaceDetector

    face = cv2.imread(str(sample_faces()[0].path))
    detector = FaceDetector(min_face=16)
    reference = detector.detect(face)[0]
    big = np.full((3000, 4000, 3), 127, np.uint8)  # 12 MP, 6x the cap
    factor, offset = min(2800 // face.shape[0], 3600 // face.shape[1]), np.array([200.0, 100.0], np.float32)
    h, w = face.shape[0] * factor, face.shape[1] * factor
    big[int(offset[1]):int(offset[1]) + h, int(offset[0]):int(offset[0]) + w] = cv2.resize(face, (w, h))
    found = detector.detect(big)
    assert detector._size[0] * detector._size[1] <= MAX_DETECT_PIXELS
    assert found, "the upscaled face is still found"
    expected = reference.landmarks * factor + offset
    assert np.abs(found[0].landmarks - expected).max() < 0.1 * reference.box[2] * factor


# --- case 11: one line and exit 2 instead of a traceback -----------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from edgeface.card import ModelCard
    from edgeface.labels import AGE
    from edgeface.models.checkpoint import save_checkpoint
    from edgeface.models.registry import create_model

    path = tmp_path_factory.mktemp("ckpt") / "age.pt"
    card = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), label_space=AGE)
    save_checkpoint(path, create_model("tinyagenet", label_space=AGE), card)
    return path


@pytest.fixture(scope="module")
def utk_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("utk")
    for i, age in enumerate((4, 25, 47, 80)):
        chip(folder / f"{age}_{i % 2}_0_2017010{i}.jpg.chip.jpg", seed=i)
    return folder


def test_zero_byte_and_card_none_checkpoints_are_one_line(checkpoint, utk_folder, tmp_path, capsys):
    from edgeface.models.checkpoint import load_checkpoint, read_checkpoint

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(empty)
    no_card = tmp_path / "no_card.pt"
    torch.save({**read_checkpoint(checkpoint), "card": None}, no_card)
    with pytest.raises(UserError):
        load_checkpoint(no_card)
    for path in (empty, no_card):
        assert cli_main(["eval", str(path), "--data", str(utk_folder), "--aligned"]) == 2
        assert path.name in one_line_error(capsys, "eval")


def test_data_without_the_models_targets_is_refused(utk_folder, tmp_path):
    with pytest.raises(DataError, match="--format utkface reads label, sigma targets; a model for attributes needs "
                                       "attributes"):
        load_samples("utkface", utk_folder, DataIssues(), task="attributes")
    root = celeba_folder(tmp_path, ["000000.jpg 1 -1"], n=1)
    with pytest.raises(DataError, match="a model for age needs label"):
        load_samples("celeba", root, DataIssues(), task="age")


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.__setitem__("artifacts", list(m["artifacts"].values())), "'artifacts' must map target names"),
    (lambda m: m["artifacts"].__setitem__("onnx", "model.onnx"), "artifact 'onnx' must be an object"),
    (lambda m: m["artifacts"]["onnx"].__setitem__("format", "nope"), "has format 'nope', expected 'onnx'"),
], ids=["artifacts-list", "entry-string", "unknown-format"])
def test_malformed_manifests_are_one_line(mutate, message, checkpoint, utk_folder, tmp_path, capsys):
    from edgeface.card import ModelCard
    from edgeface.manifest import MANIFEST_NAME, artifact_entry, new_manifest

    card = ModelCard.from_dict(torch.load(checkpoint, weights_only=True)["card"])
    manifest = new_manifest(card, checkpoint, None)
    manifest["artifacts"]["onnx"] = artifact_entry("onnx", card, tmp_path, status="failed", reason="test")
    mutate(manifest)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    for argv in (["eval", str(tmp_path), "--data", str(utk_folder), "--aligned"], ["export", "triton", str(tmp_path),
                                                                                    "--out", str(tmp_path / "r")]):
        assert cli_main(argv) == 2
        assert message in one_line_error(capsys, argv[0])


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--lr-step", "0"], "--lr-step must be at least 1, got 0"),
    (["--task", "attractiveness", "--label-range", "1", "inf"], "--label-range must be a finite number, got inf"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
])
def test_train_settings_out_of_range_are_refused_before_any_work(flags, message, tmp_path, capsys):
    assert cli_main(["train", *flags, "--out", str(tmp_path / "run")]) == 2
    assert message in one_line_error(capsys, "train")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, value", [("--duration", "nan"), ("--duration", "0"), ("--warmup", "inf"),
                                         ("--round-duration", "-1")])
def test_bench_numbers_are_checked_when_parsed(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["bench", "tinyagenet", flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: expected" in capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["experiment", "tracker-comparison", "--low-score", "2"], "--low-score"),
    (["experiment", "tracker-comparison", "--visible", "nan"], "--visible"),
    (["experiment", "tracker-comparison", "--frames", "1"], "--frames"),
    (["experiment", "runtime-fps", "--live-fps", "0"], "--live-fps"),
    (["experiment", "soak", "--frames", "-1"], "--frames"),
    (["experiment", "claims", "--round-duration", "nan"], "--round-duration"),
    (["run", "in.mp4", "--models", "tinyagenet", "--low-score", "1.5"], "--low-score"),
    (["run", "in.mp4", "--models", "tinyagenet", "--score-threshold", "5"], "--score-threshold"),
    (["run", "in.mp4", "--models", "tinyagenet", "--stall-timeout", "nan"], "--stall-timeout"),
])
def test_experiment_and_run_numbers_are_checked_when_parsed(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main([*argv, *(["--out", str(tmp_path / "out")] if argv[0] == "experiment" else [])])
    assert exit_.value.code == 2
    assert f"argument {flag}: expected" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_corrupt_crop_cache_is_rebuilt(utk_folder, tmp_path):
    spec = PreprocessSpec(input_size=32)
    samples = load_samples("utkface", utk_folder, DataIssues())
    first = prepare_faces(samples, spec, DataIssues(), "utk", cache_dir=tmp_path, progress=False)
    (cache,) = tmp_path.glob("faces-*.npz")
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.warns(UserWarning, match="rebuilding the damaged face cache"):
        again = prepare_faces(samples, spec, DataIssues(), "utk", cache_dir=tmp_path, progress=False)
    assert np.array_equal(again.crops, first.crops)
    with np.load(cache) as z:  # rewritten whole: the next run reads it
        assert np.array_equal(z["crops"], first.crops)


def test_an_output_folder_that_cannot_be_written_fails_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    assert cli_main(["train", "--epochs", "1", "--out", str(tmp_path / "file" / "run")]) == 2
    assert "Not a directory" in one_line_error(capsys, "train")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount is the real thing
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
                          capture_output=True).returncode:
            pytest.skip("running as root without permission to mount a read-only tmpfs")
    else:
        read_only.chmod(0o555)
    try:
        assert cli_main(["train", "--epochs", "1", "--out", str(read_only)]) == 2
        line = one_line_error(capsys, "train")
        assert "Read-only file system" in line or "Permission denied" in line
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(read_only)], check=True)
        read_only.chmod(0o755)


def test_csv_files_with_a_byte_order_mark_are_read(tmp_path):
    for i in range(2):
        chip(tmp_path / f"{i}.jpg", seed=i)
    (tmp_path / "labels.csv").write_text("image,label\n0.jpg,20\n1.jpg,30\n", encoding="utf-8-sig")
    assert [s.targets["label"] for s in load_samples("csv", tmp_path / "labels.csv", DataIssues())] == [20, 30]
    (tmp_path / "attrs.csv").write_text("image,Smiling\n0.jpg,1\n1.jpg,0\n", encoding="utf-8-sig")
    assert len(load_samples("attributes-csv", tmp_path / "attrs.csv", DataIssues())) == 2
    (tmp_path / "latin1.csv").write_bytes("image,label\ncaf\xe9.jpg,20\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not UTF-8 text"):
        load_samples("csv", tmp_path / "latin1.csv", DataIssues())


def test_a_closed_pipe_ends_quietly_as_unix_tools_do():
    """``edgeface models --json | head``: the reader is gone before the output is written."""
    process = subprocess.Popen([sys.executable, "-m", "edgeface", "models", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    process.stdout.close()
    stderr = process.communicate(timeout=300)[1]
    assert process.returncode == 141 and stderr == b""

