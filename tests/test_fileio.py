"""The cache-folder rule and the atomic file / folder writes every stage uses."""

from __future__ import annotations

import os

import pytest

from edgeface.fileio import PendingFile, atomic_dir, atomic_path, cache_dir


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEFACE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_cache_rule_order(clean_env, tmp_path):
    assert cache_dir("faces") == tmp_path / "home/.cache/edgeface/faces"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("calibration") == tmp_path / "xdg/edgeface/calibration"
    clean_env.setenv("EDGEFACE_CACHE", str(tmp_path / "mine"))
    assert cache_dir("tensorrt") == tmp_path / "mine/tensorrt"
    assert cache_dir("faces", tmp_path / "flag") == tmp_path / "flag/faces"  # --cache-dir wins
    with pytest.raises(ValueError, match="unknown cache kind"):
        cache_dir("face")


def test_atomic_path_commits_only_on_success(tmp_path):
    target = tmp_path / "sub/model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".onnx")  # tools pick the format by suffix
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_pending_file_without_a_file(tmp_path):
    pending = PendingFile(tmp_path / "ranges.json", create=False)
    assert not pending.tmp.exists()  # a tool that reads an existing file as input sees none
    pending.tmp.write_text("{}")
    pending.commit()
    pending.discard()
    assert (tmp_path / "ranges.json").read_text() == "{}" and len(list(tmp_path.iterdir())) == 1


def test_atomic_dir_swaps_a_whole_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as work:
        (work / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert [p.name for p in out.iterdir()] == ["old.txt"]  # the previous folder is intact
    with atomic_dir(out) as work:
        (work / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no work or old folder left behind


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

