import cv2
import numpy as np
import pytest

from edgeface.card import ModelCard
from edgeface.detector import FaceDetector
from edgeface.labels import AGE
from edgeface.preprocess import CANONICAL_LANDMARKS, PreprocessSpec, align_face, flip_input, to_input


def test_alignment_puts_landmarks_on_the_template():
    spec = PreprocessSpec(input_size=112)
    image = np.zeros((300, 400, 3), np.uint8)
    template = np.array(CANONICAL_LANDMARKS) * 80 + [150, 60]  # a face 80 px wide at (150, 60)
    for x, y in template:
        cv2.circle(image, (int(x), int(y)), 3, (255, 255, 255), -1)
    crop = align_face(image, template, spec)
    assert crop.shape == (112, 112, 3)
    for tx, ty in np.array(CANONICAL_LANDMARKS) * 112:
        assert crop[int(round(ty)), int(round(tx))].mean() > 100


def test_to_input_normalises_and_flips():
    spec = PreprocessSpec(input_size=32)
    crops = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = to_input(crops, spec)
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(flip_input(x, spec)[..., 0], x[..., -1])


def test_spec_and_card_round_trip():
    card = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=96), label_space=AGE, data="SYNTHETIC")
    again = ModelCard.from_json(card.to_json())
    assert again == card and again.synthetic
    with pytest.raises(ValueError):
        PreprocessSpec(input_size=4)


def test_bad_image_is_rejected():
    with pytest.raises(ValueError):
        align_face(np.zeros((10, 10), np.uint8), None, PreprocessSpec())


def test_detector_on_a_real_chip_lands_near_the_template(utkface_dir, yunet_path):
    """The template is UTKFace-chip geometry: a detected chip's landmarks sit near it."""
    detector = FaceDetector(yunet_path)
    image = cv2.imread(str(sorted(utkface_dir.iterdir())[0]))
    faces = detector.detect(image)
    assert faces, "YuNet found no face in a UTKFace chip"
    points = faces[0].landmarks / [image.shape[1], image.shape[0]]
    assert np.abs(points - np.array(CANONICAL_LANDMARKS)).max() < 0.1
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []


def test_missing_detector_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="face detector model not found"):
        FaceDetector(tmp_path / "nope.onnx")
