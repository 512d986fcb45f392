"""Trainer: a tiny SYNTHETIC run end to end, exact resume, DDP on 2 CPU processes (gloo), configs, CLI errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeface.cli import main as cli_main
from edgeface.models.checkpoint import load_checkpoint, read_checkpoint
from edgeface.train.config import TrainConfig, load_config
from edgeface.train.trainer import train_model

TINY = {"model": "tinyagenet", "input_size": 32, "synthetic_size": 48, "batch_size": 16, "workers": 0, "threads": 1,
        "epochs": 2, "lr_step": 1, "progress": False, "val_flip": True}


def tiny_config(out: Path, **extra) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "out": str(out), **extra})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full")
    train_model(tiny_config(out))
    return out


def test_synthetic_run_writes_everything(full_run):
    for name in ("best.pt", "last.pt", "log.csv", "curves.png", "config.json", "metrics.json"):
        assert (full_run / name).is_file(), name
    rows = list(csv.DictReader((full_run / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "train_kl", "train_l1", "val_mae", "val_cs@5", "lr"} <= set(rows[0])
    assert float(rows[1]["lr"]) == pytest.approx(1e-4)  # x0.1 after lr_step epochs
    model, card, ckpt = load_checkpoint(full_run / "best.pt")
    assert card.synthetic and card.model == "tinyagenet" and card.preprocess.input_size == 32
    assert card.extra["val_metrics"]["mae"] == pytest.approx(min(float(r["val_mae"]) for r in rows), rel=1e-4)
    last = read_checkpoint(full_run / "last.pt")
    assert {"optimizer", "scheduler", "scaler", "rng", "epoch", "task_state", "history"} <= set(last)
    assert ckpt["config"] == last["config"] == tiny_config(full_run).to_dict()  # best.pt too: eval reuses it


def test_resume_reproduces_uninterrupted_run(full_run, tmp_path):
    train_model(tiny_config(tmp_path, epochs=1))
    with pytest.raises(ValueError, match="already holds a run"):
        train_model(tiny_config(tmp_path))
    train_model(tiny_config(tmp_path, resume=True))
    resumed, uninterrupted = read_checkpoint(tmp_path / "last.pt"), read_checkpoint(full_run / "last.pt")
    assert resumed["epoch"] == uninterrupted["epoch"] == 1
    for key, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert [r["val_mae"] for r in resumed["history"]] == [r["val_mae"] for r in uninterrupted["history"]]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train_model(tiny_config(tmp_path, resume=True))


def test_config_files_and_overrides(tmp_path):
    paper = load_config("dldl_age")
    assert (paper.lr, paper.lr_step, paper.lr_gamma, paper.epochs, paper.batch_size) == (1e-3, 30, 0.1, 60, 128)
    assert paper.augment["gray"] == 0.5 and paper.input_size == 224
    cfg = load_config("dldl_age", {"epochs": 3, "lr": None})
    assert cfg.epochs == 3 and cfg.lr == 1e-3
    (tmp_path / "bad.yaml").write_text("learning_rate: 1\n")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="built-in: .*dldl_age"):
        load_config("nope")


def test_ddp_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import sys\nfrom edgeface.train.config import TrainConfig\nfrom edgeface.train.trainer import train_model\n"
        f"train_model(TrainConfig.from_dict({{**{TINY!r}, 'epochs': 1, 'out': sys.argv[1]}}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29533", str(script), str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert len(rows) == 1  # rank 0 alone writes
    _, card, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    assert card.synthetic


def test_cli_errors_exit_2(tmp_path, capsys):
    assert cli_main(["train", "--data", str(tmp_path / "missing"), "--aligned", "--out", str(tmp_path / "o")]) == 2
    assert "data not found" in capsys.readouterr().err
    (tmp_path / "imgs").mkdir()
    assert cli_main(["train", "--data", str(tmp_path / "imgs"), "--out", str(tmp_path / "o")]) == 2
    assert "no usable samples" in capsys.readouterr().err  # raw photos are detected by the shipped YuNet
    assert cli_main(["train", "--resume", "--out", str(tmp_path / "o2")]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
    assert cli_main(["train", "--data", str(tmp_path / "imgs"), "--aligned", "--format", "nope",
                     "--out", str(tmp_path / "o3")]) == 2
    assert "unknown data format" in capsys.readouterr().err


def test_a_custom_task_plugs_in_with_hooks_and_state(tmp_path):
    from edgeface.train.tasks import DLDLTask

    class HookedTask(DLDLTask):
        """Counts epochs in its state and logs a per-epoch value, as a dynamic-weight task would."""

        def __init__(self):
            super().__init__("age")
            self.seen = 0

        def on_epoch_end(self, epoch, train_parts):
            self.seen += 1
            return {"weight_l1": train_parts["l1"] / 10}

        def state_dict(self):
            return {"seen": self.seen}

        def load_state_dict(self, state):
            self.seen = state["seen"]

    task = HookedTask()
    train_model(tiny_config(tmp_path, epochs=1), task=task)
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert float(rows[0]["weight_l1"]) == pytest.approx(float(rows[0]["train_l1"]) / 10, rel=1e-3)
    assert read_checkpoint(tmp_path / "last.pt")["task_state"] == {"seen": 1}
    resumed = HookedTask()
    train_model(tiny_config(tmp_path, epochs=2, resume=True), task=resumed)
    assert resumed.seen == 2


def test_init_copies_matching_layers_and_reinitialises_the_rest(full_run, tmp_path):
    from edgeface.labels import attractiveness_space
    from edgeface.models import create_model
    from edgeface.models.checkpoint import CheckpointError, warm_start

    source = read_checkpoint(full_run / "best.pt")["model"]
    model = create_model("tinyagenet", label_space=attractiveness_space(1.0, 7.0))
    copied, fresh = warm_start(model, full_run / "best.pt")
    state = model.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in copied)
    assert {k.rsplit(".", 1)[0] for k in fresh} >= {"head.fc"}  # another label space: the head is new
    assert all(k.startswith("head.") for k in fresh)
    with pytest.raises(CheckpointError, match="no layer of it matches"):
        warm_start(create_model("vgg16-dldl"), full_run / "best.pt")
    dmmcnn = create_model("dmmcnn")
    copied, _ = warm_start(dmmcnn, _thin_checkpoint(tmp_path))
    assert copied and all(k.startswith("features.") for k in copied)  # ThinAgeNet's stages 1-4 = DMM-CNN's trunk


def _thin_checkpoint(tmp_path: Path) -> Path:
    from edgeface.card import ModelCard
    from edgeface.labels import AGE
    from edgeface.models import create_model
    from edgeface.models.checkpoint import save_checkpoint
    from edgeface.preprocess import PreprocessSpec

    path = tmp_path / "thin.pt"
    save_checkpoint(path, create_model("thinagenet", label_space=AGE),
                    ModelCard("thinagenet", "age", PreprocessSpec(input_size=32), AGE, data="test"))
    return path


def test_training_with_init_records_its_source_in_the_card(full_run, tmp_path):
    train_model(tiny_config(tmp_path, epochs=1, task="attractiveness", init=str(full_run / "best.pt")))
    _, card, _ = load_checkpoint(tmp_path / "best.pt")
    assert card.extra["init"]["from"] == "best.pt" and card.extra["init"]["copied"] > 0
    assert any(k.startswith("head.") for k in card.extra["init"]["reinitialised"])


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from edgeface.train.trainer import make_scheduler

    cfg = TrainConfig(epochs=10, lr=1.0, schedule="cosine", warmup_epochs=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg)
    rates = []
    for _ in range(cfg.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[2:], rates[3:], strict=False)) and rates[-1] < 0.05
    with pytest.raises(ValueError, match="step or cosine"):
        make_scheduler(optimizer, TrainConfig(schedule="linear"))
