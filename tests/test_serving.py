"""Triton and DeepStream exporters: configs checked against Triton's own protobuf schema and the manifest."""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeface.card import ModelCard
from edgeface.cli import main as cli_main
from edgeface.decode import decode
from edgeface.deepstream_probe import box_crop, decode_object, object_outputs
from edgeface.fileio import portable_path, sha256_file
from edgeface.labels import AGE
from edgeface.manifest import artifact_entry, default_outputs, load_manifest, new_manifest, write_manifest
from edgeface.preprocess import PreprocessSpec

SIZE = 32


def triton_model_config_pb2():
    """Triton's ModelConfig protobuf module as tritonclient ships it (its grpc package needs grpcio to import,
    the generated module itself only protobuf, so load it by path when grpcio is absent)."""
    pytest.importorskip("google.protobuf")
    try:
        return importlib.import_module("tritonclient.grpc.model_config_pb2")
    except (ImportError, RuntimeError):
        spec = importlib.util.find_spec("tritonclient")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("tritonclient is not installed (pip install 'edgeface[serving]')")
        path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
        module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module


def parse_config(text: str):
    from google.protobuf import text_format

    pb2 = triton_model_config_pb2()
    return text_format.Parse(text, pb2.ModelConfig()), pb2


@pytest.fixture(scope="session")
def convert_dir(tmp_path_factory) -> Path:
    """A convert output folder like `edgeface convert` writes: an untrained TinyAgeNet at 32 px as ONNX and
    OpenVINO IR, the TensorRT targets skipped (no GPU here), manifest.json per the shared schema."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from edgeface.convert.onnx_export import export_onnx
    from edgeface.models import create_model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("convert")
    card = ModelCard(model="tinyagenet", task="age", preprocess=PreprocessSpec(input_size=SIZE), label_space=AGE,
                     data="untrained test model")
    sample = np.random.default_rng(0).uniform(-1, 1, (2, 3, SIZE, SIZE)).astype(np.float32)
    export_onnx(create_model("tinyagenet", label_space=AGE), card, out / "model.onnx", sample, simplify=False)
    manifest = new_manifest(card, None, None)
    manifest["artifacts"]["onnx"] = artifact_entry("onnx", card, out)
    try:
        import openvino as ov

        ov.save_model(ov.convert_model(str(out / "model.onnx")), str(out / "model.xml"), compress_to_fp16=False)
        manifest["artifacts"]["openvino"] = artifact_entry("openvino", card, out)
    except ImportError:
        manifest["artifacts"]["openvino"] = artifact_entry("openvino", card, out, "skipped", "openvino not installed")
    for name in ("onnx-int8", "trt-fp16", "trt-int8"):
        manifest["artifacts"][name] = artifact_entry(name, card, out, "skipped", "no NVIDIA GPU / TensorRT here")
    write_manifest(out, manifest)
    return out


def run_cli(*argv) -> int:
    return cli_main([str(a) for a in argv])


def check_tensor(tensor, spec: dict, pb2) -> None:
    assert tensor.name == spec["name"]
    assert tensor.data_type == pb2.DataType.Value("TYPE_FP32") and spec["dtype"] == "float32"
    per_sample = spec["shape"][1:]
    if per_sample:
        assert list(tensor.dims) == per_sample
        assert not tensor.HasField("reshape")
    else:  # a [batch] output: served as [1], reshaped to a scalar per sample
        assert list(tensor.dims) == [1]
        assert tensor.HasField("reshape") and list(tensor.reshape.shape) == []


def test_triton_repository_matches_manifest(convert_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--max-batch-size", 16,
                   "--preferred-batch-sizes", "4,8", "--instances", 2) == 0
    manifest = load_manifest(convert_dir)
    built = [n for n, e in manifest["artifacts"].items() if e["status"] == "ok"]
    assert sorted(p.name for p in repo.iterdir()) == sorted(f"tinyagenet-{n}" for n in built)
    expected = {"onnx": ("onnxruntime_onnx", "", "model.onnx", ["model.onnx"], "KIND_GPU"),
                "openvino": ("", "openvino", "model.xml", ["model.bin", "model.xml"], "KIND_CPU")}
    for target_name in built:
        entry = manifest["artifacts"][target_name]
        model_dir = repo / f"tinyagenet-{target_name}"
        config, pb2 = parse_config((model_dir / "config.pbtxt").read_text())
        platform, backend, primary, files, kind = expected[target_name]
        assert config.name == model_dir.name
        assert (config.platform, config.backend) == (platform, backend)
        assert config.max_batch_size == 16
        assert config.default_model_filename == primary
        assert len(config.input) == 1
        check_tensor(config.input[0], entry["input"], pb2)
        assert [o.name for o in config.output] == [o["name"] for o in entry["outputs"]] == ["probs", "expectation"]
        for tensor, spec in zip(config.output, entry["outputs"], strict=True):
            check_tensor(tensor, spec, pb2)
        assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
        assert [(g.count, pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [(2, kind)]
        card = ModelCard.from_json(config.parameters["edgeface_card"].string_value)
        assert card.to_dict() == manifest["card"]
        assert sorted(p.name for p in (model_dir / "1").iterdir()) == files
        assert sha256_file(model_dir / "1" / primary) == entry["sha256"]


def test_triton_onnx_config_agrees_with_the_served_graph(convert_dir: Path, tmp_path: Path) -> None:
    """The dims Triton is told match what ONNX Runtime reads from the copied model file."""
    import onnxruntime as ort

    repo = tmp_path / "repo"
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--targets", "onnx") == 0
    config, _ = parse_config((repo / "tinyagenet-onnx" / "config.pbtxt").read_text())
    session = ort.InferenceSession(str(repo / "tinyagenet-onnx" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.name == config.input[0].name and graph_input.shape[1:] == list(config.input[0].dims)
    x = np.zeros((3, 3, SIZE, SIZE), np.float32)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {graph_input.name: x}), strict=True))
    for tensor in config.output:
        served = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        assert list(outputs[tensor.name].shape) == [3, *served]


def test_triton_openvino_config_agrees_with_the_served_ir(convert_dir: Path, tmp_path: Path) -> None:
    """Triton's OpenVINO backend binds tensors by name: the IR copied into 1/ must carry the config's names."""
    ov = pytest.importorskip("openvino")
    repo = tmp_path / "repo"
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--targets", "openvino") == 0
    config, _ = parse_config((repo / "tinyagenet-openvino" / "config.pbtxt").read_text())
    model = ov.Core().read_model(str(repo / "tinyagenet-openvino" / "1" / "model.xml"))
    assert model.inputs[0].get_names() >= {config.input[0].name}
    batch, *dims = list(model.inputs[0].get_partial_shape())
    assert batch.is_dynamic and [d.get_length() for d in dims] == list(config.input[0].dims)
    assert [sorted(o.get_names()) for o in model.outputs] == [[t.name] for t in config.output]


def test_malformed_config_is_rejected_by_the_schema(convert_dir: Path, tmp_path: Path) -> None:
    from google.protobuf import text_format

    repo = tmp_path / "repo"
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--targets", "onnx") == 0
    text = (repo / "tinyagenet-onnx" / "config.pbtxt").read_text()
    parse_config(text)
    for broken in (text.replace("TYPE_FP32", "TYPE_FLOAT32", 1), text.replace("max_batch_size", "max_batch", 1),
                   text.replace("dynamic_batching {", "dynamic_batching ", 1)):
        with pytest.raises(text_format.ParseError):
            parse_config(broken)


def test_triton_tensorrt_plan_and_attribute_outputs(convert_dir: Path, tmp_path: Path) -> None:
    """A TensorRT target maps to tensorrt_plan / model.plan (the plan bytes are copied as they are; TensorRT
    cannot build one here), and an attribute model's outputs map with their widths."""
    from edgeface.convert.triton import model_config

    folder = tmp_path / "with-plan"
    shutil.copytree(convert_dir, folder)
    plan_bytes = b"serialized plan bytes stand-in"
    (folder / "model.fp16.engine").write_bytes(plan_bytes)
    manifest = load_manifest(folder)
    card = ModelCard.from_dict(manifest["card"])
    manifest["artifacts"]["trt-fp16"] = artifact_entry("trt-fp16", card, folder,
                                                       build_device={"profile": {"min": 1, "opt": 1, "max": 8}})
    write_manifest(folder, manifest)
    repo = tmp_path / "repo"
    assert run_cli("export", "triton", folder, "--out", repo, "--targets", "trt-fp16", "--max-batch-size", 16) == 2
    assert not repo.exists()  # the engine's profile stops at batch 8
    assert run_cli("export", "triton", folder, "--out", repo, "--targets", "trt-fp16") == 0
    config, pb2 = parse_config((repo / "tinyagenet-trt-fp16" / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == [1, 4, 8]
    assert pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"
    assert (repo / "tinyagenet-trt-fp16" / "1" / "model.plan").read_bytes() == plan_bytes

    attrs = ModelCard(model="dmmcnn", task="attributes", preprocess=PreprocessSpec(input_size=SIZE),
                      attributes=[f"a{i}" for i in range(40)], num_landmarks=5)
    entry = {"format": "onnx", "input": {"name": "input", "shape": [-1, 3, SIZE, SIZE], "dtype": "float32"},
             "outputs": default_outputs(attrs)}
    config, _ = parse_config(model_config("dmmcnn-onnx", entry, attrs.to_json(), 4, [2, 4], 1, "KIND_CPU", 50))
    assert [(o.name, list(o.dims)) for o in config.output] == [("attr_probs", [40]), ("landmarks", [10])]
    assert ModelCard.from_json(config.parameters["edgeface_card"].string_value).attributes == attrs.attributes


@pytest.mark.parametrize("args, message", [
    (["--targets", "trt-int8"], "trt-int8"),
    (["--targets", "onnx-fp16"], "no onnx-fp16 artifact"),
    (["--targets", "bogus"], "unknown target"),
    (["--max-batch-size", "4", "--preferred-batch-sizes", "8"], "outside 1..4"),
])
def test_triton_bad_requests_write_nothing(convert_dir: Path, tmp_path: Path, capsys, args, message) -> None:
    repo = tmp_path / "repo"
    assert run_cli("export", "triton", convert_dir, "--out", repo, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not repo.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_triton_existing_model_is_kept_without_overwrite(convert_dir: Path, tmp_path: Path, capsys) -> None:
    repo = tmp_path / "repo"
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--targets", "onnx") == 0
    config = repo / "tinyagenet-onnx" / "config.pbtxt"
    before = config.read_text()
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--targets", "onnx", "--max-batch-size", 4) == 2
    assert "already in" in capsys.readouterr().err and config.read_text() == before
    assert run_cli("export", "triton", convert_dir, "--out", repo, "--targets", "onnx", "--max-batch-size", 4,
                   "--overwrite") == 0
    assert parse_config(config.read_text())[0].max_batch_size == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging folder left behind
    assert sorted(p.name for p in repo.iterdir()) == ["tinyagenet-onnx"]


def test_changed_artifact_is_refused(convert_dir: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "convert"
    shutil.copytree(convert_dir, folder)
    with open(folder / "model.onnx", "r+b") as f:  # truncated after conversion
        f.truncate(1000)
    assert run_cli("export", "triton", folder, "--out", tmp_path / "repo", "--targets", "onnx") == 2
    assert run_cli("export", "deepstream", folder, "--out", tmp_path / "ds", "--operate-on-gie-id", 1,
                   "--operate-on-class-ids", "0") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("does not match the sha256" in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convert"]


def test_missing_manifest_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert run_cli("export", "triton", tmp_path / "nope", "--out", tmp_path / "repo") == 2
    assert run_cli("export", "deepstream", tmp_path, "--out", tmp_path / "ds", "--operate-on-gie-id", 1,
                   "--operate-on-class-ids", "0") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("manifest.json" in line for line in lines)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "ds").exists()


def read_ini(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())
    assert parser.sections() == ["property"]
    return dict(parser["property"])


def test_deepstream_config_matches_manifest_and_preprocessing(convert_dir: Path, tmp_path: Path) -> None:
    result = {"model": "tinyagenet", "input_size": 64, "artifact": "best.pt", "dataset": "UTKFace", "conditions": [
        {"roll_deg": 0, "images": 700, "aligned": {"mae": 7.5, "cs5": 0.45}, "box": {"mae": 9.25, "cs5": 0.35},
         "delta_mae": 1.75, "delta_mae_se": 0.2},
        {"roll_deg": 20, "images": 690, "aligned": {"mae": 7.75, "cs5": 0.44}, "box": {"mae": 11.5, "cs5": 0.3},
         "delta_mae": 3.75, "delta_mae_se": 0.3}],
        "command": "edgeface experiment alignment-vs-boxcrop best.pt"}
    (tmp_path / "r.json").write_text(json.dumps(result))
    out = tmp_path / "ds"
    assert run_cli("export", "deepstream", convert_dir, "--out", out, "--operate-on-gie-id", 1,
                   "--operate-on-class-ids", "0;2", "--batch-size", 8, "--box-crop-result", tmp_path / "r.json") == 0
    manifest = load_manifest(convert_dir)
    card = ModelCard.from_dict(manifest["card"])
    spec = card.preprocess
    keys = read_ini(out / "config_infer_secondary_edgeface.txt")
    assert keys == {
        "gpu-id": "0",
        "gie-unique-id": "2",
        "process-mode": "2",
        "operate-on-gie-id": "1",
        "operate-on-class-ids": "0;2",
        "network-type": "100",
        "output-tensor-meta": "1",
        "onnx-file": "model.onnx",
        "model-engine-file": "model.onnx_b8_gpu0_fp16.engine",
        "batch-size": "8",
        "network-mode": "2",
        "net-scale-factor": repr(1 / 127.5),
        "offsets": "127.5;127.5;127.5",
        "model-color-format": "0",
        "infer-dims": f"3;{SIZE};{SIZE}",
        "network-input-order": "0",
        "maintain-aspect-ratio": "0",
        "scaling-filter": "1",
        "output-blob-names": "probs;expectation",
        "input-object-min-width": "32",
        "input-object-min-height": "32",
    }
    # nvinfer's y = net-scale-factor * (x - offset) equals edgeface's (x - mean) / std on every channel.
    pixels = np.array([0.0, 37.0, 127.5, 255.0])
    offsets = [float(v) for v in keys["offsets"].split(";")]
    for channel, offset in enumerate(offsets):
        np.testing.assert_allclose(float(keys["net-scale-factor"]) * (pixels - offset),
                                   (pixels - spec.mean[channel]) / spec.std, rtol=1e-12)
    assert keys["output-blob-names"].split(";") == [o["name"] for o in manifest["artifacts"]["onnx"]["outputs"]]
    assert sha256_file(out / "model.onnx") == manifest["artifacts"]["onnx"]["sha256"]
    assert ModelCard.from_json((out / "card.json").read_text()).to_dict() == manifest["card"]
    readme = (out / "README.md").read_text()
    assert "roll +-0 deg, 700 faces: MAE 7.50 years aligned vs 9.25 years box-cropped (**+1.75 years**" in readme
    assert "roll +-20 deg, 690 faces: MAE 7.75 years aligned vs 11.50 years box-cropped (**+3.75 years**" in readme
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "card.json", "config_infer_secondary_edgeface.txt",
                                                     "model.onnx"]


def test_deepstream_uses_the_prebuilt_engine(convert_dir: Path, tmp_path: Path, capsys) -> None:
    """A built trt-fp16 engine is copied and named in model-engine-file; its profile caps batch-size."""
    folder = tmp_path / "convert"
    shutil.copytree(convert_dir, folder)
    (folder / "model.fp16.engine").write_bytes(b"serialized plan bytes stand-in")
    manifest = load_manifest(folder)
    manifest["artifacts"]["trt-fp16"] = artifact_entry("trt-fp16", ModelCard.from_dict(manifest["card"]), folder,
                                                       build_device={"profile": {"min": 1, "opt": 1, "max": 8}})
    write_manifest(folder, manifest)
    out = tmp_path / "ds"
    common = ["export", "deepstream", folder, "--out", out, "--operate-on-gie-id", 1, "--operate-on-class-ids", "0"]
    assert run_cli(*common, "--batch-size", 16) == 2 and "batch 8 at most" in capsys.readouterr().err
    assert not out.exists()
    assert run_cli(*common, "--batch-size", 8) == 0
    keys = read_ini(out / "config_infer_secondary_edgeface.txt")
    assert keys["model-engine-file"] == "model.fp16.engine" and keys["onnx-file"] == "model.onnx"
    assert keys["network-mode"] == "2"
    assert (out / "model.fp16.engine").read_bytes() == (folder / "model.fp16.engine").read_bytes()


def test_deepstream_bad_requests_write_nothing(convert_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    common = ["export", "deepstream", convert_dir, "--out", out, "--operate-on-gie-id", 1]
    assert run_cli(*common, "--operate-on-class-ids", "0", "--precision", "int8") == 2  # onnx-int8 skipped
    assert run_cli(*common, "--operate-on-class-ids", "face") == 2
    assert run_cli(*common, "--operate-on-class-ids", "0", "--gie-unique-id", 1) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "onnx-int8" in lines[0] and "not built" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_probe_decodes_per_object_tensor_meta_like_the_batch(convert_dir: Path) -> None:
    """Per-object layers as nvinfer attaches them (flat, batch axis stripped, FP16 or FP32) decode to the
    same results as edgeface's batch decode of the same graph's outputs."""
    import onnxruntime as ort

    card = ModelCard.from_dict(load_manifest(convert_dir)["card"])
    session = ort.InferenceSession(str(convert_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, SIZE, SIZE)).astype(np.float32)
    names = [o.name for o in session.get_outputs()]
    batch = dict(zip(names, session.run(None, {"input": x}), strict=True))
    expected = decode(card, batch)
    for i in range(3):
        layers = [(name, batch[name][i].reshape(-1)) for name in reversed(names)] + [("extra", np.zeros(4))]
        got = decode_object(card, layers)
        assert got == pytest.approx(expected[i])
        half = decode_object(card, [(n, v.astype(np.float16)) for n, v in layers])
        assert half["age"] == pytest.approx(expected[i]["age"], abs=0.1)
    with pytest.raises(ValueError, match="missing"):
        object_outputs(card, [("probs", batch["probs"][0])])
    with pytest.raises(ValueError, match="holds 100 values"):
        object_outputs(card, [("probs", batch["probs"][0][:100]), ("expectation", batch["expectation"][:1])])


def test_box_crop_is_the_stretched_detector_box() -> None:
    import cv2

    spec = PreprocessSpec(input_size=SIZE)
    image = np.random.default_rng(2).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    crop = box_crop(image, np.array([10.2, 20.0, 50.0, 70.0]), spec)
    expected = cv2.cvtColor(cv2.resize(image[20:90, 10:60], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR),
                            cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(crop, expected)
    clipped = box_crop(image, np.array([-10, -10, 40, 40]), spec)  # clipped to the frame, as nvinfer does
    np.testing.assert_array_equal(clipped, cv2.cvtColor(cv2.resize(image[0:30, 0:30], (SIZE, SIZE)), cv2.COLOR_BGR2RGB))
    with pytest.raises(ValueError, match="outside"):
        box_crop(image, np.array([200, 200, 10, 10]), spec)


def test_alignment_vs_boxcrop_script(utkface_dir: Path, yunet_path: Path, tmp_path: Path) -> None:
    """The measurement runs end to end on a few real chips (untrained model: only the plumbing is checked)."""
    torch = pytest.importorskip("torch")
    from edgeface.models import create_model
    from edgeface.models.checkpoint import save_checkpoint

    data = tmp_path / "utk"
    data.mkdir()
    for path in sorted(utkface_dir.iterdir())[:12]:
        (data / path.name).symlink_to(path)
    torch.manual_seed(0)
    card = ModelCard(model="tinyagenet", task="age", preprocess=PreprocessSpec(input_size=SIZE), label_space=AGE)
    save_checkpoint(tmp_path / "m.pt", create_model("tinyagenet", label_space=AGE), card)
    assert cli_main(["experiment", "alignment-vs-boxcrop", str(tmp_path / "m.pt"), "--data", str(data),
                     "--detector", str(yunet_path), "--out", str(tmp_path / "res"), "--val-fraction", "0.5"]) == 0
    report = json.loads((tmp_path / "res" / "alignment_vs_boxcrop.json").read_text())
    assert report["held_out"] == 6 and [c["roll_deg"] for c in report["conditions"]] == [0, 20]
    for condition in report["conditions"]:
        assert condition["images"] > 0 and condition["images"] + condition["no_face"] == 6
        crops = ("aligned", "box", "chip") if condition["roll_deg"] == 0 else ("aligned", "box")
        assert set(condition["mae_per_decade"]) == set(crops)
        for crop in crops:
            assert condition[crop]["mae"] >= 0 and 0 <= condition[crop]["cs5"] <= 1
    p = portable_path  # the recorded command names no folder of this machine
    assert report["command"] == (f"edgeface experiment alignment-vs-boxcrop {p(tmp_path / 'm.pt')} "
                                 f"--out {p(tmp_path / 'res')} --threads 2 --data {p(data)} --detector {p(yunet_path)} "
                                 "--val-fraction 0.5 --seed 0 --limit 0 --roll 0.0 20.0")
    assert str(tmp_path) not in report["command"]
    assert (tmp_path / "res" / "alignment_vs_boxcrop.png").stat().st_size > 0
    assert "box crops vs aligned crops on the same faces" in (tmp_path / "res" / "alignment_vs_boxcrop.md").read_text()


def readme_commands(*headings: str) -> list[list[str]]:
    """The `edgeface ...` command lines in code blocks of the named README sections (all sections without
    headings; backslash continuations joined, `[...]` optional parts, `nice` and shell comments dropped)."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = []
    sections = []
    for heading in headings:
        match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        assert match, f"README has no '## {heading}' section"
        sections.append(match.group(1))
    for section in sections or [text]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\[[^\]]*\]", "", line.split(" #")[0]).strip()
                line = re.sub(r"^(sudo |\.venv/bin/|nice -n \d+ )", "", line)
                if line.startswith("edgeface "):
                    commands.append(shlex.split(line))
    return commands


def test_readme_serving_and_jetson_commands_exist() -> None:
    """Every edgeface command in the two README sections this exporter owns parses with the real CLI."""
    from edgeface.cli import build_parser

    commands = readme_commands("Jetson quick start", "Serving with Triton and DeepStream")
    assert len(commands) >= 6
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv[1:])


def test_every_readme_command_parses() -> None:
    """Every `edgeface` command anywhere in the README parses with the real CLI (flags renamed or removed in the
    code cannot linger in the documentation)."""
    from edgeface.cli import build_parser

    commands = readme_commands()
    assert {c[1] for c in commands} >= {"train", "eval", "convert", "bench", "report", "pipeline", "experiment"}
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv[1:])


def test_probe_walks_deepstream_meta(convert_dir: Path, monkeypatch) -> None:
    """make_probe over a stand-in for pyds's meta lists and raw layer buffers (the real pyds needs DeepStream):
    it reads each face's host buffers by pointer, decodes them and skips other GIEs' tensor meta."""
    import sys
    from types import SimpleNamespace

    import onnxruntime as ort

    from edgeface.deepstream_probe import make_probe

    card = ModelCard.from_dict(load_manifest(convert_dir)["card"])
    session = ort.InferenceSession(str(convert_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, SIZE, SIZE)).astype(np.float32)
    batch = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x}), strict=True))
    expected = decode(card, batch)

    def chain(items):
        node = None
        for item in reversed(items):
            node = SimpleNamespace(data=item, next=node)
        return node

    buffers = []  # keep the arrays alive while the probe reads them by address

    def tensor_meta(unique_id: int, row: int):
        layers = []
        for name, dtype, code in (("probs", np.float16, 1), ("expectation", np.float32, 0)):
            values = np.ascontiguousarray(batch[name][row].reshape(-1), dtype=dtype)
            buffers.append(values)
            layers.append(SimpleNamespace(layerName=name, dataType=code, isInput=False, buffer=values,
                                          inferDims=SimpleNamespace(numElements=values.size)))
        return SimpleNamespace(unique_id=unique_id, num_output_layers=len(layers), layers=layers)

    tensor_type, other_type = "tensor-output", "classifier"

    def face(object_id: int, metas):
        user_metas = [SimpleNamespace(base_meta=SimpleNamespace(meta_type=t), user_meta_data=m) for t, m in metas]
        return SimpleNamespace(object_id=object_id, text_params=SimpleNamespace(display_text=""),
                               obj_user_meta_list=chain(user_metas))

    faces = [face(7, [(other_type, None), (tensor_type, tensor_meta(5, 0))]),
             face(8, [(tensor_type, tensor_meta(9, 1)), (tensor_type, tensor_meta(5, 1))])]
    batch_meta = SimpleNamespace(frame_meta_list=chain([SimpleNamespace(frame_num=42, obj_meta_list=chain(faces))]))
    identity = SimpleNamespace(cast=lambda data: data)
    fake_pyds = SimpleNamespace(
        gst_buffer_get_nvds_batch_meta=lambda _: batch_meta, NvDsFrameMeta=identity, NvDsObjectMeta=identity,
        NvDsUserMeta=identity, NvDsInferTensorMeta=identity,
        NvDsMetaType=SimpleNamespace(NVDSINFER_TENSOR_OUTPUT_META=tensor_type),
        get_nvds_LayerInfo=lambda meta, i: meta.layers[i], get_ptr=lambda values: values.ctypes.data)
    gst = SimpleNamespace(PadProbeReturn=SimpleNamespace(OK="ok"))
    monkeypatch.setitem(sys.modules, "pyds", fake_pyds)
    monkeypatch.setitem(sys.modules, "gi", SimpleNamespace(repository=SimpleNamespace(Gst=gst)))
    monkeypatch.setitem(sys.modules, "gi.repository", SimpleNamespace(Gst=gst))

    seen = []
    probe = make_probe(card, gie_unique_id=5, on_result=lambda *args: seen.append(args))
    assert probe(None, SimpleNamespace(get_buffer=lambda: object())) == "ok"
    assert [(frame, obj) for frame, obj, _ in seen] == [(42, 7), (42, 8)]
    for (_, _, result), want in zip(seen, expected, strict=True):
        assert result["age"] == pytest.approx(want["age"], abs=0.05)  # probs travelled as FP16
    assert faces[0].text_params.display_text == f"age {seen[0][2]['age']:.1f}"


def test_deepstream_attribute_export_has_labels_and_no_host_path(convert_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "attrs"
    shutil.copytree(convert_dir, folder)
    manifest = load_manifest(folder)
    attrs = ModelCard(model="dmmcnn", task="attributes", preprocess=PreprocessSpec(input_size=SIZE),
                      attributes=["Smiling", "Eyeglasses"], num_landmarks=5)
    manifest["card"] = attrs.to_dict()
    write_manifest(folder, manifest)
    out = tmp_path / "ds-attrs"
    assert run_cli("export", "deepstream", folder, "--out", out, "--operate-on-gie-id", 1,
                   "--operate-on-class-ids", "0") == 0
    assert (out / "labels.txt").read_text().splitlines() == ["Smiling", "Eyeglasses"]
    assert read_ini(out / "config_infer_secondary_edgeface.txt")["labelfile-path"] == "labels.txt"
    assert oct(out.stat().st_mode & 0o777) in (oct(0o755), oct(0o775))
    for path in out.iterdir():
        if path.suffix in (".txt", ".md", ".json"):
            text = path.read_text()
            assert str(tmp_path) not in text and "/shared/" not in text, path.name
