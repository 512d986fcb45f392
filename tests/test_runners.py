"""Runners open every converted format, agree with PyTorch on real crops, and refuse broken files clearly."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from convert_helpers import SPEC, converted, real_crops, tiny_checkpoint

from edgeface.convert.tensorrt_build import BatchProfile, check_dla, network_flags, trtexec_command
from edgeface.device import tensorrt_unavailable
from edgeface.preprocess import to_input
from edgeface.runtime.base import open_runner
from edgeface.runtime.runner_openvino import OpenVinoRunner
from edgeface.runtime.runner_tensorrt import compatibility_error

# mean |expectation - PyTorch| in years on 32 real crops, per precision (the random-trunk test model is
# much more INT8-sensitive than a trained one; see convert_helpers)
TOLERANCE = {"fp32": 1e-3, "fp16": 0.3, "int8": 6.0}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, utkface_dir) -> tuple[Path, dict]:
    return converted(tmp_path_factory, utkface_dir)


@pytest.fixture(scope="module")
def batch_and_reference(tmp_path_factory, utkface_dir):
    crops, _ = real_crops(utkface_dir, 32)
    x = to_input(crops, SPEC)
    with open_runner(tiny_checkpoint(tmp_path_factory, utkface_dir), threads=2) as torch_runner:
        return x, torch_runner.infer(x)


def test_every_built_artifact_agrees_with_torch(folder, batch_and_reference):
    out, manifest = folder
    x, reference = batch_and_reference
    for name, entry in manifest["artifacts"].items():
        if entry["status"] != "ok":
            continue
        with open_runner(out / entry["file"], threads=2) as runner:
            assert runner.card.model == "tinyagenet" and runner.input_spec["shape"] == [-1, 3, 32, 32]
            result = runner.infer(x)
        assert set(result) == {"probs", "expectation"}
        assert result["probs"].shape == (32, 101) and result["probs"].dtype == np.float32
        np.testing.assert_allclose(result["probs"].sum(1), 1.0, atol=1e-3)
        diff = np.abs(result["expectation"] - reference["expectation"]).mean()
        assert diff < TOLERANCE[entry["precision"]], (name, diff)


def test_card_comes_from_the_file_without_a_manifest(folder, tmp_path):
    out, _ = folder
    for name in ("model.onnx", "model.xml", "model.bin"):
        shutil.copy(out / name, tmp_path / name)
    for name in ("model.onnx", "model.xml"):
        with open_runner(tmp_path / name) as runner:
            assert runner.card.task == "age" and runner.card.preprocess.input_size == 32


def test_openvino_hints_threads_and_async_queue(folder, batch_and_reference):
    out, _ = folder
    x, _ = batch_and_reference
    with OpenVinoRunner(out / "model.int8.xml", threads=1, hint="THROUGHPUT") as runner:
        single = [runner.infer(x[i:i + 1])["expectation"] for i in range(6)]
        queued = runner.infer_many([x[i:i + 1] for i in range(6)], jobs=2)
        np.testing.assert_allclose(np.concatenate(single), np.concatenate([q["expectation"] for q in queued]),
                                   atol=1e-5)
        streamed = runner.infer_many(x[i:i + 2] for i in range(0, 6, 2))  # any iterable, default jobs
        assert [len(r["expectation"]) for r in streamed] == [2, 2, 2]
        with pytest.raises(ValueError, match="expected float32 input"):
            runner.infer_many([x[:1].astype(np.float64)])
    from edgeface.bench.measure import _queue_throughput

    tp = _queue_throughput({"artifact": str(out / "model.xml"), "device": "CPU"}, x[:1], 0.2, 2)
    assert tp["requests"] > 0 and tp["requests_in_flight"] >= 1 and tp["images_per_s"] > 0
    with pytest.raises(ValueError, match="performance hint"):
        OpenVinoRunner(out / "model.xml", hint="FASTEST")



def test_openvino_request_owns_its_input_across_batch_sizes(folder, batch_and_reference):
    out, _ = folder
    x, _ = batch_and_reference
    with OpenVinoRunner(out / "model.xml", threads=1) as runner:
        whole = runner.infer(x[:4])["expectation"]
        mine = np.array(x[:3])
        parts = [runner.infer(mine)["expectation"], runner.infer(x[3:4])["expectation"]]  # batch grows, shrinks
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-4)
        mine[:] = 0  # the request copied the input in: changing the caller's array afterwards changes nothing
        first = parts[0].copy()
        runner.infer(x[5:8])
        np.testing.assert_array_equal(parts[0], first)  # earlier outputs are the caller's, not the request's
        strided = np.ascontiguousarray(x[:2, :, ::-1, :])[:, :, ::-1, :]  # a non-contiguous view of x[:2]
        np.testing.assert_allclose(runner.infer(strided)["expectation"], whole[:2], atol=1e-4)


def test_openvino_runs_small_batches_on_models_compiled_for_their_size(folder, batch_and_reference, monkeypatch):
    import edgeface.runtime.runner_openvino as runner_openvino

    monkeypatch.setattr(runner_openvino, "MAX_STATIC_BATCH", 2)
    out, _ = folder
    x, _ = batch_and_reference
    with OpenVinoRunner(out / "model.xml", threads=1) as runner:
        assert runner.compiled_for(1).inputs[0].get_partial_shape().is_static  # ready before the first call
        assert runner.compiled.inputs[0].get_partial_shape()[0].is_dynamic
        results = {n: runner.infer(x[:n])["expectation"] for n in (1, 2, 3, 5)}
        assert [str(runner.compiled_for(n).inputs[0].get_partial_shape()[0]) for n in (1, 2, 3)] == ["1", "2", "?"]
        assert runner.compiled_for(5) is runner.compiled_for(3) is runner.compiled  # beyond the cap: the dynamic one
        for n, values in results.items():
            np.testing.assert_allclose(values, results[5][:n], atol=1e-4)  # every path, the same numbers


def test_openvino_reads_its_input_buffer_in_place_and_copies_anything_else(folder, batch_and_reference):
    out, _ = folder
    x, _ = batch_and_reference
    with OpenVinoRunner(out / "model.xml", threads=1) as runner, open_runner(out / "model.onnx") as reference:
        want = [reference.infer(x[i:i + 1])["expectation"] for i in range(2)]
        buffer = runner.input_buffer(1)
        assert buffer.shape == x[:1].shape and runner.input_buffer(1) is buffer  # the request's own memory
        for i in range(2):  # what the caller writes there is what runs
            buffer[:] = x[i:i + 1]
            np.testing.assert_allclose(runner.infer(buffer)["expectation"], want[i], atol=1e-3)
        swapped = buffer.transpose(0, 1, 3, 2)  # same memory and shape (square input), other layout: copied in
        buffer[:] = x[1:2].transpose(0, 1, 3, 2)
        np.testing.assert_allclose(runner.infer(swapped)["expectation"], want[1], atol=1e-3)
        assert reference.input_buffer(3).shape == (3, *x.shape[1:])  # other backends: a new array to fill
        for runner_ in (runner, reference):
            with pytest.raises(ValueError, match="at least one face"):
                runner_.input_buffer(0)
    with pytest.raises(RuntimeError, match="not active"):
        runner.input_buffer(1)


def test_onnxruntime_refuses_missing_provider(folder):
    from edgeface.errors import BackendUnavailable

    out, _ = folder
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA provider present here")
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
        open_runner(out / "model.onnx", device="cuda")


def test_truncated_artifacts_fail_with_one_clear_line(folder, tmp_path):
    out, _ = folder
    for name in ("model.onnx", "model.int8.onnx", "model.xml"):
        data = (out / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    shutil.copy(out / "model.bin", tmp_path / "model.bin")
    for name in ("model.onnx", "model.int8.onnx", "model.xml"):
        with pytest.raises(ValueError, match="cannot (load ONNX model|read OpenVINO IR)") as info:
            open_runner(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    (tmp_path / "model.bin").unlink()
    shutil.copy(out / "model.xml", tmp_path / "model.xml")
    with pytest.raises(ValueError, match="weights missing"):
        open_runner(tmp_path / "model.xml")


def test_tensorrt_engine_compatibility_is_checked_against_the_manifest():
    built = {"tensorrt": "10.3.0", "gpu": "Orin"}
    assert compatibility_error(built, "10.3.0", "Orin") is None
    message = compatibility_error(built, "10.7.0", "NVIDIA H100 80GB HBM3")
    assert "TensorRT 10.3.0" in message and "TensorRT 10.7.0" in message
    assert "built on Orin" in message and "NVIDIA H100 80GB HBM3" in message


def test_tensorrt_build_planning_without_tensorrt():
    assert BatchProfile.parse("1,4,16").shapes(224) == ((1, 3, 224, 224), (4, 3, 224, 224), (16, 3, 224, 224))
    assert BatchProfile.parse("8") == BatchProfile(1, 8, 8)
    for bad in ("4,2,8", "0,1,1", "a,b,c", "1,2"):
        with pytest.raises(ValueError, match="batch profile"):
            BatchProfile.parse(bad)
    check_dla(None, "11.0.0", {})
    with pytest.raises(ValueError, match="needs an NVIDIA Jetson"):
        check_dla(0, "10.3.0", {})
    jp6 = {"l4t": "36.4.3", "jetpack": "6.1/6.2", "model": "NVIDIA Jetson AGX Orin Developer Kit"}
    check_dla(1, "10.3.0", jp6)  # JetPack 6's TensorRT
    for version, jetson, why in (("10.8.0", jp6, "10.7 was the last"), ("11.0.0", jp6, "restored in 11.4.1"),
                                 ("11.4.1", jp6, "JetPack 7.2.2 or later"),
                                 ("11.4.1", {**jp6, "jetpack": "unknown", "model": "NVIDIA Jetson Orin Nano"},
                                  "AGX Orin only"),
                                 ("11.4.1", {**jp6, "jetpack": "7.0", "model": "NVIDIA Jetson AGX Thor"}, "no DLA")):
        with pytest.raises(ValueError, match=why):
            check_dla(0, version, jetson)
    check_dla(0, "11.4.1", {**jp6, "l4t": "38.9.0", "jetpack": "unknown"})  # a JetPack newer than the table
    with pytest.raises(ValueError, match="0 or 1"):
        check_dla(2, "10.3.0", jp6)
    command = trtexec_command("model.fp16.onnx", "model.fp16.engine", 64, BatchProfile(1, 4, 16), 512, 0)
    assert command == ("trtexec --onnx=model.fp16.onnx --stronglyTyped --minShapes=input:1x3x64x64 "
                       "--optShapes=input:4x3x64x64 --maxShapes=input:16x3x64x64 --memPoolSize=workspace:512M "
                       "--saveEngine=model.fp16.engine --useDLACore=0 --allowGPUFallback")
    assert "--stronglyTyped" not in trtexec_command("a.onnx", "a.engine", 64, BatchProfile(), trt_version="11.4.1")
    fake_trt = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=2))
    assert network_flags(fake_trt, "10.8.0") == 1 << 2
    assert network_flags(fake_trt, "11.0.0") == 0


def test_tensorrt_engines_build_and_run(folder, batch_and_reference):
    reason = tensorrt_unavailable()
    if reason:
        pytest.skip(reason)
    out, manifest = folder
    x, reference = batch_and_reference
    for name in ("trt-fp16", "trt-int8"):
        entry = manifest["artifacts"][name]
        assert entry["status"] == "ok", entry["reason"]
        assert entry["build_device"]["tensorrt"] and entry["build_device"]["compute_capability"]
        with open_runner(out / entry["file"]) as runner:
            diff = np.abs(runner.infer(x)["expectation"] - reference["expectation"]).mean()
        assert diff < TOLERANCE[entry["precision"]]


def test_openvino_overhead_rounds_pair_the_runner_with_benchmark_apps_loop(folder):
    from edgeface.bench.interleaved import measure_interleaved

    out, _ = folder
    job = {"status": "ok", "artifact": str(out / "model.xml"), "backend": "openvino", "format": "openvino",
           "device": "cpu", "threads": 1, "options": {"hint": "LATENCY"}, "input_size": 32}
    seen = []

    def reference(j: dict, seconds: float) -> tuple[float, dict]:  # stands in for the benchmark_app process
        seen.append(seconds)
        return 0.5, {"NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "2", "input_element_type": "f32"}

    (entry,) = measure_interleaved([job], rounds=3, round_s=0.02, warmup_s=0.0, reference=reference).values()
    assert seen == [0.02] * 3 and entry["benchmark_app_rounds_ms"] == [0.5] * 3
    assert entry["openvino_config"]["INFERENCE_NUM_THREADS"] == "1"  # the runner's threads, read from OpenVINO
    assert entry["benchmark_app_config_differences"]["INFERENCE_NUM_THREADS"] == ["1", "2"]
    loop = entry["paired_loop"]
    assert len(loop["rounds_ms"]) == len(loop["openvino_rounds_ms"]) == 3 and loop["overhead"]["rounds"] == 3
    assert loop["overhead"]["ratios"] == [round(a / b, 4) for a, b in zip(loop["rounds_ms"],
                                                                          loop["openvino_rounds_ms"], strict=True)]
