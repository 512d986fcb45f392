"""Atomic file and folder writes, hashing, and the cache-folder rule.

An interrupted run never leaves a half-written artifact: every file and folder is written beside its
destination and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_KINDS = ("faces", "calibration", "tensorrt")  # aligned crops, INT8 ranges, TensorRT timing caches


def cache_dir(kind: str, root: str | Path | None = None) -> Path:
    """``ROOT/kind``: ROOT is ``root`` (a ``--cache-dir``), else ``$EDGEFACE_CACHE``, else
    ``$XDG_CACHE_HOME/edgeface``, else ``~/.cache/edgeface``.

    One rule for every stage, so train, eval and convert reuse each other's aligned crops.
    """
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; expected one of {', '.join(CACHE_KINDS)}")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = os.environ.get("EDGEFACE_CACHE") or (Path(xdg) / "edgeface" if xdg else Path.home() / ".cache/edgeface")
    return Path(root) / kind


def _normal_mode(path: Path, mode: int) -> None:
    """mkstemp / mkdtemp make 0600 / 0700; artifacts get the permissions a plain open / mkdir would give."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


class PendingFile:
    """A temporary file beside ``path`` that becomes ``path`` only on :meth:`commit`.

    For writers that stay open across calls (a video being recorded); :func:`atomic_path` wraps it for a block.
    The temporary name ends in ``path``'s suffix because OpenCV and matplotlib pick the format from it. With
    ``create=False`` the name is reserved but the file left absent, for tools that treat an existing file as input.
    """

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".tmp{self.path.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        if not create:
            self.tmp.unlink()

    def commit(self) -> None:
        _normal_mode(self.tmp, 0o666)
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    pending = PendingFile(path)
    try:
        yield pending.tmp
        pending.commit()
    finally:
        pending.discard()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path``; swap it in for ``path`` only if the block succeeds.

    Two renames (old folder aside, new one in place), then the old one is deleted: an interrupted run
    leaves the previous ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent))
    old = work.with_suffix(".old")
    try:
        yield work
        _normal_mode(work, 0o777)
        if path.exists():
            os.replace(path, old)
        os.replace(work, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def save_figure(fig, path: str | Path, dpi: int) -> None:
    """Write a matplotlib figure as PNG atomically and close it (figures stay in memory until closed)."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def write_json(path: str | Path, data: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def portable_path(path: str | Path, base: str | Path | None = None) -> str:
    """``path`` as a result or manifest should record it: relative to ``base`` (default: the working folder)
    when it lies inside it or in a folder beside it (``../shared/data/...``), else its last three parts.

    An absolute path names the machine's own folders (a temporary run, a home): meaningless anywhere else."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    relative = Path(os.path.relpath(path, Path(base).resolve() if base else Path.cwd()))
    if relative.parts.count("..") <= 1:
        return str(relative)
    return str(Path(*path.parts[-3:]))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
