"""One runner interface for every backend, after Polygraphy's runners (activate, infer, deactivate).

The base class keeps the state (active or not), checks every input against the card's input spec and
offers the hooks a benchmark needs (:meth:`Runner.infer_many`, :meth:`Runner.compute_only_timer`), so
callers never touch a backend's sessions, contexts or streams. A backend is one module
``edgeface/runtime/runner_<name>.py`` defining a subclass that implements the ``*_impl`` methods;
modules are discovered, so adding a backend touches one file. Heavy imports (torch, onnxruntime,
openvino, tensorrt) happen inside ``activate_impl`` so the bare runtime needs only numpy and opencv.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgeface.card import ModelCard
from edgeface.targets import suffix_backends
from edgeface.weights import resolve_model


class Runner(ABC):
    """Activate an artifact, infer batches of preprocessed faces, deactivate.

    Subclasses set ``backend`` (its name), implement :meth:`activate_impl` (which fills ``self.card``,
    ``self.input_name`` and ``self.output_names``), :meth:`infer_impl` and :meth:`deactivate_impl`.
    """

    backend: ClassVar[str]
    install_hint: ClassVar[str] = ""

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None):
        self.path = Path(path)
        self.device = device
        self.threads = threads
        self.card: ModelCard | None = None
        self.input_name = "input"
        self.output_names: list[str] = []
        self._item_shape: tuple[int, ...] | None = None  # one face's input shape, set on activation
        self._active = False

    # -------------------------------------------------------------------------------- backend hooks
    @abstractmethod
    def activate_impl(self) -> None:
        """Open the artifact and make it ready to infer."""

    @abstractmethod
    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """A checked float32 batch -> {output name: array}."""

    @abstractmethod
    def deactivate_impl(self) -> None:
        """Release what :meth:`activate_impl` acquired."""

    # ------------------------------------------------------------------------------ the public API
    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> Runner:
        """Open the artifact (once; activating an active runner does nothing)."""
        if not self._active:
            self.activate_impl()
            if self.card is None:
                self.deactivate_impl()
                raise ValueError(f"{self.path} carries no model card")
            self._item_shape = tuple(self.input_spec["shape"][1:])  # one face's input, for check_input's fast path
            self._active = True
        return self

    def deactivate(self) -> None:
        """Release the artifact; safe to call twice, and on a runner that never activated."""
        if self._active:
            self._active = False
            self.deactivate_impl()

    def require_active(self) -> None:
        """Raise RuntimeError unless the runner is active (inferring on a closed session would crash)."""
        if not self._active:
            raise RuntimeError(f"{self.backend} runner for {self.path} is not active: call activate() or use "
                               "it as a context manager")

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """A float32 batch laid out as :attr:`input_spec` says -> {output name: array}."""
        self.require_active()
        self.check_input(x)
        return self.infer_impl(x)

    def input_buffer(self, batch: int) -> np.ndarray:
        """A float32 array for a batch of ``batch`` faces, laid out as :attr:`input_spec` says, for the caller to
        fill: :meth:`infer` reads it where it is when the backend can (OpenVINO: the infer request's own input
        memory, so no copy happens per call); elsewhere it is a new array."""
        self.require_active()
        if batch < 1:
            raise ValueError(f"a batch holds at least one face, got {batch}")
        return np.empty([batch, *self.input_spec["shape"][1:]], np.float32)

    def infer_many(self, batches: Iterable[np.ndarray], jobs: int | None = None) -> list[dict[str, np.ndarray]]:
        """Many batches, results in input order. Backends with asynchronous requests keep ``jobs`` in flight
        (default :attr:`default_jobs`); this base version runs them one after the other."""
        return [self.infer(x) for x in batches]

    @property
    def default_jobs(self) -> int:
        """How many requests :meth:`infer_many` keeps in flight unless told otherwise."""
        return 1

    def compute_only_timer(self, x: np.ndarray) -> Callable[[], float] | None:
        """A function that runs ``x`` (already in device memory) once and returns the device compute time in
        seconds, timed with CUDA events; None where the backend has no such timing (CPU backends)."""
        return None

    @property
    def input_spec(self) -> dict:
        """Input name, shape (batch -1, in the card's layout) and dtype the artifact expects."""
        if self.card is None:
            raise RuntimeError("runner is not active")
        spec = self.card.preprocess
        shape = [-1, 3, spec.input_size, spec.input_size] if spec.layout == "NCHW" else \
            [-1, spec.input_size, spec.input_size, 3]
        return {"name": self.input_name, "shape": shape, "dtype": "float32"}

    def check_input(self, x: np.ndarray) -> None:
        """Raise ValueError, naming what differs, if ``x`` does not match :attr:`input_spec`."""
        if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[1:] == self._item_shape and len(x):
            return  # the per-call path: one comparison, no message built unless something is wrong
        spec = self.input_spec
        expected = "x".join("N" if d == -1 else str(d) for d in spec["shape"])
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{self.path.name}: expected a numpy array {expected} {spec['dtype']}, "
                             f"got {type(x).__name__}")
        if x.dtype != np.dtype(spec["dtype"]):
            raise ValueError(f"{self.path.name}: expected {spec['dtype']} input, got {x.dtype} "
                             "(edgeface.preprocess.to_input makes it)")
        if x.ndim != len(spec["shape"]) or x.shape[0] < 1 or any(
                want not in (-1, got) for want, got in zip(spec["shape"], x.shape, strict=True)):
            raise ValueError(f"{self.path.name}: expected input {expected} ({self.card.preprocess.layout}), "
                             f"got {'x'.join(map(str, x.shape))}")

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()


def _runner_classes() -> dict[str, type[Runner]]:
    import edgeface.runtime as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("runner_"):
            importlib.import_module(f"edgeface.runtime.{info.name}")
    # only the package's own backend modules register: a subclass elsewhere (a test double, a wrapper)
    # must not take over a backend name
    return {cls.backend: cls for cls in _all_subclasses(Runner) if cls.__module__.startswith(f"{pkg.__name__}.runner_")}


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


def available_backends() -> list[str]:
    return sorted(_runner_classes())


def backend_for(path: str | Path) -> str:
    """The default backend for an artifact, chosen from its file ending (the target table's)."""
    backend = suffix_backends().get(Path(path).suffix)
    if backend is None:
        raise ValueError(f"no backend opens {path}; known: {', '.join(available_backends())}")
    return backend


def open_runner(path: str | Path, backend: str | None = None, device: str | None = None,
                threads: int | None = None, target: str | None = None, verify: bool = True, **options) -> Runner:
    """An active runner for any model location: a checkpoint, an artifact file, a convert output folder, or the
    name of shipped weights (``"tinyagenet"``; an existing path of that name wins).

    In a folder, ``target`` picks the artifact; without it, the first built one ``backend`` opens (or the
    first built one). ``backend`` overrides the choice made from the file ending; ``options`` are
    backend-specific constructor knobs (e.g. an OpenVINO performance hint). An artifact of a convert folder is
    loaded only if its bytes match the manifest's sha256, unless ``verify`` is False (``--no-verify``).
    """
    path = resolve_model(path)
    if path.is_dir() or (path.is_file() and path.with_name("manifest.json").is_file()):
        from edgeface.manifest import resolve_artifact, verify_artifact

        path, _card, entry = resolve_artifact(path, target, backend)
        if verify and entry is not None:
            verify_artifact(path, entry)
    classes = _runner_classes()
    backend = backend or backend_for(path)
    if backend not in classes:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(sorted(classes))}")
    return classes[backend](path, device=device, threads=threads, **options).activate()
