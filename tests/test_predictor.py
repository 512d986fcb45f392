"""Predictor: detections at the known positions, one batch per model, decoding, landmark mapping, model folders."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_helpers import FACE_SIZE, TINY_SPEC, face_video, nearest_known, tiny_models

from edgeface.labels import AGE, distribution_std, expectation
from edgeface.preprocess import alignment_matrix
from edgeface.runtime.predictor import Predictor, crop_points_to_frame, find_model_paths

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, utkface_dir) -> dict:
    root = tmp_path_factory.mktemp("predictor")
    video = root / "faces.mp4"
    boxes = face_video(video, utkface_dir, faces=3, frames=4)
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return {"root": root, "models": tiny_models(root / "models"), "video": video, "boxes": boxes, "frame": frame}


@pytest.fixture(scope="module")
def predictor(workdir, yunet_path) -> Predictor:
    with Predictor(workdir["models"], yunet_path, threads=1) as p:
        yield p


def test_faces_found_at_known_positions_with_all_outputs(predictor, workdir):
    results = predictor.predict(workdir["frame"])
    known = workdir["boxes"][0]
    assert len(results) == 3
    assert sorted(nearest_known(r.box, known)[0] for r in results) == [0, 1, 2]
    for r in results:
        assert nearest_known(r.box, known)[1] < 0.25 * FACE_SIZE
        assert 0 <= r.age <= 100 and r.age_std > 0
        probs = r.probs["age"]
        assert probs.shape == (AGE.num_bins,)
        assert r.age == pytest.approx(float(expectation(probs, AGE)), abs=1e-3)
        assert r.age_std == pytest.approx(float(distribution_std(probs, AGE)), abs=1e-3)
        assert len(r.attributes) == 40 and set(r.decisions) == set(r.attributes)
        thresholds = dict(zip(predictor.cards[1].attributes, predictor.cards[1].thresholds, strict=True))
        assert all(r.decisions[n] == (p >= thresholds[n]) for n, p in r.attributes.items())
        x, y, w, h = r.box
        assert r.model_landmarks.shape == (5, 2)
        assert np.all(np.abs(r.model_landmarks.mean(axis=0) - [x + w / 2, y + h / 2]) < 1.5 * w)
        record = r.to_dict()
        assert set(record) >= {"box", "landmarks", "score", "age", "age_std", "attributes", "decisions"}


def test_all_faces_of_a_frame_are_one_batch_per_model(workdir, yunet_path):
    for flip, rows in ((False, 3), (True, 6)):
        with Predictor(workdir["models"], yunet_path, threads=1, flip=flip) as p:
            calls = []
            for model in p.models:
                infer = model.runner.infer
                model.runner.infer = lambda x, infer=infer, calls=calls: calls.append(x.shape[0]) or infer(x)
            results = p.predict(workdir["frame"])
            assert len(results) == 3
            assert calls == [rows, rows]  # one call per model, mirrored faces in the same batch


def test_openvino_models_filled_in_place_predict_what_the_checkpoints_do(workdir, yunet_path, tmp_path):
    from edgeface.convert.pipeline import convert_checkpoint

    irs = [tmp_path / name for name in ("age", "attributes")]  # one preprocessing shared by both models
    for folder in irs:
        convert_checkpoint(workdir["models"] / f"{folder.name}.pt", ["openvino"], out_dir=folder)
    with Predictor(workdir["models"], yunet_path, threads=1, flip=True) as torch_p, \
            Predictor(irs, yunet_path, threads=1, flip=True) as openvino_p:
        assert [m.runner.backend for m in openvino_p.models] == ["openvino", "openvino"]
        for _ in range(2):  # the second frame reuses the requests' input memory
            want, got = torch_p.predict(workdir["frame"]), openvino_p.predict(workdir["frame"])
            assert len(got) == len(want) == 3
            for g, w in zip(got, want, strict=True):
                assert g.age == pytest.approx(w.age, abs=0.05)
                np.testing.assert_allclose(list(g.attributes.values()), list(w.attributes.values()), atol=1e-3)


def test_rgb_flag_and_no_face(predictor, workdir):
    frame = workdir["frame"]
    bgr = predictor.predict(frame)
    rgb = predictor.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), rgb=True)
    assert [r.age for r in rgb] == pytest.approx([r.age for r in bgr])
    assert predictor.predict(np.full((240, 320, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError, match="HxWx3"):
        predictor.predict(np.zeros((10, 10), np.uint8))


def test_model_landmarks_map_back_through_the_inverse_alignment():
    detected = np.array([[110, 120], [150, 118], [131, 145], [115, 165], [148, 163]], np.float32)
    template = np.asarray(TINY_SPEC.template, np.float32)
    back = crop_points_to_frame(template.reshape(-1), detected, TINY_SPEC)
    matrix = alignment_matrix(detected, TINY_SPEC)
    forward = back @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(forward / TINY_SPEC.input_size, template, atol=1e-4)
    assert np.abs(back - detected).max() < 6  # the template is where the detected points go


def test_bad_model_paths(tmp_path, workdir, yunet_path):
    with pytest.raises(FileNotFoundError):
        find_model_paths(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no model"):
        find_model_paths(tmp_path)
    with pytest.raises(ValueError, match="more than one model for task age"):
        Predictor([workdir["models"] / "age.pt", workdir["models"] / "age.pt"], yunet_path)


def test_convert_folder_and_backend_override(workdir, yunet_path, tmp_path):
    pytest.importorskip("onnxruntime")
    from edgeface.convert.onnx_export import export_onnx
    from edgeface.manifest import artifact_entry, new_manifest, write_manifest
    from edgeface.models.checkpoint import load_checkpoint

    model, card, _ = load_checkpoint(workdir["models"] / "age.pt")
    folder = tmp_path / "models" / "tinyagenet-age"
    folder.mkdir(parents=True)
    sample = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    export_onnx(model, card, folder / "model.onnx", sample, simplify=False)
    manifest = new_manifest(card, workdir["models"] / "age.pt", None)
    manifest["artifacts"]["onnx"] = artifact_entry("onnx", card, folder)
    write_manifest(folder, manifest)
    assert find_model_paths(tmp_path / "models") == [folder]
    with Predictor(tmp_path / "models", yunet_path, threads=1) as onnx_predictor, \
            Predictor(workdir["models"] / "age.pt", yunet_path, threads=1) as torch_predictor:
        assert onnx_predictor.models[0].runner.backend == "onnxruntime"
        ages_onnx = [r.age for r in onnx_predictor.predict(workdir["frame"])]
        ages_torch = [r.age for r in torch_predictor.predict(workdir["frame"])]
    assert ages_onnx == pytest.approx(ages_torch, abs=0.05)
    with pytest.raises(ValueError, match="no built artifact for backend 'openvino'"):
        Predictor(folder, yunet_path, backend="openvino")


def test_readme_opencv_example_runs(workdir, capsys):
    """The README's OpenCV capture-loop example, run as written with this test's video and models (the shipped
    YuNet detects)."""
    text = README.read_text()
    section = text[text.index("## Runtime in video pipelines"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'VIDEO = "input.mp4"' in code
    code = (code.replace('VIDEO = "input.mp4"', f'VIDEO = "{workdir["video"]}"')
                .replace('MODELS = ["tinyagenet", "dmmcnn"]', f'MODELS = "{workdir["models"]}"'))
    exec(compile(code, "README example", "exec"), {})
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frame")]
    assert len(lines) == 4 and all("3 faces" in line for line in lines)


def test_detector_creation_prints_no_opencv_warning(capfd):
    """OpenCV 5 warns about setPreferableTarget whenever YuNet is created; edgeface silences it at that call and
    leaves OpenCV's log level as it was."""
    from edgeface.detector import FaceDetector

    log = getattr(getattr(cv2, "utils", None), "logging", None)
    before = log.getLogLevel() if log is not None else None
    FaceDetector()
    FaceDetector(min_face=48)
    assert "setPreferableTarget" not in capfd.readouterr().err
    if log is not None:
        assert log.getLogLevel() == before
