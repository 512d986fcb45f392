"""edgeface convert: every CPU target from a real-data model, drift gate both ways, bad input, atomic output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from convert_helpers import CPU_TARGETS, convert_options, converted, tiny_checkpoint

from edgeface.cli import main as cli_main
from edgeface.convert.pipeline import convert_checkpoint, failed_targets, gate_check, plan_targets
from edgeface.convert.precision import calibration_key
from edgeface.device import tensorrt_unavailable
from edgeface.manifest import load_manifest


@pytest.fixture(scope="module")
def folder(tmp_path_factory, utkface_dir) -> tuple[Path, dict]:
    return converted(tmp_path_factory, utkface_dir)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, utkface_dir) -> Path:
    return tiny_checkpoint(tmp_path_factory, utkface_dir)


def test_every_cpu_target_is_built_evaluated_and_passes_the_gates(folder):
    out, manifest = folder
    assert load_manifest(out) == manifest
    for name in CPU_TARGETS:
        entry = manifest["artifacts"][name]
        assert entry["status"] == "ok", (name, entry["reason"])
        assert (out / entry["file"]).is_file() and entry["sha256"] and entry["bytes"] > 0
        drift = entry["drift"]
        assert drift["gate"]["passed"], (name, drift["gate"])
        assert drift["metrics"]["n"] == drift["reference"]["n"] == 96
        assert drift["max_abs_diff"]["expectation"] < (1e-3 if entry["precision"] == "fp32" else 20)
    int8 = manifest["artifacts"]["onnx-int8"]
    assert int8["bytes"] < manifest["artifacts"]["onnx"]["bytes"] / 2.5
    for name in ("trt-fp16", "trt-int8"):
        entry = manifest["artifacts"][name]
        reason = tensorrt_unavailable()
        assert entry["status"] == ("skipped" if reason else "ok")
        if reason:
            assert entry["reason"] == reason


def test_onnx_graph_carries_card_and_dynamic_batch(folder):
    out, manifest = folder
    model = onnx.load(str(out / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["edgeface_card"])["label_space"] == manifest["card"]["label_space"]
    assert "edgeface_version" in meta and json.loads(meta["preprocess"])["input_size"] == 32
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].name == "input"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert [o.name for o in model.graph.output] == ["probs", "expectation"]


def test_fp16_graph_keeps_io_and_heads_in_fp32(folder):
    out, _ = folder
    model = onnx.load(str(out / "model.fp16.onnx"))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert all(v.type.tensor_type.elem_type == f32 for v in [*model.graph.input, *model.graph.output])
    types = {t.name: t.data_type for t in model.graph.initializer}
    conv_weights = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    assert conv_weights and all(types[w] == f16 for w in conv_weights)
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert types[gemm.input[1]] == f32  # the label-distribution head stays FP32


def test_int8_graph_is_symmetric_qdq_with_fp32_heads(folder):
    out, _ = folder
    model = onnx.load(str(out / "model.int8.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequant = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert quant and dequant
    zero_points = [inits[n.input[2]] for n in dequant if len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(np.all(z == 0) for z in zero_points)  # symmetric: every zero point is 0
    assert {z.dtype for z in zero_points} <= {np.dtype(np.int8), np.dtype(np.int32)}  # int32: biases
    assert any(inits[n.input[1]].size > 1 for n in dequant)  # per-channel weight scales
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert gemm.input[1] in inits and inits[gemm.input[1]].dtype == np.float32


def test_broken_calibration_fails_the_gate_and_allow_drift_keeps_it(tmp_path, checkpoint, utkface_dir):
    calib = tmp_path / "grey"  # 120 flat grey "faces": activation ranges far too narrow for real faces
    calib.mkdir()
    for i in range(120):
        cv2.imwrite(str(calib / f"{i:03d}.png"), np.full((40, 40, 3), 100 + i % 20, np.uint8))
    options = convert_options(tmp_path / "cache", calib_images=120)
    manifest = convert_checkpoint(checkpoint, "onnx-int8", calib, utkface_dir, tmp_path / "broken", options)
    entry = manifest["artifacts"]["onnx-int8"]
    assert entry["status"] == "failed" and "drift gate" in entry["reason"]
    assert not entry["drift"]["gate"]["passed"] and abs(entry["drift"]["gate"]["delta"]) > 1.0
    assert failed_targets(manifest) == ["onnx-int8"]
    assert load_manifest(tmp_path / "broken")["artifacts"]["onnx-int8"]["status"] == "failed"
    options.allow_drift = True
    manifest = convert_checkpoint(checkpoint, "onnx-int8", calib, utkface_dir, tmp_path / "allowed", options)
    entry = manifest["artifacts"]["onnx-int8"]
    assert entry["status"] == "ok" and "allowed_breach" in entry["drift"]


def test_gate_rule_by_task_and_precision():
    from edgeface.card import ModelCard
    from edgeface.labels import AGE
    from edgeface.preprocess import PreprocessSpec

    card = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), AGE)
    gates = {"mae": {"fp32": 0.02, "fp16": 0.02, "int8": 0.15}, "mean_accuracy": 0.5}
    assert gate_check(card, "int8", {"mae": 5.14}, {"mae": 5.0}, gates)["passed"]
    assert not gate_check(card, "int8", {"mae": 5.16}, {"mae": 5.0}, gates)["passed"]
    assert not gate_check(card, "fp16", {"mae": 5.03}, {"mae": 5.0}, gates)["passed"]
    attrs = ModelCard("dmmcnn", "attributes", PreprocessSpec(input_size=32), attributes=["a", "b"])
    assert gate_check(attrs, "int8", {"mean_accuracy": 0.896}, {"mean_accuracy": 0.9}, gates)["passed"]
    assert not gate_check(attrs, "int8", {"mean_accuracy": 0.894}, {"mean_accuracy": 0.9}, gates)["passed"]


def test_calibration_cache_is_reused_only_for_the_same_model_data_and_method(folder):
    out, manifest = folder
    notes = manifest["artifacts"]["onnx-int8"]["notes"]
    cache = out.parent / "cache" / "calibration" / notes["calibration_cache"]  # a name: no host path travels
    assert notes["calibration_cache"] == cache.name and cache.is_file() and not notes["cache_hit"]
    key = calibration_key("m", "d", "minmax")
    assert key == calibration_key("m", "d", "minmax")
    assert len({key, calibration_key("m2", "d", "minmax"), calibration_key("m", "d2", "minmax"),
                calibration_key("m", "d", "entropy")}) == 4


def test_plan_targets():
    none = dict.fromkeys(["onnx", "onnx-fp16", "onnx-int8", "openvino", "openvino-fp16", "openvino-int8"])
    here = {**none, "trt-fp16": "no GPU", "trt-int8": "no GPU"}
    build, skipped = plan_targets("all", here)
    assert build == CPU_TARGETS and skipped == {"trt-fp16": "no GPU", "trt-int8": "no GPU"}
    assert plan_targets("openvino-int8", here)[0] == ["onnx", "openvino-int8"]
    assert plan_targets(["trt-int8"], {**here, "trt-int8": None})[0] == ["onnx", "onnx-int8", "trt-int8"]
    with pytest.raises(ValueError, match="cannot build trt-fp16 here: no GPU"):
        plan_targets("onnx,trt-fp16", here)
    with pytest.raises(ValueError, match="unknown target 'tflite'"):
        plan_targets("tflite", here)


def _cli(capsys, *args) -> tuple[int, str]:
    code = cli_main(["convert", *map(str, args), "--no-progress"])
    return code, capsys.readouterr().err.strip()


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, checkpoint, utkface_dir):
    out = tmp_path / "out"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(utkface_dir.iterdir())[:5]:
        shutil.copy(p, few / p.name)
    cases = [
        ((tmp_path / "missing.pt", "--to", "onnx"), "neither a file nor the name of shipped weights"),
        ((corrupt, "--to", "onnx"), "cannot read checkpoint"),
        ((checkpoint, "--to", "tflite"), "unknown target"),
        ((checkpoint, "--to", "onnx-int8", "--calib", few), "only 5 usable faces"),
        ((checkpoint, "--to", "onnx-int8", "--calib", tmp_path / "empty-nonexistent"), "not a folder"),
        ((checkpoint, "--to", "onnx-int8"), "need calibration images"),
    ]
    if tensorrt_unavailable():
        cases.append(((checkpoint, "--to", "trt-fp16"), "cannot build trt-fp16 here"))
    for args, message in cases:
        code, err = _cli(capsys, *args, "--out", out)
        assert code == 2, (args, err)
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_interrupted_convert_leaves_previous_artifacts(tmp_path, checkpoint, monkeypatch):
    from edgeface.convert import pipeline

    out = tmp_path / "out"
    convert_checkpoint(checkpoint, "onnx", None, None, out, convert_options(tmp_path / "cache"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_measure_drift", interrupt)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(checkpoint, "onnx,onnx-fp16", None, None, out, convert_options(tmp_path / "cache"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left


def test_cli_reports_and_exit_codes(tmp_path, capsys, checkpoint):
    code = cli_main(["convert", str(checkpoint), "--to", "onnx,onnx-fp16", "--out", str(tmp_path / "o"),
                     "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    report = capsys.readouterr().out
    assert code == 0 and "onnx-fp16      ok" in report
    assert load_manifest(tmp_path / "o")["artifacts"]["onnx-fp16"]["drift"] is not None
