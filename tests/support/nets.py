"""Stand-in networks for tests where the network itself is beside the point."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geoseg import Model, ModelCard
from geoseg.model.preprocess import normalise


class PixelNet(nn.Module):
    """Per-pixel network: 1x1 convolutions only, so each output pixel sees one input pixel."""

    def __init__(self, bands: int, classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(bands, 8, 1), nn.Tanh(), nn.Conv2d(8, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmallConvNet(nn.Module):
    """Two 3x3 convolutions: receptive field radius 2 pixels."""

    radius = 2

    def __init__(self, bands: int, classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, classes, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def card_for(bands: int = 3, classes: int = 3, dtype: str = "uint8", tile_size: int = 64, **kw) -> ModelCard:
    return ModelCard(
        classes=[f"class{i}" for i in range(classes)],
        bands=[f"b{i}" for i in range(bands)],
        normalization={"mean": [100.0] * bands, "std": [50.0] * bands},
        dtype=dtype,
        tile_size=tile_size,
        **kw,
    )


def make_model(net_cls=PixelNet, *, bands: int = 3, classes: int = 3, seed: int = 0, **card_kw) -> Model:
    return Model(net_cls(bands, classes, seed).eval(), card_for(bands, classes, **card_kw))


def whole_scene(model: Model, data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: the network on the whole scene at once -> (class ids with 255 nodata, probabilities)."""
    x = normalise(data, valid, model.card.normalization)[None]
    with torch.inference_mode():
        probs = torch.softmax(model.network(torch.from_numpy(x)).float(), dim=1)[0].numpy()
    lut = np.asarray(model.card.class_ids, dtype=np.uint8)
    ids = np.where(valid, lut[probs.argmax(0)], 255).astype(np.uint8)
    return ids, probs


def tiny_unet(*, bands: int = 3, classes: int = 2, tile_size: int = 32, seed: int = 0) -> Model:
    """A real, small segmentation-models-pytorch U-Net that geoseg can rebuild from its file."""
    from geoseg.model.network import create_network

    card = card_for(bands, classes, tile_size=tile_size, architecture="unet", encoder="resnet18",
                    arch_params={"encoder_depth": 3, "decoder_channels": [16, 8, 4]})
    torch.manual_seed(seed)
    return Model(create_network(card).eval(), card)
