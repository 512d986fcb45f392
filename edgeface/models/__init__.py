"""The model zoo (PyTorch; needs the ``train`` extra). Importing this package registers every model."""

from edgeface.models import dldl, dmmcnn  # noqa: F401  (registers the builders)
from edgeface.models.registry import ModelConfig, create_model, default_card, default_cfg, list_models

__all__ = ["ModelConfig", "create_model", "default_card", "default_cfg", "list_models"]
