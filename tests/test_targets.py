"""The target table is self-consistent, and the runner base class owns state and checks inputs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeface.card import ModelCard
from edgeface.labels import AGE
from edgeface.preprocess import PreprocessSpec
from edgeface.runtime.base import Runner, available_backends, backend_for
from edgeface.targets import FORMAT_TOOLS, FORMATS, PRECISIONS, TARGETS, source_chain, target

ROOT = Path(__file__).resolve().parents[1]


def _function(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def test_every_target_row_is_consistent():
    order = list(TARGETS)
    files = [t.file for t in TARGETS.values()]
    assert len(set(files)) == len(files)
    for name, t in TARGETS.items():
        assert t.name == name and t.format in FORMATS and t.precision in PRECISIONS
        assert t.backend in available_backends(), name
        assert backend_for(t.file) == t.backend, name
        if t.source is not None:
            assert t.source in TARGETS and order.index(t.source) < order.index(name), name  # built before it
        if t.calibrated:
            assert t.precision == "int8", name
        assert callable(_function(t.build)), name
        for requirement in t.requires:
            if ":" in requirement:
                assert callable(_function(requirement)), requirement
    assert set(FORMAT_TOOLS) == set(FORMATS)
    assert [t.name for t in source_chain("trt-int8")] == ["trt-int8", "onnx-int8", "onnx"]
    with pytest.raises(ValueError, match="unknown target 'tflite'"):
        target("tflite")


def test_availability_follows_the_source_chain():
    from edgeface.convert.pipeline import plan_targets, target_availability

    available = target_availability()
    assert set(available) == set(TARGETS)
    for name in TARGETS:
        for source in source_chain(name)[1:]:
            if available[source.name]:
                assert available[name] == available[source.name], name
    unavailable = {n: None for n in TARGETS} | {"openvino": "openvino not installed"}
    assert plan_targets("trt-int8", {n: None for n in TARGETS})[0] == ["onnx", "onnx-int8", "trt-int8"]
    with pytest.raises(ValueError, match="cannot build openvino here: openvino not installed"):
        plan_targets("openvino", unavailable)


def test_checkpoints_and_plans_have_backends_and_unknown_files_do_not():
    assert backend_for("best.pt") == backend_for("x.pth") == "torch"
    assert backend_for("model.plan") == "tensorrt"
    with pytest.raises(ValueError, match="no backend opens"):
        backend_for("model.tflite")


def test_runtime_reads_the_table_without_the_convert_stage():
    code = ("import sys; import edgeface.runtime.predictor, edgeface.targets; "
            "from edgeface.runtime.base import backend_for; backend_for('m.xml'); "
            "bad = [m for m in sys.modules if m.startswith(('edgeface.convert', 'torch', 'onnx'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


class _Echo(Runner):
    """A backend-free runner: returns the batch mean per item."""

    backend = "echo"

    def activate_impl(self) -> None:
        self.card = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=16), AGE)
        self.output_names = ["mean"]
        self.activations = getattr(self, "activations", 0) + 1

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"mean": x.reshape(len(x), -1).mean(axis=1)}

    def deactivate_impl(self) -> None:
        self.deactivations = getattr(self, "deactivations", 0) + 1


def test_base_runner_keeps_the_state():
    runner = _Echo("echo.bin")
    x = np.ones((2, 3, 16, 16), np.float32)
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(x)
    with runner:
        assert runner.is_active
        runner.activate()  # already active: nothing happens
        assert runner.activations == 1
        np.testing.assert_allclose(runner.infer(x)["mean"], [1.0, 1.0])
        many = runner.infer_many([x[:1], 2 * x])
        assert [m["mean"].tolist() for m in many] == [[1.0], [2.0, 2.0]]
        assert runner.default_jobs == 1 and runner.compute_only_timer(x) is None
    assert not runner.is_active and runner.deactivations == 1
    runner.deactivate()  # twice is fine
    assert runner.deactivations == 1
    assert "echo" not in available_backends()  # a subclass outside the package registers no backend


@pytest.mark.parametrize(("x", "message"), [
    (np.ones((2, 3, 16, 16), np.float64), "expected float32 input, got float64"),
    (np.ones((3, 16, 16), np.float32), r"expected input Nx3x16x16 \(NCHW\), got 3x16x16"),
    (np.ones((2, 4, 16, 16), np.float32), "got 2x4x16x16"),
    (np.ones((2, 16, 16, 3), np.float32), "got 2x16x16x3"),
    (np.ones((1, 3, 32, 32), np.float32), "got 1x3x32x32"),
    (np.ones((0, 3, 16, 16), np.float32), "got 0x3x16x16"),
    ([[1.0]], "expected a numpy array Nx3x16x16 float32, got list"),
])
def test_base_runner_checks_inputs_against_the_card(x, message):
    with _Echo("echo.bin") as runner, pytest.raises(ValueError, match=message):
        runner.infer(x)


def test_input_spec_follows_the_card_layout():
    with _Echo("echo.bin") as runner:
        assert runner.input_spec == {"name": "input", "shape": [-1, 3, 16, 16], "dtype": "float32"}
        runner.card = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=16, layout="NHWC"), AGE)
        assert runner.input_spec["shape"] == [-1, 16, 16, 3]
        assert runner.infer(np.ones((1, 16, 16, 3), np.float32))["mean"].shape == (1,)
