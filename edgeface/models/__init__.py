"""The model zoo (PyTorch; needs the ``train`` extra). Importing this package registers every model."""

from edgeface.models import dldl, dmmcnn  # noqa: F401  (registers the builders)
from edgeface.models.registry import create_model, list_models, model_task

__all__ = ["create_model", "list_models", "model_task"]
