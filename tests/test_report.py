"""Claims check verdicts and the merged multi-device report (documents built by hand, so every verdict is known)."""

from __future__ import annotations

import argparse
import json

import pytest

from edgeface.bench import claims, report
from edgeface.bench.schema import validate_result

PARAMS = {"thinagenet": 3_708_229, "tinyagenet": 934_869, "vgg16-dldl": 134_678_565}


def _row(model, target, backend, precision, ms, drift=None, status="ok"):
    stats = {"mean": ms, "std": 0.1, "p50": ms, "p90": ms, "p95": ms, "p99": ms, "min": ms, "max": ms, "n": 10}
    return {"model": model, "baseline": model == "vgg16-dldl", "target": target, "backend": backend, "device": "cpu",
            "format": {"torch": "pytorch", "onnxruntime": "onnx", "openvino": "openvino"}[backend],
            "precision": precision, "threads": 2, "options": {}, "data": "SYNTHETIC (generated)", "input_size": 224,
            "params": PARAMS[model], "macs": 1, "file_mib": PARAMS[model] * 4 / 2**20, "status": status, "reason": "",
            "load_s": 0.1, "rss_after_load_mib": 1.0, "peak_rss_mib": 200.0, "drift": drift,
            "batches": [] if status != "ok" else [{
                "batch": 1, "latency_ms": stats, "throughput_latency_mode": 1000 / ms,
                "throughput_mode": {"streams": 2, "images_per_s": 1500 / ms}, "compute_only_ms": None,
                "power": None, "images_per_joule": None}]}


def _gate(passed, delta=0.01):
    return {"gate": {"metric": "mae", "value": 5.0, "reference": 5.0 - delta, "delta": delta, "limit": 0.15,
                     "units": "years", "passed": passed}}


def _document(device="amd-epyc-2c", created="2026-11-23T10:00:00Z"):
    results = [
        _row("vgg16-dldl", "pytorch", "torch", "fp32", 250.0),
        _row("vgg16-dldl", "onnx", "onnxruntime", "fp32", 200.0),
        _row("thinagenet", "pytorch", "torch", "fp32", 85.0),  # 2.94x: between the paper's 2.6x and the 3x
        _row("thinagenet", "onnx", "onnxruntime", "fp32", 48.0, _gate(True)),
        _row("thinagenet", "onnx-int8", "onnxruntime", "int8", 10.0, _gate(False, 0.9)),  # fastest, gate failed
        _row("thinagenet", "openvino-int8", "onnxruntime", "int8", 22.0, _gate(True)),
        _row("tinyagenet", "pytorch", "torch", "fp32", 100.0),  # 2.5x: goal not met
        _row("tinyagenet", "onnx", "onnxruntime", "fp32", 6.5, _gate(True)),
        _row("tinyagenet", "trt-fp16", "onnxruntime", "fp16", 1.0, status="skipped"),
    ]
    fingerprint = {"hostname": "h", "cpu": {"model": "AMD EPYC", "logical_cores": 2, "isa": {"avx2": True}},
                   "ram_gib": 23.5, "os": {}, "gpu": None, "jetson": None, "libraries": {"onnxruntime": "1.32"},
                   "git": {"commit": "abc", "dirty": False}, "load_average": [0.1, 0.1, 0.1]}
    return validate_result({
        "format": "edgeface-bench/1", "edgeface_version": "0.1.0", "created": created, "device": device,
        "fingerprint": fingerprint, "preflight_warnings": [], "load_average": {"before": [0.1], "after": [0.2]},
        "settings": {"batches": [1], "duration_s": 3.0, "warmup_s": 1.0, "streams": 2, "device": "cpu"},
        "results": results})


def _by(rows, claim_start, backend=None, precision=None):
    return [r for r in rows if r["claim"].startswith(claim_start) and (backend is None or r["backend"] == backend)
            and (precision is None or r["precision"] == precision)]


def test_claims_verdicts():
    rows = claims.claims_table([_document()])
    (params,) = _by(rows, "ThinAgeNet has 36x")
    assert params["verdict"] == "confirmed" and "36.3x" in params["measured"]
    assert _by(rows, "TinyAgeNet has 0.9M")[0]["verdict"] == "confirmed"
    assert _by(rows, "TinyAgeNet model is 3.8 MB")[0]["verdict"] == "confirmed"
    (torch_thin,) = _by(rows, "ThinAgeNet is 2.6x", "torch")
    assert torch_thin["verdict"] == "partly: >= 2.6x, < 3x" and torch_thin["ratio"] == pytest.approx(250 / 85, 1e-3)
    (ort_int8,) = _by(rows, "ThinAgeNet is 2.6x", "onnxruntime", "int8")
    assert ort_int8["ratio"] == pytest.approx(200 / 22, 1e-3)  # the gate-failed 10 ms artifact is not used
    assert ort_int8["verdict"] == "confirmed (>= 3x)"
    assert _by(rows, "TinyAgeNet is at least 3x", "torch")[0]["verdict"] == "not met"
    (thin_goal,) = _by(rows, "thinagenet batch-1 latency")
    assert thin_goal["verdict"] == "met" and "22.00 ms" in thin_goal["measured"]
    (tiny_goal,) = _by(rows, "tinyagenet batch-1 latency")
    assert tiny_goal["verdict"] == "met" and tiny_goal["backend"] == "onnxruntime"
    text = claims.claims_markdown(rows)
    assert text.count("\n") == len(rows) + 1 and "**not met**" in text


def test_report_merges_devices_and_writes_plots(tmp_path):
    old = _document(created="2026-11-23T09:00:00Z")
    old["results"] = old["results"][:2]
    paths = []
    for i, doc in enumerate([old, _document(), _document(device="nvidia-jetson-agx-orin")]):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(doc))
    docs = report.load_results(paths)
    assert sorted(d["device"] for d in docs) == ["amd-epyc-2c", "nvidia-jetson-agx-orin"]
    merged = next(d for d in docs if d["device"] == "amd-epyc-2c")
    assert len(merged["results"]) == 9 and len(merged["runs"]) == 2  # re-measured configs replaced, none lost
    rerun = _document(created="2026-11-23T11:00:00Z")
    rerun["results"] = [_row("tinyagenet", "onnx", "onnxruntime", "fp32", 5.0, _gate(True))]
    again = report.merge_runs([merged, rerun])
    tiny_onnx = [r for r in again["results"] if r["model"] == "tinyagenet" and r["target"] == "onnx"]
    assert len(again["results"]) == 9 and tiny_onnx[0]["batches"][0]["latency_ms"]["mean"] == 5.0
    out = report.write_report(docs, tmp_path / "out" / "REPORT.md")
    text = out.read_text()
    assert "SYNTHETIC" in text and "## Claims check" in text and "nvidia-jetson-agx-orin" in text
    assert "FAILED (mae delta +0.900)" in text
    assert "trt-fp16 (onnxruntime): skipped" in text
    for name in ("report_latency_vs_params.png", "report_latency_per_backend.png", "report_speed_vs_drift.png"):
        png = tmp_path / "out" / name
        assert png.read_bytes()[:4] == b"\x89PNG" and f"({name})" in text


def test_report_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        report.load_results([tmp_path / "missing.json"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="bad.json"):
        report.load_results([bad])


def test_report_cli_writes_where_out_says(tmp_path):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    args = parser.parse_args(["a.json", "--out", str(tmp_path / "R.md")])
    assert args.out == tmp_path / "R.md"
    with pytest.raises(SystemExit):
        parser.parse_args(["a.json", "-o", "R.md"])


def test_speedup_claims_use_interleaved_rounds_when_both_rows_have_them():
    doc = _document()
    rows = {(r["model"], r["backend"], r["precision"]): r for r in doc["results"]}
    # measured apart, ThinAgeNet's ONNX FP32 row ran while the machine was busy: 200 / 48 ms reads as 4.2x, but
    # in the interleaved rounds both saw the same load and the per-round ratio is 2.0x, the truth
    rows[("vgg16-dldl", "onnxruntime", "fp32")]["interleaved"] = {"rounds_ms": [100.0, 300.0, 120.0],
                                                                  "median_ms": 120.0}
    rows[("thinagenet", "onnxruntime", "fp32")]["interleaved"] = {"rounds_ms": [50.0, 150.0, 60.0], "median_ms": 60.0}
    (ort,) = _by(claims.claims_table([validate_result(doc)]), "ThinAgeNet is 2.6x", "onnxruntime", "fp32")
    assert ort["ratio"] == pytest.approx(2.0) and ort["verdict"] == "not confirmed"
    assert "3 interleaved rounds" in ort["measured"] and "IQR 2.00-2.00" in ort["measured"]
    assert ort["spread"]["ratios"] == [2.0, 2.0, 2.0] and ort["spread"]["ci95"] == [2.0, 2.0]
    (torch_thin,) = _by(claims.claims_table([doc]), "ThinAgeNet is 2.6x", "torch")  # no rounds: the means
    assert "measured apart" in torch_thin["measured"] and torch_thin["spread"] is None


def test_claims_experiment_writes_its_table_and_the_per_round_spread(tmp_path):
    from edgeface.bench import claims_check

    doc = _document()
    rows = {(r["model"], r["backend"], r["precision"]): r for r in doc["results"]}
    rows[("vgg16-dldl", "onnxruntime", "fp32")]["interleaved"] = {"rounds_ms": [100.0, 300.0, 120.0, 90.0],
                                                                  "median_ms": 110.0}
    rows[("tinyagenet", "onnxruntime", "fp32")]["interleaved"] = {"rounds_ms": [20.0, 50.0, 30.0, 30.0],
                                                                  "median_ms": 30.0}
    doc.update(command="edgeface experiment claims", setup="setup", claims=claims.claims_table([doc]),
               settings=dict(doc["settings"], rounds=4))
    (spread,) = claims_check.spread_rows(doc["claims"])  # the one pair measured in rounds
    assert spread["backend"] == "onnxruntime" and spread["spread"]["ratios"] == [5.0, 6.0, 4.0, 3.0]
    assert spread["verdict"] == "met" and spread["ratio"] == 4.5
    text = claims_check.markdown(doc)
    assert "Command: `edgeface experiment claims`" in text and "4.50x (IQR" in text and "claims.png" in text
    claims_check.plot(doc, tmp_path / "claims.png")
    assert (tmp_path / "claims.png").stat().st_size > 1000


def test_speed_vs_drift_labels_never_overlap_however_close_the_points():
    """Twelve artifacts within a few percent of each other (the unreadable cluster the old annotated plot made):
    the plot carries numbered markers only and the labels stand in a list, one line each, none overlapping."""
    rows = [_row("tinyagenet", target, "openvino" if target.startswith("openvino") else "onnxruntime", "int8",
                 10.0 + 0.05 * i, drift=_gate(i % 3 != 0, 0.02 + 0.001 * i))
            for i, target in enumerate(["onnx-int8", "openvino-int8", "onnx-fp16", "openvino-fp16"] * 3)]
    for i, row in enumerate(rows):
        row["threads"] = 1 + i // 4
    points = report.speed_vs_drift_points([{"results": rows}])
    assert len(points) == 12
    fig = report.speed_vs_drift_figure(points)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    plot, listing = fig.axes
    assert not plot.texts  # no label on the data
    boxes = [t.get_window_extent(renderer) for t in listing.texts]
    assert len(boxes) == 12 and all(b.width > 0 for b in boxes)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    width, height = fig.get_size_inches() * 110
    assert width <= 1300 and height <= 900  # a size a person reads without zooming
