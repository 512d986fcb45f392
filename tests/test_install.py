"""The install keeps the platform's OpenCV: a Jetson-style venv (``--system-site-packages``) that sees a system cv2
keeps it, and ``make``'s OpenCV step installs the opencv-python-headless wheel only where no cv2 is importable.

The board is simulated with the real OpenCV of this environment: its ``cv2`` and ``numpy`` packages are linked
into a folder standing for ``/usr/lib/python3/dist-packages`` (on the path through PYTHONPATH, as the system
site is for a venv made with ``--system-site-packages``). The step's pip is replaced by ``echo``, so what it
would install is seen without a download.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WOULD_RUN = "echo would-run pip"  # the step's pip command, recorded instead of run
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _dist_packages(folder: Path) -> Path:
    """A "system" site folder holding this environment's real cv2 and numpy (linked, not copied)."""
    spec = importlib.util.find_spec("cv2")
    if spec is None or spec.origin is None:
        pytest.skip("no cv2 in this environment to stand for the system's")
    site = Path(spec.origin).resolve().parents[1]
    folder.mkdir()
    for entry in site.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ("cv2", "numpy", "opencv_python_headless"):
            (folder / entry.name).symlink_to(entry)
    return folder


def _board_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, capture_output=True)
    return venv


def _make_opencv(venv: Path, env: dict, **variables: str) -> subprocess.CompletedProcess:
    assignments = [f"{k}={v}" for k, v in {"VENV": str(venv), **variables}.items()]
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "opencv", *assignments],
                          env=env, capture_output=True, text=True, timeout=60)


def test_board_venv_keeps_the_system_cv2_and_installs_no_wheel(tmp_path):
    system = _dist_packages(tmp_path / "dist-packages")
    venv = _board_venv(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(system)}
    env.pop("VIRTUAL_ENV", None)
    done = _make_opencv(venv, env, VENV_PIP=WOULD_RUN)
    assert done.returncode == 0, done.stderr
    assert "OpenCV: keeping" in done.stdout and str(system) in done.stdout
    assert "would-run" not in done.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import cv2; print(cv2.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(system))
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert not any(Path(site).glob("opencv*")) and not any(Path(site).glob("cv2"))


def test_without_a_cv2_the_step_installs_the_opencv_extra(tmp_path):
    venv = _board_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import cv2"], env=env, capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this Python's own site-packages has a cv2: no machine without one to simulate")
    done = _make_opencv(venv, env, VENV_PIP=WOULD_RUN)
    assert done.returncode == 0, done.stderr
    assert "would-run pip install -q -e .[opencv]" in done.stdout


def test_no_extra_that_make_installs_pulls_the_opencv_wheel():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("opencv-python") for r in extras["opencv"])

    def expand(name: str) -> list[str]:
        out = []
        for requirement in extras[name]:
            if requirement.startswith("edgeface["):
                for inner in requirement[len("edgeface["):-1].split(","):
                    out += expand(inner)
            else:
                out.append(requirement)
        return out

    assert not [r for r in expand("all") if "opencv" in r]
