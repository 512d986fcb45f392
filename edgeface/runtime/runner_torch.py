"""PyTorch eager runner for edgeface checkpoints (CPU or CUDA)."""

from __future__ import annotations

import numpy as np

from edgeface.runtime.base import BackendUnavailable, Runner


class TorchRunner(Runner):
    backend = "torch"
    suffixes = (".pt", ".pth")
    install_hint = "pip install 'edgeface[train]'"

    def load(self) -> None:
        try:
            import torch
        except ImportError as e:
            raise BackendUnavailable(f"PyTorch is not installed: {self.install_hint}") from e
        from edgeface.models.checkpoint import load_checkpoint

        if self.threads:
            torch.set_num_threads(self.threads)
        self._torch = torch
        self._device = torch.device(self.device or "cpu")
        model, self.card, _ = load_checkpoint(self.path)
        self.model = model.to(self._device).eval()
        self.output_names = self.card.outputs

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            outs = self.model(self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self._device))
        return {n: o.float().cpu().numpy() for n, o in zip(self.output_names, outs, strict=True)}
