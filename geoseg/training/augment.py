"""Augmenting training batches: the same geometric change for image, labels and validity.

Flips and 90-degree rotations move image, mask and validity together;
brightness and contrast change only valid image pixels.  Random rescaling
(``scale``) cuts a square of ``crop * f`` pixels at a random place of each tile
and resizes it to ``crop`` pixels (image bilinear with antialiasing; labels and
validity nearest), with ``f`` log-uniform in ``scale``: one model then sees
buildings at a range of ground resolutions around the training resolution.  Tiles holding a rare
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
    #: ``(low, high)`` range of the rescaling factor ``f``, or None for no rescaling.
    scale: tuple[float, float] | None = None
    #: Output side in pixels when rescaling (default: the tile side divided by ``high``).
    crop: int | None = None

    def _rescale(self, x: Tensor, y: Tensor, v: Tensor, draw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Cut and resize one sample (``draw``: three uniform numbers: factor, row, column)."""
        import math

        import torch.nn.functional as F

        if self.scale is None:
            return x, y, v
        lo, hi = self.scale
        h, w = x.shape[-2:]
        out = self.crop or max(16, int(min(h, w) / hi) // 16 * 16)
        f = math.exp(math.log(lo) + float(draw[0]) * (math.log(hi) - math.log(lo)))
        side = max(1, min(h, w, round(out * f)))
        r0 = int(float(draw[1]) * (h - side + 1)) if h > side else 0
        c0 = int(float(draw[2]) * (w - side + 1)) if w > side else 0
        x = x[:, r0 : r0 + side, c0 : c0 + side]
        y = y[r0 : r0 + side, c0 : c0 + side]
        v = v[r0 : r0 + side, c0 : c0 + side]
        if side == out:
            return x, y, v
        x = F.interpolate(
            x[None].float(), size=(out, out), mode="bilinear", antialias=side > out, align_corners=False
        )[0]
        y = F.interpolate(y[None, None].float(), size=(out, out), mode="nearest")[0, 0].to(y.dtype)
        v = F.interpolate(v[None, None].float(), size=(out, out), mode="nearest")[0, 0] > 0.5
        return x, y, v

    def __call__(
        self, image: Tensor, mask: Tensor, valid: Tensor, *, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Augment a batch: ``image (N, C, H, W)``, ``mask (N, H, W)``, ``valid (N, H, W)``."""
        n = image.shape[0]
        draws = torch.rand((n, 5), generator=generator)
        rotations = torch.randint(0, 4, (n,), generator=generator)
        # Drawn only when rescaling, so runs without it draw the same numbers as before.
        zooms = torch.rand((n, 3), generator=generator) if self.scale is not None else None
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
            if zooms is not None:
                x, y, v = self._rescale(x, y, v, zooms[i])
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
