"""Ensembles and test-time augmentation in geoseg.predict: averaged softmax probabilities, stitched as one model's."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from support.nets import PixelNet, card_for, make_model, tiny_unet
from torch import nn

import geoseg
from geoseg.cli import main
from geoseg.errors import ConfigError, InputError, UsageError
from geoseg.io.rasters import read_window
from geoseg.model.preprocess import normalise
from geoseg.prediction import plan as plan_module
from geoseg.prediction.blend import grid_weights
from geoseg.prediction.options import PredictOptions
from geoseg.prediction.parts import concentrate
from geoseg.prediction.stitch import finish_votes, quantisation_scale, quantise_tile
from geoseg.prediction.techniques import TTA_MODES, ensemble_weights, views
from geoseg.tiling import PixelWindow, tile_grid

TILE, OVERLAP = 32, 8


class RampNet(nn.Module):
    """Per-pixel logits plus a bias that grows along the rows and the columns: not equivariant to any flip or
    rotation, yet every output pixel depends only on its own input pixel and position (so sums are exact)."""

    def __init__(self, bands: int, classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Conv2d(bands, classes, 1)
        self.rows = nn.Parameter(torch.randn(classes, 1, 1) * 4)
        self.cols = nn.Parameter(torch.randn(classes, 1, 1) * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        r = torch.linspace(0, 1, h).view(1, h, 1)
        c = torch.linspace(0, 1, w).view(1, 1, w) ** 2
        return self.body(x) + self.rows * r + self.cols * c


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few tiles, so that the test scenes have several blocks and seams."""
    monkeypatch.setattr(plan_module, "ACCUMULATOR_BYTES", 2 * 4 * 80 * 80)


@pytest.fixture
def scene(make_raster):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 255, (3, 75, 90), dtype=np.uint8)
    data[:, 60:, :20] = 0  # nodata corner: masked pixels go through the averaging too
    return make_raster("scene.tif", data, nodata=0)


def pixels(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def numpy_views(mode: str):
    """(forward, inverse) pairs over the last two axes, written independently of geoseg's views."""
    flip_r, flip_c = (lambda a: a[..., ::-1, :]), (lambda a: a[..., ::-1])
    if mode == "none":
        return [(lambda a: a, lambda a: a)]
    if mode == "flips":
        return [(lambda a: a, lambda a: a), (flip_c, flip_c), (flip_r, flip_r),
                (lambda a: flip_r(flip_c(a)), lambda a: flip_c(flip_r(a)))]
    out = []
    for mirror in (False, True):
        for k in range(4):
            out.append((
                lambda a, k=k, m=mirror: np.rot90(flip_c(a) if m else a, k, axes=(-2, -1)),
                lambda a, k=k, m=mirror: (flip_c if m else (lambda b: b))(np.rot90(a, -k, axes=(-2, -1))),
            ))
    return out


def reference(models, weights, mode, scene, tile=TILE, overlap=OVERLAP):
    """Tile by tile: each model on each view, softmax, view undone, weighted mean in float32, then the
    quantised blending of test_engines.reference."""
    with rasterio.open(scene) as ds:
        height, width = ds.height, ds.width
    tiles = tile_grid(height, width, tile, overlap)
    blend, scale = grid_weights(height, width, tile, overlap, "hann"), quantisation_scale(height, width, tile, overlap)
    card = models[0].card
    acc = np.zeros((card.num_classes, height, width), np.int32)
    pairs = numpy_views(mode)
    for t in tiles:
        data, valid = read_window(str(scene), t.read, (1, 2, 3))
        mean = np.zeros((card.num_classes, tile, tile), np.float32)
        for model, w in zip(models, weights, strict=True):
            x = normalise(data, valid, model.card.normalization)
            for forward, inverse in pairs:
                with torch.inference_mode():
                    view = torch.from_numpy(np.ascontiguousarray(forward(x)))[None]
                    probs = torch.softmax(model.network(view).float(), 1)[0].numpy()
                mean += np.float32(w / len(pairs)) * inverse(probs)
        mean = concentrate(torch.from_numpy(mean)[None], card)[0].numpy()
        q = quantise_tile(mean, valid, blend.weights(t), scale)
        part = t.read.intersection(PixelWindow(0, 0, height, width))
        rows, cols = part.relative_to(t.read)
        acc[:, part.row_off : part.row_end, part.col_off : part.col_end] += q[:, rows, cols]
    return finish_votes(acc, card.class_ids)


def run(scene, model, out, **kw):
    kw.setdefault("tile_size", TILE)
    kw.setdefault("overlap", OVERLAP)
    geoseg.predict(scene, model, out, confidence=out.with_suffix(".conf.tif"), batch_size=3, **kw)
    return pixels(out), pixels(out.with_suffix(".conf.tif"))


# --- the pieces ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", TTA_MODES)
def test_views_are_distinct_and_invert(mode):
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    seen = set()
    for view in views(mode):
        y = view.apply(x)
        assert torch.equal(view.invert(y), x)
        seen.add(y.numpy().tobytes())
    assert len(seen) == {"none": 1, "flips": 4, "d4": 8}[mode]
    assert views(mode)[0].identity


def test_ensemble_weights():
    assert ensemble_weights(None, 4) == (0.25,) * 4
    assert ensemble_weights((3, 1), 2) == (0.75, 0.25)
    assert ensemble_weights([2, 0], 2) == (1.0, 0.0)
    for bad in [(0.5,), (1, 1, 1), (-1, 2), (0, 0), (float("nan"), 1), (float("inf"), 1), "0.5,0.5"]:
        with pytest.raises(UsageError):
            ensemble_weights(bad, 2)


def test_tta_is_an_output_option():
    assert PredictOptions().tta == "none"
    assert PredictOptions(tta="d4").tta == "d4"
    with pytest.raises(ConfigError):
        PredictOptions(tta="rot90")
    from geoseg.batch.config import PredictStep
    from geoseg.schema import output_settings

    assert output_settings(PredictStep(tta="flips"))["tta"] == "flips"


# --- ensembles ----------------------------------------------------------------------------------------------


def test_ensemble_of_a_model_with_itself_is_that_model(tmp_path, scene, small_blocks):
    model = make_model(PixelNet, seed=4, tile_size=TILE)
    single = run(scene, model, tmp_path / "one.tif")
    for name, models in {"two": [model, model], "four": [model] * 4}.items():
        ids, conf = run(scene, models, tmp_path / f"{name}.tif")
        assert np.array_equal(ids, single[0]) and np.array_equal(conf, single[1]), name
    assert (single[0] == 255).any() and len(np.unique(single[0])) >= 3  # nodata corner and all classes seen


def test_zero_weight_leaves_the_other_model(tmp_path, scene, small_blocks):
    a, b = make_model(PixelNet, seed=1, tile_size=TILE), make_model(PixelNet, seed=2, tile_size=TILE)
    only_a, only_b = run(scene, a, tmp_path / "a.tif"), run(scene, b, tmp_path / "b.tif")
    assert not np.array_equal(only_a[0], only_b[0])
    for weights, expected in {(1, 0): only_a, (0, 5): only_b}.items():
        ids, conf = run(scene, [a, b], tmp_path / f"w{weights[0]}.tif", model_weights=weights)
        assert np.array_equal(ids, expected[0]) and np.array_equal(conf, expected[1]), weights


def test_weighted_ensemble_with_own_normalisations_matches_the_reference(tmp_path, scene, small_blocks):
    a = make_model(PixelNet, seed=1, tile_size=TILE)
    card_b = card_for(tile_size=64).replace(normalization={"mean": [30.0, 90.0, 160.0], "std": [20.0, 80.0, 40.0]})
    b = geoseg.Model(PixelNet(3, 3, seed=2).eval(), card_b)  # another tile size: the first model's is used
    ids, conf = run(scene, [a, b], tmp_path / "e.tif", model_weights=(0.75, 0.25))
    ref_ids, ref_conf = reference([a, b], (0.75, 0.25), "none", scene)
    assert np.array_equal(ids, ref_ids) and np.array_equal(conf, ref_conf)
    # Both models count: the ensemble is neither of them alone.
    assert not np.array_equal(conf, run(scene, a, tmp_path / "a.tif")[1])
    assert not np.array_equal(conf, run(scene, b, tmp_path / "b.tif")[1])


def _parts_card(**kw):
    return card_for(classes=4, tile_size=TILE, parts=[{"of": 1, "border": 2, "contact": 3}], **kw)


@pytest.mark.parametrize(
    "other, what",
    [
        (card_for(classes=4, tile_size=TILE), "classes"),
        (card_for(tile_size=TILE).replace(classes=["background", "class1", "class2"]), "classes"),
        (card_for(tile_size=TILE).replace(bands=["red", "green", "blue"]), "bands"),
        (card_for(tile_size=TILE, dtype="uint16"), "dtype"),
        (card_for(tile_size=TILE, nodata="none"), "nodata policy"),
        (_parts_card(), "part schemes"),
    ],
)
def test_incompatible_models_are_a_one_line_error_and_write_nothing(tmp_path, scene, other, what):
    first = make_model(PixelNet, seed=1, tile_size=TILE, classes=other.num_classes) if what == "part schemes" \
        else make_model(PixelNet, seed=1, tile_size=TILE)
    second = geoseg.Model(PixelNet(3, other.num_classes, seed=2).eval(), other)
    with pytest.raises(InputError) as info:
        geoseg.predict(scene, [first, second], tmp_path / "out.tif", confidence=tmp_path / "conf.tif")
    message = str(info.value)
    assert "\n" not in message and what in message and "ensemble" in message
    assert not isinstance(info.value, UsageError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


# --- test-time augmentation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_tta_on_a_per_pixel_network_changes_nothing(tmp_path, scene, small_blocks, mode):
    model = make_model(PixelNet, seed=5, tile_size=TILE)
    plain = run(scene, model, tmp_path / "plain.tif")
    ids, conf = run(scene, model, tmp_path / f"{mode}.tif", tta=mode)
    assert np.array_equal(ids, plain[0]) and np.array_equal(conf, plain[1])


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_tta_averages_the_views_like_the_numpy_reference(tmp_path, scene, small_blocks, mode):
    model = geoseg.Model(RampNet(3, 3, seed=3).eval(), card_for(tile_size=TILE))
    ids, conf = run(scene, model, tmp_path / f"{mode}.tif", tta=mode)
    ref_ids, ref_conf = reference([model], (1.0,), mode, scene)
    assert np.array_equal(ids, ref_ids) and np.array_equal(conf, ref_conf)
    plain_ids, _ = run(scene, model, tmp_path / "plain.tif")
    assert (plain_ids != ids).mean() > 0.01  # the network is far from equivariant: the views matter


def test_ensemble_with_tta_and_part_classes_matches_the_reference(tmp_path, scene, small_blocks):
    a = geoseg.Model(RampNet(3, 4, seed=1).eval(), _parts_card())
    b = geoseg.Model(PixelNet(3, 4, seed=2).eval(), _parts_card())
    out = tmp_path / "e.tif"
    ids, conf = run(scene, [a, b], out, model_weights=(0.5, 0.5), tta="flips")
    ref_ids, ref_conf = reference([a, b], (0.5, 0.5), "flips", scene)
    assert np.array_equal(pixels(out.with_name("e.parts.tif")), ref_ids)  # the unfolded part ids
    assert np.array_equal(conf, ref_conf)
    assert np.array_equal(ids, np.where(np.isin(ref_ids, [2, 3]), 1, ref_ids))  # border, contact shown as class 1
    with rasterio.open(out) as ds:
        assert ds.tags()["GEOSEG_MODEL"] == "custom+custom" and ds.tags()["GEOSEG_TTA"] == "flips"


def test_dask_gives_the_local_bytes_for_an_ensemble_with_tta(tmp_path, scene, small_blocks):
    from distributed import Client, LocalCluster

    a = geoseg.Model(RampNet(3, 3, seed=1).eval(), card_for(tile_size=TILE))
    b = make_model(PixelNet, seed=2, tile_size=TILE)
    local = run(scene, [a, b], tmp_path / "local.tif", model_weights=(0.6, 0.4), tta="d4")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:
            dask = run(scene, [a, b], tmp_path / "dask.tif", model_weights=(0.6, 0.4), tta="d4", client=client)
    assert np.array_equal(local[0], dask[0]) and np.array_equal(local[1], dask[1])


# --- command line -------------------------------------------------------------------------------------------


def cli(*args: str):
    return CliRunner().invoke(main, ["-q", "predict", *args])


@pytest.fixture
def model_files(tmp_path):
    return [str(tiny_unet(tile_size=TILE, seed=s).save(tmp_path / f"m{s}.safetensors")) for s in (0, 1)]


@pytest.mark.parametrize("weights", ["0.5", "0.5,0.3,0.2", "-1,2", "0,0", "a,b", "nan,1"])
def test_cli_bad_model_weights_are_usage_errors(tmp_path, scene, model_files, weights):
    a, b = model_files
    result = cli(str(scene), "--model", a, "--model", b, "--model-weights", weights, "--out", str(tmp_path / "o.tif"))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "weight" in lines[0], result.output
    assert not (tmp_path / "o.tif").exists()


def test_cli_ensemble_with_tta(tmp_path, scene, model_files):
    a, b = model_files
    out = tmp_path / "o.tif"
    result = cli(str(scene), "--model", a, "--model", b, "--model-weights", "0.6,0.4", "--tta", "flips",
                 "--tile-size", "32", "--overlap", "8", "--out", str(out))
    assert result.exit_code == 0, result.output
    models = [geoseg.load_model(p) for p in model_files]
    geoseg.predict(scene, models, tmp_path / "api.tif", model_weights=(0.6, 0.4), tta="flips", tile_size=32, overlap=8)
    assert np.array_equal(pixels(out), pixels(tmp_path / "api.tif"))
    bad = cli(str(scene), "--model", a, "--tta", "rot", "--out", str(tmp_path / "x.tif"))
    assert bad.exit_code == 2


def test_cli_incompatible_model_files_exit_1(tmp_path, scene, model_files):
    other = tiny_unet(classes=3, tile_size=TILE).save(tmp_path / "three.safetensors")
    result = cli(str(scene), "--model", model_files[0], "--model", str(other), "--out", str(tmp_path / "o.tif"))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "classes" in lines[0] and "three.safetensors" in lines[0], result.output
    assert not (tmp_path / "o.tif").exists()


# --- edge-aware refinement ----------------------------------------------------------------------------------


class BlurNet(nn.Module):
    """Building (class 1) where the red band is bright, but with its edges blurred 3 px outwards: the network
    finds the object and misses its outline, as real networks do."""

    def __init__(self, bands: int, classes: int, seed: int = 0) -> None:
        super().__init__()
        self.blur = nn.AvgPool2d(7, stride=1, padding=3, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = self.blur((x[:, :1] > 0).float()) * 8 - 1.5  # leaks into the dark pixels next to the square
        return torch.cat([-bright, bright], dim=1)


def test_guided_refinement_puts_class_edges_on_image_edges(tmp_path, make_raster, small_blocks):
    data = np.full((3, 96, 96), 40, np.uint8)
    data[:, 30:66, 24:70] = 200  # a bright roof on dark ground
    scene = make_raster("roof.tif", data)
    truth = np.zeros((96, 96), bool)
    truth[30:66, 24:70] = True
    model = geoseg.Model(BlurNet(3, 2).eval(), card_for(classes=2, tile_size=TILE))  # mean 100, std 50
    plain = pixels(geoseg.predict(scene, model, tmp_path / "plain.tif", overlap=OVERLAP).output) == 1
    refined = pixels(geoseg.predict(scene, model, tmp_path / "refined.tif", overlap=OVERLAP, refine="guided").output)
    refined = refined == 1
    wrong_plain, wrong_refined = (plain != truth).sum(), (refined != truth).sum()
    assert wrong_plain > 200  # the blurred outline: a rim of wrong pixels around the roof
    assert wrong_refined < wrong_plain / 2
    with rasterio.open(tmp_path / "refined.tif") as ds:
        assert ds.tags()["GEOSEG_REFINE"] == "guided"


def test_guided_refinement_is_the_same_on_dask(tmp_path, scene, small_blocks):
    from distributed import Client, LocalCluster

    model = tiny_unet(tile_size=TILE, seed=3)
    local = run(scene, model, tmp_path / "local.tif", refine="guided")
    plain = run(scene, model, tmp_path / "plain.tif")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:
            dask = run(scene, model, tmp_path / "dask.tif", refine="guided", client=client)
    assert np.array_equal(local[0], dask[0]) and np.array_equal(local[1], dask[1])
    assert not np.array_equal(local[1], plain[1])  # it did refine


def test_cli_refine_choices(tmp_path, scene, model_files):
    bad = cli(str(scene), "--model", model_files[0], "--refine", "crf", "--out", str(tmp_path / "x.tif"))
    assert bad.exit_code == 2 and not (tmp_path / "x.tif").exists()
    good = cli(str(scene), "--model", model_files[0], "--refine", "guided", "--tile-size", "32", "--overlap", "8",
               "--out", str(tmp_path / "g.tif"))
    assert good.exit_code == 0, good.output
