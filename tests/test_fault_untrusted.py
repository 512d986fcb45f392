"""Fault suite, untrusted files (issue 15 cases 5, 6, 7): manifests that point outside their folder, model names
that are paths, artifacts changed after convert, and model cards out of bounds. Each is refused with one line
(exit 2) by every command that loads it, before anything is written or allocated; the card parser is fuzzed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeface.card import INPUT_SIZE_RANGE, MAX_ATTRIBUTES, MAX_BINS, ModelCard
from edgeface.cli import main as cli_main
from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint
from edgeface.errors import CardError
from edgeface.labels import AGE
from edgeface.manifest import MANIFEST_NAME
from edgeface.models import create_model
from edgeface.models.checkpoint import save_checkpoint
from edgeface.preprocess import PreprocessSpec

CARD = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=32), AGE, data="untrained test model")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """An untrained 32 px checkpoint, its ONNX convert folder, and a noise video without faces."""
    root = tmp_path_factory.mktemp("untrusted")
    torch.manual_seed(0)
    save_checkpoint(root / "tiny.pt", create_model("tinyagenet", label_space=AGE), CARD)
    convert_checkpoint(root / "tiny.pt", "onnx", out_dir=root / "good",
                       options=ConvertOptions(simplify=False, progress=False, cache_dir=str(root / "cache")))
    writer = cv2.VideoWriter(str(root / "noise.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(3):
        writer.write(np.full((64, 96, 3), 40 * i, np.uint8))
    writer.release()
    return {"root": root, "checkpoint": root / "tiny.pt", "good": root / "good", "video": root / "noise.avi"}


def copy_folder(made: dict, tmp_path: Path, edit=None) -> Path:
    folder = tmp_path / "folder"
    shutil.copytree(made["good"], folder)
    if edit is not None:
        path = folder / MANIFEST_NAME
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))
    return folder


def commands(made: dict, folder: Path, tmp_path: Path) -> dict[str, list]:
    """Every command that loads (or copies) a convert folder's artifact, each writing under tmp_path/outputs."""
    out = tmp_path / "outputs"
    return {
        "eval": ["eval", folder, "--data", tmp_path],
        "run": ["run", made["video"], "--models", folder, "--threads", "1", "--jsonl", out / "r.jsonl"],
        "bench": ["bench", folder, "--backends", "onnxruntime", "--no-baseline", "--batch", "1", "--duration",
                  "0.05", "--warmup", "0", "--rounds", "0", "--in-process", "--out", out / "bench.json"],
        "triton": ["export", "triton", folder, "--out", out / "repo", "--targets", "onnx"],
        "deepstream": ["export", "deepstream", folder, "--out", out / "ds", "--operate-on-gie-id", 1,
                       "--operate-on-class-ids", 0],
    }


def run_cli(capsys, args: list) -> tuple[int, str]:
    code = cli_main([str(a) for a in args])
    return code, capsys.readouterr().err.strip()


def refused_by_all(capsys, made: dict, folder: Path, tmp_path: Path, message: str,
                   which: tuple[str, ...] = ("eval", "run", "bench", "triton", "deepstream")) -> None:
    for name, args in commands(made, folder, tmp_path).items():
        if name not in which:
            continue
        code, err = run_cli(capsys, args)
        lines = [line for line in err.splitlines() if line.startswith("edgeface")]
        assert code == 2 and len(lines) == 1 and message in lines[0], (name, err)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.*"))


@pytest.mark.parametrize("file", ["../../outside/evil.onnx", "/opt/evil.onnx", "sub/model.onnx", ".."])
def test_case5_artifact_paths_outside_the_manifest_folder_are_refused(tmp_path, capsys, made, file):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(made["good"] / "model.onnx", outside / "evil.onnx")

    def point_outside(manifest):
        manifest["artifacts"]["onnx"]["file"] = file

    folder = copy_folder(made, tmp_path, point_outside)
    refused_by_all(capsys, made, folder, tmp_path, "a manifest may name only files in its own folder")


def test_case5_an_artifact_linking_outside_the_folder_is_refused(tmp_path, capsys, made):
    folder = copy_folder(made, tmp_path)
    outside = tmp_path / "elsewhere.onnx"
    (folder / "model.onnx").rename(outside)
    (folder / "model.onnx").symlink_to(outside)  # same bytes, so the hash alone would pass
    refused_by_all(capsys, made, folder, tmp_path, "outside")


@pytest.mark.parametrize("model", ["../../../x/PWNED", "/abs", "a b", ".hidden", ""])
def test_case5_a_model_name_that_is_a_path_is_refused(tmp_path, capsys, made, model):
    def rename(manifest):
        manifest["card"]["model"] = model

    folder = copy_folder(made, tmp_path, rename)
    refused_by_all(capsys, made, folder, tmp_path, "is not a safe name", ("eval", "triton", "deepstream"))
    assert not (tmp_path.parent / "x").exists()


def test_case5_a_name_prefix_that_is_a_path_is_refused(tmp_path, capsys, made):
    repo = tmp_path / "repo"
    code, err = run_cli(capsys, ["export", "triton", made["good"], "--out", repo, "--name-prefix", "../../x"])
    assert code == 2 and "--name-prefix '../../x' is not a safe name" in err and not repo.exists()
    assert run_cli(capsys, ["export", "triton", made["good"], "--out", repo, "--name-prefix", "age_v2.1"])[0] == 0
    assert [p.name for p in repo.iterdir()] == ["age_v2.1-onnx"]


def test_exports_do_not_replace_folders_they_did_not_write(tmp_path, capsys, made):
    mine = tmp_path / "ds"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, ["export", "deepstream", made["good"], "--out", mine, "--operate-on-gie-id", 1,
                                 "--operate-on-class-ids", 0, "--overwrite"])
    assert code == 2 and "is not a DeepStream export" in err and (mine / "notes.txt").read_text() == "mine"
    repo = tmp_path / "repo"
    (repo / "tinyagenet-onnx").mkdir(parents=True)
    (repo / "tinyagenet-onnx" / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, ["export", "triton", made["good"], "--out", repo, "--targets", "onnx", "--overwrite"])
    assert code == 2 and "is not a Triton model" in err
    assert (repo / "tinyagenet-onnx" / "notes.txt").read_text() == "mine"


def test_case12_a_killed_triton_exports_staging_folder_is_removed_by_the_next_export(tmp_path, capsys, made):
    import subprocess

    ended = subprocess.Popen(["true"])
    ended.wait()
    staging = tmp_path / "repo" / f".tinyagenet-onnx.building-{ended.pid}-x" / "1"
    staging.mkdir(parents=True)  # what an export killed while copying the model leaves
    (staging / "model.onnx").write_bytes(b"half")
    assert run_cli(capsys, ["export", "triton", made["good"], "--out", tmp_path / "repo", "--targets", "onnx"])[0] == 0
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["tinyagenet-onnx"]


def test_case6_a_changed_artifact_is_refused_by_every_command_unless_no_verify(tmp_path, capsys, made):
    folder = copy_folder(made, tmp_path)
    graph = onnx.load(str(folder / "model.onnx"))
    graph.doc_string = "edited after convert"  # still a valid graph, different bytes
    onnx.save(graph, str(folder / "model.onnx"))
    refused_by_all(capsys, made, folder, tmp_path, "does not match the sha256 in its manifest")
    for name in ("run", "triton"):
        args = commands(made, folder, tmp_path)[name]
        code, err = run_cli(capsys, [*args, "--no-verify"])
        assert code == 0, (name, err)


def tampered_checkpoint(made: dict, tmp_path: Path, edit) -> Path:
    ckpt = torch.load(made["checkpoint"], map_location="cpu", weights_only=True)
    edit(ckpt["card"])
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    return path


BAD_CARDS = [
    (lambda c: c["preprocess"].update(input_size=20000), "preprocess.input_size must be an integer in 16..1024"),
    (lambda c: c["label_space"].update(stop=1e12), "label_space must have start < stop within"),
    (lambda c: c["label_space"].update(step=1e-6), "more than 10000 bins"),
    (lambda c: c["preprocess"].update(std=0), "preprocess.std must be above 0"),
    (lambda c: c["preprocess"].update(std=float("nan")), "preprocess.std must be a finite number"),
    (lambda c: c["preprocess"].update(mean=[0, float("inf"), 0]), "preprocess.mean must be a finite number"),
]


@pytest.mark.parametrize("edit, message", BAD_CARDS, ids=["size", "stop", "bins", "std0", "stdnan", "meaninf"])
def test_case7_a_card_out_of_bounds_is_refused_before_anything_is_allocated(tmp_path, capsys, made, edit, message):
    checkpoint = tampered_checkpoint(made, tmp_path, edit)
    code, err = run_cli(capsys, ["convert", checkpoint, "--to", "onnx", "--out", tmp_path / "out", "--no-progress"])
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    code, err = run_cli(capsys, ["eval", checkpoint, "--data", tmp_path])
    assert code == 2 and message in err, err
    folder = copy_folder(made, tmp_path, lambda manifest: edit(manifest["card"]))
    code, err = run_cli(capsys, ["eval", folder, "--data", tmp_path])
    assert code == 2 and message in err and "manifest.json" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.pt", "folder"]


# ---------------------------------------------------------------- the card parser, fuzzed

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8)
ATTRIBUTE_CARD = ModelCard("dmmcnn", "attributes", PreprocessSpec(input_size=64), attributes=["Male", "Smiling"],
                           thresholds=[0.4, 0.6], threshold_objective="f1", num_landmarks=5)
FIELDS = ["model", "task", "preprocess", "label_space", "attributes", "thresholds", "threshold_objective",
          "num_landmarks", "data", "extra"]
PREPROCESS_FIELDS = ["input_size", "color", "mean", "std", "template", "layout"]


def check_parse(data: object) -> None:
    """A valid card within every bound, or a one-line CardError: nothing else."""
    try:
        card = ModelCard.from_dict(data)
    except CardError as e:
        assert str(e) and "\n" not in str(e)
        return
    low, high = INPUT_SIZE_RANGE
    assert low <= card.preprocess.input_size <= high
    assert math.isfinite(card.preprocess.std) and card.preprocess.std > 0
    assert all(math.isfinite(m) for m in card.preprocess.mean)
    assert card.label_space is None or card.label_space.num_bins <= MAX_BINS
    assert len(card.attributes or []) <= MAX_ATTRIBUTES
    assert all(0 <= t <= 1 for t in card.thresholds or [])
    assert ModelCard.from_dict(json.loads(card.to_json())) == card


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_random_json_is_a_valid_card_or_one_line(data):
    check_parse(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([CARD, ATTRIBUTE_CARD]), st.sampled_from(FIELDS + PREPROCESS_FIELDS), JSON, st.booleans())
def test_a_valid_card_with_one_field_replaced_or_dropped_is_valid_or_one_line(card, name, value, drop):
    data = json.loads(card.to_json())
    holder = data["preprocess"] if name in PREPROCESS_FIELDS else data
    if drop:
        holder.pop(name, None)
    else:
        holder[name] = value
    check_parse(data)
    check_parse(json.loads(json.dumps(data)))  # the same through JSON text (NaN and inf survive as literals)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_card_json_text_is_a_valid_card_or_one_line(text):
    try:
        ModelCard.from_json(text)
    except CardError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([("preprocess", "input_size"), ("preprocess", "std"), ("label_space", "start"),
                        ("label_space", "stop"), ("label_space", "step"), (None, "num_landmarks")]),
       st.floats() | st.integers())
def test_any_number_in_a_numeric_field_is_a_valid_card_or_one_line(field, value):
    data = json.loads(CARD.to_json())
    (data[field[0]] if field[0] else data)[field[1]] = value
    check_parse(data)
