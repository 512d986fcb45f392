"""Face data sets: one reader per on-disk format, one alignment pass (cached), in-memory crops for training.

A reader turns a path into ``list[Sample]`` (image path + a dict of targets + optional group/split/landmarks);
:func:`prepare_faces` aligns every image once with :func:`edgeface.faces.face_crop` (the one preprocessing
definition) and caches the uint8 crops keyed by (images, detector, crop spec); :class:`FaceDataset` serves
them to a DataLoader with the paper's augmentation. Targets are a dict so any task can carry its own
(``label``/``sigma`` for DLDL; attribute vectors or landmarks for others). Each crop also keeps the 2x3
image->crop transform, so image-frame landmark targets can be mapped into crop coordinates.

Bad data (missing / undecodable image, malformed name, label outside the label space, no face) is
reported with its path through :class:`DataIssues`: skipped and counted with a warning by default,
fatal with ``strict``. An empty data set is an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeface.errors import DataError
from edgeface.faces import IMAGE_SUFFIXES, NoFaceError, face_crop, read_image
from edgeface.fileio import atomic_path, sha256_file, text_path
from edgeface.labels import LabelSpace
from edgeface.preprocess import PreprocessSpec, alignment_matrix
from edgeface.progress import progress as progress_bar


def open_text(path: Path) -> io.StringIO:
    """A list or CSV file's text, UTF-8 with or without the byte-order mark spreadsheet programs put first;
    other bytes are a DataError naming the file (read whole: a decode error mid-way would leave half a set)."""
    try:
        return io.StringIO(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None


@dataclass
class Sample:
    path: Path
    targets: dict[str, float | np.ndarray]
    group: str | None = None  # identity (FG-NET subject, MORPH id) for person-disjoint splits
    split: str | None = None  # "train" / "val" when the data set ships its own split
    landmarks: np.ndarray | None = None  # 5x2 image pixels: align with these instead of a detector


class DataIssues:
    """Collects bad items (skip + count, warn once) or raises on the first one when ``strict``."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.items: list[str] = []

    def report(self, message: str) -> None:
        if self.strict:
            raise DataError(f"bad data (strict): {message}")
        self.items.append(message)

    def warn(self, what: str) -> None:
        if self.items:
            shown = "; ".join(self.items[:3]) + ("; ..." if len(self.items) > 3 else "")
            warnings.warn(f"{what}: skipped {len(self.items)} bad item(s): {shown}", stacklevel=2)


Reader = Callable[..., list[Sample]]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator: make a reader reachable as ``--format name``."""

    def wrap(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return wrap


def _dldl(label: float, sigma: float = float("nan")) -> dict[str, float]:
    return {"label": float(label), "sigma": float(sigma)}


UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$", re.IGNORECASE)


@register_reader("utkface")
def read_utkface(path: Path, issues: DataIssues, **_) -> list[Sample]:
    """UTKFace: ``AGE_GENDER_RACE_DATETIME.jpg[.chip.jpg]`` in a folder (or its ``images/`` subfolder)."""
    folder = path / "images" if (path / "images").is_dir() else path
    if not folder.is_dir():
        raise DataError(f"UTKFace data must be a folder: {path}")
    samples = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = UTKFACE_NAME.match(p.name)
        if m is None:
            issues.report(f"malformed UTKFace name: {p}")
            continue
        samples.append(Sample(p, _dldl(int(m.group(1)))))
    return samples


def _float(text: str, what: str, where: str) -> float:
    """A label cell as a finite number; NaN and infinity are bad rows like any other non-number."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} {text!r} is not a finite number")
    return value


@register_reader("csv")
def read_csv(path: Path, issues: DataIssues, image_col: str = "image", label_col: str = "label",
             std_col: str | None = None, **_) -> list[Sample]:
    """Generic ``image,label[,label_std]`` CSV (column names configurable; image paths relative to the CSV).

    Covers ChaLearn LAP apparent age (annotator std) and rater-averaged attractiveness such as 3DSK
    (``--label-col attractiveness_mean --std-col attractiveness_std``).
    """
    if not path.is_file():
        raise DataError(f"CSV data must be a file: {path}")
    with open_text(path) as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        std_col = std_col or ("label_std" if "label_std" in columns else None)
        for col in (image_col, label_col, std_col):
            if col is not None and col not in columns:
                raise DataError(f"{path}: no column {col!r} (columns: {', '.join(map(repr, columns))})")
        samples = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                if not row[image_col]:
                    raise ValueError(f"{where}: no image name")
                label = _float(row[label_col], label_col, where)
                sigma = _float(row[std_col], std_col, where) if std_col else float("nan")
            except ValueError as e:
                issues.report(str(e))
                continue
            samples.append(Sample(path.parent / row[image_col], _dldl(label, sigma)))
    return samples


@register_reader("morph")
def read_morph(path: Path, issues: DataIssues, image_root: Path | None = None, **_) -> list[Sample]:
    """MORPH II CSV list (``id_num, ..., age, ..., photo``); ``photo`` relative to ``image_root`` (default the
    CSV's folder); ``id_num`` is the group so splits can keep people apart."""
    if not path.is_file():
        raise DataError(f"MORPH data must be the CSV list: {path}")
    root = image_root or path.parent
    with open_text(path) as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        for col in ("id_num", "age", "photo"):
            if col not in columns:
                raise DataError(f"{path}: not a MORPH II list, no column {col!r}")
        samples = []
        for line, row in enumerate(reader, start=2):
            photo, person = (row["photo"] or "").strip(), (row["id_num"] or "").strip()  # None: a short row
            try:
                if not photo:
                    raise ValueError(f"{path}:{line}: no photo name")
                age = _float(row["age"], "age", f"{path}:{line}")
            except ValueError as e:
                issues.report(str(e))
                continue
            samples.append(Sample(root / photo, _dldl(age), group=person))
    return samples


FGNET_NAME = re.compile(r"^(\d{3})A(\d{2})[a-z]?\.jpe?g$", re.IGNORECASE)


@register_reader("fgnet")
def read_fgnet(path: Path, issues: DataIssues, **_) -> list[Sample]:
    """FG-NET folder: ``001A02.JPG`` = subject 001 at age 2 (the subject is the group, for leave-one-person-out)."""
    folder = path / "images" if (path / "images").is_dir() else path
    if not folder.is_dir():
        raise DataError(f"FG-NET data must be a folder: {path}")
    samples = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = FGNET_NAME.match(p.name)
        if m is None:
            issues.report(f"malformed FG-NET name: {p}")
            continue
        samples.append(Sample(p, _dldl(int(m.group(2))), group=m.group(1)))
    return samples


SCUT_SPLIT_DIR = "train_test_files/split_of_60%training and 40%testing"


@register_reader("scut")
def read_scut(path: Path, issues: DataIssues, image_root: Path | None = None, **_) -> list[Sample]:
    """SCUT-FBP5500: a split file of ``name score`` lines, or the data set folder (its own 60/40 split:
    ``train.txt`` -> train, ``test.txt`` -> val). Images in ``image_root`` or the data set's ``Images/``."""
    if path.is_dir():
        split_dir = path / SCUT_SPLIT_DIR
        files = [(split_dir / "train.txt", "train"), (split_dir / "test.txt", "val")]
        if not all(f.is_file() for f, _ in files):
            raise DataError(f"{path}: no SCUT-FBP5500 split files under {SCUT_SPLIT_DIR}/")
        root = image_root or path / "Images"
    elif path.is_file():
        files = [(path, None)]
        root = image_root or next((p / "Images" for p in path.parents if (p / "Images").is_dir()), path.parent)
    else:
        raise DataError(f"SCUT-FBP5500 data not found: {path}")
    samples = []
    for file, split in files:
        for line_no, line in enumerate(open_text(file).read().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"{file}:{line_no}"
            if len(parts) != 2:
                issues.report(f"{where}: expected 'name score'")
                continue
            try:
                score = _float(parts[1], "score", where)
            except ValueError as e:
                issues.report(str(e))
                continue
            samples.append(Sample(root / parts[0], _dldl(score), split=split))
    return samples


TASK_TARGETS = {"age": "label", "attractiveness": "label", "attributes": "attributes"}  # card task -> its target


def load_samples(fmt: str, data: str | Path, issues: DataIssues, label_space: LabelSpace | None = None,
                 task: str | None = None, **options) -> list[Sample]:
    """Read a data set with the named reader; drop labels outside ``label_space``; refuse an empty set, and a
    set whose reader gives no targets for ``task`` (a card task: age data for an attribute model)."""
    if fmt not in READERS:
        raise ValueError(f"unknown data format {fmt!r}; known: {', '.join(sorted(READERS))}")
    path = Path(text_path(data))
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    samples = READERS[fmt](path, issues, **options)
    if label_space is not None:
        kept = []
        for s in samples:
            label = s.targets.get("label")
            if label is not None and not label_space.contains(float(label)):
                issues.report(f"label {label:g} outside {label_space.start:g}..{label_space.stop:g}: {s.path}")
                continue
            kept.append(s)
        samples = kept
    if not samples:
        raise DataError(f"no usable samples in {path} (format {fmt})")
    if task in TASK_TARGETS and TASK_TARGETS[task] not in samples[0].targets:
        readers = ", ".join(f for f in READERS if f != fmt)
        raise DataError(f"--format {fmt} reads {', '.join(samples[0].targets)} targets; a model for {task} needs "
                        f"{TASK_TARGETS[task]} (formats: {readers})")
    return samples


def subsample(samples: list[Sample], max_images: int, seed: int = 0) -> list[Sample]:
    """A seeded random subset of at most ``max_images`` samples (in their original order); 0 keeps all."""
    if not max_images or len(samples) <= max_images:
        return samples
    keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[:max_images])
    return [samples[i] for i in keep]


@dataclass
class FaceSet:
    """Aligned uint8 crops in memory with their stacked targets."""

    name: str
    crops: np.ndarray  # N x S x S x 3 uint8, spec colour order
    targets: dict[str, np.ndarray]
    paths: list[str]
    transforms: np.ndarray  # N x 2 x 3 image -> crop pixels
    groups: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.crops)

    def subset(self, indices: np.ndarray | list[int]) -> FaceSet:
        idx = np.asarray(indices, dtype=np.int64)
        return FaceSet(self.name, self.crops[idx], {k: v[idx] for k, v in self.targets.items()},
                       [self.paths[i] for i in idx], self.transforms[idx],
                       [self.groups[i] for i in idx], [self.splits[i] for i in idx])


def stack_targets(target_dicts: list[dict]) -> dict[str, np.ndarray]:
    """Per-sample target dicts -> one float32 array per key."""
    keys = target_dicts[0].keys() if target_dicts else []
    return {k: np.stack([np.asarray(t[k], dtype=np.float32) for t in target_dicts]) for k in keys}


def _cache_key(samples: list[Sample], spec: PreprocessSpec, detector_path: Path | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    h.update((sha256_file(detector_path) if detector_path else "aligned").encode())
    for s in samples:
        st = s.path.stat() if s.path.exists() else None
        lm = s.landmarks.round(2).tolist() if s.landmarks is not None else None
        h.update(f"{s.path.resolve()}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}|{lm}\n".encode(
            "utf-8", "surrogateescape"))
    return h.hexdigest()[:24]


def _resize_matrix(shape: tuple[int, ...], size: int) -> np.ndarray:
    h, w = shape[:2]
    return np.array([[size / w, 0, 0], [0, size / h, 0]], dtype=np.float32)


def prepare_faces(samples: list[Sample], spec: PreprocessSpec, issues: DataIssues, name: str,
                  detector_path: str | Path | None = None, cache_dir: str | Path | None = None,
                  progress: bool = True) -> FaceSet:
    """Align every sample once (YuNet when ``detector_path`` is given, else already-aligned chips) into crops.

    With ``cache_dir`` the crops are stored as ``faces-<key>.npz`` keyed by (image files, detector, crop
    spec) and reused. Unreadable images and images without a face go to ``issues``.
    """
    detector_path = Path(detector_path) if detector_path else None
    cache_file = Path(cache_dir) / f"faces-{_cache_key(samples, spec, detector_path)}.npz" if cache_dir else None
    cached = read_face_cache(cache_file, len(samples), spec.input_size) if cache_file is not None else None
    if cached is not None:
        crops, transforms, ok, failures = cached
    else:
        detector = None
        if detector_path is not None:
            from edgeface.detector import FaceDetector

            detector = FaceDetector(detector_path)
        crops_list, transform_list, ok, failures = [], [], np.zeros(len(samples), bool), []
        for i, s in enumerate(progress_bar(samples, f"align {name}", progress, unit="img", leave=False)):
            try:
                image = read_image(s.path)
                landmarks = s.landmarks
                if landmarks is None and detector is not None:
                    faces = detector.detect(image)
                    if not faces:
                        raise NoFaceError(f"no face found: {s.path}")
                    landmarks = faces[0].landmarks
                crop = face_crop(image, spec, landmarks=landmarks)
                matrix = alignment_matrix(landmarks, spec) if landmarks is not None else _resize_matrix(
                    image.shape, spec.input_size)
            except ValueError as e:  # unreadable image, no face, degenerate landmarks
                failures.append(str(e) if str(s.path) in str(e) else f"{e}: {s.path}")
                continue
            crops_list.append(crop)
            transform_list.append(matrix)
            ok[i] = True
        size = spec.input_size
        crops = np.stack(crops_list) if crops_list else np.zeros((0, size, size, 3), np.uint8)
        transforms = np.stack(transform_list).astype(np.float32) if transform_list else np.zeros((0, 2, 3), np.float32)
        if cache_file is not None:
            with atomic_path(cache_file) as tmp, open(tmp, "wb") as f:
                np.savez(f, crops=crops, transforms=transforms, ok=ok, failures=np.array(failures, dtype=str))
    for message in failures:
        issues.report(message)
    kept = [s for s, good in zip(samples, ok, strict=True) if good]
    if not kept:
        raise ValueError(f"no usable faces in {name}: all {len(samples)} images failed ({failures[0]})")
    targets = stack_targets([s.targets for s in kept])
    if "landmarks" in targets:  # image-pixel points -> [0, 1] coordinates of the crop each image became
        targets["landmarks"] = crop_landmarks(targets["landmarks"], transforms, spec.input_size)
    return FaceSet(name, crops, targets, [str(s.path) for s in kept], transforms,
                   [s.group for s in kept], [s.split for s in kept])


def read_face_cache(path: Path, count: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list] | None:
    """(crops, transforms, ok, failures) from a crop cache file; None when there is none, or when it is damaged
    (truncated, foreign, shapes that do not fit ``count`` samples): the caller aligns again and rewrites it."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            crops, transforms, ok, failures = z["crops"], z["transforms"], z["ok"], list(z["failures"])
    except Exception as e:  # zipfile, numpy and OS errors alike mean: not a usable cache
        warnings.warn(f"rebuilding the damaged face cache {path} ({type(e).__name__})", stacklevel=3)
        return None
    if (ok.shape != (count,) or ok.dtype != bool or crops.shape != (int(ok.sum()), size, size, 3)
            or crops.dtype != np.uint8 or transforms.shape != (len(crops), 2, 3)):
        warnings.warn(f"rebuilding the face cache {path}: its arrays do not fit {count} samples", stacklevel=3)
        return None
    return crops, transforms, ok, failures


def crop_landmarks(points: np.ndarray, transforms: np.ndarray, size: int) -> np.ndarray:
    """(N, 2K) image-pixel landmarks -> (N, 2K) crop coordinates in [0, 1], through each crop's 2x3 transform."""
    pts = points.reshape(len(points), -1, 2).astype(np.float64)
    mapped = np.einsum("nkj,nij->nki", pts, transforms[:, :, :2]) + transforms[:, None, :, 2]
    return (mapped / size).reshape(points.shape).astype(np.float32)


def split_indices(faces: FaceSet, val_fraction: float = 0.2, seed: int = 0, folds: int = 0, fold: int = 0,
                  protocol: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices.

    protocol ``auto``: the data set's own split when it has one, else a seeded random split by file
    (``val_fraction``), or fold ``fold`` of ``folds`` seeded folds (grouped by person when groups exist);
    ``lopo``: leave-one-person-out, ``fold`` indexes the sorted persons (FG-NET's protocol).
    """
    n = len(faces)
    if protocol == "lopo":
        people = sorted({g for g in faces.groups if g is not None})
        if not people:
            raise ValueError("leave-one-person-out needs a data set with person ids (fgnet, morph)")
        if not 0 <= fold < len(people):
            raise ValueError(f"--fold must be in 0..{len(people) - 1} for leave-one-person-out")
        val = np.array([g == people[fold] for g in faces.groups])
        return np.flatnonzero(~val), np.flatnonzero(val)
    if protocol != "auto":
        raise ValueError(f"unknown split protocol {protocol!r}; use auto or lopo")
    if any(s is not None for s in faces.splits):
        return (np.array([i for i, s in enumerate(faces.splits) if s == "train"], dtype=np.int64),
                np.array([i for i, s in enumerate(faces.splits) if s == "val"], dtype=np.int64))
    rng = np.random.default_rng(seed)
    grouped = all(g is not None for g in faces.groups)
    units = sorted(set(faces.groups)) if grouped else list(range(n))
    order = rng.permutation(len(units))
    if folds:
        if not 0 <= fold < folds or folds < 2:
            raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got fold {fold} of {folds}")
        val_units = {units[j] for j in order[fold::folds]}
    else:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        val_units = {units[j] for j in order[: max(1, int(round(len(units) * val_fraction)))]}
    keys = faces.groups if grouped else range(n)
    val = np.array([k in val_units for k in keys])
    train_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"split leaves an empty train or val set ({n} samples)")
    return train_idx, val_idx
