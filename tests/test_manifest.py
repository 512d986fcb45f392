"""The manifest: entries, validation, resolving a file or a folder + target."""

from __future__ import annotations

import json

import pytest

from edgeface.card import ModelCard
from edgeface.labels import AGE
from edgeface.manifest import (
    artifact_entry,
    choose_artifact,
    load_manifest,
    new_manifest,
    record_latency,
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
    path, card, entry = resolve_artifact(tmp_path, "onnx")
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


def _built(tmp_path, *names, breached=()):
    """A folder whose artifacts ``names`` are built (files with placeholder bytes: choosing reads no artifact)."""
    manifest = new_manifest(CARD, "ckpt.pt", "0" * 64)
    for name in names:
        spec = TARGETS[name]
        for file in [spec.file, *spec.companion_files]:
            (tmp_path / file).write_bytes(b"x")
        drift = {"allowed_breach": "MAE +0.4 > 0.15"} if name in breached else None
        manifest["artifacts"][name] = artifact_entry(name, CARD, tmp_path, drift=drift)
    write_manifest(tmp_path, manifest)
    return manifest


def everything_runs(backend: str) -> None:
    return None


def test_choice_without_latencies_follows_the_preference_order(tmp_path):
    manifest = _built(tmp_path, "onnx", "onnx-fp16", "openvino", "openvino-int8", "trt-fp16",
                      breached=("openvino-int8",))
    name, why = choose_artifact(manifest, device="box-4c", unavailable=everything_runs)
    assert name == "trt-fp16" and "preference order" in why and "openvino-int8 breached the drift gate" in why
    no_gpu = {"tensorrt": "no usable NVIDIA GPU"}.get
    name, why = choose_artifact(manifest, device="box-4c", unavailable=no_gpu)
    assert name == "openvino" and "trt-fp16 cannot run here (no usable NVIDIA GPU)" in why and "\n" not in why
    assert choose_artifact(manifest, backend="onnxruntime", device="box-4c", unavailable=no_gpu)[0] == "onnx"
    (tmp_path / "engine-only").mkdir()
    only_engine = _built(tmp_path / "engine-only", "trt-int8")
    with pytest.raises(ValueError, match="no built artifact can run here: trt-int8 cannot run here"):
        choose_artifact(only_engine, unavailable=no_gpu)
    assert [t.preference for t in sorted(TARGETS.values(), key=lambda t: t.preference)][:2] == [0, 1]
    assert sorted(TARGETS.values(), key=lambda t: t.preference)[0].format == "tensorrt"


def test_choice_takes_the_fastest_measured_on_this_device(tmp_path):
    _built(tmp_path, "onnx", "onnx-int8", "openvino", "openvino-int8", breached=("onnx-int8",))
    for name, ms in (("onnx", 9.0), ("onnx-int8", 1.0), ("openvino", 5.0)):
        assert record_latency(tmp_path, name, "box-4c", ms, TARGETS[name].backend, 2)
    assert record_latency(tmp_path, "openvino", "box-4c", 7.0, "openvino")  # slower: the best is kept
    assert record_latency(tmp_path, "openvino-int8", "other-8c", 0.5, "openvino")  # another machine's number
    assert not record_latency(tmp_path, "trt-int8", "box-4c", 0.1, "tensorrt")  # not in this folder
    manifest = load_manifest(tmp_path)
    assert manifest["artifacts"]["openvino"]["latency"]["box-4c"]["p50_ms"] == 5.0
    name, why = choose_artifact(manifest, device="box-4c", unavailable=everything_runs)
    assert name == "openvino" and "fastest measured on box-4c (5.00 ms" in why  # the breached INT8 is left out
    assert choose_artifact(manifest, device="other-8c", unavailable=everything_runs)[0] == "openvino-int8"


def test_manifest_with_latencies_follows_its_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from edgeface.manifest import SCHEMA_PATH

    _built(tmp_path, "onnx")
    record_latency(tmp_path, "onnx", "box-4c", 3.25, "onnxruntime", None)
    jsonschema.validate(load_manifest(tmp_path), json.loads(SCHEMA_PATH.read_text()))


def test_a_folder_without_target_logs_which_artifact_and_why(tmp_path, caplog):
    _folder(tmp_path)
    with caplog.at_level("INFO", logger="edgeface.manifest"):
        path, _, entry = resolve_artifact(tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "edgeface.manifest"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"{tmp_path.name}: running {entry['target']} ({entry['precision']}, ")
    assert "preference order" in lines[0] and path == tmp_path / entry["file"]


def test_run_checks_its_target_against_the_folders_before_opening_anything(tmp_path, capsys):
    from edgeface.cli import main as cli_main

    _folder(tmp_path)
    missing = ["--detector", str(tmp_path / "no-detector.onnx")]  # opened first of all without the check
    assert cli_main(["run", "no-video.mp4", "--models", str(tmp_path), "--target", "openvino-int8", *missing]) == 2
    err = capsys.readouterr().err
    assert "has no 'openvino-int8' artifact" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["run", "no-video.mp4", "--models", str(tmp_path), "--target", "onnx-int8", *missing]) == 2
    assert "is failed: gate" in capsys.readouterr().err
    assert cli_main(["run", "no-video.mp4", "--models", "tinyagenet", "--target", "onnx", *missing]) == 2
    assert "no convert folder among --models" in capsys.readouterr().err
