"""The main job end to end, reduced: tiny input, 1 epoch, a few SYNTHETIC pictures, short timings."""

from __future__ import annotations

import json

import pytest

from edgeface.cli import main


@pytest.mark.slow
def test_reduced_pipeline_end_to_end(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    out = tmp_path / "out"
    argv = ["pipeline", "--out", str(out), "--models", "tinyagenet", "--input-size", "32", "--epochs", "1",
            "--synthetic-size", "48", "--eval-images", "24", "--targets", "onnx,openvino-int8", "--batch", "1",
            "--duration", "0.1", "--warmup", "0.02", "--streams", "1", "--no-baseline", "--no-progress"]
    assert main(argv) == 0
    assert (out / "train" / "tinyagenet" / "best.pt").is_file()
    manifest = json.loads((out / "models" / "tinyagenet" / "manifest.json").read_text())
    assert manifest["card"]["data"].startswith("SYNTHETIC")
    assert manifest["artifacts"]["openvino-int8"]["drift"]["gate"]["metric"] == "mae"
    document = json.loads((out / "bench.json").read_text())
    measured = {(r["target"], r["backend"]): r["status"] for r in document["results"]}
    assert measured == {("pytorch", "torch"): "ok", ("onnx", "onnxruntime"): "ok",
                        ("openvino-int8", "openvino"): "ok"}
    report = (out / "REPORT.md").read_text()
    assert "SYNTHETIC" in report and "## Claims check" in report
    assert (out / "report_latency_per_backend.png").is_file()
    claims = (out / "claims.md").read_text()
    assert "TinyAgeNet has 0.9M parameters" in claims and "n/a (32px input)" in claims
    assert "[5/5]" in capsys.readouterr().err
    assert main(argv) == 2  # a second run into the same folder is refused, nothing overwritten
