"""Shipped weights, the default detector and the sample faces: names resolve everywhere, cards and hashes hold,
FP16 storage round-trips within the drift gate on real faces, and ``edgeface run`` works from a name alone."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

import edgeface.weights as weights
from edgeface.assets import DETECTOR, FACE_LABELS, FACES, sample_faces
from edgeface.cli import main as cli_main
from edgeface.detector import FaceDetector
from edgeface.errors import CheckpointError
from edgeface.fileio import sha256_file
from edgeface.weights import UnknownModel, load_index, resolve_model

torch = pytest.importorskip("torch")

TERMS = "non-commercial research / educational use only"


@pytest.fixture(scope="module")
def index() -> dict:
    entries = load_index()
    if not entries:
        pytest.skip("this checkout ships no weights")
    return entries


def test_names_resolve_to_packed_weights_and_paths_win(index, tmp_path, monkeypatch):
    for name, entry in index.items():
        assert resolve_model(name) == weights.WEIGHTS_DIR / entry["file"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinyagenet").mkdir()  # a folder named like the weights: the explicit path wins
    assert resolve_model("tinyagenet").resolve() == (tmp_path / "tinyagenet").resolve()


def test_unknown_name_is_one_line_listing_the_shipped_names(index, capsys):
    with pytest.raises(UnknownModel) as caught:
        resolve_model("vgg16-dldl")  # a zoo model without weights
    assert f"weights ship for: {', '.join(index)}" in str(caught.value)
    assert cli_main(["run", "clip.mp4", "--models", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and all(name in err[0] for name in index)


def test_cards_name_data_terms_metrics_and_recipe(index):
    from edgeface.models.checkpoint import read_checkpoint

    for name, entry in index.items():
        path = weights.WEIGHTS_DIR / entry["file"]
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
        ckpt = read_checkpoint(path)
        card = ckpt["card"]
        assert (card["model"], card["task"], card["preprocess"]["input_size"]) == \
            (entry["model"], entry["task"], entry["input_size"])
        assert card["data"] == entry["data"] and card["data"] and not card["data"].upper().startswith("SYNTHETIC")
        assert TERMS in card["extra"]["data_terms"] and card["extra"]["data_terms"] == entry["data_terms"]
        assert card["extra"]["recipe"] == entry["recipe"] and entry["recipe"].startswith("edgeface ")
        assert card["extra"]["metrics"] == entry["metrics"] and entry["metrics"]
        assert card["extra"]["weights"] == name
        assert all(v.dtype == torch.float16 for v in ckpt["model"].values() if v.is_floating_point() and v.ndim > 1)
        trip = entry["storage"]["roundtrip"]
        assert trip["passed"] and trip["value"] <= trip["limit"] and trip["faces"] == len(sample_faces())


def test_a_tampered_weight_file_is_refused(index, tmp_path, monkeypatch):
    from edgeface.models.checkpoint import load_checkpoint

    name, entry = next(iter(index.items()))
    shutil.copy(weights.INDEX, tmp_path / "weights.json")
    shutil.copy(weights.WEIGHTS_DIR / entry["file"], tmp_path / entry["file"])
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights, "INDEX", tmp_path / "weights.json")
    model, card, _ = load_checkpoint(resolve_model(name))  # intact: loads, FP32 again
    assert all(p.dtype == torch.float32 for p in model.parameters()) and card.model == entry["model"]
    data = bytearray((tmp_path / entry["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        load_checkpoint(resolve_model(name))
    shutil.copy(tmp_path / entry["file"], tmp_path / "unlisted.pt")
    with pytest.raises(CheckpointError, match="does not list it"):
        load_checkpoint(tmp_path / "unlisted.pt")


def _sample_faces_set(spec):
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces

    issues = DataIssues()
    return prepare_faces(load_samples("csv", FACE_LABELS, issues, label_col="age"), spec, issues, "samples", DETECTOR,
                         progress=False)


@pytest.fixture(scope="module")
def fine_tuned(index, tmp_path_factory):
    """A real FP32 checkpoint whose weights FP16 cannot store exactly, saved the way training saves it: the shipped
    TinyAgeNet with every weight moved off the FP16 grid by a seeded relative jitter of 1e-3 (twice FP16's
    rounding step; trained FP32 weights lie anywhere between grid points too)."""
    from edgeface.models.checkpoint import load_checkpoint, save_checkpoint

    if "tinyagenet" not in index:
        pytest.skip("no shipped tinyagenet weights")
    model, card, _ = load_checkpoint(resolve_model("tinyagenet"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 1e-3 * torch.randn(p.shape, generator=generator))
    card.extra = {"val_metrics": {"mae": 6.0}}
    path = tmp_path_factory.mktemp("fine") / "best.pt"
    save_checkpoint(path, model.eval(), card, epoch=1)
    return path


def test_fp16_storage_round_trips_within_the_drift_gate_on_real_faces(fine_tuned, tmp_path):
    from edgeface.convert.pipeline import DEFAULT_GATES
    from edgeface.models.checkpoint import load_checkpoint
    from edgeface.runtime import open_runner
    from edgeface.train.evaluate import evaluate_runner
    from edgeface.weights.pack import pack_checkpoint

    entry = pack_checkpoint(fine_tuned, "tiny-test", "edgeface train --model tinyagenet", f"UTKFace: {TERMS}.",
                            folder=tmp_path)
    packed = tmp_path / "tiny-test.pt"
    assert load_index(tmp_path / "weights.json")["tiny-test"]["sha256"] == sha256_file(packed) == entry["sha256"]
    assert packed.stat().st_size < 0.6 * fine_tuned.stat().st_size
    original, card, _ = load_checkpoint(fine_tuned)
    restored, _, _ = load_checkpoint(packed)
    assert any(not torch.equal(a, b) for a, b in zip(original.state_dict().values(), restored.state_dict().values(),
                                                      strict=True))  # FP16 storage did round these weights
    faces = _sample_faces_set(card.preprocess)
    maes = []
    for path in (fine_tuned, packed):
        with open_runner(path) as runner:
            maes.append(evaluate_runner(runner, faces.crops, faces.targets)[0]["mae"])
    assert abs(maes[1] - maes[0]) <= DEFAULT_GATES["mae"]["fp16"]
    assert entry["storage"]["roundtrip"]["passed"]


def test_pack_refuses_cards_that_cannot_fill_the_index(fine_tuned, tmp_path, capsys):
    from edgeface.models.checkpoint import load_checkpoint, save_checkpoint
    from edgeface.weights.pack import pack_checkpoint

    model, card, _ = load_checkpoint(fine_tuned)
    cases = {"names no training data": {"data": ""}, "SYNTHETIC": {"data": "SYNTHETIC faces"},
             "no measured metrics": {"extra": {}}}
    for message, change in cases.items():
        bad = tmp_path / f"{len(message)}.pt"
        original = {k: getattr(card, k) for k in change}
        for k, v in change.items():
            setattr(card, k, v)
        save_checkpoint(bad, model, card)
        for k, v in original.items():
            setattr(card, k, v)
        with pytest.raises(ValueError, match=message):
            pack_checkpoint(bad, "x", "edgeface train", TERMS, folder=tmp_path)
    assert cli_main(["weights", "pack", str(fine_tuned), "--name", "x", "--recipe", "edgeface train"]) == 2
    assert "--data-terms" in capsys.readouterr().err
    assert cli_main(["weights", "pack", str(fine_tuned), "--name", "dmmcnn", "--recipe", "r", "--data-terms", "t"]) == 2
    assert "is a tinyagenet" in capsys.readouterr().err
    assert not (tmp_path / "weights.json").exists()


def test_shipped_detector_finds_each_sample_face():
    detector = FaceDetector()
    for face in sample_faces():
        image = cv2.imread(str(face.path))
        found = detector.detect(image)
        assert len(found) == 1 and found[0].score > 0.8, face.path.name
        x, y, w, h = found[0].box
        assert 0.25 * image.shape[1] < x + w / 2 < 0.75 * image.shape[1] and w > 0.3 * image.shape[1]
        left_eye, right_eye = found[0].landmarks[:2]
        assert left_eye[0] < right_eye[0]


def test_run_with_names_and_no_detector_prints_ages_of_the_sample_faces(index, tmp_path, capsys):
    from edgeface.bench.synthetic_video import sample_faces_video

    clip, jsonl = tmp_path / "clip.mp4", tmp_path / "faces.jsonl"
    sample_faces_video(clip, [cv2.imread(str(f.path)) for f in sample_faces()[:2]], 3, size=(320, 200), per_frame=2)
    models = ["tinyagenet"] + (["dmmcnn"] if "dmmcnn" in index else [])
    assert cli_main(["run", str(clip), "--models", *models, "--jsonl", str(jsonl), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "tinyagenet/age: checkpoint (torch) tinyagenet.pt" in out and "faces: 2 track(s)" in out
    ages = [f["age"] for line in jsonl.read_text().splitlines() for f in json.loads(line)["faces"]]
    assert len(ages) == 6 and all(10 < a < 60 for a in ages)  # two young adults (19 and 20), three frames
    assert out.count("age ") >= 2


def test_models_lists_the_weights_with_their_terms(index, capsys):
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "pretrained weights |" in out and "| vgg16-dldl |" in out
    for name, entry in index.items():
        assert f"| {name} | {entry['model']} | {entry['task']} | {entry['input_size']} |" in out
    assert out.count(TERMS) == len(index)
    assert cli_main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["vgg16-dldl"]["weights"] == []
    assert {w["name"] for r in rows.values() for w in r["weights"]} == set(index)


def test_convert_eval_and_bench_take_a_name(index, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from edgeface.bench.jobs import baseline_targets_at, collect_jobs

    out = tmp_path / "conv"
    assert cli_main(["convert", "tinyagenet", "--to", "onnx", "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["checkpoint"] == "tinyagenet.pt" and manifest["source"]["sha256"] == \
        load_index()["tinyagenet"]["sha256"]
    capsys.readouterr()
    # raw photos: the shipped YuNet detects and aligns them without --detector
    assert cli_main(["eval", "tinyagenet", "--data", str(FACE_LABELS), "--format", "csv", "--label-col", "age",
                     "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["n"] == len(sample_faces()) and report["metrics"]["mae"] < 15
    jobs = collect_jobs(["tinyagenet"], tmp_path / "bench", ["onnxruntime"], ["onnx"], baseline=False)
    size = load_index()["tinyagenet"]["input_size"]
    assert [(j["model"], j["target"], j["input_size"]) for j in jobs] == [("tinyagenet", "onnx", size)]
    assert TERMS in jobs[0]["card"]["extra"]["data_terms"]  # the shipped weights, not an untrained network
    assert baseline_targets_at(224, ["onnx"]) == ["onnx"] and baseline_targets_at(64, ["onnx"]) == []


def test_sample_faces_ship_with_their_attribution():
    readme = (FACES / "README.md").read_text()
    assert "https://doi.org/10.6084/m9.figshare.4220517.v1" in readme and "CC-BY 4.0" in readme
    faces = sample_faces()
    assert 6 <= len(faces) <= 8 and all(f.path.is_file() and 17 <= f.age <= 35 for f in faces)
    assert all(cv2.imread(str(f.path)).shape == (400, 300, 3) for f in faces)
    assert DETECTOR.is_file() and (DETECTOR.parent / "LICENSE-yunet.txt").is_file()
    assert np.isfinite([f.age for f in faces]).all()
