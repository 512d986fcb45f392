"""One small runner interface for every backend (after Polygraphy's runners: load, infer, close).

A backend is one module ``edgeface/runtime/runner_<name>.py`` defining a :class:`Runner` subclass;
modules are discovered, so adding a backend touches one file. Heavy imports (torch, onnxruntime,
openvino, tensorrt) happen inside ``load`` so the bare runtime needs only numpy and opencv.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgeface.card import ModelCard


class BackendUnavailable(RuntimeError):
    """The backend's library (or hardware) is missing here; the message says how to get it."""


class Runner(ABC):
    """Load an artifact, infer batches of preprocessed faces, close.

    Subclasses set ``backend`` (its name), ``suffixes`` (artifact file endings it opens by default)
    and fill ``self.card`` and ``self.input_name`` in ``load``.
    """

    backend: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None):
        self.path = Path(path)
        self.device = device
        self.threads = threads
        self.card: ModelCard | None = None
        self.input_name = "input"
        self.loaded = False

    @abstractmethod
    def load(self) -> None:
        """Open the artifact and make it ready to infer."""

    @abstractmethod
    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """A float32 NCHW batch -> {output name: array}."""

    def close(self) -> None:
        self.loaded = False

    @property
    def input_spec(self) -> dict:
        """Input name, layout and spatial size the artifact expects."""
        if self.card is None:
            raise RuntimeError("runner is not loaded")
        size = self.card.preprocess.input_size
        return {"name": self.input_name, "shape": [-1, 3, size, size], "dtype": "float32"}

    def __enter__(self) -> Runner:
        if not self.loaded:
            self.load()
            self.loaded = True
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _runner_classes() -> dict[str, type[Runner]]:
    import edgeface.runtime as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("runner_"):
            importlib.import_module(f"edgeface.runtime.{info.name}")
    return {cls.backend: cls for cls in _all_subclasses(Runner)}


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


def available_backends() -> list[str]:
    return sorted(_runner_classes())


def backend_for(path: str | Path) -> str:
    """The default backend for an artifact, chosen from its file ending."""
    name = str(path)
    for backend, cls in _runner_classes().items():
        if any(name.endswith(s) for s in cls.suffixes):
            return backend
    raise ValueError(f"no backend opens {path}; known: {', '.join(available_backends())}")


def open_runner(path: str | Path, backend: str | None = None, device: str | None = None,
                threads: int | None = None, **options) -> Runner:
    """A loaded runner for ``path``; ``backend`` overrides the choice made from the file ending;
    ``options`` are backend-specific constructor knobs (e.g. an OpenVINO performance hint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"artifact not found: {path}")
    classes = _runner_classes()
    backend = backend or backend_for(path)
    if backend not in classes:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(sorted(classes))}")
    runner = classes[backend](path, device=device, threads=threads, **options)
    runner.load()
    runner.loaded = True
    return runner
