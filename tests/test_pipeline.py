"""The main job end to end, reduced: on the shipped weights (the default), and the --train path (tiny input,
1 epoch, a few SYNTHETIC pictures), with short timings."""

from __future__ import annotations

import json
import re

import pytest

from edgeface.cli import main


@pytest.mark.slow
def test_reduced_pipeline_end_to_end(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    out = tmp_path / "out"
    argv = ["pipeline", "--train", "--out", str(out), "--models", "tinyagenet", "--input-size", "32", "--epochs", "1",
            "--synthetic-size", "48", "--eval-images", "24", "--targets", "onnx,openvino-int8", "--batch", "1",
            "--duration", "0.1", "--warmup", "0.02", "--streams", "1", "--no-baseline", "--no-video",
            "--no-progress"]
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


@pytest.mark.slow
def test_pipeline_on_the_shipped_weights(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    from edgeface.weights import load_index

    if "tinyagenet" not in load_index():
        pytest.skip("this checkout ships no tinyagenet weights")
    out = tmp_path / "out"
    argv = ["pipeline", "--out", str(out), "--weights", "tinyagenet", "--targets", "onnx,openvino-int8", "--batch", "1",
            "--duration", "0.1", "--warmup", "0.02", "--streams", "1", "--no-baseline", "--no-progress"]
    assert main(argv) == 0
    assert not (out / "train").exists()  # no training by default
    manifest = json.loads((out / "models" / "tinyagenet" / "manifest.json").read_text())
    assert "UTKFace" in manifest["card"]["extra"]["data_terms"]
    drift = manifest["artifacts"]["openvino-int8"]["drift"]
    assert drift["compared_on"] == "8 eval faces" and drift["gate"]["metric"] == "mae"  # the sample faces
    lines = (out / "video" / "faces.jsonl").read_text().splitlines()
    ages = [f["age"] for line in lines for f in json.loads(line)["faces"]]
    assert len(ages) >= 2 * 8 and all(5 < a < 80 for a in ages)
    assert (out / "video" / "annotated.mp4").stat().st_size > 0
    captured = capsys.readouterr()
    assert "tinyagenet/age: openvino-int8 (int8, openvino)" in captured.out
    assert int(re.search(r"faces: (\d+) track", captured.out).group(1)) >= 8  # one track per face shown
    assert f"annotated video    {out / 'video' / 'annotated.mp4'}" in captured.err
    assert main(["pipeline", "--out", str(tmp_path / "o2"), "--data", str(tmp_path)]) == 2  # --data needs --train
