"""Shared by the convert / runner tests: a tiny age model trained for a few seconds on real UTKFace chips,
and one converted folder per session (cached here so every test module reuses it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeface.card import ModelCard
from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint
from edgeface.faces import face_crop, image_files, read_image
from edgeface.labels import AGE
from edgeface.models import create_model
from edgeface.models.checkpoint import save_checkpoint
from edgeface.preprocess import PreprocessSpec, to_input
from edgeface.train.losses import dldl_loss

SIZE = 32
SPEC = PreprocessSpec(input_size=SIZE)
CPU_TARGETS = ["onnx", "onnx-fp16", "onnx-int8", "openvino", "openvino-fp16", "openvino-int8"]
_CACHE: dict[str, object] = {}


def real_crops(folder: Path, count: int, spec: PreprocessSpec = SPEC) -> tuple[np.ndarray, np.ndarray]:
    """(crops, ages) of ``count`` UTKFace chips spread over the folder."""
    files = image_files(folder)
    files = [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]
    crops = np.stack([face_crop(read_image(p), spec) for p in files])
    return crops, np.array([float(p.name.split("_")[0]) for p in files], dtype=np.float32)


def train_tiny_age(path: Path, utkface_dir: Path) -> Path:
    """TinyAgeNet at 32 px: random convolutions with BatchNorm statistics taken from 384 real chips (so its
    activations are scaled like a trained net's), and the label-distribution head fitted (DLDL loss) on their
    pooled features. Seconds on a CPU, yet its ages follow the faces, so quantisation drift shows in the MAE."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    crops, ages = real_crops(utkface_dir, 384)
    x, y = torch.from_numpy(to_input(crops, SPEC)), torch.from_numpy(np.clip(ages, 0, 100))
    model = create_model("tinyagenet", label_space=AGE)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.momentum = None  # cumulative average: one pass sets the statistics
    with torch.no_grad():
        model.train()(x)
        model.eval()
        features = model.neck(model.pool(model.features(x)))
    bins = torch.from_numpy(AGE.bins).float()
    optimizer = torch.optim.Adam(model.head.fc.parameters(), lr=0.02)
    for _ in range(200):
        loss, _ = dldl_loss(model.head.fc(features), y, torch.full((len(y),), 3.0), bins)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    card = ModelCard("tinyagenet", "age", SPEC, AGE, data="utkface-dev (test fit, 100 steps)")
    save_checkpoint(path, model.eval(), card)
    return path


def tiny_checkpoint(tmp_path_factory, utkface_dir: Path) -> Path:
    if "checkpoint" not in _CACHE:
        _CACHE["checkpoint"] = train_tiny_age(tmp_path_factory.mktemp("ckpt") / "tiny.pt", utkface_dir)
    return _CACHE["checkpoint"]


# The random-trunk 32 px test model is far more sensitive to INT8 than a trained 224 px one (its head
# amplifies small feature differences), so its INT8 gate is 1 year; FP16 / FP32 keep the default 0.02.
# The default gates themselves are unit-tested in test_gate_rule_by_task_and_precision.
TEST_GATES = {"mae": {"fp32": 0.02, "fp16": 0.02, "int8": 1.0}, "mean_accuracy": 0.5}


def convert_options(cache_dir: Path, **overrides) -> ConvertOptions:
    """Small, quiet settings: 128 calibration images, 96 eval images, caches in the test's temp dir."""
    settings = {"calib_images": 128, "eval_images": 96, "cache_dir": str(cache_dir), "progress": False,
                "gates": TEST_GATES}
    return ConvertOptions(**{**settings, **overrides})


def converted(tmp_path_factory, utkface_dir: Path) -> tuple[Path, dict]:
    """(folder, manifest) of ``--to all`` with calibration and eval on real chips, built once per session."""
    if "converted" not in _CACHE:
        ckpt = tiny_checkpoint(tmp_path_factory, utkface_dir)
        root = tmp_path_factory.mktemp("converted")
        manifest = convert_checkpoint(ckpt, "all", utkface_dir, utkface_dir, root / "out",
                                      convert_options(root / "cache"))
        _CACHE["converted"] = (root / "out", manifest)
    return _CACHE["converted"]
