"""The 3DSK fine-tuning experiment: its fold recipe and its table (the training itself runs in the experiment)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeface.bench.attractiveness_cv import fold_config, markdown


def test_every_fold_fine_tunes_from_the_given_checkpoint(tmp_path):
    args = argparse.Namespace(data=Path("3dsk"), detector=Path("yunet.onnx"), epochs=15, lr=0.001, init=Path("age.pt"),
                              folds=5, threads=1, work=tmp_path)
    cfg = fold_config(args, "thinagenet", 64, fold=3)
    assert (cfg.model, cfg.input_size, cfg.init, cfg.folds, cfg.fold) == ("thinagenet", 64, "age.pt", 5, 3)
    assert cfg.task == "attractiveness" and cfg.std_col == "attractiveness_std" and cfg.schedule == "cosine"
    assert cfg.out == str(tmp_path / "fold3") and not cfg.resume
    (tmp_path / "fold3").mkdir()
    (tmp_path / "fold3" / "last.pt").write_bytes(b"")
    assert fold_config(args, "thinagenet", 64, fold=3).resume  # an interrupted fold continues


def test_markdown_compares_with_the_training_mean():
    metrics = {"pearson": 0.5, "mae": 0.4, "rmse": 0.5}
    report = {"date": "2026-11-30", "images": 100, "folds": 5, "model": "thinagenet", "input_size": 64,
              "init": {"file": "age.pt", "task": "age", "data": "utkface"}, "epochs": 15, "seconds": 60.0,
              "command": "cmd", "pooled": metrics, "baseline_train_mean": {"mae": 0.55, "rmse": 0.66},
              "per_fold": [{"fold": 0, "pearson": 0.5}]}
    text = markdown(report)
    assert "| fine-tuned thinagenet | 0.500 | 0.400 | 0.500 |" in text and "| training-fold mean | - | 0.550 |" in text
