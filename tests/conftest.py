"""Shared fixtures: the real face data beside the repository (tests that need it skip without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
MODELS = SHARED / "models"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real face data not found at {path} (clone the project with ../shared beside it)")
    return path


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    return _need(DATA / "utkface-dev" / "images")


@pytest.fixture(scope="session")
def celeba_dir() -> Path:
    return _need(DATA / "celeba-dev")


@pytest.fixture(scope="session")
def attractiveness_dir() -> Path:
    return _need(DATA / "3dsk-attractiveness")


@pytest.fixture(scope="session")
def yunet_path() -> Path:
    return _need(MODELS / "yunet_s_640_640.onnx")
