"""DMM-CNN data, loss, dynamic weights, thresholds and metrics (fast: generated fixtures, tiny tensors)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgeface.data.celeba import LANDMARK_COLUMNS, attribute_names, read_attribute_csv, read_celeba
from edgeface.data.datasets import DataIssues, crop_landmarks, load_samples, prepare_faces
from edgeface.preprocess import CANONICAL_LANDMARKS, PreprocessSpec, alignment_matrix
from edgeface.train.attributes import (
    AttributeTask,
    DynamicAttributeWeights,
    attribute_metrics,
    balanced_accuracy,
    fit_thresholds,
    landmark_nme,
    multitask_loss,
)

NAMES = ["Smiling", "Male", "Eyeglasses"]
W, H = 89, 109  # the dev copy's frame: readers must not assume CelebA's 178x218
POINTS = np.array([[33.8, 57.2], [53.3, 56.7], [39.4, 68.6], [36.8, 78.0], [53.2, 77.2]], np.float32)


def _image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def celeba_folder(tmp_path_factory) -> Path:
    """A CelebA-format folder in the official layouts: 6 images, one without a landmark row, one bad row,
    one listed image missing, one landmark row in the wrong (178x218) frame."""
    root = tmp_path_factory.mktemp("celeba")
    (root / "img_align_celeba").mkdir()
    for i in range(1, 7):
        _image(root / "img_align_celeba" / f"{i:06d}.jpg", i)
    attrs = {1: " 1 -1 -1", 2: "-1  1 -1", 3: "-1  1  1", 4: " 1 -1 -1", 5: "-1 -1  1", 6: " 1  1 -1"}
    rows = [f"{i:06d}.jpg {v}" for i, v in attrs.items()] + ["000007.jpg  1 -1 -1", "000008.jpg 1 -1"]
    (root / "list_attr_celeba.txt").write_text(f"{len(rows)}\n{' '.join(NAMES)} \n" + "\n".join(rows) + "\n")
    lm_rows = []
    for i in (1, 2, 3, 4, 6):  # 000005 has no landmark row
        pts = POINTS * 2 if i == 6 else POINTS + i * 0.1  # 000006: CelebA's own 178x218 frame
        lm_rows.append(f"{i:06d}.jpg " + " ".join(f"{v:.1f}" for v in pts.reshape(-1)))
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"{len(lm_rows)}\n{' '.join(LANDMARK_COLUMNS)}\n" + "\n".join(lm_rows) + "\n")
    return root


def test_celeba_reader_official_format(celeba_folder):
    issues = DataIssues()
    samples = read_celeba(celeba_folder, issues)
    assert [s.path.name for s in samples] == [f"{i:06d}.jpg" for i in range(1, 7)]
    assert attribute_names("celeba", celeba_folder) == NAMES
    np.testing.assert_array_equal(samples[1].targets["attributes"], [0, 1, 0])  # -1 -> 0, +1 -> 1
    by_name = {s.path.name: s for s in samples}
    assert by_name["000005.jpg"].landmarks is None and by_name["000005.jpg"].targets["landmark_mask"] == 0
    assert by_name["000006.jpg"].landmarks is None  # outside the 89x109 frame: attributes only, reported
    assert by_name["000001.jpg"].targets["landmark_mask"] == 1
    np.testing.assert_allclose(by_name["000001.jpg"].targets["landmarks"], (POINTS + 0.1).reshape(-1), atol=1e-4)
    text = " ".join(issues.items)
    assert "000007.jpg" in text and "values, expected 3" in text and "89x109" in text
    assert len(issues.items) == 3
    with pytest.raises(ValueError, match="strict"):
        read_celeba(celeba_folder, DataIssues(strict=True))


def test_celeba_partition_file(celeba_folder, tmp_path):
    import shutil

    root = tmp_path / "c"
    shutil.copytree(celeba_folder, root)
    (root / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg {i % 3}\n" for i in range(1, 7)))
    samples = read_celeba(root, DataIssues())
    assert [s.split for s in samples] == ["val", "test", "train", "val", "test", "train"]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def test_attribute_csv_pm1_and_01_agree(celeba_folder, tmp_path):
    images = [str(celeba_folder / "img_align_celeba" / f"{i:06d}.jpg") for i in (1, 2)]
    lm = [f"{v:.1f}" for v in POINTS.reshape(-1)]
    _write_csv(tmp_path / "pm.csv", ["image", *NAMES, *LANDMARK_COLUMNS],
               [[images[0], 1, -1, -1, *lm], [images[1], -1, 1, 1, *[""] * 10]])
    _write_csv(tmp_path / "01.csv", ["image", *NAMES], [[images[0], 1, 0, 0], [images[1], 0, 1, 1]])
    _write_csv(tmp_path / "bad.csv", ["image", *NAMES], [[images[0], 1, 0, -1], [images[1], 0, 2, 1]])
    pm, zo = read_attribute_csv(tmp_path / "pm.csv", DataIssues()), read_attribute_csv(tmp_path / "01.csv",
                                                                                      DataIssues())
    for a, b in zip(pm, zo, strict=True):
        np.testing.assert_array_equal(a.targets["attributes"], b.targets["attributes"])
    assert pm[0].targets["landmark_mask"] == 1 and pm[1].targets["landmark_mask"] == 0
    assert zo[0].landmarks is None
    issues = DataIssues()
    assert read_attribute_csv(tmp_path / "bad.csv", issues) == []
    assert len(issues.items) == 2  # mixed coding in one row, and a 2


def test_crop_landmarks_follow_the_alignment():
    """Points that are an exact similarity image of the template land on the template in crop coordinates."""
    spec = PreprocessSpec(input_size=40)
    template = np.asarray(CANONICAL_LANDMARKS, np.float32)
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    points = (template * 60) @ rot.T + [12, 20]
    matrix = alignment_matrix(points, spec)
    got = crop_landmarks(points.reshape(1, 10), matrix[None].astype(np.float32), spec.input_size)
    np.testing.assert_allclose(got.reshape(5, 2), template, atol=1e-3)


def test_nme_normalises_by_interocular_distance():
    target = torch.tensor(CANONICAL_LANDMARKS).reshape(1, 10)
    iod = CANONICAL_LANDMARKS[1][0] - CANONICAL_LANDMARKS[0][0]
    pred = target.clone()
    pred[:, 0::2] += 0.05  # every point 0.05 to the right
    assert landmark_nme(pred, target).item() == pytest.approx(0.05 / iod, rel=1e-5)
    assert landmark_nme(target, target).item() == 0


def test_landmark_loss_is_masked():
    torch.manual_seed(0)
    logits, labels = torch.zeros(4, 3), torch.ones(4, 3)
    targets = torch.rand(4, 10) * 0.5 + 0.25
    pred = torch.rand(4, 10, requires_grad=True)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    total, bce, lm = multitask_loss(logits, labels, torch.ones(3), pred, targets, mask, 1.0)
    total.backward()
    assert pred.grad[1].abs().sum() == 0 and pred.grad[3].abs().sum() == 0
    assert pred.grad[0].abs().sum() > 0
    expected = landmark_nme(pred.detach(), targets)[[0, 2]].mean()
    assert lm.item() == pytest.approx(expected.item(), rel=1e-5)
    np.testing.assert_allclose(bce.numpy(), np.log(2), rtol=1e-5)
    _, _, none = multitask_loss(logits, labels, torch.ones(3), pred, targets, torch.zeros(4), 1.0)
    assert none.item() == 0  # a batch without landmarks adds nothing


def test_dynamic_weights_follow_the_documented_formula():
    w = DynamicAttributeWeights(3, temperature=0.5)
    w.start(np.array([0.7, 0.7, 0.7]))
    w.start(np.array([9.0, 9.0, 9.0]))  # only the first call counts
    weights = w.update(np.array([0.35, 0.63, 0.7]))  # ratios 0.5, 0.9, 1.0
    z = np.exp(np.array([0.5, 0.9, 1.0]) / 0.5)
    np.testing.assert_allclose(weights, 3 * z / z.sum())
    assert weights.mean() == pytest.approx(1.0)
    assert weights[2] > weights[1] > weights[0]  # the stalled attribute gets the most weight
    restored = DynamicAttributeWeights(3, temperature=0.5)
    restored.load_state_dict(w.state_dict())
    np.testing.assert_allclose(restored.update(np.array([0.3, 0.6, 0.7])), w.update(np.array([0.3, 0.6, 0.7])))
    off = DynamicAttributeWeights(3, enabled=False)
    off.start(np.ones(3))
    np.testing.assert_array_equal(off.update(np.array([0.1, 0.5, 1.0])), np.ones(3))


def test_fitted_thresholds_improve_balanced_accuracy_on_imbalanced_data():
    rng = np.random.default_rng(0)
    labels = (rng.random((4000, 2)) < [0.05, 0.15]).astype(np.float32)
    probs = np.clip(0.08 + 0.25 * labels + rng.normal(0, 0.08, labels.shape), 0, 1)  # a cautious model
    fit, test = slice(0, 2000), slice(2000, 4000)
    thresholds = fit_thresholds(probs[fit], labels[fit], "balanced")
    assert np.all(thresholds < 0.5)
    at_half = attribute_metrics(probs[test], labels[test], ["a", "b"])
    fitted = attribute_metrics(probs[test], labels[test], ["a", "b"], thresholds)
    assert fitted["mean_balanced_accuracy"] > at_half["mean_balanced_accuracy"] + 0.2
    assert at_half["baseline_mean_balanced_accuracy"] == pytest.approx(0.5)


def test_balanced_accuracy_values():
    labels = np.array([[1], [1], [0], [0], [0], [0]])
    decisions = np.array([[1], [0], [0], [0], [0], [1]])
    assert balanced_accuracy(decisions, labels)[0] == pytest.approx((0.5 + 0.75) / 2)


def test_task_uses_card_thresholds_or_half():
    names = ["a", "b"]
    probs = np.array([[0.3, 0.6], [0.1, 0.9], [0.35, 0.2], [0.05, 0.7]], np.float32)
    targets = {"attributes": np.array([[1, 1], [0, 1], [1, 0], [0, 1]], np.float32)}
    outputs = {"attr_probs": probs}
    card_task = AttributeTask(names, thresholds=[0.2, 0.5])
    assert card_task.metrics(outputs, targets)["mean_accuracy"] == 1.0
    assert card_task.metrics(outputs, targets)["mean_accuracy_at_0.5"] == 0.75
    off = AttributeTask(names, adaptive_thresholds=False, thresholds=[0.2, 0.5])
    assert off.metrics(outputs, targets)["mean_accuracy"] == 0.75


def test_prepare_faces_maps_landmarks_and_resizes_the_rest(celeba_folder):
    spec = PreprocessSpec(input_size=32)
    issues = DataIssues()
    faces = prepare_faces(load_samples("celeba", celeba_folder, issues), spec, issues, "fixture", progress=False)
    mask = faces.targets["landmark_mask"] > 0
    assert mask.sum() == 4 and faces.crops.shape == (6, 32, 32, 3)
    first = faces.paths.index(str(celeba_folder / "img_align_celeba" / "000001.jpg"))
    matrix = alignment_matrix(POINTS + 0.1, spec)  # the crop was aligned with its own landmarks
    expected = ((POINTS + 0.1) @ matrix[:, :2].T + matrix[:, 2]) / spec.input_size
    np.testing.assert_allclose(faces.targets["landmarks"][first].reshape(5, 2), expected, atol=1e-4)
    lm = faces.targets["landmarks"][mask].reshape(-1, 5, 2)
    np.testing.assert_allclose(lm.mean(0), np.asarray(CANONICAL_LANDMARKS), atol=0.1)  # near the template


def test_train_and_eval_end_to_end_on_celeba(celeba_dir, tmp_path, capsys):
    """~40 real CelebA faces at 32 px through `edgeface train --model dmmcnn` and `edgeface eval`."""
    import json

    from edgeface.cli import main
    from edgeface.models.checkpoint import load_checkpoint

    out = tmp_path / "run"
    common = ["--data", str(celeba_dir), "--max-images", "40", "--cache-dir", str(tmp_path / "cache")]
    assert main(["train", "--model", "dmmcnn", *common, "--input-size", "32", "--epochs", "2", "--batch-size",
                 "16", "--out", str(out), "--workers", "0", "--no-progress", "--threshold-objective", "balanced"]) == 0
    _, card, _ = load_checkpoint(out / "best.pt")
    assert card.task == "attributes" and len(card.attributes) == 40 and len(card.thresholds) == 40
    assert card.threshold_objective == "balanced" and card.extra["attribute_task"]["threshold_objective"] == "balanced"
    assert card.extra["attribute_task"]["dynamic_weights"] is True and len(card.extra["train_positive_rate"]) == 40
    log = (out / "log.csv").read_text().splitlines()
    assert "w_Smiling" in log[0] and len(log) == 3
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), *common, "--aligned", "--json", "--plot",
                 str(tmp_path / "bars.png")]) == 0
    assert (tmp_path / "bars.png").stat().st_size > 10_000
    assert {p.parent for p in (tmp_path / "cache").rglob("*.npz")} == {tmp_path / "cache" / "faces"}
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["n"] == 40 and metrics["thresholds"].startswith("fitted on the training run")
    assert metrics["threshold_objective"] == "balanced"
    assert {"mean_accuracy_at_0.5", "mean_balanced_accuracy_at_0.5", "baseline_mean_accuracy"} <= set(metrics)
    assert metrics["landmark_nme"] >= 0 and metrics["landmark_n"] >= 39
    assert set(metrics["per_attribute"]) == set(card.attributes)


def test_switches_reach_the_task_and_card(celeba_folder):
    from types import SimpleNamespace

    config = SimpleNamespace(data=str(celeba_folder), format="celeba", image_col="image",
                             task_options={"dynamic_weights": False, "adaptive_thresholds": False, "landmarks": False})
    task = AttributeTask.from_config(config)
    card = task.make_card("dmmcnn", PreprocessSpec(input_size=32), "fixture")
    assert card.attributes == NAMES
    assert card.extra["attribute_task"] == {"dynamic_weights": False, "adaptive_thresholds": False,
                                            "threshold_objective": "accuracy", "landmark_weight": 0.0,
                                            "temperature": 1.0}
    again = AttributeTask.from_card(card)
    assert not again.dynamic.enabled and not again.adaptive_thresholds and again.landmark_weight == 0
    outputs = {"attr_probs": np.full((6, 3), 0.4, np.float32)}
    targets = {"attributes": np.ones((6, 3), np.float32)}
    assert task.finalize_card(card, outputs, targets).thresholds is None  # adaptive thresholds off
    config.task_options = {"landmark": True}
    with pytest.raises(ValueError, match="unknown attribute task option"):
        AttributeTask.from_config(config)
