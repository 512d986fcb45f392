"""Property-based fuzzing of the data readers (issue 15): random or mutated CelebA attribute / landmark lists,
attribute CSVs, UTKFace file names and labels.csv give parsed samples with finite targets, counted bad rows, or
one line of UserError; never another exception. Bounded (max_examples, no deadline) to stay a few seconds."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeface.data.celeba import LANDMARK_COLUMNS
from edgeface.data.datasets import DataIssues, Sample, load_samples
from edgeface.errors import UserError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
IMAGES = [f"{i:06d}.jpg" for i in range(3)]
LANDMARKS = "69 109 106 113 77 142 73 152 108 154"
ATTR_TEXT = "3\nSmiling Male\n" + "".join(f"{n} {1 - 2 * (i % 2)} -1\n" for i, n in enumerate(IMAGES))
LANDMARK_TEXT = "3\n" + " ".join(LANDMARK_COLUMNS) + "\n" + "".join(f"{n} {LANDMARKS}\n" for n in IMAGES)
LABELS_TEXT = "image,label,label_std\n" + "".join(f"{n},{20 + i},{1.5 + i}\n" for i, n in enumerate(IMAGES))
ATTR_CSV_TEXT = ("image,Smiling,Male," + ",".join(LANDMARK_COLUMNS) + ",partition\n"
                 + "".join(f"{n},1,0,{LANDMARKS.replace(' ', ',')},train\n" for n in IMAGES))
# what hand-edited or damaged list files hold: numbers, signs, separators, words for infinity, a BOM, NULs, CRs
PIECES = st.text(alphabet="0123456789 -+.,eE\n\r\t\x00\ufeffinfatyNI_jpgxé", max_size=12)


def mutated(base: str) -> st.SearchStrategy[str]:
    """``base`` with a few spans replaced by bits of text a damaged file holds; or any text at all."""
    edits = st.lists(st.tuples(st.integers(0, len(base)), st.integers(0, 8), PIECES), min_size=1, max_size=4)

    def apply(changes: list[tuple[int, int, str]]) -> str:
        text = base
        for at, cut, new in changes:
            at = min(at, len(text))
            text = text[:at] + new + text[at + cut:]
        return text

    return st.one_of(edits.map(apply), st.text(max_size=200))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "img_align_celeba"
    folder.mkdir()
    for i, name in enumerate(IMAGES):
        cv2.imwrite(str(folder / name), np.random.default_rng(i).integers(0, 255, (218, 178, 3), dtype=np.uint8))
    return folder


def read_or_refuse(fmt: str, path: Path, **options) -> list[Sample]:
    """The samples, every target finite; or an empty list when the reader refused the file in one line."""
    issues = DataIssues()
    try:
        samples = load_samples(fmt, path, issues, **options)
    except (UserError, FileNotFoundError) as e:
        assert len(str(e).strip().splitlines()) == 1, str(e)
        return []
    for s in samples:
        for key, value in s.targets.items():
            values = np.atleast_1d(np.asarray(value, np.float64))
            if key == "sigma":  # NaN = no rater std given: the task's default applies
                assert not np.any(np.isinf(values))
            else:
                assert np.all(np.isfinite(values)), (key, value)
        if "attributes" in s.targets:
            assert set(np.unique(s.targets["attributes"])) <= {0.0, 1.0}
        assert s.landmarks is None or np.all(np.isfinite(s.landmarks))
    return samples


@FUZZ
@given(attrs=mutated(ATTR_TEXT), landmarks=mutated(LANDMARK_TEXT))
def test_celeba_lists(images, attrs, landmarks):
    root = images.parent
    (root / "list_attr_celeba.txt").write_text(attrs, encoding="utf-8")
    (root / "list_landmarks_align_celeba.txt").write_text(landmarks, encoding="utf-8")
    read_or_refuse("celeba", root)


@FUZZ
@given(text=mutated(ATTR_CSV_TEXT))
def test_attribute_csv(images, text):
    (images / "attrs.csv").write_text(text, encoding="utf-8")
    read_or_refuse("attributes-csv", images / "attrs.csv")


@FUZZ
@given(text=mutated(LABELS_TEXT))
def test_labels_csv(images, text):
    (images / "labels.csv").write_text(text, encoding="utf-8")
    for sample in read_or_refuse("csv", images / "labels.csv"):
        assert math.isfinite(sample.targets["label"])


@FUZZ
@given(data=st.binary(max_size=300))
def test_list_files_that_are_not_text(images, data):
    (images.parent / "list_attr_celeba.txt").write_bytes(data)
    (images / "labels.csv").write_bytes(data)
    read_or_refuse("celeba", images.parent)
    read_or_refuse("csv", images / "labels.csv")


@FUZZ
@given(names=st.lists(st.text(alphabet="0123456789_.-jpgchiJPGx", min_size=1, max_size=30), max_size=6))
def test_utkface_names(tmp_path_factory, names):
    folder = tmp_path_factory.mktemp("utk")
    for name in names:
        fd = os.open(folder / f"{name}.jpg", os.O_CREAT | os.O_WRONLY)  # the reader goes by name only
        os.close(fd)
    for sample in read_or_refuse("utkface", folder):
        assert sample.targets["label"] >= 0 and sample.path.name.lower().endswith(".jpg")
