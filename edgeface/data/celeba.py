"""Multi-label face-attribute readers: CelebA's official list files and a generic CSV (LFWA exports and the like).

Both are :mod:`edgeface.data.datasets` readers (``--format celeba`` / ``--format attributes-csv``) and
yield :class:`~edgeface.data.datasets.Sample` rows whose targets are

* ``attributes``: (A,) 0/1 in the set's attribute order (:func:`attribute_names`),
* ``landmarks``: (10,) x0, y0, ..., x4, y4 in the image's own pixel frame (zeros when unknown),
* ``landmark_mask``: 1 with landmarks, 0 for an attributes-only sample (its landmark loss is masked).

A sample with landmarks also carries them as ``Sample.landmarks``, so :func:`prepare_faces` aligns it onto
the template with them; one without is resized (CelebA's aligned images are roughly aligned already).

The landmarks are taken in the frame of the image files on disk (CelebA's own files use the 178x218 frame;
a downscaled copy ships landmarks in its own frame). Each image's frame is read from the image; landmarks
outside it are reported as bad data and the sample keeps its attributes only. Malformed rows and missing
images are skipped and counted (or fatal with ``--strict``) through :class:`DataIssues`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgeface.data.datasets import DataIssues, Sample, open_text, register_reader
from edgeface.errors import DataError
from edgeface.fileio import text_path

ATTR_FILE = "list_attr_celeba.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIRS = ("img_align_celeba", "img_align_celeba_png", "images", ".")
LANDMARK_COLUMNS = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)
PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def decode_binary(values: list[str], where: str) -> np.ndarray:
    """CelebA's +1/-1 or a CSV's 0/1 -> float32 0/1; anything else (``0.5``, ``inf``, ``nan``) is a ValueError
    naming ``where``."""
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        raise ValueError(f"{where}: attribute values must be 0/1 or -1/+1") from None
    allowed = (-1.0, 1.0) if np.any(numbers == -1) else (0.0, 1.0)
    if not np.all(np.isin(numbers, allowed)):
        raise ValueError(f"{where}: attribute values must be 0/1 or -1/+1 (one coding per row)")
    return (numbers == 1).astype(np.float32)


def finite_landmarks(values: list[float]) -> np.ndarray:
    """10 numbers -> 5x2 float32 points; NaN or infinity is a ValueError (it would pass every bounds check and
    train the network to NaN)."""
    points = np.array(values, dtype=np.float32).reshape(5, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError("landmarks must be finite")
    return points


def _list_file(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / "Anno" / name, root / "Eval" / name):
        if candidate.is_file():
            return candidate
    return None


def _image_dir(root: Path, first_name: str) -> Path:
    for name in IMAGE_DIRS:
        if (root / name / first_name).is_file():
            return root / name
    raise FileNotFoundError(f"cannot find image {first_name} under {root} (looked in {', '.join(IMAGE_DIRS)})")


def image_frame(path: Path, exact: bool = False) -> tuple[int, int] | None:
    """(width, height) of an image file; None when it cannot be decoded. A JPEG is decoded at 1/8 scale
    (libjpeg's DCT scaling: cheap) unless ``exact``, which gives an upper bound up to 7 px too large."""
    import cv2

    if exact or path.suffix.lower() not in (".jpg", ".jpeg"):
        image = cv2.imread(text_path(path), cv2.IMREAD_UNCHANGED)
        return None if image is None else (image.shape[1], image.shape[0])
    small = cv2.imread(text_path(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return None if small is None else (small.shape[1] * 8, small.shape[0] * 8)


def _outside(points: np.ndarray, width: float, height: float) -> bool:
    return bool(np.any(points < 0) or np.any(points[:, 0] > width) or np.any(points[:, 1] > height))


def _sample(path: Path, labels: np.ndarray, landmarks: np.ndarray | None, split: str | None,
            issues: DataIssues) -> Sample | None:
    """One Sample, or None (reported) when the image is missing; landmarks that leave the image are dropped."""
    if not path.is_file():
        issues.report(f"image not found: {path}")
        return None
    if landmarks is not None:
        frame = image_frame(path)
        if frame is not None and _outside(landmarks, frame[0] - 8, frame[1] - 8):  # near the edge: measure exactly
            frame = image_frame(path, exact=True)
        if frame is None:
            issues.report(f"cannot decode image: {path}")
            return None
        if _outside(landmarks, *frame):
            issues.report(f"landmarks outside the {frame[0]}x{frame[1]} image frame (trained on attributes only): "
                          f"{path}")
            landmarks = None
    flat = np.zeros(10, np.float32) if landmarks is None else landmarks.reshape(10).astype(np.float32)
    targets = {"attributes": labels, "landmarks": flat, "landmark_mask": float(landmarks is not None)}
    return Sample(path, targets, split=split, landmarks=landmarks)


def _celeba_landmarks(path: Path, issues: DataIssues) -> dict[str, np.ndarray]:
    """``list_landmarks_align_celeba.txt``: count line, the 10 column names, then ``NAME x0 y0 ... x4 y4``."""
    lines = open_text(path).read().splitlines()
    if len(lines) < 2 or lines[1].split() != list(LANDMARK_COLUMNS):
        raise DataError(f"{path}: not a CelebA landmark file (its second line must name the 10 columns)")
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 11:
                raise ValueError
            out[parts[0]] = finite_landmarks([float(v) for v in parts[1:]])
        except ValueError:
            issues.report(f"{path}:{lineno}: malformed landmark row (expected NAME and 10 finite numbers)")
    return out


def _celeba_partition(path: Path, issues: DataIssues) -> dict[str, str]:
    """``list_eval_partition.txt``: ``NAME 0|1|2`` (train / val / test)."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(open_text(path).read().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in PARTITIONS:
            issues.report(f"{path}:{lineno}: malformed partition row (expected NAME 0|1|2)")
            continue
        out[parts[0]] = PARTITIONS[parts[1]]
    return out


def _celeba_attr_lines(root: Path) -> tuple[Path, list[str]]:
    attr_path = _list_file(root, ATTR_FILE) if root.is_dir() else (root if root.name == ATTR_FILE else None)
    if attr_path is None:
        raise FileNotFoundError(f"no {ATTR_FILE} in {root} (expected a CelebA-format folder)")
    lines = open_text(attr_path).read().splitlines()
    if len(lines) < 3 or not lines[1].split() or not any(line.split() for line in lines[2:]):
        raise DataError(f"{attr_path}: not a CelebA attribute file (count line, names line, rows)")
    return attr_path, lines


@register_reader("celeba")
def read_celeba(path: Path, issues: DataIssues, **_) -> list[Sample]:
    """A CelebA-format folder: ``list_attr_celeba.txt`` (required), ``list_landmarks_align_celeba.txt`` and
    ``list_eval_partition.txt`` when present (in the folder or its ``Anno/`` / ``Eval/``); images in
    ``img_align_celeba/`` or the folder itself. Test-partition rows are kept with split ``test``."""
    attr_path, lines = _celeba_attr_lines(path)
    root = attr_path.parent.parent if attr_path.parent.name == "Anno" else attr_path.parent
    names = lines[1].split()
    landmark_path = _list_file(root, LANDMARK_FILE)
    landmarks = _celeba_landmarks(landmark_path, issues) if landmark_path else {}
    partition_path = _list_file(root, PARTITION_FILE)
    partition = _celeba_partition(partition_path, issues) if partition_path else {}
    image_dir = _image_dir(root, next(line.split()[0] for line in lines[2:] if line.split()))
    samples = []
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        where = f"{attr_path}:{lineno}"
        if len(parts) != len(names) + 1:
            issues.report(f"{where}: {len(parts) - 1} values, expected {len(names)}")
            continue
        try:
            labels = decode_binary(parts[1:], where)
        except ValueError as e:
            issues.report(str(e))
            continue
        sample = _sample(image_dir / parts[0], labels, landmarks.get(parts[0]), partition.get(parts[0]), issues)
        if sample is not None:
            samples.append(sample)
    return samples


@register_reader("attributes-csv")
def read_attribute_csv(path: Path, issues: DataIssues, image_col: str = "image", image_root: Path | None = None,
                       **_) -> list[Sample]:
    """A multi-label CSV: an image column, one 0/1 or -1/+1 column per attribute, optionally the 10 CelebA
    landmark columns (``lefteye_x`` ... ``rightmouth_y``, pixels; empty cells = no landmarks) and a
    ``partition`` column (train/val/test). Image paths are relative to ``image_root`` (default: the CSV's folder).
    """
    names, has_landmarks = _csv_columns(path, image_col)
    root = Path(image_root) if image_root else path.parent
    samples = []
    with open_text(path) as f:
        for lineno, raw in enumerate(csv.DictReader(f), start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}  # None: extra cells
            where = f"{path}:{lineno}"
            try:
                labels = decode_binary([row.get(n, "") for n in names], where)
                landmarks = None
                if has_landmarks and any(row.get(c) for c in LANDMARK_COLUMNS):
                    landmarks = finite_landmarks([float(row[c]) for c in LANDMARK_COLUMNS])
            except ValueError as e:
                issues.report(str(e) if where in str(e) else f"{where}: landmark values must be finite numbers")
                continue
            sample = _sample(root / row[image_col], labels, landmarks, row.get("partition") or None, issues)
            if sample is not None:
                samples.append(sample)
    return samples


def _csv_columns(path: Path, image_col: str) -> tuple[list[str], bool]:
    if not path.is_file():
        raise DataError(f"attribute CSV must be a file: {path}")
    with open_text(path) as f:
        header = [c.strip() for c in next(csv.reader(f), [])]
    if image_col not in header:
        raise DataError(f"{path}: no {image_col!r} column (columns: {', '.join(map(repr, header))})")
    names = [c for c in header if c not in (image_col, "partition") and c not in LANDMARK_COLUMNS]
    if not names:
        raise DataError(f"{path}: no attribute columns")
    return names, all(c in header for c in LANDMARK_COLUMNS)


def attribute_names(fmt: str, path: str | Path, image_col: str = "image") -> list[str]:
    """The attribute names of a data set, in the order of its samples' ``attributes`` targets."""
    path = Path(path)
    if fmt == "celeba":
        return _celeba_attr_lines(path)[1][1].split()
    if fmt == "attributes-csv":
        return _csv_columns(path, image_col)[0]
    raise ValueError(f"{fmt!r} is not an attribute data format (use celeba or attributes-csv)")
