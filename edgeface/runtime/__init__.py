"""Inference runners (one per backend, one interface) and the embeddable Predictor."""

from edgeface.errors import BackendUnavailable
from edgeface.runtime.base import Runner, available_backends, open_runner

__all__ = ["BackendUnavailable", "Runner", "available_backends", "open_runner"]
