"""Tile samplers: torchgeo interface, reproducibility, and what class-balanced sampling does to a rare class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchgeo.samplers import GeoSampler

from geoseg.io.rasters import inspect_scene
from geoseg.model.card import Normalization
from geoseg.tiling import PixelWindow, tile_grid
from geoseg.training.augment import Augmenter
from geoseg.training.dataset import SceneTiles, label_lut
from geoseg.training.losses import IGNORE_INDEX
from geoseg.training.sampling import TileSampler, WindowSampler, expected_class_share, tile_weights
from geoseg.training.tile_index import index_tiles

SIZE, TILE = 512, 64


@pytest.fixture(scope="module")
def rare_scene(tmp_path_factory):
    """512 x 512 px: class 1 in eight 26 px squares (2.1 % of pixels), class 0 elsewhere; a nodata corner."""
    from support.rasters import write_raster

    folder = tmp_path_factory.mktemp("rare")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (3, SIZE, SIZE), dtype=np.uint8)
    image[:, :16, :16] = 255  # nodata
    labels = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for r, c in [(40, 40), (40, 300), (150, 200), (220, 420), (300, 90), (380, 330), (450, 30), (470, 470)]:
        labels[r : r + 26, c : c + 26] = 1
        image[0, r : r + 26, c : c + 26] = 250
    img = write_raster(folder / "image.tif", image, nodata=255)
    lab = write_raster(folder / "labels.tif", labels)
    info = inspect_scene(img)
    grid = tile_grid(SIZE, SIZE, TILE, TILE // 2)
    stats = index_tiles(str(img), info.data_bands, str(lab), grid)
    hists = np.array([[s["hist"].get(0, 0), s["hist"].get(1, 0)] for s in stats])
    normalization = Normalization((100.0,) * 3, (50.0,) * 3)
    dataset = SceneTiles([info], [str(lab)], normalization=normalization, lut=label_lut([0, 1], None))
    return {"info": info, "labels": labels, "grid": grid, "hists": hists, "dataset": dataset}


def sampler(scene, kind, seed, length=400):
    windows = [(0, t.read) for t in scene["grid"]]
    return TileSampler.from_histograms(scene["dataset"], windows, scene["hists"], kind=kind, length=length,
                                       generator=torch.Generator().manual_seed(seed))


def test_sampler_is_a_torchgeo_geosampler_yielding_slices(rare_scene):
    s = sampler(rare_scene, "balanced", 0, length=5)
    assert isinstance(s, GeoSampler) and len(s) == 5
    queries = list(s)
    assert len(queries) == 5
    for q in queries:
        assert len(q) == 3 and all(isinstance(part, slice) for part in q)
        sample = rare_scene["dataset"][q]
        assert sample["image"].shape == (3, TILE, TILE) and sample["mask"].shape == (TILE, TILE)


def test_queries_read_back_the_right_windows(rare_scene):
    dataset = rare_scene["dataset"]
    windows = [
        (0, PixelWindow(0, 0, TILE, TILE)),
        (0, PixelWindow(32, 288, TILE, TILE)),
        (0, PixelWindow(480, 480, TILE, TILE)),
    ]
    for (k, w), q in zip(windows, WindowSampler(dataset, windows), strict=False):
        assert dataset.locate(q) == (k, w)
        mask = dataset[q]["mask"].numpy()
        expected = np.full((TILE, TILE), IGNORE_INDEX)
        inside = rare_scene["labels"][w.row_off : w.row_end, w.col_off : w.col_end]
        expected[: inside.shape[0], : inside.shape[1]] = inside
        if w.row_off == 0 and w.col_off == 0:
            expected[:16, :16] = IGNORE_INDEX  # image nodata is never a label
        assert np.array_equal(mask, expected)


def test_same_seed_same_tiles_other_seed_other_tiles(rare_scene):
    a = list(sampler(rare_scene, "balanced", 7, length=50))
    b = list(sampler(rare_scene, "balanced", 7, length=50))
    c = list(sampler(rare_scene, "balanced", 8, length=50))
    assert a == b
    assert a != c
    # an epoch later the generator has moved on, reproducibly
    s1, s2 = sampler(rare_scene, "uniform", 3, length=20), sampler(rare_scene, "uniform", 3, length=20)
    assert list(s1) == list(s2) and list(s1) == list(s2)


def sampled_share(scene, s, reads: int = 300) -> float:
    """Share of class 1 among the labelled pixels actually read for the first ``reads`` draws."""
    counts = np.zeros(2)
    for q, _ in zip(s, range(reads), strict=False):
        mask = scene["dataset"][q]["mask"].numpy()
        counts += [(mask == 0).sum(), (mask == 1).sum()]
    return counts[1] / counts.sum()


def test_balanced_sampling_raises_a_two_percent_class_at_least_threefold(rare_scene):
    natural = (rare_scene["labels"] == 1).mean()
    assert 0.019 < natural < 0.022
    uniform = sampled_share(rare_scene, sampler(rare_scene, "uniform", 0))
    balanced = sampled_share(rare_scene, sampler(rare_scene, "balanced", 0))
    assert uniform < 1.5 * natural
    assert balanced >= 3 * natural, (natural, uniform, balanced)


def test_tile_weights_move_shares_towards_the_targets():
    # four tiles: mostly class 0, one tile with 10 % class 1
    hists = np.array([[100, 0], [100, 0], [100, 0], [90, 10]])
    uniform = tile_weights(hists, kind="uniform")
    assert np.array_equal(uniform, [1, 1, 1, 1])
    balanced = tile_weights(hists, kind="balanced", power=1.0, max_ratio=1e9)
    share = expected_class_share(hists, balanced)
    assert share[1] == pytest.approx(0.10, abs=2e-3)  # as far as the tiles allow (the best tile holds 10 %)
    half = expected_class_share(hists, tile_weights(hists, kind="balanced", power=0.5, max_ratio=1e9))
    assert expected_class_share(hists, uniform)[1] < half[1] < share[1] + 1e-9
    # tiles without labelled pixels are never drawn
    assert tile_weights(np.array([[0, 0], [5, 5]]), kind="balanced")[0] == 0
    # every labelled tile keeps at least 1 / max_ratio of the top weight
    spread = tile_weights(hists, kind="balanced", power=1.0, max_ratio=4.0)
    assert spread.min() == pytest.approx(spread.max() / 4.0)


def test_augmentation_moves_image_and_mask_together():
    gen = torch.Generator().manual_seed(0)
    mask = torch.arange(2 * 8 * 8).reshape(2, 8, 8) % 5
    image = mask[:, None].float().repeat(1, 3, 1, 1)
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    valid[:, 0, :3] = False
    geometric = Augmenter(brightness=0.0, contrast=0.0)
    seen = set()
    for _ in range(10):
        x, y, v = geometric(image, mask, valid, generator=gen)
        assert torch.equal(x[:, 0], y.float()) and torch.equal(x[:, 2], y.float())
        assert int(v.sum()) == int(valid.sum())
        seen.add(tuple(y[0, 0, :2].tolist()))
    assert len(seen) > 1, "flips/rotations should change the tiles"
    colour = Augmenter(flips=False, rotate90=False, brightness=0.5, contrast=0.5)
    x, y, v = colour(image, mask, valid, generator=gen)
    assert torch.equal(y, mask)
    assert torch.equal(x[:, :, 0, :3], image[:, :, 0, :3]), "invalid pixels keep their value"
    assert not torch.equal(x, image)


def test_scenes_in_different_crs_are_read_on_their_own_grids(tmp_path):
    """The time slice picks the scene; x/y are in that scene's own CRS; nothing is resampled."""
    from rasterio.transform import from_origin
    from support.rasters import write_raster

    a_img = write_raster(tmp_path / "a.tif", np.full((3, 64, 64), 10, np.uint8), crs="EPSG:32633",
                         transform=from_origin(500000, 4000000, 1, 1))
    b_img = write_raster(tmp_path / "b.tif", np.full((3, 40, 50), 20, np.uint8), crs="EPSG:3857",
                         transform=from_origin(3000000, 5000000, 0.25, 0.25))
    a_lab = write_raster(tmp_path / "a_l.tif", np.zeros((64, 64), np.uint8), crs="EPSG:32633",
                         transform=from_origin(500000, 4000000, 1, 1))
    b_lab = write_raster(tmp_path / "b_l.tif", np.ones((40, 50), np.uint8), crs="EPSG:3857",
                         transform=from_origin(3000000, 5000000, 0.25, 0.25))
    scenes = [inspect_scene(a_img), inspect_scene(b_img)]
    dataset = SceneTiles(scenes, [str(a_lab), str(b_lab)], normalization=Normalization((0.0,) * 3, (1.0,) * 3),
                         lut=label_lut([0, 1], None))
    assert dataset.index.crs is None  # footprints are each in their own CRS
    windows = [(0, PixelWindow(0, 0, 32, 32)), (1, PixelWindow(16, 30, 32, 32))]  # b: 24 rows x 20 cols inside
    samples = [dataset[q] for q in WindowSampler(dataset, windows)]
    assert float(samples[0]["image"].mean()) == 10.0 and int(samples[0]["mask"].max()) == 0
    b = samples[1]
    assert float(b["image"][:, :24, :20].min()) == 20.0
    assert b["valid"][:24, :20].all() and not b["valid"][24:].any() and not b["valid"][:, 20:].any()
    assert (b["mask"][:24, :20] == 1).all()
    assert (b["mask"][24:] == IGNORE_INDEX).all() and (b["mask"][:, 20:] == IGNORE_INDEX).all()
