"""edgeface eval: one metric path (evaluate_runner) on a known case, torch checkpoints, the CLI and its errors."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from edgeface.card import ModelCard
from edgeface.cli import main as cli_main
from edgeface.labels import AGE
from edgeface.models import create_model
from edgeface.models.checkpoint import save_checkpoint
from edgeface.preprocess import PreprocessSpec
from edgeface.runtime import open_runner
from edgeface.train.evaluate import evaluate_runner, model_infer, predict_outputs
from edgeface.train.tasks import DLDLTask

SPEC = PreprocessSpec(input_size=32)
CARD = ModelCard(model="tinyagenet", task="age", preprocess=SPEC, label_space=AGE, data="test")


class PixelRunner:
    """A fake Runner: predicts (one-hot) the age written in the top-left pixel of its input."""

    backend = "fake"
    card = CARD

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        ages = np.clip(np.round(x[:, 0, 0, 0] * SPEC.std + SPEC.mean[0]), 0, 100).astype(int)
        probs = np.eye(AGE.num_bins, dtype=np.float32)[ages]
        return {"probs": probs, "expectation": ages.astype(np.float32)}


def pixel_crops(left: list[int], right: list[int]) -> np.ndarray:
    crops = np.zeros((len(left), 32, 32, 3), np.uint8)
    crops[:, 0, 0, 0], crops[:, 0, -1, 0] = left, right
    return crops


def test_evaluate_runner_known_case_with_and_without_flip():
    crops = pixel_crops([10, 30, 50, 70], [20, 30, 50, 90])
    targets = {"label": np.array([10, 36, 50, 70], np.float32), "sigma": np.full(4, np.nan, np.float32)}
    metrics, outputs = evaluate_runner(PixelRunner(), crops, targets, flip=False, batch_size=3)
    assert metrics["mae"] == pytest.approx(1.5) and metrics["cs@5"] == pytest.approx(0.75)
    assert outputs["probs"].shape == (4, 101) and "epsilon_error" not in metrics
    flipped, _ = evaluate_runner(PixelRunner(), crops, targets, flip=True)  # mirrored input reads the right pixel
    assert flipped["mae"] == pytest.approx((5 + 6 + 0 + 10) / 4)
    with pytest.raises(ValueError, match="crops are 16 px"):
        evaluate_runner(PixelRunner(), np.zeros((1, 16, 16, 3), np.uint8), targets)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("tinyagenet", label_space=AGE)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, CARD)
    return path


@pytest.fixture(scope="module")
def utk_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("utk")
    rng = np.random.default_rng(0)
    for i, age in enumerate([4, 18, 25, 33, 47, 52, 61, 75, 80, 29]):
        img = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{age}_{i % 2}_{i % 5}_2017010{i}123456789.jpg.chip.jpg"), img)
    (folder / "1_0_20170109.jpg.chip.jpg").write_bytes(b"malformed name and no image")
    return folder


def test_runner_and_in_memory_model_share_the_path(checkpoint):
    crops = np.random.default_rng(1).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    targets = {"label": np.array([5, 15, 25, 35, 45], np.float32), "sigma": np.full(5, 3.0, np.float32)}
    with open_runner(checkpoint) as runner:
        metrics, outputs = evaluate_runner(runner, crops, targets)
    model = create_model("tinyagenet", label_space=AGE)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    direct = predict_outputs(model_infer(model.eval(), torch.device("cpu")), crops, SPEC, CARD)
    np.testing.assert_allclose(outputs["probs"], direct["probs"], atol=1e-6)
    assert metrics == DLDLTask().metrics(direct, targets)
    assert "epsilon_error" in metrics


def test_eval_cli_json_and_predictions(checkpoint, utk_folder, tmp_path, capsys):
    pred_csv = tmp_path / "pred.csv"
    code = cli_main(["eval", str(checkpoint), "--data", str(utk_folder), "--aligned", "--json", "--predictions",
                     str(pred_csv), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["n"] == 10 and report["skipped"] == 1 and report["flip"] is True
    assert {"mae", "rmse", "cs@5", "pearson", "spearman", "mae_per_decade"} <= set(report["metrics"])
    rows = list(csv.DictReader(pred_csv.open()))
    assert len(rows) == 10 and {"image", "label", "prediction", "prediction_std"} == set(rows[0])
    errors = [abs(float(r["prediction"]) - float(r["label"])) for r in rows]
    assert np.mean(errors) == pytest.approx(report["metrics"]["mae"], abs=1e-3)
    assert cli_main(["eval", str(checkpoint), "--data", str(utk_folder), "--aligned", "--no-flip", "--split", "val",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "(val, 2 faces, flip off)" in out and "mae:" in out
    assert list((tmp_path / "cache" / "faces").glob("faces-*.npz"))  # --cache-dir is the root, as in convert


def test_eval_split_comes_from_the_checkpoint_config(checkpoint, utk_folder, tmp_path, capsys):
    """--split val reuses the split settings saved with the checkpoint; a flag still wins; old checkpoints
    (no saved config) keep the defaults."""
    from edgeface.train.config import TrainConfig

    saved = torch.load(checkpoint, weights_only=True)
    config = TrainConfig(val_fraction=0.5, seed=3, cache_dir=str(tmp_path / "training-cache")).to_dict()
    with_config = tmp_path / "with_config.pt"
    torch.save({**saved, "config": config}, with_config)
    common = ["--data", str(utk_folder), "--aligned", "--split", "val", "--cache-dir", str(tmp_path / "cache")]

    def val_images(model, *flags: str) -> list[str]:
        pred = tmp_path / "pred.csv"
        assert cli_main(["eval", str(model), *common, *flags, "--json", "--predictions", str(pred)]) == 0
        capsys.readouterr()
        return sorted(row["image"] for row in csv.DictReader(pred.open()))

    assert len(val_images(checkpoint)) == 2  # defaults: val_fraction 0.2 of 10 faces
    reused = val_images(with_config)
    assert len(reused) == 5  # the checkpoint's val_fraction 0.5
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices

    issues = DataIssues(False)
    faces = prepare_faces(load_samples("utkface", utk_folder, issues, AGE), SPEC, issues, "x", None,
                          tmp_path / "cache2", progress=False)
    _, val = split_indices(faces, 0.5, 3)
    assert reused == sorted(str(faces.paths[i]) for i in val)  # the very split training used (seed 3)
    assert len(val_images(with_config, "--val-fraction", "0.3")) == 3  # a flag overrides the saved config
    assert not (tmp_path / "training-cache").exists()  # run settings (cache, detector) are not reused


def test_eval_cli_errors_exit_2(checkpoint, utk_folder, tmp_path, capsys):
    assert cli_main(["eval", str(tmp_path / "nope.pt"), "--data", str(utk_folder), "--aligned"]) == 2
    assert "model not found" in capsys.readouterr().err
    assert cli_main(["eval", str(checkpoint), "--aligned"]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert cli_main(["eval", "vgg16-dldl", "--data", str(utk_folder), "--aligned"]) == 2
    err = capsys.readouterr().err
    assert "weights ship for: " in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main(["eval", str(bad), "--data", str(utk_folder), "--aligned"]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    (tmp_path / "convert_out").mkdir()
    assert cli_main(["eval", str(tmp_path / "convert_out"), "--target", "onnx", "--data", str(utk_folder),
                     "--aligned"]) == 2
    assert "edgeface eval: error:" in capsys.readouterr().err


def test_eval_options_are_checked_before_the_evaluation(checkpoint, tmp_path, capsys):
    """--plot on an age model is refused before any face is read: an empty data folder would otherwise be the
    error. Bad output paths and batch sizes are refused before the model is opened."""
    empty = tmp_path / "no-faces"
    empty.mkdir()
    assert cli_main(["eval", str(checkpoint), "--data", str(empty), "--aligned", "--plot",
                     str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert "--plot is not available for the age task" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.png").exists()
    for flags, message in ((["--plot", str(tmp_path / "m.jpg")], "expected a .png file"),
                           (["--predictions", str(tmp_path / "missing" / "p.csv")], "does not exist"),
                           (["--batch-size", "0"], "--batch-size must be at least 1")):
        assert cli_main(["eval", str(checkpoint), "--data", str(empty), "--aligned", *flags]) == 2
        assert message in capsys.readouterr().err
    assert cli_main(["eval", str(checkpoint), "--data", str(tmp_path / "nowhere"), "--aligned"]) == 2
    assert "--data" in capsys.readouterr().err
