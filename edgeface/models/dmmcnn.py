"""DMM-CNN (Mao et al.): one network for 5 facial landmarks and the 40 CelebA attributes.

Layout (``dmmcnn``, 4.84M parameters, 3.97 GMACs at 224x224):

| part                | layers                                                          | output            |
|---------------------|-----------------------------------------------------------------|-------------------|
| shared trunk        | ThinAgeNet stages 1-4 (32,32 / 64,64 / 128x3 / 256x3), 2x2 pools | 256 x S/16        |
| landmark head       | 4x4 avg pool, FC 128, FC 10, sigmoid                            | 5 points in [0,1] |
| objective branch    | 1 block 256 + pool, global avg, FC -> 23 attributes             | logits            |
| subjective branch   | 3 blocks 256 + pool, global avg, FC 128, FC -> 17 attributes    | logits            |

The groups follow the paper's idea that attributes a rater can verify on the image (an item worn, a
hair colour, an open mouth) are easier than those judged against a population norm (size, shape,
age, beauty), so the subjective group gets the deeper branch. Our rule for the split: an attribute is
*subjective* when two careful raters could disagree on it for the same photo. The trunk is named
``features`` like the DLDL networks', so weights move between DMM-CNN and ThinAgeNet with ``--init``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeface.card import OUTPUT_ATTRIBUTES, OUTPUT_LANDMARKS
from edgeface.models.dldl import _init_weights, conv_bn_relu, vgg_stages
from edgeface.models.registry import ModelConfig, register_model

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

SUBJECTIVE_ATTRIBUTES = frozenset({
    "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Big_Lips", "Big_Nose", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Heavy_Makeup", "High_Cheekbones", "Narrow_Eyes", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Young",
})


def split_groups(attributes: tuple[str, ...] | list[str]) -> tuple[list[int], list[int]]:
    """Indices of the objective and the subjective attributes within ``attributes``."""
    objective = [i for i, a in enumerate(attributes) if a not in SUBJECTIVE_ATTRIBUTES]
    subjective = [i for i, a in enumerate(attributes) if a in SUBJECTIVE_ATTRIBUTES]
    return objective, subjective


def pool_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """(out, in) averaging matrix with nn.AdaptiveAvgPool's bins: row i covers floor(i*in/out)..ceil((i+1)*in/out).

    Built in numpy so an export trace records it as a constant, not as graph ops.
    """
    m = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        start, end = (i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)
        m[i, start:end] = 1.0 / (end - start)
    return torch.from_numpy(m)


class GridAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d(size)`` computed as two matmuls with its pooling matrices: the same numbers,
    but exportable to ONNX at any input size (the exporter only takes output sizes dividing the input,
    which 224 px -> 14 -> 4 is not)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # int(): under export tracing the sizes become constants, so the matrices are baked into the graph
        rows = pool_matrix(self.size, int(x.shape[-2])).to(device=x.device, dtype=x.dtype)
        cols = pool_matrix(self.size, int(x.shape[-1])).t().to(device=x.device, dtype=x.dtype)
        return torch.matmul(torch.matmul(rows, x), cols)


class DMMCNN(nn.Module):
    """Shared trunk, landmark head, objective branch and deeper subjective branch.

    ``forward`` gives (attr_probs, landmarks) with attributes in ``self.attributes`` order.
    """

    output_names = (OUTPUT_ATTRIBUTES, OUTPUT_LANDMARKS)

    def __init__(
        self,
        attributes: tuple[str, ...] | list[str] = CELEBA_ATTRIBUTES,
        trunk_channels: tuple[int, ...] = (32, 64, 128, 256),
        trunk_depths: tuple[int, ...] = (2, 2, 3, 3),
        branch_width: int = 256,
        num_landmarks: int = 5,
    ):
        super().__init__()
        self.attributes = list(attributes)
        self.num_landmarks = num_landmarks
        objective, subjective = split_groups(self.attributes)
        width = trunk_channels[-1]
        self.features = vgg_stages(trunk_channels, trunk_depths)
        self.landmark_head = nn.Sequential(
            GridAvgPool2d(4), nn.Flatten(),
            nn.Linear(width * 16, 128), nn.ReLU(inplace=True), nn.Linear(128, 2 * num_landmarks),
        )
        self.objective = nn.Sequential(
            *conv_bn_relu(width, branch_width), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(branch_width, len(objective)),
        )
        self.subjective = nn.Sequential(
            *conv_bn_relu(width, branch_width), *conv_bn_relu(branch_width, branch_width),
            *conv_bn_relu(branch_width, branch_width), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(branch_width, 128), nn.ReLU(inplace=True), nn.Linear(128, len(subjective)),
        )
        # Branch outputs are concatenated (objective, subjective); this gather restores dataset order.
        order = torch.argsort(torch.tensor(objective + subjective))
        self.register_buffer("attribute_order", order, persistent=False)
        _init_weights(self)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.features(x)
        logits = torch.cat([self.objective(shared), self.subjective(shared)], dim=1)
        return {
            "attr_logits": logits.index_select(1, self.attribute_order),
            "landmarks": torch.sigmoid(self.landmark_head(shared)),
        }

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.forward_train(x)
        return torch.sigmoid(out["attr_logits"].float()), out["landmarks"].float()


@register_model("dmmcnn", ModelConfig(family="attributes", tasks=("attributes",), attributes=CELEBA_ATTRIBUTES,
                                     num_landmarks=5))
def dmmcnn(attributes: tuple[str, ...] | list[str]) -> DMMCNN:
    return DMMCNN(attributes)
