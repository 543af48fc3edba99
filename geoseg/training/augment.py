"""Augmenting training batches: the same geometric change for image, labels and validity.

Flips and 90-degree rotations move image, mask and validity together;
brightness and contrast change only valid image pixels.  Tiles holding a rare
class can get stronger colour changes.  Randomness comes from an injected
:class:`torch.Generator` (on the CPU), so a seeded run is repeatable whatever
device the batch lives on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Augmenter"]


@dataclass(frozen=True)
class Augmenter:
    flips: bool = True
    rotate90: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    #: Output channels of rare classes; tiles holding any get ``rare_strength`` x colour changes.
    rare_channels: tuple[int, ...] = ()
    rare_strength: float = 2.0

    def __call__(self, image: Tensor, mask: Tensor, valid: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Augment a batch: ``image (N, C, H, W)``, ``mask (N, H, W)``, ``valid (N, H, W)``."""
        n = image.shape[0]
        draws = torch.rand((n, 5), generator=generator)
        rotations = torch.randint(0, 4, (n,), generator=generator)
        images, masks, valids = [], [], []
        for i in range(n):
            x, y, v = image[i], mask[i], valid[i]
            dims: list[int] = []
            if self.flips and draws[i, 0] < 0.5:
                dims.append(-1)
            if self.flips and draws[i, 1] < 0.5:
                dims.append(-2)
            if dims:
                x, y, v = x.flip(dims), y.flip(dims), v.flip(dims)
            k = int(rotations[i]) if self.rotate90 and x.shape[-1] == x.shape[-2] else 0
            if k:
                x, y, v = (t.rot90(k, dims=(-2, -1)) for t in (x, y, v))
            strength = 1.0
            if self.rare_channels and any(bool((y == c).any()) for c in self.rare_channels):
                strength = self.rare_strength
            if self.brightness or self.contrast:
                shift = (2 * float(draws[i, 2]) - 1) * self.brightness * strength
                scale = 1 + (2 * float(draws[i, 3]) - 1) * self.contrast * strength
                x = torch.where(v.unsqueeze(0), x * scale + shift, x)
            images.append(x)
            masks.append(y)
            valids.append(v)
        return torch.stack(images), torch.stack(masks), torch.stack(valids)
