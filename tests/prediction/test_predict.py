"""geoseg.predict: stitched results equal whole-scene results; seams; georeferencing; masks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.windows import Window
from support.nets import PixelNet, SmallConvNet, make_model, whole_scene

import geoseg
from geoseg.evaluation.seam_metric import seam_disagreement, seam_mask
from geoseg.io.rasters import read_window
from geoseg.tiling import PixelWindow, tile_grid


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


def read_all(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile


def reference(model, scene):
    with rasterio.open(scene) as ds:
        h, w = ds.height, ds.width
    data, valid = read_window(str(scene), PixelWindow(0, 0, h, w), (1, 2, 3))
    return whole_scene(model, data, valid)


@given(
    tile=st.integers(8, 48),
    overlap_frac=st.floats(0, 0.6),
    height_tiles=st.floats(0.02, 3.0),
    width_tiles=st.floats(0.02, 3.0),
    blend=st.sampled_from(["hann", "crop"]),
    seed=st.integers(0, 10_000),
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_per_pixel_network_stitched_equals_whole_scene(
    tmp_path_factory, client, tile, overlap_frac, height_tiles, width_tiles, blend, seed
):
    tmp = tmp_path_factory.mktemp("prop")
    rng = np.random.default_rng(seed)
    height, width = max(1, int(height_tiles * tile)), max(1, int(width_tiles * tile))
    from support.rasters import write_raster

    scene = write_raster(tmp / "s.tif", rng.integers(0, 255, (3, height, width), dtype=np.uint8))
    model = make_model(PixelNet, seed=seed % 7, tile_size=tile)
    out = tmp / "out.tif"
    geoseg.predict(scene, model, out, overlap=int(overlap_frac * tile), blend=blend, batch_size=3, client=client)
    got, profile = read_all(out)
    expected, probs = reference(model, scene)
    assert got.shape == (height, width)
    # Equal everywhere except on float ties between the two best classes (never seen in practice).
    top2 = np.sort(probs, axis=0)[-2:]
    decided = (top2[1] - top2[0]) > 1e-5
    assert (got[decided] == expected[decided]).all()
    assert (got != expected).mean() < 1e-3


def test_crop_is_exact_and_hann_is_seam_free(tmp_path, client, make_raster, shared_data):
    with rasterio.open(shared_data / "massachusetts" / "mass_22978945_15_image.tif") as ds:
        data = ds.read(window=Window(0, 0, 300, 260))
    scene = make_raster("scene.tif", data)
    model = make_model(SmallConvNet, seed=3, tile_size=64)
    expected, _ = reference(model, scene)
    tiles = tile_grid(260, 300, 64, 16)
    seams = seam_mask(tiles, 260, 300, width_px=2)

    geoseg.predict(scene, model, tmp_path / "crop.tif", overlap=16, blend="crop", client=client)
    crop, _ = read_all(tmp_path / "crop.tif")
    assert (crop == expected).all()

    geoseg.predict(scene, model, tmp_path / "hann.tif", overlap=16, blend="hann", client=client)
    hann, _ = read_all(tmp_path / "hann.tif")
    hann_report = seam_disagreement(hann, expected, seams)
    assert hann_report.overall < 0.005
    assert hann_report.seam_disagreement < 0.01

    # Without a halo the receptive field crosses tile edges: the seam metric must see it.
    geoseg.predict(scene, model, tmp_path / "naive.tif", overlap=0, blend="crop", client=client)
    naive, _ = read_all(tmp_path / "naive.tif")
    naive_seams = seam_mask(tile_grid(260, 300, 64, 0), 260, 300, width_px=2)
    naive_report = seam_disagreement(naive, expected, naive_seams)
    assert naive_report.seam_disagreement > 0.01
    assert naive_report.seam_disagreement > 5 * max(naive_report.other_disagreement, 1e-6)


def test_confidence_and_metadata(tmp_path, client, make_raster):
    rng = np.random.default_rng(0)
    scene = make_raster("s.tif", rng.integers(0, 255, (3, 90, 70), dtype=np.uint8))
    model = make_model(PixelNet, tile_size=32)
    geoseg.predict(scene, model, tmp_path / "c.tif", confidence=tmp_path / "conf.tif", overlap=8, client=client)
    ids, profile = read_all(tmp_path / "c.tif")
    conf, conf_profile = read_all(tmp_path / "conf.tif")
    _, probs = reference(model, scene)
    assert profile["nodata"] == 255 and conf_profile["nodata"] == 0
    np.testing.assert_allclose(conf, np.rint(probs.max(0) * 255), atol=1)
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = geoseg.classes.classes_from_json(ds.tags()["GEOSEG_CLASSES"])
        assert [c.name for c in classes] == ["class0", "class1", "class2"]
        assert ds.colormap(1)[1][:3] == classes[1].color


def test_refuses_to_overwrite(tmp_path, client, make_raster):
    scene = make_raster("s.tif", np.zeros((3, 20, 20), np.uint8))
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(geoseg.OutputExistsError, match="--overwrite"):
        geoseg.predict(scene, make_model(tile_size=16), out, overlap=4, client=client)
    assert out.read_bytes() == b"keep me"
    geoseg.predict(scene, make_model(tile_size=16), out, overlap=4, client=client, overwrite=True)
    assert read_all(out)[0].shape == (20, 20)


def test_nodata_and_alpha_become_output_nodata(tmp_path, client, make_raster):
    data = np.full((3, 40, 40), 120, np.uint8)
    data[:, :10, :] = 0  # nodata in every band
    data[0, 20, 20] = 0  # a real zero in one band stays valid
    scene = make_raster("nd.tif", data, nodata=0)
    geoseg.predict(scene, make_model(tile_size=16), tmp_path / "nd_out.tif", overlap=4, client=client)
    ids, _ = read_all(tmp_path / "nd_out.tif")
    assert (ids[:10] == 255).all() and (ids[10:] != 255).all()

    alpha = np.full((1, 40, 40), 255, np.uint8)
    alpha[0, :, 30:] = 0
    rgba = np.concatenate([np.full((3, 40, 40), 120, np.uint8), alpha])
    scene = make_raster("rgba.tif", rgba, photometric="RGB", alpha="YES")
    with rasterio.open(scene) as ds:
        assert ds.colorinterp[3].name == "alpha"
    geoseg.predict(scene, make_model(tile_size=16), tmp_path / "a_out.tif", overlap=4, client=client)
    ids, _ = read_all(tmp_path / "a_out.tif")
    assert (ids[:, 30:] == 255).all() and (ids[:, :30] != 255).all()


def test_float_input_nan_is_masked(tmp_path, client, make_raster):
    data = np.full((3, 30, 30), 90.0, np.float32)
    data[1, 5:8, 5:8] = np.nan
    scene = make_raster("f.tif", data)
    model = make_model(tile_size=16, dtype="float32")
    geoseg.predict(scene, model, tmp_path / "f_out.tif", overlap=4, client=client)
    ids, _ = read_all(tmp_path / "f_out.tif")
    assert (ids[5:8, 5:8] == 255).all() and (ids != 255).sum() == 900 - 9


REAL_SCENES = {
    "EPSG:3857": ("kampala/kampala_oam_cluster1_image.tif", (0, 0, 300, 260)),
    "EPSG:32616 (UTM, alpha)": ("sn4_atlanta/sn4_atlanta_image.tif", (100, 50, 200, 180)),
    "EPSG:2953": ("new_brunswick/nb_1of2_image.tif", None),
    "EPSG:4326 (8 bands)": ("sentinel2_8band/rcr_s2_image.tif", (1000, 900, 240, 200)),
    "EPSG:32618 (nodata 0)": ("rgb_byte_nodata/RGB.byte.tif", (0, 0, 260, 300)),
}


@pytest.mark.parametrize("name", sorted(REAL_SCENES))
def test_georeferencing_round_trip_on_real_scenes(tmp_path, client, shared_data, name):
    rel, crop = REAL_SCENES[name]
    src = shared_data / rel
    if crop is None:
        scene = src
    else:
        col, row, w, h = crop
        with rasterio.open(src) as ds:
            win = Window(col, row, w, h)
            profile = ds.profile | {"width": w, "height": h, "transform": ds.window_transform(win)}
            profile.pop("blockxsize", None), profile.pop("blockysize", None)
            profile["tiled"] = False
            scene = tmp_path / "crop.tif"
            with rasterio.open(scene, "w", **profile) as dst:
                dst.write(ds.read(window=win))
                dst.colorinterp = ds.colorinterp
    with rasterio.open(scene) as ds:
        bands = sum(1 for c in ds.colorinterp if c.name != "alpha")
        dtype, crs, transform, shape = ds.dtypes[0], ds.crs, ds.transform, ds.shape
        input_valid = ds.dataset_mask() > 0
    model = make_model(PixelNet, bands=bands, classes=2, dtype=dtype, tile_size=64)
    out = tmp_path / "out.tif"
    geoseg.predict(scene, model, out, overlap=16, client=client)
    with rasterio.open(out) as ds:
        assert ds.crs == crs
        assert ds.transform.almost_equals(transform, precision=1e-12)
        assert ds.shape == shape
        ids = ds.read(1)
    assert ((ids == 255) == ~input_valid).all()


def test_resolution_far_from_the_model_warns(tmp_path, client, make_raster):
    scene = make_raster("s.tif", np.zeros((3, 20, 20), np.uint8))  # 0.5 m pixels
    model = make_model(tile_size=16, resolution=8.0, resolution_range=(5.0, 10.0))
    with pytest.warns(geoseg.ResolutionWarning, match="far outside"):
        geoseg.predict(scene, model, tmp_path / "o.tif", overlap=4, client=client)


def test_resample_reads_at_model_resolution_and_returns_to_scene_grid(tmp_path, client, shared_data):
    from rasterio.enums import Resampling

    src = shared_data / "kampala" / "kampala_oam_cluster1_image.tif"  # 7.5 cm
    with rasterio.open(src) as ds:
        win = Window(400, 400, 640, 480)
        data = ds.read(window=win)
        profile = ds.profile | {"width": 640, "height": 480, "transform": ds.window_transform(win), "tiled": False}
        for key in ("blockxsize", "blockysize"):
            profile.pop(key, None)
    scene = tmp_path / "fine.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
    info = geoseg.io.rasters.inspect_scene(scene)
    model = make_model(PixelNet, classes=2, tile_size=32, seed=5, resolution=info.resolution_m * 4)
    out = tmp_path / "resampled.tif"
    geoseg.predict(scene, model, out, overlap=8, resample=True, client=client)
    with rasterio.open(out) as ds:
        assert ds.shape == (480, 640) and ds.transform == profile["transform"]
        got = ds.read(1)
    # Reference: the scene averaged down 4x, predicted there, and blown back up by nearest neighbour.
    with rasterio.open(scene) as ds:
        coarse = ds.read(out_shape=(3, 120, 160), resampling=Resampling.average).astype(np.float32)
    ids, _ = whole_scene(model, coarse, np.ones((120, 160), bool))
    expected = np.repeat(np.repeat(ids, 4, axis=0), 4, axis=1)
    assert (got == expected).mean() > 0.97
