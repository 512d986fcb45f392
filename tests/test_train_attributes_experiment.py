"""The attribute experiment's bookkeeping: the landmark weight is chosen on validation, the table reads the runs."""

from __future__ import annotations

import pytest

from edgeface.bench.train_attributes import below_baseline, run_folder, select_landmark_weight, summary_rows


def _run(val_acc: float, test_acc: float, options_off: tuple[str, ...] = (), weight: float = 1.0) -> dict:
    metrics = {"mean_accuracy": test_acc, "mean_balanced_accuracy": 0.7, "mean_f1": 0.5,
               "mean_accuracy_at_0.5": test_acc - 0.01, "mean_balanced_accuracy_at_0.5": 0.6,
               "baseline_mean_accuracy": 0.8, "baseline_mean_balanced_accuracy": 0.5}
    return {"options_off": list(options_off), "landmark_weight": weight, "train_seconds": 10.0,
            "test": {"objectives": {"accuracy": metrics, "balanced": metrics}, "landmark_nme": 0.05,
                     "val_metrics_at_best_epoch": {"mean_accuracy": val_acc}}}


def test_landmark_weight_is_chosen_on_validation_not_on_test():
    sweep = {0.1: _run(val_acc=0.88, test_acc=0.90), 1.0: _run(val_acc=0.89, test_acc=0.85)}
    assert select_landmark_weight(sweep) == 1.0


def test_run_folders_name_the_landmark_weight_only_where_it_is_used():
    assert run_folder("full", 0.3) == "full-lmw0.3"
    assert run_folder("no_dynamic_weights", 1.0) == "no_dynamic_weights-lmw1"
    assert run_folder("no_landmarks", 0.3) == "no_landmarks"


def test_summary_has_the_full_method_its_ablations_and_the_majority_baseline():
    results = {"landmark_weight": 0.3, "full_run": "full-lmw0.3",
               "landmark_sweep": {"0.3": "full-lmw0.3", "1": "full-lmw1"},
               "runs": {"full-lmw0.3": _run(0.89, 0.88, weight=0.3), "full-lmw1": _run(0.87, 0.86),
                        "no_landmarks": _run(0.86, 0.85, ("landmarks",)),
                        "no_dynamic_weights-lmw0.3": _run(0.85, 0.84, ("dynamic_weights",), 0.3)}}
    table = summary_rows(results)
    assert table[0]["run"].startswith("full method (") and table[0]["acc"] == 0.88
    rows = {r["run"].split(" (")[0]: r for r in table}
    assert rows["thresholds at 0.5"]["acc"] == 0.87 and rows["thresholds at 0.5"]["val_acc"] is None
    assert rows["landmark task off"]["nme"] is None and rows["dynamic weights off"]["acc"] == 0.84
    assert rows["majority class per attribute"]["acc"] == 0.8
    assert rows["full method, landmark weight 1"]["acc"] == 0.86
    assert "full method, landmark weight 0.3" not in rows  # the chosen weight is the full method's own row


def test_attributes_under_their_majority_baseline_are_named():
    metrics = {"per_attribute": {"Bald": {"accuracy": 0.975, "baseline_accuracy": 0.98},
                                 "Young": {"accuracy": 0.70, "baseline_accuracy": 0.75}}}
    assert below_baseline(metrics) == ["Young"]


def test_a_negative_or_non_finite_landmark_weight_is_refused_before_any_work(tmp_path, capsys):
    from edgeface.cli import main as cli_main

    for weight in ("-1", "nan"):
        with pytest.raises(SystemExit) as stop:  # argparse refuses it while parsing
            cli_main(["experiment", "train-attributes", "--data", str(tmp_path), "--landmark-weights", weight,
                      "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
        assert stop.value.code == 2
        assert "--landmark-weights" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()
