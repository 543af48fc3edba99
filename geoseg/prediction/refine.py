"""Edge-aware refinement of class probabilities with the image as guide: pure torch functions.

Two cheap stand-ins for a dense CRF (no compiled extension; pydensecrf and
SimpleCRF ship no wheels for this Python, only C++ sources):

* :func:`guided_filter`: He, Sun and Tang's guided filter (ECCV 2010 / TPAMI
  2013) of each class's probability with the (colour) image as guide: inside
  each ``(2r+1)^2`` window the output is an affine function of the image, so
  probability edges snap to image edges and flat regions are smoothed.  Box
  filters only: O(1) work per pixel and class whatever the radius.
* :func:`conv_crf`: a few mean-field iterations of a fully connected CRF
  truncated to a local window (Teichmann and Cipolla's ConvCRF, 2018): Potts
  compatibility, a Gaussian appearance kernel on position and colour.

:func:`refine` dispatches on ``method``.  Probabilities in, probabilities out:
``(N, C, H, W)`` non-negative, summing to 1 over ``C``; the image ``(N, B, H, W)``
scaled to about 0-1 (e.g. uint8 / 255), on the same grid.  ``geoseg predict
--refine guided`` applies :func:`guided_filter` to every tile (:class:`~.device.Predictor`);
``benchmarks/refine_heldout.py`` measures both on held-out scenes, outside predict.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["box_mean", "conv_crf", "guided_filter", "refine"]


def _check(probs: Tensor, image: Tensor) -> None:
    if probs.ndim != 4 or image.ndim != 4:
        raise ValueError(f"probs and image must be (N, C, H, W) and (N, B, H, W), got {tuple(probs.shape)} "
                         f"and {tuple(image.shape)}")
    if probs.shape[0] != image.shape[0] or probs.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"probs {tuple(probs.shape)} and image {tuple(image.shape)} must share N, H and W")


def _window_sums(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sums over ``[i - r, i + r]`` along ``dim`` (clipped at the ends), by differences of a cumulative sum."""
    n = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim % x.ndim) + [radius + 1, radius]
    c = F.pad(x, pad).cumsum(dim)
    return c.narrow(dim, 2 * radius + 1, n) - c.narrow(dim, 0, n)


def _window_counts(n: int, radius: int, like: Tensor) -> Tensor:
    i = torch.arange(n, device=like.device)
    return ((i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1).to(like.dtype)


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over the ``(2r+1)^2`` window around each pixel of ``(..., H, W)``, clipped at the edges.

    Separable cumulative sums: the same work per pixel whatever the radius.
    """
    if radius < 1:
        return x
    h, w = x.shape[-2:]
    sums = _window_sums(_window_sums(x, radius, -1), radius, -2)
    counts = _window_counts(h, radius, x)[:, None] * _window_counts(w, radius, x)[None, :]
    return sums / counts


def _normalised(q: Tensor) -> Tensor:
    q = q.clamp_min(0)
    total = q.sum(dim=1, keepdim=True)
    uniform = torch.full_like(q, 1.0 / q.shape[1])
    return torch.where(total > 0, q / total.clamp_min(1e-12), uniform)


def guided_filter(probs: Tensor, image: Tensor, *, radius: int = 4, eps: float = 1e-2) -> Tensor:
    """Each class's probability filtered with ``image`` as guide; re-normalised to sum to 1.

    ``eps`` regularises the local fit (in squared guide units: with a 0-1 image,
    ``1e-2`` keeps edges of contrast above ~0.1 and smooths weaker ones).  A
    constant image reduces it to a twice box-smoothed ``probs``.
    """
    _check(probs, image)
    # The filter is linear and keeps sums: filter every class but the last, which is 1 minus the others.
    p = probs[:, :-1].float()
    g = image.float()
    n, b, h, w = g.shape
    c = p.shape[1]
    mean_i = box_mean(g, radius)  # (N, B, H, W)
    mean_p = box_mean(p, radius)  # (N, C-1, H, W)
    # Covariance of the guide (symmetric: B(B+1)/2 box filters): (N, H, W, B, B), plus eps on the diagonal.
    pairs = [(i, j) for i in range(b) for j in range(i, b)]
    second = box_mean(torch.stack([g[:, i] * g[:, j] for i, j in pairs], dim=1), radius)
    cov_ii = torch.empty(n, h, w, b, b, dtype=g.dtype, device=g.device)
    for k, (i, j) in enumerate(pairs):
        cov_ii[..., i, j] = cov_ii[..., j, i] = second[:, k] - mean_i[:, i] * mean_i[:, j] + (eps if i == j else 0.0)
    # Covariance of guide and probability: (N, H, W, B, C-1).
    ip = (g[:, :, None] * p[:, None, :]).reshape(n, b * c, h, w)
    cov_ip = box_mean(ip, radius).view(n, b, c, h, w) - mean_i[:, :, None] * mean_p[:, None, :]
    a = torch.linalg.solve(cov_ii, cov_ip.permute(0, 3, 4, 1, 2))  # (N, H, W, B, C-1)
    a = a.permute(0, 3, 4, 1, 2)  # (N, B, C-1, H, W)
    bias = mean_p - (a * mean_i[:, :, None]).sum(dim=1)  # (N, C-1, H, W)
    mean_a = box_mean(a.reshape(n, b * c, h, w), radius).view(n, b, c, h, w)
    q = (mean_a * g[:, :, None]).sum(dim=1) + box_mean(bias, radius)
    q = torch.cat([q, 1 - q.sum(dim=1, keepdim=True)], dim=1)
    return _normalised(q).to(probs.dtype)


def _shift(x: Tensor, dy: int, dx: int) -> Tensor:
    """``x`` moved so that pixel (i, j) holds x[i + dy, j + dx]; zero outside."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def conv_crf(
    probs: Tensor,
    image: Tensor,
    *,
    radius: int = 6,
    step: int = 2,
    theta_xy: float = 4.0,
    theta_rgb: float = 0.08,
    weight: float = 3.0,
    iterations: int = 5,
) -> Tensor:
    """Mean-field of a CRF with Potts compatibility and an appearance kernel truncated to a window.

    Unaries are ``-log(probs)``; pixel j within ``radius`` (every ``step``
    pixels) sends its class distribution to pixel i with weight
    ``exp(-|xy_i - xy_j|^2 / 2 theta_xy^2 - |I_i - I_j|^2 / 2 theta_rgb^2)``,
    scaled so the weights of a flat image add up to ``weight``.
    """
    _check(probs, image)
    if radius < 1 or step < 1 or iterations < 1:
        raise ValueError("radius, step and iterations must be >= 1")
    unary = probs.float().clamp_min(1e-6).log()
    g = image.float()
    offsets = [(dy, dx) for dy in range(-radius, radius + 1, step) for dx in range(-radius, radius + 1, step)
               if (dy, dx) != (0, 0)]
    spatial = torch.tensor([-(dy * dy + dx * dx) / (2 * theta_xy**2) for dy, dx in offsets]).exp()
    scale = weight / float(spatial.sum())
    kernels = []  # one (N, 1, H, W) weight map per offset; zero where the neighbour is outside the image
    for (dy, dx), s in zip(offsets, spatial.tolist(), strict=True):
        diff = ((g - _shift(g, dy, dx)) ** 2).sum(dim=1, keepdim=True)
        inside = _shift(torch.ones_like(g[:, :1]), dy, dx)
        kernels.append(inside * torch.exp(-diff / (2 * theta_rgb**2)) * (s * scale))
    q = unary.softmax(dim=1)
    for _ in range(iterations):
        message = torch.zeros_like(q)
        for (dy, dx), k in zip(offsets, kernels, strict=True):
            message += k * _shift(q, dy, dx)
        q = (unary + message).softmax(dim=1)  # Potts: -sum_{c' != c} m_c' = m_c - sum_c' m_c' (constant in c)
    return q.to(probs.dtype)


def refine(
    probs: Tensor, image: Tensor, *, method: Literal["guided", "crf"] = "guided", **params: float
) -> Tensor:
    """Refined ``probs`` (N, C, H, W) with ``image`` (N, B, H, W, about 0-1) as guide: see :func:`guided_filter`
    (``method="guided"``: ``radius``, ``eps``) and :func:`conv_crf` (``method="crf"``)."""
    if method == "guided":
        return guided_filter(probs, image, **params)  # type: ignore[arg-type]
    if method == "crf":
        return conv_crf(probs, image, **params)  # type: ignore[arg-type]
    raise ValueError(f"refinement method {method!r} is not 'guided' or 'crf'")
