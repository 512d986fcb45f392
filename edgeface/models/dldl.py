"""DLDL-v2 networks (Gao et al.): ThinAgeNet, TinyAgeNet and the VGG-16 baseline they are measured against.

| name        | stage channels (VGG-16 config D layout) | head                      | params (K=101) |
|-------------|------------------------------------------|---------------------------|----------------|
| thinagenet  | 32,32 / 64,64 / 128x3 / 256x3 / 256x3    | global avg pool, Linear K | 3,708,229      |
| tinyagenet  | 16,16 / 32,32 / 64x3 / 128x3 / 128x3     | global avg pool, Linear K | 934,869        |
| vgg16-dldl  | 64,64 / 128,128 / 256x3 / 512x3 / 512x3  | FC 4096-4096-K            | ~134.6M        |

Every conv is 3x3, stride 1, pad 1, no bias, followed by BatchNorm and ReLU; a 2x2 max-pool ends
each stage. The paper's 7x7 average pool after the last pool is a global average here, identical at
224x224 and still defined at other input sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeface.card import OUTPUT_EXPECTATION, OUTPUT_PROBS
from edgeface.labels import AGE, LabelSpace
from edgeface.models.registry import ModelConfig, register_model

STAGE_DEPTHS = (2, 2, 3, 3, 3)  # VGG-16 config D


@dataclass(frozen=True)
class VGGConfig:
    channels: tuple[int, int, int, int, int]
    fc_head: bool  # VGG-16's FC 4096-4096 head instead of global pooling


CONFIGS = {
    "thinagenet": VGGConfig((32, 64, 128, 256, 256), fc_head=False),
    "tinyagenet": VGGConfig((16, 32, 64, 128, 128), fc_head=False),
    "vgg16-dldl": VGGConfig((64, 128, 256, 512, 512), fc_head=True),
}


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def vgg_stages(channels: tuple[int, ...], depths: tuple[int, ...] = STAGE_DEPTHS, cin: int = 3) -> nn.Sequential:
    """The VGG trunk: stages of conv-BN-ReLU blocks, each stage closed by a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for cout, depth in zip(channels, depths, strict=True):
        for _ in range(depth):
            layers += conv_bn_relu(cin, cout)
            cin = cout
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class LabelDistributionHead(nn.Module):
    """Linear -> softmax over the label bins, plus the expectation as a fixed matmul in the graph,
    so every exported model hands out the predicted value directly."""

    def __init__(self, in_features: int, label_space: LabelSpace):
        super().__init__()
        self.fc = nn.Linear(in_features, label_space.num_bins)
        self.register_buffer("bins", torch.from_numpy(label_space.bins).float())

    def outputs(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(logits.float(), dim=1)
        return probs, probs @ self.bins


class DLDLNet(nn.Module):
    """A VGG-layout trunk with a label-distribution head; ``forward`` gives (probs, expectation)."""

    output_names = (OUTPUT_PROBS, OUTPUT_EXPECTATION)

    def __init__(self, config: VGGConfig, label_space: LabelSpace = AGE):
        super().__init__()
        self.label_space = label_space
        self.features = vgg_stages(config.channels)
        width = config.channels[-1]
        if config.fc_head:
            self.pool = nn.AdaptiveAvgPool2d(7)
            self.neck = nn.Sequential(
                nn.Flatten(),
                nn.Linear(width * 49, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            )
            width = 4096
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.neck = nn.Flatten()
        self.head = LabelDistributionHead(width, label_space)
        _init_weights(self)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.fc(self.neck(self.pool(self.features(x))))

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.logits(x)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.outputs(self.logits(x))


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# Every DLDL network: a label-distribution head over AGE by default (attractiveness gets its own space at
# training time), the paper's 224x224 input and the shared preprocessing.
DLDL_CFG = ModelConfig(family="label_distribution", tasks=("age", "attractiveness"), label_space=AGE)


@register_model("thinagenet", DLDL_CFG)
def thinagenet(label_space: LabelSpace) -> DLDLNet:
    return DLDLNet(CONFIGS["thinagenet"], label_space)


@register_model("tinyagenet", DLDL_CFG)
def tinyagenet(label_space: LabelSpace) -> DLDLNet:
    return DLDLNet(CONFIGS["tinyagenet"], label_space)


@register_model("vgg16-dldl", DLDL_CFG)
def vgg16_dldl(label_space: LabelSpace) -> DLDLNet:
    return DLDLNet(CONFIGS["vgg16-dldl"], label_space)
