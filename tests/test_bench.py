"""Benchmark harness: statistics, schema, job enumeration, and a real (tiny) measurement end to end."""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import pytest

from edgeface.bench import bench, jobs, measure, tables, timing
from edgeface.bench.interleaved import (
    benchmark_app_command,
    config_differences,
    parse_benchmark_app,
    parse_benchmark_app_config,
)
from edgeface.bench.schema import load_schema, validate_result
from edgeface.bench.timing import (
    MIN_SAMPLES,
    concurrent_throughput,
    interleaved_ratios,
    latency_stats,
    time_calls,
    warm_up,
)

SIZE = 32


def test_latency_stats_percentiles():
    samples = np.arange(1, 101) / 1000.0  # 1..100 ms
    s = latency_stats(samples)
    assert s["n"] == 100 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["mean"] == pytest.approx(50.5)
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1), rel=1e-4)
    assert s["ci95"] == pytest.approx(1.959964 * s["std"] / 10, rel=1e-3)  # the mean's 95% CI half-width
    assert latency_stats([0.002])["std"] == latency_stats([0.002])["ci95"] == 0.0
    with pytest.raises(ValueError):
        latency_stats([])


def test_repeats_interval_uses_students_t_over_the_rounds():
    assert timing.repeats_ci95([10.0, 12.0]) == pytest.approx((11.0, 12.706))  # t(1) * s / sqrt(2), s = sqrt(2)
    mean, half = timing.repeats_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0 and half == pytest.approx(2.776 * np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5))
    assert timing.repeats_ci95([4.0]) is None
    wide = timing.repeats_ci95(list(range(100)))
    assert wide[1] == pytest.approx(timing.Z95 * np.std(range(100), ddof=1) / 10)


def test_time_calls_takes_the_minimum_sample_count_or_the_duration_whichever_comes_later():
    ticks = iter(range(10**6))
    samples = time_calls(lambda: None, seconds=0.0, clock=lambda: float(next(ticks)))
    assert len(samples) == MIN_SAMPLES >= 100


def test_time_based_loops_with_a_fake_clock():
    now = [0.0]

    def clock() -> float:
        return now[0]

    def call() -> None:
        now[0] += 0.25

    samples = time_calls(call, seconds=2.0, min_calls=3, clock=clock)
    assert samples == [0.25] * 8  # stops once the measured window is used up
    assert len(time_calls(call, seconds=0.0, min_calls=3, clock=clock)) == 3
    calls = []
    assert warm_up(lambda: calls.append(1), seconds=0.0, min_calls=2) == 2


def test_concurrent_throughput_counts_every_stream():
    result = concurrent_throughput([lambda: None, lambda: None], batch=4, seconds=0.05)
    assert result["streams"] == 2 and result["requests"] > 0
    assert result["images_per_s"] == pytest.approx(result["requests"] * 4 / result["seconds"], rel=0.02)

    def boom() -> None:
        raise RuntimeError("stream failed")

    with pytest.raises(RuntimeError, match="stream failed"):
        concurrent_throughput([boom], batch=1, seconds=0.01)


@pytest.fixture(scope="session")
def convert_folder(tmp_path_factory):
    """A real convert output folder: a tiny TinyAgeNet exported to ONNX (no calibration needed)."""
    pytest.importorskip("onnxruntime")
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint

    work = tmp_path_factory.mktemp("bench")
    ckpt = jobs.fresh_checkpoint("tinyagenet", work, SIZE)
    convert_checkpoint(ckpt, ["onnx"], out_dir=work / "tiny", options=ConvertOptions(progress=False))
    return work / "tiny"


SETTINGS = {"batches": [1, 2], "duration_s": 0.1, "warmup_s": 0.02, "streams": 2, "backends": ["torch", "onnxruntime"],
            "device": "cpu", "rounds": 2, "round_s": 0.02}


@pytest.fixture(scope="session")
def document(convert_folder):
    found = jobs.folder_jobs(convert_folder, ["torch", "onnxruntime"], "cpu")
    return measure.run_benchmark(jobs.expand_variants(found, [1], {}), SETTINGS, isolate=False, progress=False)


def test_folder_jobs_lists_checkpoint_and_artifacts(convert_folder):
    found = jobs.folder_jobs(convert_folder, ["torch", "onnxruntime", "openvino"], "cpu")
    assert {(j["target"], j["backend"]) for j in found} == {("pytorch", "torch"), ("onnx", "onnxruntime")}
    only_ort = jobs.folder_jobs(convert_folder, ["onnxruntime"], "cpu")
    assert [j["target"] for j in only_ort] == ["onnx"]
    variants = jobs.expand_variants(only_ort, [1, 2], {"onnxruntime": [{}]})
    assert [v["threads"] for v in variants] == [1, 2]


def test_measured_document_follows_the_schema(document):
    validate_result(document)
    assert document["format"] == "edgeface-bench/1"
    rows = {r["target"]: r for r in document["results"]}
    assert set(rows) == {"pytorch", "onnx"}
    for r in rows.values():
        assert r["status"] == "ok", r["reason"]
        assert r["params"] == 934_869 and r["macs"] > 0
        assert r["file_mib"] > 3 and r["load_s"] > 0 and r["peak_rss_mib"] > 0
        assert [b["batch"] for b in r["batches"]] == [1, 2]
        for b in r["batches"]:
            s = b["latency_ms"]
            assert 0 < s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
            assert b["throughput_latency_mode"] == pytest.approx(b["batch"] * 1000 / s["mean"], rel=1e-3)
            assert b["throughput_mode"]["streams"] == 2 and b["throughput_mode"]["images_per_s"] > 0
    table = tables.markdown_table(document)
    assert "| tinyagenet | onnx | onnxruntime | fp32 | t=1 |" in table
    for r in rows.values():  # the interleaved batch-1 rounds: no benchmark_app reference for these backends
        assert len(r["interleaved"]["rounds_ms"]) == 2 and r["interleaved"]["benchmark_app_rounds_ms"] is None
    interleaved = tables.interleaved_table(document)
    assert "| tinyagenet | onnx | onnxruntime | t=1 | 2 |" in interleaved
    mean, half = timing.repeats_ci95(rows["onnx"]["interleaved"]["rounds_ms"])
    assert f"{mean:.2f} ± {half:.2f}" in interleaved  # the interval over rounds, not over calls of one process
    json.dumps(document)  # plain JSON


def test_schema_rejects_broken_documents(document):
    broken = copy.deepcopy(document)
    del broken["results"][0]["batches"][0]["latency_ms"]["p99"]
    with pytest.raises(ValueError, match="p99"):
        validate_result(broken)
    broken = copy.deepcopy(document)
    broken["results"][0]["precision"] = "fp8"
    with pytest.raises(ValueError, match="fp8"):
        validate_result(broken)
    assert load_schema()["properties"]["format"]["enum"] == ["edgeface-bench/1"]


def test_isolated_run_measures_in_a_fresh_process(convert_folder):
    found = jobs.expand_variants(jobs.folder_jobs(convert_folder, ["onnxruntime"], "cpu"), [1], {})
    settings = dict(SETTINGS, batches=[1], streams=1)
    doc = measure.run_benchmark(found, settings, isolate=True, progress=False)
    row = doc["results"][0]
    assert row["status"] == "ok", row["reason"]
    assert row["batches"][0]["throughput_mode"] is None  # streams=1: latency mode only


def test_failed_backend_is_recorded_not_fatal(convert_folder):
    found = jobs.expand_variants(jobs.folder_jobs(convert_folder, ["onnxruntime"], "cpu"), [1], {})
    found[0]["device"] = "no-such-device"
    doc = measure.run_benchmark(found, dict(SETTINGS, batches=[1]), isolate=False, progress=False)
    assert doc["results"][0]["status"] == "failed" and "no-such-device" in doc["results"][0]["reason"]


def test_best_row_respects_the_drift_gate(document):
    rows = copy.deepcopy(document["results"])
    fastest = tables.best_row(rows, "tinyagenet")
    fastest["drift"] = {"gate": {"passed": False}}
    other = tables.best_row(rows, "tinyagenet", drift_gate=True)
    assert other is not fastest and other is not None
    assert tables.best_row(rows, "thinagenet") is None


def test_cli_rejects_unknown_inputs(tmp_path):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["no-such-model-or-folder", "--no-baseline", "--out", str(tmp_path / "r.json")])
    assert args.out == tmp_path / "r.json"
    with pytest.raises(FileNotFoundError, match="neither a file nor the name of shipped weights.*untrained zoo"):
        jobs.collect_jobs(args.inputs, tmp_path, ["onnxruntime"], ["onnx"], baseline=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["x", "--batch", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["x", "--output", "r.json"])
    for words, message in ((["--backends", "onnxruntime,tensor-rt"], "unknown backend tensor-rt"),
                           (["--targets", "onnx,trt-fp8"], "unknown target 'trt-fp8'")):
        with pytest.raises(ValueError, match=message):  # before any model is converted or measured
            bench.main(parser.parse_args(["tinyagenet", *words, "--out", str(tmp_path / "r.json")]))
    assert not (tmp_path / "r.json").exists()


@pytest.mark.skipif("not __import__('shutil').which('nvidia-smi')", reason="no NVIDIA GPU here: the CUDA "
                    "compute-only (CUDA events) path needs one")
def test_cuda_compute_only(convert_folder):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch here has no CUDA")
    found = jobs.expand_variants(jobs.folder_jobs(convert_folder, ["torch"], "cuda"), [None], {})
    doc = measure.run_benchmark(found, dict(SETTINGS, batches=[1], streams=1, device="cuda"), isolate=False,
                              progress=False)
    assert doc["results"][0]["batches"][0]["compute_only_ms"]["mean"] > 0


def test_interleaved_ratios_cancel_a_load_that_drifts_between_rounds():
    load = np.array([1.0, 2.5, 1.2, 3.0, 1.1])  # the machine gets busier and quieter between rounds
    slow, fast = 40.0 * load, 10.0 * load * np.array([1.0, 1.05, 0.95, 1.1, 0.9])
    x = interleaved_ratios(slow, fast)
    assert x["rounds"] == 5 and x["median"] == pytest.approx(4.0)
    assert x["q1"] == pytest.approx(40 / 10.5, abs=1e-3) and x["q3"] == pytest.approx(40 / 9.5, abs=1e-3)
    assert x["ci95"][0] <= x["median"] <= x["ci95"][1] and x["ci95"][1] <= max(x["ratios"])
    # the same timings compared apart (a quiet round of one, a busy round of the other) read as a 1.2x speed-up
    assert slow[0] / fast[3] == pytest.approx(40 / 33)
    assert interleaved_ratios([1, 2, 3, 4, 5], [1, 1, 1, 1, 1])["median"] == 3
    assert interleaved_ratios([2.0], [1.0], seed=1)["ci95"] == [2.0, 2.0]


def test_interleaved_ratios_reject_unpaired_or_empty_rounds():
    with pytest.raises(ValueError, match="same number"):
        interleaved_ratios([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same number"):
        interleaved_ratios([], [])
    with pytest.raises(ValueError, match="positive"):
        interleaved_ratios([1.0], [0.0])


def test_benchmark_app_reference_command_and_output():
    job = {"artifact": "m/model.int8.xml", "device": "cpu", "input_size": 224, "threads": 2}
    command = benchmark_app_command(job, 2.4)
    assert command[1] == "-c" and "openvino.tools.benchmark.main" in command[2]
    # an f32 input like the runner's (benchmark_app would feed u8), whole seconds (it refuses 2.4)
    assert " ".join(command[3:]) == ("-m m/model.int8.xml -d CPU -api sync -t 2 -shape [1,3,224,224] -ip f32 "
                                     "-infer_precision f32 -hint none -nstreams 1 -nthreads 2")
    assert benchmark_app_command(job, 0.3)[command.index("-t") + 1] == "1"
    assert benchmark_app_command(dict(job, threads=None), 1.0)[-2:] == ["-hint", "latency"]
    output = "[ INFO ] Latency:\n[ INFO ]    Median:     7.21 ms\n[ INFO ]    Average:    7.40 ms\n"
    assert parse_benchmark_app(output) == 7.21
    assert parse_benchmark_app("[ INFO ]    Median:        812.50 us") == pytest.approx(0.8125)
    with pytest.raises(ValueError, match="median"):
        parse_benchmark_app("[ ERROR ] cannot read model")


BENCHMARK_APP_OUTPUT = """[Step 6/11] Configuring input of the model
[ INFO ] Model inputs:
[ INFO ]     input (node: input) : u8 / [N,C,H,W] / [1,3,224,224]
[ INFO ] Model outputs:
[ INFO ]     probs (node: probs) : f32 / [...] / [1,101]
[Step 8/11] Querying optimal runtime parameters
[ INFO ] Model:
[ INFO ]   NETWORK_NAME: onnx_Frontend_IR
[ INFO ]   OPTIMAL_NUMBER_OF_INFER_REQUESTS: 1
[ INFO ]   NUM_STREAMS: 1
[ INFO ]   INFERENCE_NUM_THREADS: 2
[ INFO ]   INFERENCE_PRECISION_HINT: <Type: 'float32'>
[ INFO ]   PERFORMANCE_HINT: LATENCY
[ INFO ]   ENABLE_CPU_PINNING: True
[Step 11/11] Dumping statistics report
[ INFO ] Latency:
[ INFO ]    Median:        7.71 ms
"""


def test_benchmark_app_config_is_read_from_its_output_and_compared_with_the_runners():
    config = parse_benchmark_app_config(BENCHMARK_APP_OUTPUT)
    assert config["input_element_type"] == "u8"  # the first input's, not an output's
    assert config["NUM_STREAMS"] == "1" and config["INFERENCE_PRECISION_HINT"] == "<Type: 'float32'>"
    assert config["PERFORMANCE_HINT"] == "LATENCY" and "Median" not in config
    runner = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "2",
              "INFERENCE_PRECISION_HINT": "<Type: 'float32'>", "ENABLE_CPU_PINNING": "True",
              "OPTIMAL_NUMBER_OF_INFER_REQUESTS": "1", "input_element_type": "f32"}
    assert config_differences(runner, config) == {"input_element_type": ["f32", "u8"]}
    assert config_differences(runner, dict(config, input_element_type="f32")) == {}
    # a setting only one side reports differs; settings outside the compared ones (NETWORK_NAME) do not count
    assert config_differences(dict(runner, ENABLE_HYPER_THREADING="False"), dict(config, input_element_type="f32",
                              NETWORK_NAME="other")) == {"ENABLE_HYPER_THREADING": ["False", None]}
    assert config_differences(dict(runner, INFERENCE_NUM_THREADS="1"), dict(config, input_element_type="f32")) == {
        "INFERENCE_NUM_THREADS": ["1", "2"]}


def test_timed_rounds_interleave_turns_with_a_reference_after_each():
    from edgeface.bench.interleaved import round_medians_ms, timed_rounds

    log: list[str] = []
    samples = timed_rounds({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, rounds=3, turn_s=0.0,
                           warmup_s=0.0, min_calls=2, after_turn=lambda key: log.append(f"ref-{key}"))
    assert log[:4] == ["a", "a", "b", "b"]  # each call warmed up (twice at least) before the rounds
    assert log[4:] == ["a", "a", "ref-a", "b", "b", "ref-b"] * 3
    assert [len(turn) for turn in samples["a"]] == [2, 2, 2] and list(samples) == ["a", "b"]
    assert round_medians_ms([[0.001, 0.003, 0.002], [0.010, 0.030]]) == [2.0, 20.0]


def test_rows_measured_only_in_interleaved_rounds_follow_the_schema(convert_folder):
    found = jobs.expand_variants(jobs.folder_jobs(convert_folder, ["onnxruntime"], "cpu"), [1], {})
    broken = dict(found[0], artifact=found[0]["artifact"] + ".missing")
    settings = {"batches": [1], "duration_s": 0.02, "warmup_s": 0.0, "rounds": 2, "round_s": 0.01, "streams": 1}
    doc = measure.run_benchmark(found + [broken], settings, isolate=False, progress=False, measured_apart=False,
                                reference=False)
    ok, failed = doc["results"]
    assert ok["status"] == "ok" and failed["status"] == "failed" and failed["batches"] == []
    (batch,) = ok["batches"]  # every call of every turn, the rounds' medians beside them
    assert batch["batch"] == 1 and batch["latency_ms"]["n"] >= 2 * 5 and len(ok["interleaved"]["rounds_ms"]) == 2
    assert batch["latency_ms"] == ok["interleaved"]["latency_ms"]
    with pytest.raises(ValueError, match="rounds"):
        measure.run_benchmark(found, dict(settings, rounds=0), isolate=False, progress=False, measured_apart=False)


def test_bench_records_its_command_with_portable_paths(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    argv = ["/x/edgeface/__main__.py", "bench", "tinyagenet", "--out", str(tmp_path / "r.json"), "--rounds", "5"]
    assert bench.command_line(argv) == "edgeface bench tinyagenet --out r.json --rounds 5"
    assert bench.command_line(["edgeface", "m", "--threads", "1,2"]) == "edgeface bench m --threads 1,2"


def test_untrained_measures_zoo_names_even_where_weights_ship(monkeypatch, tmp_path):
    exported: dict[str, list] = {}
    monkeypatch.setattr(jobs, "export_models", lambda names, *a, **k: exported.setdefault("untrained", names) and [])
    monkeypatch.setattr(jobs, "export_checkpoints", lambda ckpts, *a, **k: exported.setdefault("shipped", ckpts) and [])
    jobs.collect_jobs(["tinyagenet"], tmp_path, ["onnxruntime"], ["onnx"], baseline=False, untrained=True)
    assert exported == {"untrained": ["tinyagenet"], "shipped": []}
    exported.clear()
    jobs.collect_jobs(["tinyagenet"], tmp_path, ["onnxruntime"], ["onnx"], baseline=False)
    assert exported["untrained"] == [] and [p.stem for p in exported["shipped"]] == ["tinyagenet"]
