"""Edge-aware refinement of probabilities: sums stay 1, flat images only smooth, edges snap to image edges."""

from __future__ import annotations

import pytest
import torch

from geoseg.prediction.refine import box_mean, conv_crf, guided_filter, refine

METHODS = [("guided", {"radius": 3, "eps": 1e-2}), ("crf", {"radius": 4, "step": 1, "iterations": 3})]


def random_probs(n: int = 2, c: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g).mul(2).softmax(dim=1)


def step_case(offset: int, width: int = 40, edge: int = 20, blur: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A sharp step in the image at column ``edge``; building probabilities ramping across column ``edge + offset``
    (a blurred boundary, ``offset`` pixels off the image's edge)."""
    cols = torch.arange(width, dtype=torch.float32)
    image = ((cols >= edge).float() * 0.6 + 0.2).expand(1, 3, 16, width).clone()
    building = torch.sigmoid((cols - edge - offset + 0.5) / blur).expand(1, 1, 16, width)
    return torch.cat([1 - building, building], dim=1), image


@pytest.mark.parametrize("method, params", METHODS)
def test_probabilities_stay_probabilities(method, params):
    probs = random_probs()
    image = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    out = refine(probs, image, method=method, **params)
    assert out.shape == probs.shape and out.dtype == probs.dtype
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(dim=1), torch.ones(2, 24, 20), atol=1e-5, rtol=0)


def test_box_mean_is_exact_at_the_edges():
    x = torch.arange(30, dtype=torch.float32).view(1, 1, 5, 6)
    out = box_mean(x, 1)
    assert out[0, 0, 0, 0] == pytest.approx(float(x[0, 0, :2, :2].mean()))
    assert out[0, 0, 2, 3] == pytest.approx(float(x[0, 0, 1:4, 2:5].mean()))


def test_a_constant_image_only_smooths():
    probs = random_probs(1)
    flat = torch.full((1, 3, 24, 20), 0.5)
    out = guided_filter(probs, flat, radius=2, eps=1e-2)
    # With a flat guide the fit has no slope: the output is the box mean of the box mean.
    expected = box_mean(box_mean(probs, 2), 2)
    torch.testing.assert_close(out, expected / expected.sum(dim=1, keepdim=True), atol=1e-5, rtol=0)
    uniform = torch.full((1, 3, 8, 8), 1 / 3)
    torch.testing.assert_close(guided_filter(uniform, torch.full((1, 3, 8, 8), 0.3)), uniform)


@pytest.mark.parametrize("method, params", [("guided", {"radius": 4, "eps": 1e-3}),
                                            ("crf", {"radius": 4, "step": 1, "theta_rgb": 0.1, "weight": 4.0})])
@pytest.mark.parametrize("offset", [-2, 0, 2])
def test_edges_are_sharpened_on_a_step_image(method, params, offset):
    probs, image = step_case(offset)
    out = refine(probs, image, method=method, **params)
    before, after = probs[0, 1, 8], out[0, 1, 8]
    # The probability jumps where the image does, several times more than before ...
    assert after[20] - after[19] > 3 * (before[20] - before[19])
    # ... and the class boundary moves onto the image's edge.
    assert int((before > 0.5).float().argmax()) == 20 + offset
    assert ((after > 0.5) == (torch.arange(40) >= 20)).all()


def test_bad_shapes_and_methods_are_refused():
    probs = random_probs(1)
    with pytest.raises(ValueError, match="share N, H and W"):
        refine(probs, torch.rand(1, 3, 10, 10))
    with pytest.raises(ValueError, match="not 'guided' or 'crf'"):
        refine(probs, torch.rand(1, 3, 24, 20), method="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 1"):
        conv_crf(probs, torch.rand(1, 3, 24, 20), iterations=0)
