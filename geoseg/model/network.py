"""Networks: one factory over segmentation-models-pytorch, and model files.

A model file is a safetensors file whose header metadata carries the model
card as JSON, so weights and their meaning travel together and loading never
unpickles anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import ModelError
from .card import ARCHITECTURES, ModelCard
from .file import CARD_KEY, SHIPPED_MODELS, read_card, resolve_model_path

__all__ = ["Model", "create_network", "load_model", "save_model", "read_card", "SHIPPED_MODELS"]



def create_network(card: ModelCard) -> nn.Module:
    """Build the (randomly initialised) network a card describes."""
    import segmentation_models_pytorch as smp

    arch = card.architecture.lower()
    if arch not in ARCHITECTURES:
        raise ModelError(
            f"architecture {card.architecture!r} is not known; use one of {sorted(ARCHITECTURES)} "
            "(or wrap your own network in geoseg.Model)"
        )
    if not card.encoder:
        raise ModelError(f"architecture {arch!r} needs an encoder name in the card (e.g. 'resnet34')")
    if card.encoder not in smp.encoders.get_encoder_names():
        raise ModelError(f"encoder {card.encoder!r} is not offered by segmentation-models-pytorch")
    try:
        return smp.create_model(
            ARCHITECTURES[arch],
            encoder_name=card.encoder,
            encoder_weights=None,
            in_channels=len(card.bands),
            classes=card.num_classes,
            **dict(card.arch_params),
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(
            f"cannot build {arch} with encoder {card.encoder!r} and {dict(card.arch_params)}: {exc}"
        ) from None


@dataclass
class Model:
    """A network together with its card.

    ``network`` maps a float tensor ``(N, bands, H, W)`` of normalised pixels
    to logits ``(N, classes, H, W)``.  Wrap any torch module of your own::

        geoseg.Model(my_module, geoseg.ModelCard(classes=[...], bands=[...], normalization={...}))
    """

    network: nn.Module
    card: ModelCard

    def __post_init__(self) -> None:
        if not isinstance(self.network, nn.Module):
            raise ModelError(f"network must be a torch.nn.Module, got {type(self.network).__name__}")
        if not isinstance(self.card, ModelCard):
            raise ModelError(f"card must be a geoseg.ModelCard, got {type(self.card).__name__}")

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False, weights_dtype: str = "float32") -> Path:
        return save_model(self, path, overwrite=overwrite, weights_dtype=weights_dtype)


def save_model(
    model: Model, path: str | os.PathLike[str], *, overwrite: bool = False, weights_dtype: str = "float32"
) -> Path:
    """Write ``model`` as safetensors with its card in the header, atomically.

    ``weights_dtype="float16"`` stores floating-point weights at half size;
    they are cast back to the network's dtype on loading.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelError(f"model files end in .safetensors, got {path.name!r}")
    if weights_dtype not in ("float32", "float16"):
        raise ModelError(f"weights_dtype must be float32 or float16, got {weights_dtype!r}")
    cast = getattr(torch, weights_dtype)
    state = {
        k: (v.to(cast) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.network.state_dict().items()
    }
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata={CARD_KEY: model.card.to_json()})
    return path


def load_model(model: str | os.PathLike[str] | None = None, *, network: nn.Module | None = None) -> Model:
    """Load a model file (or a shipped model by short name; ``None`` is the default model).

    The network is rebuilt from the card's architecture; pass ``network`` to
    load the weights into a module of your own instead.
    """
    from safetensors.torch import load_file

    path = resolve_model_path(model)
    weights = path
    if path.is_dir():  # a segmentation-models-pytorch save_pretrained folder: weights beside config.json
        from .smp_folder import WEIGHTS_FILE

        weights = path / WEIGHTS_FILE
    card = read_card(path)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"cannot read weights from {str(weights)!r}: {exc}") from None
    net = network if network is not None else create_network(card)
    expected = net.state_dict()
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise ModelError(
            f"weights in {str(path)!r} do not fit the {card.architecture} network its card describes: "
            f"{len(wrong)} tensors have other shapes (first: {k} {tuple(state[k].shape)} in the file, "
            f"{tuple(expected[k].shape)} in the network); save the model again with geoseg.save_model"
        )
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"weights in {str(path)!r} do not fit the {card.architecture} network: "
            f"{len(missing)} missing, {len(unexpected)} unexpected tensors (first: {(missing or unexpected)[:3]})"
        )
    net.eval()
    return Model(net, card)
