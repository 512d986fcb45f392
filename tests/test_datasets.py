"""Every reader on small fixtures in its exact on-disk format; bad data, cache, splits, augmentation."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.data import datasets as ds
from edgeface.data.augment import AugmentConfig, augment_crop
from edgeface.data.datasets import DataIssues, load_samples, prepare_faces, split_indices, subsample
from edgeface.labels import AGE, attractiveness_space
from edgeface.preprocess import PreprocessSpec

SPEC = PreprocessSpec(input_size=32)


def write_image(path: Path, seed: int = 0, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_utkface_reader_skips_malformed_names(tmp_path):
    folder = tmp_path / "utk" / "images"
    for i, name in enumerate(["25_0_1_20170116174525125.jpg.chip.jpg", "3_1_4_20161219222749039.jpg.chip.jpg",
                              "110_0_0_20170112213500903.jpg.chip.jpg", "61_1_20170109150557335.jpg.chip.jpg",
                              "40_0_2_20170104.jpg"]):
        write_image(folder / name, i)
    (folder / "notes.txt").write_text("not an image")
    issues = DataIssues()
    samples = load_samples("utkface", tmp_path / "utk", issues, AGE)
    assert sorted(s.targets["label"] for s in samples) == [3, 25, 40]
    assert len(issues.items) == 2  # one malformed name (no race field), one age outside 0..100
    assert any("malformed" in m and "61_1_" in m for m in issues.items)
    assert any("110" in m and "outside" in m for m in issues.items)
    with pytest.raises(ValueError, match="strict.*61_1_|strict.*110"):
        load_samples("utkface", tmp_path / "utk", DataIssues(strict=True), AGE)


def test_csv_reader_named_columns_relative_paths(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / "images" / name)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("image,attractiveness_mean,attractiveness_std,n_raters\n"
                        "images/a.jpg,3.02,1.40,200\nimages/b.jpg,oops,1.1,200\nimages/c.jpg,6.5,0.9,200\n")
    issues = DataIssues()
    samples = load_samples("csv", csv_path, issues, attractiveness_space(1, 7), label_col="attractiveness_mean",
                           std_col="attractiveness_std")
    assert [s.path for s in samples] == [tmp_path / "images/a.jpg", tmp_path / "images/c.jpg"]
    assert samples[0].targets == {"label": pytest.approx(3.02), "sigma": pytest.approx(1.40)}
    assert len(issues.items) == 1 and "labels.csv:3" in issues.items[0]
    with pytest.raises(ValueError, match="no column 'label'"):
        load_samples("csv", csv_path, DataIssues())


def test_csv_default_label_std_column(tmp_path):
    (tmp_path / "l.csv").write_text("image,label,label_std\nx.jpg,30,4.5\n")
    (sample,) = load_samples("csv", tmp_path / "l.csv", DataIssues(), AGE)
    assert sample.targets["sigma"] == pytest.approx(4.5) and sample.path == tmp_path / "x.jpg"


def test_morph_reader(tmp_path):
    (tmp_path / "morph.csv").write_text(
        "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo\n"
        "003357,00,11/30/1975,01/12/1997,B,M,0,21,0,0,Album2/003357_00M21.JPG\n"
        "003357,01,11/30/1975,03/02/1999,B,M,0,23,2,0,Album2/003357_01M23.JPG\n"
        "125000,00,01/01/1950,01/01/2000,W,F,0,50,0,0,Album2/125000_00F50.JPG\n")
    samples = load_samples("morph", tmp_path / "morph.csv", DataIssues(), AGE)
    assert [s.targets["label"] for s in samples] == [21, 23, 50]
    assert [s.group for s in samples] == ["003357", "003357", "125000"]
    assert samples[0].path == tmp_path / "Album2/003357_00M21.JPG"
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a MORPH II list"):
        load_samples("morph", tmp_path / "other.csv", DataIssues())


def fgnet_faces(tmp_path: Path) -> ds.FaceSet:
    for i, name in enumerate(["001A02.JPG", "001A10.JPG", "001A43a.JPG", "002A05.JPG", "002A18.JPG", "003A30.JPG"]):
        write_image(tmp_path / "fgnet" / name, i)
    write_image(tmp_path / "fgnet" / "readme.jpg", 9)
    issues = DataIssues()
    samples = load_samples("fgnet", tmp_path / "fgnet", issues, AGE)
    assert len(issues.items) == 1
    return prepare_faces(samples, SPEC, issues, "fgnet", cache_dir=None, progress=False)


def test_fgnet_reader_and_leave_one_person_out(tmp_path):
    faces = fgnet_faces(tmp_path)
    assert faces.groups == ["001", "001", "001", "002", "002", "003"]
    assert faces.targets["label"].tolist() == [2, 10, 43, 5, 18, 30]
    train, val = split_indices(faces, protocol="lopo", fold=1)
    assert val.tolist() == [3, 4] and train.tolist() == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="--fold must be in 0..2"):
        split_indices(faces, protocol="lopo", fold=3)


def test_scut_reader_own_split_and_single_file(tmp_path):
    root = tmp_path / "SCUT-FBP5500_v2"
    for i, name in enumerate(["hf1.jpg", "hm2.jpg", "af3.jpg"]):
        write_image(root / "Images" / name, i)
    split_dir = root / ds.SCUT_SPLIT_DIR
    split_dir.mkdir(parents=True)
    (split_dir / "train.txt").write_text("hf1.jpg 3.5\nhm2.jpg 2.25\n")
    (split_dir / "test.txt").write_text("af3.jpg 4.1\nbroken line here\n")
    issues = DataIssues()
    samples = load_samples("scut", root, issues, attractiveness_space(1, 5))
    assert [(s.path.name, s.split) for s in samples] == [("hf1.jpg", "train"), ("hm2.jpg", "train"), ("af3.jpg", "val")]
    assert len(issues.items) == 1
    faces = prepare_faces(samples, SPEC, issues, "scut", progress=False)
    train, val = split_indices(faces)
    assert train.tolist() == [0, 1] and val.tolist() == [2]
    only = load_samples("scut", split_dir / "train.txt", DataIssues(), attractiveness_space(1, 5))
    assert [s.path for s in only] == [root / "Images/hf1.jpg", root / "Images/hm2.jpg"] and only[0].split is None


def test_bad_images_skip_and_count_or_fail_strict(tmp_path):
    good = [write_image(tmp_path / f"{i}.jpg", i) for i in range(3)]
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(good[0].read_bytes()[:40])
    samples = [ds.Sample(p, {"label": 20.0, "sigma": np.nan}) for p in [*good, truncated, tmp_path / "missing.jpg"]]
    issues = DataIssues()
    faces = prepare_faces(samples, SPEC, issues, "bad", progress=False)
    assert len(faces) == 3 and faces.crops.shape == (3, 32, 32, 3) and faces.crops.dtype == np.uint8
    assert len(issues.items) == 2 and any("trunc.jpg" in m for m in issues.items)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        issues.warn("data")
    assert "skipped 2 bad item(s)" in str(caught[0].message)
    with pytest.raises(ValueError, match="strict.*trunc.jpg"):
        prepare_faces(samples, SPEC, DataIssues(strict=True), "bad", progress=False)
    with pytest.raises(ValueError, match="no usable faces"):
        prepare_faces(samples[3:], SPEC, DataIssues(), "bad", progress=False)


def test_empty_data_set_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable samples"):
        load_samples("utkface", tmp_path / "empty", DataIssues())
    with pytest.raises(ValueError, match="unknown data format"):
        load_samples("imagenet", tmp_path, DataIssues())
    with pytest.raises(FileNotFoundError):
        load_samples("csv", tmp_path / "nope.csv", DataIssues())


def test_cache_reuses_alignment(tmp_path, monkeypatch):
    samples = [ds.Sample(write_image(tmp_path / f"{i}.jpg", i), {"label": float(i), "sigma": np.nan})
               for i in range(4)]
    first = prepare_faces(samples, SPEC, DataIssues(), "c", cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("faces-*.npz"))) == 1

    def no_alignment(*_a, **_k):
        raise AssertionError("alignment ran again despite the cache")

    monkeypatch.setattr(ds, "face_crop", no_alignment)
    again = prepare_faces(samples, SPEC, DataIssues(), "c", cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(first.crops, again.crops)
    np.testing.assert_array_equal(first.transforms, again.transforms)
    monkeypatch.undo()
    prepare_faces(samples, PreprocessSpec(input_size=40), DataIssues(), "c", cache_dir=tmp_path / "cache",
                  progress=False)  # another crop spec is another cache entry
    assert len(list((tmp_path / "cache").glob("faces-*.npz"))) == 2


def test_seeded_splits_and_folds(tmp_path):
    n = 50
    faces = ds.FaceSet("x", np.zeros((n, 4, 4, 3), np.uint8), {"label": np.arange(n, dtype=np.float32)},
                       [str(i) for i in range(n)], np.zeros((n, 2, 3), np.float32), [None] * n, [None] * n)
    a_train, a_val = split_indices(faces, 0.2, seed=3)
    b_train, b_val = split_indices(faces, 0.2, seed=3)
    assert a_val.tolist() == b_val.tolist() and len(a_val) == 10 and len(a_train) == 40
    assert split_indices(faces, 0.2, seed=4)[1].tolist() != a_val.tolist()
    vals = [split_indices(faces, folds=5, fold=k, seed=0)[1] for k in range(5)]
    assert sorted(np.concatenate(vals).tolist()) == list(range(n))
    grouped = faces.subset(np.arange(n))
    grouped.groups = [str(i // 5) for i in range(n)]
    _, val = split_indices(grouped, folds=5, fold=0, seed=0)
    assert {grouped.groups[i] for i in val}.isdisjoint({grouped.groups[i] for i in range(n) if i not in set(val)})
    assert subsample(list(range(10)), 4, seed=1) == subsample(list(range(10)), 4, seed=1)
    assert len(subsample(list(range(10)), 4)) == 4 and subsample([1, 2], 0) == [1, 2]


def test_augment_is_seeded_and_keeps_shape():
    crop = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    cfg = AugmentConfig()
    (a, ma), (b, mb) = (augment_crop(crop, np.random.default_rng((1, 2, 3)), cfg) for _ in range(2))
    c, _ = augment_crop(crop, np.random.default_rng((1, 2, 4)), cfg)
    assert a.shape == crop.shape and a.dtype == np.uint8 and ma.shape == (2, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a, c)
    gray, _ = augment_crop(crop, np.random.default_rng(0), AugmentConfig(gray=1.0, flip=0.0))
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 1
    with pytest.raises(ValueError, match="unknown augmentation"):
        AugmentConfig.from_dict({"blur": 1})


def test_synthetic_label_is_in_the_pixels():
    from edgeface.data.synthetic import SYNTHETIC_NAME, synthetic_faces

    faces = synthetic_faces(60, SPEC, AGE, seed=1)
    assert faces.name.startswith("SYNTHETIC") and faces.name == SYNTHETIC_NAME
    labels = faces.targets["label"]
    assert labels.min() >= 1 and labels.max() <= 80
    hair = faces.crops[:, 3:8, 12:20].mean(axis=(1, 2, 3))  # the hair band greys with the label
    assert np.corrcoef(hair, labels)[0, 1] > 0.8


def test_yunet_alignment_on_real_unaligned_faces(attractiveness_dir, yunet_path, tmp_path):
    issues = DataIssues()
    samples = subsample(load_samples("csv", attractiveness_dir / "labels.csv", issues, attractiveness_space(1, 7),
                                     label_col="attractiveness_mean", std_col="attractiveness_std"), 3)
    faces = prepare_faces(samples, PreprocessSpec(input_size=64), issues, "3dsk", yunet_path,
                          tmp_path / "cache", progress=False)
    assert len(faces) == 3 and not issues.items
    assert np.all(np.isfinite(faces.targets["sigma"])) and faces.transforms.shape == (3, 2, 3)
