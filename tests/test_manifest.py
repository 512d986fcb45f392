"""The manifest: entries, validation, resolving a file or a folder + target."""

from __future__ import annotations

import json

import pytest

from edgeface.card import ModelCard
from edgeface.labels import AGE
from edgeface.manifest import (
    artifact_entry,
    load_manifest,
    new_manifest,
    resolve_artifact,
    validate_manifest,
    write_manifest,
)
from edgeface.preprocess import PreprocessSpec
from edgeface.targets import TARGETS

CARD = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), AGE)


def _folder(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"onnx bytes")
    (tmp_path / "model.xml").write_text("<xml/>")
    (tmp_path / "model.bin").write_bytes(b"12345")
    manifest = new_manifest(CARD, "ckpt.pt", "abc")
    manifest["artifacts"]["onnx"] = artifact_entry("onnx", CARD, tmp_path, tools={"onnx": "1"})
    manifest["artifacts"]["openvino"] = artifact_entry("openvino", CARD, tmp_path)
    manifest["artifacts"]["onnx-int8"] = artifact_entry("onnx-int8", CARD, tmp_path, status="failed", reason="gate")
    manifest["artifacts"]["trt-fp16"] = artifact_entry("trt-fp16", CARD, tmp_path, status="skipped", reason="no GPU")
    write_manifest(tmp_path, manifest)
    return manifest


def test_entry_has_the_schema_fields(tmp_path):
    manifest = _folder(tmp_path)
    entry = manifest["artifacts"]["openvino"]
    assert entry["bytes"] == len("<xml/>") + 5  # the IR's .bin counts
    assert entry["input"] == {"name": "input", "shape": [-1, 3, 32, 32], "dtype": "float32"}
    assert [o["name"] for o in entry["outputs"]] == ["probs", "expectation"]
    assert entry["outputs"][0]["shape"] == [-1, 101]
    assert entry["label_space"] == AGE.to_dict() and entry["preprocess"]["input_size"] == 32
    assert manifest["artifacts"]["trt-fp16"]["sha256"] is None
    assert load_manifest(tmp_path)["format"] == "edgeface-manifest/1"


def test_resolve_file_or_folder_and_target(tmp_path):
    _folder(tmp_path)
    path, card, entry = resolve_artifact(tmp_path)
    assert path == tmp_path / "model.onnx" and card.model == "tinyagenet" and entry["target"] == "onnx"
    assert resolve_artifact(tmp_path, "openvino")[0] == tmp_path / "model.xml"
    assert resolve_artifact(tmp_path / "model.xml")[2]["target"] == "openvino"
    with pytest.raises(ValueError, match="onnx-int8 .* is failed: gate"):
        resolve_artifact(tmp_path, "onnx-int8")
    with pytest.raises(ValueError, match="is skipped: no GPU"):
        resolve_artifact(tmp_path, "trt-fp16")
    with pytest.raises(ValueError, match="has no 'openvino-int8' artifact"):
        resolve_artifact(tmp_path, "openvino-int8")
    with pytest.raises(ValueError, match="unknown target"):
        resolve_artifact(tmp_path, "tflite")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "x.onnx").write_bytes(b"")
    assert resolve_artifact(lone / "x.onnx") == (lone / "x.onnx", None, None)


def test_bad_manifests_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{ truncated")
    with pytest.raises(ValueError, match="corrupt manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not an edgeface manifest"):
        load_manifest(tmp_path)
    manifest = new_manifest(CARD, None, None)
    manifest["artifacts"]["onnx"] = {"status": "maybe"}
    with pytest.raises(ValueError, match="status"):
        validate_manifest(manifest)
    assert set(TARGETS) == {"onnx", "onnx-fp16", "onnx-int8", "openvino", "openvino-fp16", "openvino-int8",
                            "trt-fp16", "trt-int8"}
