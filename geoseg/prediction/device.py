"""Where the network runs: normalising, predicting, weighting and accumulating tiles on one device (torch).

:class:`Predictor` holds one model (or an ensemble, see :mod:`.techniques`) on
one device, shared by the threads that use it.  For each block of a
:class:`~.plan.StitchPlan` it uploads the tiles as the file stores them (uint8
stays uint8), normalises them, runs the network
(float16 autocast on CUDA), turns logits into probabilities (averaged over
the models and test-time views, if there are several), multiplies them
by the blend weights, rounds them to integers (:func:`~.stitch.quantise_tile`
is the numpy reference) and adds them into one int32 accumulator over the
block's extent.  Only the finished uint8 class ids and confidence of the
block's owned pixels and its int32 partial sums over seams leave the device.
A GPU takes a batch of tiles at a time; the CPU takes each tile through all of
this alone, so that its temporaries stay in the caches.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..classes import NODATA
from ..errors import InputError, ModelError
from ..tiling import PixelWindow, Tile
from .blend import grid_weights
from .job import BlockResult, Piece, PredictJob
from .options import check_device_name
from .parts import concentrate
from .plan import Block, Seam
from .read import ReadTile
from .techniques import REFINE_MODES, ensemble_weights, views

if TYPE_CHECKING:
    from ..model.network import Model

__all__ = ["Predictor", "finish", "local_devices", "select_device", "worker_device"]

#: Pixels finished at a time (a few MB of temporaries, which stay in cache).
_FINISH_CHUNK = 1 << 17
#: Data types torch cannot convert to float on every device; converted on the host instead.
_HOST_CONVERT = (np.uint16, np.uint32, np.uint64)
#: Tiles with at most this share of invalid pixels have them zeroed by index instead of by a pass over the tile.
_FEW_INVALID = 1 / 16


def select_device(name: str = "auto") -> torch.device:
    """The torch device ``name`` (auto, cpu, cuda, cuda:N) stands for; a one-line error if it is not there."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ModelError(f"--device {name} was asked for but no CUDA GPU is available; use --device auto or cpu")
    count = torch.cuda.device_count()
    if ":" in name and int(name.split(":")[1]) >= count:
        raise ModelError(f"--device {name}: only {count} CUDA GPU(s) are visible (cuda:0 to cuda:{count - 1})")
    return torch.device(name)


def local_devices(name: str = "auto") -> list[torch.device]:
    """Devices of a local run: every visible GPU for auto and cuda, else the one device asked for."""
    device = select_device(name)
    if device.type == "cuda" and device.index is None:
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [device]


def worker_device(name: str, worker_name: Any) -> torch.device:
    """The device of one Dask worker: for auto and cuda, GPU ``worker_name % count`` (one worker per GPU)."""
    device = select_device(name)
    if device.type == "cuda" and device.index is None:
        index = int(worker_name) if str(worker_name).isdigit() else 0
        return torch.device("cuda", index % torch.cuda.device_count())
    return device


def finish(
    acc: torch.Tensor, lut: Sequence[int], *, confidence: bool = True, cols: slice = slice(None)
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class ids (uint8, nodata 255) and confidence (uint8, 0 = nodata) from summed integer votes ``(C, h, w)``,
    in the columns ``cols`` of ``acc``.

    The class is the first one with the largest sum (``lut`` maps its index to
    its id); confidence is ``round(255 * top / total)`` in 1-255 (None unless
    asked for).  Pixels without votes are nodata.  Sums over classes fit int32:
    a pixel's votes add up to about the quantisation scale (at most 2**24)
    times its blend weights (which add up to 1).  Works through the rows in
    chunks that stay in cache: with numpy on the CPU (whose comparisons and
    masks are vectorised; torch's boolean kernels there are several times
    slower), with torch elsewhere.  On the CPU the work runs over whole rows of ``acc``, and ``cols`` is then
    cut from them: numpy's loops over rows with gaps between them (a block's owned part of its accumulator) took
    2.5 times as long as over contiguous ones.
    """
    if acc.device.type == "cpu":
        ids, conf = _finish_host(acc.numpy(), lut, confidence=confidence, cols=cols)
        return torch.from_numpy(ids), None if conf is None else torch.from_numpy(conf)
    return _finish_device(acc[:, :, cols], lut, confidence=confidence)


def _finish_host(acc: np.ndarray, lut: Sequence[int], *, confidence: bool,
                 cols: slice = slice(None)) -> tuple[np.ndarray, np.ndarray | None]:
    height, full = acc.shape[1:]
    c0, c1, stride = cols.indices(full)
    if stride != 1:
        raise ValueError(f"cols must be a contiguous slice, got {cols}")
    width = max(0, c1 - c0)
    whole = width == full
    ids = np.empty((height, width), dtype=np.uint8)
    conf = np.empty((height, width), dtype=np.uint8) if confidence else None
    codes = [np.uint8(c) for c in lut]
    step = max(1, _FINISH_CHUNK // max(1, full))
    flags, spare = np.empty((step, full), bool), np.empty((step, full), np.uint8)
    ids_rows = None if whole else np.empty((step, full), np.uint8)
    conf_rows = None if whole or conf is None else np.empty((step, full), np.uint8)
    for r in range(0, height, step):
        part = acc[:, r : r + step]
        rows = part.shape[1]
        out = ids[r : r + step] if ids_rows is None else ids_rows[:rows]
        flag, tmp = flags[:rows], spare[:rows]
        if part.shape[0] == 1:
            top, total = part[0].copy(), part[0].copy()
            out.fill(codes[0])
        else:  # the first two classes without a masked put: code0 ^ (second > first) * (code0 ^ code1)
            np.multiply(np.greater(part[1], part[0], out=flag).view(np.uint8), codes[0] ^ codes[1], out=out)
            out ^= codes[0]
            top, total = np.maximum(part[0], part[1]), np.add(part[0], part[1])
        for c in range(2, part.shape[0]):
            _put(out, codes[c], np.greater(part[c], top, out=flag), tmp)
            np.maximum(top, part[c], out=top)
            total += part[c]
        invalid = np.less_equal(total, 0, out=flag)
        any_invalid = bool(invalid.any())
        if conf is not None:
            ratio = top.astype(np.float64)
            ratio *= 255.0
            ratio /= np.maximum(total, 1, out=total)  # no votes: 0 / 1, made nodata below
            np.clip(np.rint(ratio, out=ratio), 1, 255, out=ratio)
            part_conf = conf[r : r + step] if conf_rows is None else conf_rows[:rows]
            part_conf[...] = ratio
            if any_invalid:
                _put(part_conf, np.uint8(0), invalid.copy(), tmp)
            if conf_rows is not None:
                conf[r : r + step] = part_conf[:, c0:c1]
        if any_invalid:
            _put(out, np.uint8(NODATA), invalid, tmp)
        if ids_rows is not None:
            ids[r : r + step] = out[:, c0:c1]
    return ids, conf


def _put(out: np.ndarray, value: np.uint8, where: np.ndarray, tmp: np.ndarray) -> None:
    """``out[where] = value`` in four passes over bytes, without numpy's masked copy (about 4 ns a pixel against
    0.1 ns); ``where`` (bool) is spent, ``tmp`` is scratch of ``out``'s shape."""
    mask = where.view(np.uint8)
    np.negative(mask, out=mask)  # 1 -> 0xFF, 0 -> 0
    np.bitwise_xor(out, value, out=tmp)
    tmp &= mask
    out ^= tmp


def _finish_device(
    acc: torch.Tensor, lut: Sequence[int], *, confidence: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    height, width = acc.shape[1:]
    ids = torch.empty((height, width), dtype=torch.uint8, device=acc.device)
    conf = torch.empty((height, width), dtype=torch.uint8, device=acc.device) if confidence else None
    step = max(1, _FINISH_CHUNK // max(1, width))
    for r in range(0, height, step):
        part = acc[:, r : r + step]
        top, total = part[0].clone(), part[0].clone()
        out = ids[r : r + step]
        out.fill_(lut[0])
        for c in range(1, part.shape[0]):
            out.masked_fill_(part[c] > top, lut[c])
            torch.maximum(top, part[c], out=top)
            total += part[c]
        invalid = total <= 0
        any_invalid = bool(invalid.any())
        if any_invalid:
            out.masked_fill_(invalid, NODATA)
        if conf is not None:
            ratio = top.to(torch.float64).mul_(255.0).div_(total.to(torch.float64)).round_().clamp_(1, 255)
            if any_invalid:
                ratio.masked_fill_(invalid, 0.0)
            conf[r : r + step] = ratio
    return ids, conf


def _host(t: torch.Tensor) -> np.ndarray:
    """A contiguous numpy copy that shares no memory with ``t``."""
    return t.to("cpu", copy=True).contiguous().numpy()


def _empty(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised 1-d tensor; on the CPU from numpy's allocator, which asks Linux for huge pages for large
    arrays: a lane's first 29 MB accumulator was written in 1.2 ms instead of 12 (7,200 page faults)."""
    if device.type == "cpu":
        return torch.from_numpy(np.empty(size, dtype=torch.empty(0, dtype=dtype).numpy().dtype))
    return torch.empty(size, dtype=dtype, device=device)


def _rel(inner: PixelWindow, outer: PixelWindow) -> tuple[slice, slice]:
    return inner.relative_to(outer)


def _within(part: tuple[slice, slice], whole: tuple[slice, slice]) -> tuple[slice, slice, slice]:
    """All channels of ``part`` (rows and columns of a block's extent) in a tile whose rows and columns there are
    ``whole``."""
    (rows, cols), (r0, c0) = part, (whole[0].start, whole[1].start)
    return slice(None), slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0)


def _batches(tiles: Iterable[ReadTile], size: int) -> Iterator[list[ReadTile]]:
    batch: list[ReadTile] = []
    for item in tiles:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prepared(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``network`` in eval mode on ``device``: itself if it already is, else a copy (the caller's stays as it was)."""
    tensors = [*network.parameters(), *network.buffers()]
    if not network.training and all(t.device == device for t in tensors):
        return network
    return copy.deepcopy(network).to(device).eval()


class _Pinned:
    """Two page-locked host buffers per shape, used in turn: one copies to the GPU while the other fills."""

    def __init__(self) -> None:
        self._slots: dict[tuple[Any, ...], list[list[Any]]] = {}

    def upload(self, array: np.ndarray, device: torch.device) -> torch.Tensor:
        slots = self._slots.setdefault((array.shape, array.dtype.str), [])
        if len(slots) < 2:
            dtype = torch.from_numpy(array.reshape(-1)[:0]).dtype
            slot: list[Any] = [torch.empty(array.shape, dtype=dtype, pin_memory=True), None]
        else:
            slot = slots.pop(0)
        slots.append(slot)
        buf, event = slot
        if event is not None:
            event.synchronize()  # the copy that last read this buffer is done
        buf.numpy()[...] = array
        out = buf.to(device, non_blocking=True)
        slot[1] = torch.cuda.Event()
        slot[1].record(torch.cuda.current_stream(device))
        return out


class _Frontier:
    """Where a block's tiles, taken in row-major order, first reach its accumulator: there each tile's votes are
    written, elsewhere added.  The accumulator then needs no zeroing, no zeros are read back, and most of a tile
    goes in without an int32 copy of its votes (16 tiles of a 2-class block: 8.5 against 6.4 ms).

    Relies on what a block's tiles are: rows of tiles spanning the whole extent, each row starting where the
    ones above reach or higher, and no gaps; :meth:`split` raises if a tile breaks that.
    """

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.band = (0, 0)  # rows of the current row of tiles
        self.rows_done = 0  # rows covered by the rows of tiles before it
        self.cols_done = 0  # columns covered by the tiles before this one in its row

    def split(self, rows: slice, cols: slice) -> tuple[list[tuple[slice, slice]], tuple[slice, slice] | None]:
        """The parts of ``rows`` x ``cols`` (relative to the extent) that earlier tiles covered, to add to, and
        the part that this tile reaches first, to write (None if there is none)."""
        r0, r1, c0, c1 = rows.start, rows.stop, cols.start, cols.stop
        if (r0, r1) != self.band:
            if r0 < self.band[0] or r0 > self.band[1] or c0 != 0:
                raise ValueError(f"tiles out of row-major order: rows {r0}:{r1} after {self.band[0]}:{self.band[1]}")
            self.rows_done, self.band, self.cols_done = self.band[1], (r0, r1), 0
        elif c0 > self.cols_done:
            raise ValueError(f"tiles out of row-major order: columns {c0}:{c1} after {self.cols_done}")
        top, left = max(r0, min(r1, self.rows_done)), max(c0, min(c1, self.cols_done))
        covered = [(slice(r0, top), cols)] if top > r0 else []
        if left > c0 and top < r1:
            covered.append((slice(top, r1), slice(c0, left)))
        self.cols_done = max(self.cols_done, c1)
        return covered, (slice(top, r1), slice(left, c1)) if top < r1 and left < c1 else None

    @property
    def complete(self) -> bool:
        """Whether the tiles so far covered the whole extent."""
        return self.band[1] == self.height and self.cols_done == self.width


#: A tile without invalid pixels (see :meth:`Predictor._holes`).
_WHOLE = torch.empty(0, dtype=torch.long)
#: Per tile: :data:`_WHOLE`, the flat indices of its few invalid pixels, or None when it has many.
_Holes = torch.Tensor | None


class _Member:
    """One model of a :class:`Predictor`: its network on the device, its normalisation and its ensemble weight."""

    def __init__(self, model: Model, device: torch.device, weight: float) -> None:
        norm = model.card.normalization
        self.network = _prepared(model.network, device)
        self.mean = torch.tensor(norm.mean, dtype=torch.float32, device=device).view(-1, 1, 1)
        self.std = torch.tensor(norm.std, dtype=torch.float32, device=device).view(-1, 1, 1)
        self.weight = weight


class Predictor:
    """One model, or an ensemble of models, on one device, shared by threads; :meth:`run_block` predicts one block.

    ``model`` is a :class:`~geoseg.model.network.Model` or a list of them (an
    ensemble, whose probabilities are averaged with ``weights``; see
    :mod:`.techniques`); ``tta`` is a test-time augmentation mode of
    :data:`~.techniques.TTA_MODES`.  The first model's card describes the output.
    """

    def __init__(self, model: Model | Sequence[Model], device: torch.device, *,
                 weights: Sequence[float] | None = None, tta: str = "none", refine: str = "none") -> None:
        models = [model] if not isinstance(model, Sequence) else list(model)
        if not models:
            raise ValueError("a Predictor needs at least one model")
        shares = ensemble_weights(weights, len(models))
        self.card = models[0].card
        self.device = device
        #: Models of weight 0 add nothing to the average, so they are not run.
        self.members = [_Member(m, device, w) for m, w in zip(models, shares, strict=True) if w > 0]
        self.views = views(tta)
        if refine not in REFINE_MODES:
            raise ValueError(f"refine must be one of {REFINE_MODES}, got {refine!r}")
        self.refine = refine
        self._weights: dict[tuple[Any, ...], torch.Tensor] = {}
        self._pinned = _Pinned() if device.type == "cuda" else None
        #: One batch at a time on a GPU (other threads read meanwhile); CPU threads each compute their own.
        self.lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if device.type == "cuda" else contextlib.nullcontext()
        )
        self._local = threading.local()

    def _scratch(self, name: str, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """A buffer of the calling thread, reused batch after batch (fresh large allocations cost page faults),
        and its views by shape (each torch call made between tiles hands the GIL to the other lanes)."""
        views: dict[tuple[Any, ...], torch.Tensor] = self._local.__dict__.setdefault("views", {})
        key = (name, dtype, tuple(shape))
        view = views.get(key)
        if view is not None:
            return view
        buffers: dict[tuple[str, torch.dtype], torch.Tensor] = self._local.__dict__.setdefault("scratch", {})
        size = math.prod(shape)
        buf = buffers.get((name, dtype))
        if buf is None or buf.numel() < size:
            buf = buffers[(name, dtype)] = _empty(size, dtype, self.device)
            for old in [k for k in views if k[:2] == (name, dtype)]:  # views of the buffer replaced
                del views[old]
        if len(views) > 256:
            views.clear()
        view = views[key] = buf[:size].view(*shape)
        return view

    def _upload(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        stacked = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)  # one tile (the CPU): no copy
        if stacked.dtype.type in _HOST_CONVERT:
            stacked = stacked.astype(np.float32)
        if self._pinned is None:
            return self._to_device(torch.from_numpy(stacked))
        return self._pinned.upload(stacked, self.device)

    def _weight(self, job: PredictJob, tile: Tile) -> torch.Tensor:
        """``weights * scale`` of ``tile`` on the device (a grid has only a few distinct ones)."""
        grid = grid_weights(job.height, job.width, job.tile_size, job.overlap, job.blend)
        key = (job.height, job.width, job.tile_size, job.overlap, job.blend, job.scale, grid.key(tile))
        w = self._weights.get(key)
        if w is None:
            if len(self._weights) > 256:
                self._weights.clear()
            scaled = (grid.weights(tile) * job.scale).astype(np.float32)  # as :func:`~.stitch.quantise_tile`
            w = self._weights[key] = torch.from_numpy(scaled).to(self.device)
        return w

    def _as_float(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` (bool) as 0.0 / 1.0: float by float multiplies several times faster than float by bool."""
        return self._scratch("mask", mask.shape, torch.float32).copy_(mask)

    def _holes(self, valid: np.ndarray) -> _Holes:
        """A tile's invalid pixels: :data:`_WHOLE` without any; their flat indices on the device when they are
        few (an image whose nodata is 0 has black pixels scattered all over it, so most tiles have a few); None
        when there are many."""
        invalid = valid.size - np.count_nonzero(valid)
        if not invalid:
            return _WHOLE
        if invalid > valid.size * _FEW_INVALID:
            return None
        return self._to_device(torch.from_numpy(np.flatnonzero(~valid)))

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.device.type == "cpu" else t.to(self.device)

    def _zero_invalid(self, t: torch.Tensor, valid: torch.Tensor, holes: torch.Tensor | None) -> None:
        """Multiply ``t`` ``(C, H, W)`` by 0 at a tile's invalid pixels: by index when they are few, else with
        the mask (the same values either way, signed zeros included)."""
        if holes is None or not t.is_contiguous():
            t.mul_(self._as_float(valid))
            return
        flat = t.view(t.shape[0], -1)
        flat.index_copy_(1, holes, flat.index_select(1, holes).mul_(0))

    def _forward(self, network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                return network(x).float()
        out = network(x)
        return out if out.dtype == torch.float32 else out.float()

    def _probabilities(self, raw: torch.Tensor, valid: torch.Tensor, holes: list[_Holes],
                       checksum: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities ``(N, C, H, W)`` of the batch: one model's, or the weighted mean over the models
        and the test-time views (each view's probabilities mapped back onto the tile before they are added)."""
        x = self._scratch("input", raw.shape, torch.float32)
        averaging = len(self.members) > 1 or len(self.views) > 1
        if any(v.quarter_turns % 2 for v in self.views) and x.shape[2] != x.shape[3]:
            raise InputError(f"--tta d4 needs square tiles, got {x.shape[2]}x{x.shape[3]}; use --tta flips")
        mean: torch.Tensor | None = None
        for member in self.members:
            for i in range(len(holes)):  # tile by tile: the temporaries stay in cache
                # Converted in place first: subtracting a float from uint8 directly allocates a temporary per
                # call (fresh pages each time, 1.2 MB a tile); the same float32 operations, so the same values.
                x[i].copy_(raw[i]).sub_(member.mean).div_(member.std)
                if holes[i] is not _WHOLE:
                    self._zero_invalid(x[i], valid[i], holes[i])
            for view in self.views:
                logits = self._forward(member.network, x if view.identity else view.apply(x).contiguous())
                if logits.shape[1] != self.card.num_classes or logits.shape[2:] != x.shape[2:]:
                    raise InputError(
                        f"the network returned shape {tuple(logits.shape[1:])} for input {tuple(x.shape[1:])}; "
                        f"expected {self.card.num_classes} classes at the input size (tile size must suit the "
                        "architecture, e.g. a multiple of 32)"
                    )
                checksum.add_(logits.sum())  # one NaN or infinity makes the sum non-finite
                probs = torch.softmax(logits, dim=1, out=self._scratch("probs", logits.shape, logits.dtype))
                if not averaging:
                    return probs
                if mean is None:
                    mean = self._scratch("mean", probs.shape, probs.dtype).zero_()
                mean.add_(view.invert(probs), alpha=member.weight / len(self.views))
        if mean is None:
            raise ValueError("a Predictor without models of positive weight")
        return mean

    def _guided(self, probs: torch.Tensor, raw: torch.Tensor, valid: torch.Tensor, holes: list[_Holes]) -> torch.Tensor:
        """``probs`` filtered with the tiles as guide (:func:`~.refine.guided_filter`).  The guide is the first
        model's normalised input over 4: about 0-1 across the bands' usual range, whatever their dtype."""
        from .refine import guided_filter

        first = self.members[0]
        guide = self._scratch("guide", raw.shape, torch.float32)
        for i in range(len(holes)):
            guide[i].copy_(raw[i]).sub_(first.mean).div_(first.std * 4)
            if holes[i] is not _WHOLE:
                self._zero_invalid(guide[i], valid[i], holes[i])
        return guided_filter(probs, guide)

    def _add_batch(self, job: PredictJob, extent: PixelWindow, acc: torch.Tensor, frontier: _Frontier,
                   checksum: torch.Tensor, batch: list[ReadTile]) -> None:
        tiles = [t for t, _, _ in batch]
        holes = [self._holes(v) for _, _, v in batch]
        valid = self._upload([v for _, _, v in batch])
        raw = self._upload([d for _, d, _ in batch])
        probs = self._probabilities(raw, valid, holes, checksum)
        if self.refine == "guided":
            probs = self._guided(probs, raw, valid, holes)
        probs = concentrate(probs, self.card).contiguous()  # concentrate is a no-op without part classes
        for i, tile_holes in enumerate(holes):
            if tile_holes is not None and tile_holes is not _WHOLE:
                # No votes there; filled, not multiplied by 0: the same votes (0), in two calls instead of five.
                probs[i].view(probs.shape[1], -1).index_fill_(1, tile_holes, 0.0)
        for i, tile in enumerate(tiles):
            part = tile.read.intersection(extent)
            if part is None:
                continue
            src, dst = _rel(part, tile.read), _rel(part, extent)
            w = self._weight(job, tile)[src]
            shape = (probs.shape[1], part.height, part.width)
            q, votes = self._scratch("q", shape, torch.float32), self._scratch("votes", shape, torch.int32)
            torch.mul(probs[i, :, src[0], src[1]], w, out=q)
            q.round_()  # whole numbers: casts to int32 are exact
            if holes[i] is None:  # many invalid pixels: they get no votes (int32 by bool: a fast kernel)
                votes.copy_(q).mul_(valid[i][src])
                q = votes
            covered, first = frontier.split(*dst)
            for rows, cols in covered:
                sub = _within((rows, cols), dst)
                acc[:, rows, cols] += q[sub] if q is votes else votes[sub].copy_(q[sub])
            if first is not None:
                acc[(slice(None), *first)].copy_(q[_within(first, dst)])

    def run_block(
        self,
        job: PredictJob,
        block: Block,
        seams: Sequence[Seam],
        tiles: Iterable[ReadTile],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> BlockResult:
        """Predict ``block`` from its read ``tiles`` (in ``block.tiles`` order, batched by ``job.batch_size`` on
        a GPU, one by one on the CPU); ``on_batch(tiles)`` after each batch, in the calling thread.

        On the CPU one tile already keeps the cores busy, and a whole batch at once holds that many tiles'
        activations and temporaries (hundreds of MB per lane, far beyond the caches): each tile goes through
        normalising, the network, softmax, weighting and accumulation alone, its temporaries reused.
        """
        extent = block.extent
        batch_size = job.batch_size if self.device.type == "cuda" else 1
        with torch.inference_mode():
            shape = (self.card.num_classes, extent.height, extent.width)
            acc = self._scratch("accumulator", shape, torch.int32)  # every pixel written first: no zeroing
            frontier = _Frontier(extent.height, extent.width)
            checksum = torch.zeros((), dtype=torch.float64, device=self.device)  # the sum of all logits
            for batch in _batches(tiles, batch_size):
                with self.lock:
                    self._add_batch(job, extent, acc, frontier, checksum, batch)
                if on_batch is not None:
                    on_batch(len(batch))
            if not frontier.complete:
                raise ValueError(f"block {block.index}: its tiles did not cover its extent (tiles missing)")
            if not bool(torch.isfinite(checksum)):
                raise ModelError(
                    "the network produced non-finite values (NaN/inf); check the model and its normalisation"
                )
            owned = None
            if block.owned is not None:
                rows, cols = _rel(block.owned, extent)
                ids, conf = finish(acc[:, rows], self.card.class_ids, confidence=job.confidence, cols=cols)
                # Finished on the CPU, ids and confidence are new arrays already: no copy of them.
                out = _host if self.device.type != "cpu" else torch.Tensor.numpy
                owned = Piece(block.owned, out(ids), None if conf is None else out(conf))
            parts = {s.index: _host(acc[(slice(None), *_rel(s.window, extent))]) for s in seams}
        return BlockResult(block.index, owned, parts)


def finish_seam(seam: Seam, lut: Sequence[int], parts: Iterable[np.ndarray], *, confidence: bool = True) -> Piece:
    """Add the blocks' partial sums over ``seam`` and finish its pixels (on the CPU)."""
    total: np.ndarray | None = None
    for p in parts:
        total = p.astype(np.int32, copy=True) if total is None else np.add(total, p, out=total)
    if total is None:
        raise ValueError(f"seam {seam.index} has no parts")
    ids, conf = finish(torch.from_numpy(total), lut, confidence=confidence)
    return Piece(seam.window, ids.numpy(), None if conf is None else conf.numpy())
