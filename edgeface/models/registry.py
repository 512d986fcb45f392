"""Model registry: a name -> builder table, as timm does it."""

from __future__ import annotations

from collections.abc import Callable

_MODELS: dict[str, Callable] = {}
_TASKS: dict[str, str] = {}


def register_model(name: str, task: str) -> Callable:
    """Decorator: make a builder reachable by ``create_model(name)``."""

    def wrap(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = builder
        _TASKS[name] = task
        return builder

    return wrap


def list_models() -> list[str]:
    return list(_MODELS)


def model_task(name: str) -> str:
    """'label_distribution' or 'attributes'."""
    _check(name)
    return _TASKS[name]


def create_model(name: str, **kwargs):
    """Build a registered model; kwargs go to its builder (label_space, attributes, ...)."""
    _check(name)
    return _MODELS[name](**kwargs)


def _check(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
