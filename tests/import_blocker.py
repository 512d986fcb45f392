"""A machine without a package, for tests that run edgeface in a child process: a ``sitecustomize`` whose path
finder does not find the package, exactly as where it is not installed (``importlib.util.find_spec`` gives None,
``import`` raises ModuleNotFoundError)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = '''import sys
from importlib.machinery import PathFinder


class _Absent(PathFinder):
    """The path finder of a machine without {name}: it is simply not found (find_spec gives None)."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == {name!r} or name.startswith({prefix!r}):
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [_Absent if finder is PathFinder else finder for finder in sys.meta_path]
'''


def without(package: str, folder: Path) -> dict:
    """The environment of a child process in which ``package`` cannot be imported (sitecustomize in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(TEMPLATE.format(name=package, prefix=package + "."))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
