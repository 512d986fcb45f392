"""``edgeface convert FOLDER``: TensorRT / OpenVINO targets from a convert folder's ONNX graphs, without torch.

The on-board flow runs in a child process whose ``import torch`` fails (a meta-path blocker installed by a
``sitecustomize`` on PYTHONPATH), as on a Jetson with only the runtime extras installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from convert_helpers import SPEC, convert_options, tiny_checkpoint
from import_blocker import without

from edgeface.card import ModelCard
from edgeface.cli import main as cli_main
from edgeface.convert.pipeline import (
    DEFAULT_GATES,
    convert_checkpoint,
    convert_source,
    plan_targets,
    target_availability,
)
from edgeface.convert.register import output_gate, target_for
from edgeface.device import tensorrt_unavailable
from edgeface.fileio import sha256_file
from edgeface.labels import AGE
from edgeface.manifest import load_manifest


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory, utkface_dir) -> Path:
    """A convert folder holding only the FP32 ONNX graph, as a workstation would hand it to a board."""
    ckpt = tiny_checkpoint(tmp_path_factory, utkface_dir)
    root = tmp_path_factory.mktemp("onnx-only")
    convert_checkpoint(ckpt, "onnx", None, None, root / "models", convert_options(root / "cache"))
    return root / "models"


def _no_torch_env(tmp_path: Path) -> dict:
    return without("torch", tmp_path / "blocker")


def test_the_blocker_blocks(tmp_path):
    run = subprocess.run([sys.executable, "-c", "import torch"], env=_no_torch_env(tmp_path), capture_output=True,
                         text=True)
    assert run.returncode != 0 and "No module named 'torch'" in run.stderr


def test_folder_gains_openvino_int8_without_torch(tmp_path, onnx_folder, utkface_dir):
    folder = tmp_path / "board"
    subprocess.run(["cp", "-r", str(onnx_folder), str(folder)], check=True)
    onnx_sha = sha256_file(folder / "model.onnx")
    command = [sys.executable, "-m", "edgeface", "convert", str(folder), "--to", "openvino-int8", "--calib",
               str(utkface_dir), "--calib-images", "128", "--eval", str(utkface_dir), "--eval-images", "48",
               "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--gate-mae", "0.02", "1.0"]
    run = subprocess.run(command, env=_no_torch_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "openvino-int8  ok" in run.stdout
    manifest = load_manifest(folder)
    entry = manifest["artifacts"]["openvino-int8"]
    assert entry["status"] == "ok" and (folder / "model.int8.xml").is_file() and (folder / "model.int8.bin").is_file()
    assert entry["drift"]["against"] == "onnx (onnxruntime)" and entry["drift"]["gate"]["passed"]
    assert manifest["artifacts"]["onnx"]["status"] == "ok" and sha256_file(folder / "model.onnx") == onnx_sha
    assert oct((folder).stat().st_mode & 0o777) == oct(0o755 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_onnx_file_source_and_planning(tmp_path, onnx_folder):
    out = tmp_path / "from-file"
    manifest = convert_source(onnx_folder / "model.onnx", "openvino", out_dir=out,
                              options=convert_options(tmp_path / "cache"))
    assert manifest["source"] == {"onnx": "model.onnx", "sha256": sha256_file(onnx_folder / "model.onnx")}
    assert manifest["artifacts"]["openvino"]["status"] == "ok"
    keys = [p.key for p in onnx.load(str(out / "model.onnx")).metadata_props]
    assert "edgeface_card" in keys and not [k for k in keys if k.startswith("onnxsim.")]
    built = {"onnx"}
    assert target_availability(built)["openvino"] is None  # torch is not needed to build from model.onnx
    assert plan_targets("trt-int8", {}, built)[0] == ["onnx-int8", "trt-int8"]
    assert plan_targets("all", {}, {"onnx", "onnx-fp16"})[0] == [
        "onnx-int8", "openvino", "openvino-fp16", "openvino-int8", "trt-fp16", "trt-int8"]
    with pytest.raises(ValueError, match="exported from a checkpoint"):
        convert_source(onnx_folder, "onnx", options=convert_options(tmp_path / "cache"))
    with pytest.raises(ValueError, match="needs --out"):
        convert_source(onnx_folder / "model.onnx", "openvino")
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(onnx_folder / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    with pytest.raises(ValueError, match="carries no 'edgeface_card'"):
        convert_source(bare, "openvino", out_dir=tmp_path / "x")
    assert json.loads((onnx_folder / "manifest.json").read_text())["source"]["checkpoint"] == "tiny.pt"


def test_register_gate_and_target_rules(tmp_path, onnx_folder):
    card = ModelCard("tinyagenet", "age", SPEC, AGE)
    ref = {"expectation": np.array([30.0, 40.0]), "probs": np.zeros((2, 101))}
    near = {**ref, "expectation": np.array([30.01, 40.01])}
    assert output_gate(card, "fp16", near, ref, DEFAULT_GATES)["passed"]
    assert not output_gate(card, "fp16", {**ref, "expectation": np.array([31.0, 40.0])}, ref, DEFAULT_GATES)["passed"]
    attrs = ModelCard("dmmcnn", "attributes", SPEC, attributes=["a", "b"])
    a = {"attr_probs": np.array([[0.9, 0.1]] * 100)}
    flipped = {"attr_probs": np.array([[0.9, 0.1]] * 99 + [[0.1, 0.1]])}  # 1 of 200 decisions: 0.5 points
    assert output_gate(attrs, "int8", flipped, a, DEFAULT_GATES)["passed"]
    assert target_for(Path("x/model.int8.engine"), None) == "trt-int8"
    with pytest.raises(ValueError, match="--target"):
        target_for(Path("mine.plan"), None)
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"not checked here")
    before = (onnx_folder / "manifest.json").read_text()
    code = cli_main(["register", str(onnx_folder), str(engine)])
    assert code == 2  # no TensorRT: refused with the reason; with it: a plan that does not load is refused
    assert (onnx_folder / "manifest.json").read_text() == before


@pytest.mark.skipif(bool(tensorrt_unavailable()), reason=f"TensorRT not usable here: {tensorrt_unavailable()}")
def test_register_an_engine_built_from_the_folder(tmp_path, onnx_folder):
    folder = tmp_path / "gpu"
    manifest = convert_source(onnx_folder, "trt-fp16", out_dir=folder, options=convert_options(tmp_path / "c"))
    assert manifest["artifacts"]["trt-fp16"]["status"] == "ok"
    assert manifest["artifacts"]["trt-fp16"]["notes"]["trtexec"].startswith("trtexec --onnx=model.fp16.onnx")
    external = tmp_path / "model.fp16.engine"
    (folder / "model.fp16.engine").rename(external)
    assert cli_main(["register", str(folder), str(external)]) == 0
    assert load_manifest(folder)["artifacts"]["trt-fp16"]["drift"]["gate"]["passed"]
