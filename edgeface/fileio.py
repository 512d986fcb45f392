"""Atomic file and folder writes, the rule for replacing an output folder, hashing, and the cache-folder rule.

An interrupted run never leaves a half-written artifact: every file and folder is written beside its
destination and renamed into place. Temporary names carry the writer's process id, so the next writer of the
same destination removes what a killed run left (and puts back a previous folder a kill caught mid-swap).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeface.errors import OutputError, PathNotText

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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _temp_name(path: Path, kind: str) -> str:
    """``.NAME.KIND-PID-``: the prefix of this process's temporary names for ``path``."""
    return f".{path.name}.{kind}-{os.getpid()}-"


def remove_stale(path: str | Path) -> list[Path]:
    """Remove what killed writers of ``path`` left beside it (temporary files and folders of processes no longer
    running); a previous folder a kill caught between the two renames of a swap is put back first.

    Returns what was removed or restored. Every writer calls it, so leaks last until the next run at most.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|building|old)-(\d+)-")
    handled = []
    if not path.parent.is_dir():
        return handled
    for item in sorted(path.parent.iterdir()):
        match = pattern.match(item.name)
        if not match or _process_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not path.exists() and item.is_dir() and any(item.iterdir()):
            os.replace(item, path)  # killed after moving the previous folder aside: it is still the output
        elif item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        handled.append(item)
    return handled


class PendingFile:
    """A temporary file beside ``path`` that becomes ``path`` only on :meth:`commit`.

    For writers that stay open across calls (a video being recorded); :func:`atomic_path` wraps it for a block.
    The temporary name ends in ``path``'s suffix because OpenCV and matplotlib pick the format from it. With
    ``create=False`` the name is reserved but the file left absent, for tools that treat an existing file as input.
    """

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_name(self.path, "tmp"), suffix=self.path.suffix,
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
def _committed_if_whole(pending: PendingFile | PendingDir) -> Iterator[Path]:
    """Yield ``pending``'s temporary path; commit it only if the block succeeds, discard it in any case."""
    try:
        yield pending.tmp
        pending.commit()
    finally:
        pending.discard()


def atomic_path(path: str | Path) -> contextlib.AbstractContextManager[Path]:
    """A temporary path beside ``path``, renamed onto ``path`` only if the ``with`` block succeeds."""
    return _committed_if_whole(PendingFile(path))


class PendingDir:
    """An empty folder beside ``path`` that replaces ``path`` (or another destination) on :meth:`commit`.

    Two renames (old folder aside, new one in place), then the old one is deleted: an interrupted run
    leaves the previous folder intact, and the next writer puts it back if the kill fell between the renames.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.path)
        self.tmp = Path(tempfile.mkdtemp(prefix=_temp_name(self.path, "building"), dir=self.path.parent))
        _normal_mode(self.tmp, 0o777)  # mkdtemp makes 0700: the output gets what a plain mkdir would give

    def commit(self, to: str | Path | None = None) -> Path:
        """Swap the folder in for ``to`` (default ``path``); returns where it went."""
        dest = Path(to) if to is not None else self.path
        if dest != self.path:
            remove_stale(dest)
        old = Path(tempfile.mkdtemp(prefix=_temp_name(dest, "old"), dir=dest.parent))
        if dest.exists():
            os.replace(dest, old)
        os.replace(self.tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
        return dest

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def atomic_dir(path: str | Path) -> contextlib.AbstractContextManager[Path]:
    """An empty folder beside ``path``, swapped in for ``path`` only if the ``with`` block succeeds."""
    return _committed_if_whole(PendingDir(path))


def check_replaceable_dir(path: str | Path, marker: str, what: str, force: bool = False,
                          inputs: tuple[str | Path | None, ...] = (), force_flag: str | None = "--force") -> None:
    """Refuse, before any work, an output folder that replacing would lose files the user did not make with us.

    ``path`` may be absent, empty, or carry ``marker`` (the file this kind of output always holds); anything
    else needs ``force`` (the command's ``force_flag``; None where it has none). The working folder, a folder
    above it, and a folder holding one of ``inputs`` are refused even with ``force``: replacing them would delete
    the inputs or the shell's own folder.
    """
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"--out {path} is the working folder (or holds it) and would be replaced as a whole: "
                          "name a new folder, e.g. --out out")
    for item in inputs:
        if item is None:
            continue
        item = Path(item).resolve()
        if item == resolved or resolved in item.parents:
            raise OutputError(f"--out {path} holds the input {item.name} and would be replaced as a whole: "
                              "name a folder outside the inputs")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise OutputError(f"--out {path} exists and is not a folder: name a folder")
    if path.is_dir() and not (path / marker).is_file() and any(path.iterdir()) and not force:
        fix = f", or pass {force_flag} to replace it" if force_flag else ""
        raise OutputError(f"--out {path} is not empty and is not {what} (no {marker}); it would be replaced as a "
                          f"whole: name a new or empty folder{fix}")


def text_path(path: str | Path) -> str:
    """``path`` as the text OpenCV takes. A path whose bytes are not UTF-8 (Python keeps them as surrogate escapes)
    crashes OpenCV's string conversion, taking the process down with no message: it is a PathNotText naming it."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PathNotText(f"{shown_path(text)}: the name is not valid UTF-8 text; rename it") from None
    return text


def shown_path(text: str) -> str:
    """A path for a message: bytes that are not UTF-8 as ``\\xff`` escapes (printable on any terminal)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def writable_folder(path: str | Path) -> Path:
    """``path``, created if needed and written to once now: a read-only or misnamed output folder fails (an OSError
    naming it) before the work whose results it was to hold, not after."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
        pass
    return path


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
