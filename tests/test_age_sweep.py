"""The age accuracy-vs-latency sweep: run specs, calibration on training images only, the table."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.bench.age_sweep import calibration_folder, markdown, parse_spec


def test_run_specs_name_their_runs():
    assert parse_spec("tinyagenet:64") == {"model": "tinyagenet", "size": 64, "init": None, "name": "tinyagenet-64"}
    spec = parse_spec("thinagenet:96@runs/celeba/best.pt")
    assert spec["init"] == "runs/celeba/best.pt" and spec["name"] == "thinagenet-96-init-celeba"
    for bad in ("tinyagenet", "tinyagenet:x", ":64", "tinyagenet:8", "tinyagenet:1000"):
        with pytest.raises(ValueError, match="run spec"):
            parse_spec(bad)


def test_calibration_folder_links_spread_training_images(tmp_path):
    images = []
    for i in range(40):
        path = tmp_path / "data" / f"{i}_0_0_x.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"jpeg")
        images.append(str(path))
    folder = calibration_folder(images, tmp_path / "calib", count=5)
    linked = sorted(p.name for p in folder.iterdir())
    assert len(linked) == 5 and "0_0_0_x.jpg" in linked and "39_0_0_x.jpg" in linked
    assert all((folder / name).resolve().parent == tmp_path / "data" for name in linked)
    assert len(list(calibration_folder(images[:3], tmp_path / "calib", count=5).iterdir())) == 3  # rebuilt


def test_markdown_reports_every_run_with_drift_and_latency():
    def artifact(mae: float, p50: float | None = None) -> dict:
        entry = {"mae": mae, "cs@5": 0.5, "delta_mae": round(mae - 6.0, 4)}
        return entry | ({"latency_ms": {"p50": p50}} if p50 else {})

    run = {"run": "tinyagenet-64", "size": 64, "epochs": 20, "train_seconds": 600.0,
           "artifacts": {"pytorch": artifact(6.0), "openvino-int8": artifact(6.05, 1.5),
                         "onnx-int8": artifact(6.1, 2.5)}}
    text = markdown({"date": "2026-11-30", "setup": "setup", "command": "cmd", "runs": [run]})
    assert "| tinyagenet-64 | 64 | 20 | 10.0 | 6.00 | 0.50 | 6.05 (+0.05) | 6.10 (+0.10) | 1.50 | 2.50 |" in text


def test_latency_rounds_interleave_the_artifacts(monkeypatch):
    import edgeface.runtime
    from edgeface.bench.age_sweep import interleaved_latency

    calls: list[str] = []

    class FakeRunner:
        def __init__(self, key):
            self.key, self.active = key, True

        def input_buffer(self, batch):
            return np.empty((batch, 3, 8, 8), np.float32)

        def infer(self, x):
            calls.append(self.key)
            return {}

        def deactivate(self):
            self.active = False

    opened: list[FakeRunner] = []
    monkeypatch.setattr(edgeface.runtime, "open_runner",
                        lambda path, threads: opened.append(FakeRunner(str(path))) or opened[-1])
    stats = interleaved_latency({"a": "A", "b": "B"}, seconds=0.02, rounds=3)
    assert set(stats) == {"a", "b"} and all(s["n"] >= 30 for s in stats.values())
    timed = [k for i, k in enumerate(calls) if i == 0 or k != calls[i - 1]]  # the order of runs of calls
    assert timed[-6:] == ["A", "B"] * 3  # three rounds, A then B in each
    assert not any(r.active for r in opened)


def test_experiments_end_with_json_markdown_and_the_table_printed(tmp_path, capsys):
    import json

    from edgeface.bench.experiments import write_results

    write_results(tmp_path / "out", "age_sweep", {"runs": []}, "# table\n")
    assert json.loads((tmp_path / "out" / "age_sweep.json").read_text()) == {"runs": []}
    assert (tmp_path / "out" / "age_sweep.md").read_text() == "# table\n" and "# table" in capsys.readouterr().out
