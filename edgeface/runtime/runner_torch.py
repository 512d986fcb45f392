"""PyTorch eager runner for edgeface checkpoints (CPU or CUDA)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeface.errors import BackendUnavailable
from edgeface.runtime.base import Runner


class TorchRunner(Runner):
    backend = "torch"
    install_hint = "pip install 'edgeface[train]'"

    def activate_impl(self) -> None:
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

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            outs = self.model(self._torch.from_numpy(np.ascontiguousarray(x)).to(self._device))
        return {n: o.float().cpu().numpy() for n, o in zip(self.output_names, outs, strict=True)}

    def compute_only_timer(self, x: np.ndarray) -> Callable[[], float] | None:
        """CUDA-event timing of the forward pass alone, the batch already on the GPU; None on CPU."""
        torch = self._torch
        if self._device.type != "cuda":
            return None
        xd = torch.from_numpy(np.ascontiguousarray(x)).to(self._device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self._device)

        def timed() -> float:
            with torch.inference_mode():
                start.record()
                self.model(xd)
                end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0

        return timed

    def deactivate_impl(self) -> None:
        self.model = None
