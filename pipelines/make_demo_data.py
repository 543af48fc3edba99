"""Rebuild geoseg's bundled demo data from ../shared/data/kampala.

    python pipelines/make_demo_data.py [--data ../shared/data]

The demo scene is the part of the Kampala orthophoto held out from training by
configs/train/shipped_buildings.yaml (its validation strip), cut from the
original 7.5 cm image and stored JPEG-compressed with a lossless internal
mask; the OpenStreetMap building outlines are clipped to it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import geopandas as gpd
import rasterio
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from geoseg.demo import ATTRIBUTION, DEMO_LABELS, DEMO_SCENE
from geoseg.io.rasters import Grid, inspect_scene
from geoseg.training.config import load_config
from geoseg.training.splits import validation_blocks

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "train" / "shipped_buildings.yaml"

ATTRIBUTION_TEXT = """# Bundled demo data

`kampala_demo.tif`: a crop of the drone orthophoto of Ggaba, Kampala, Uganda (7.5 cm, EPSG:3857),
from OpenAerialMap, licensed CC BY 4.0. Imagery © its OpenAerialMap contributors (via HOT fAIr sample data).

`kampala_demo_buildings.gpkg`: building outlines © OpenStreetMap contributors, available under the
Open Database Licence (ODbL 1.0), https://www.openstreetmap.org/copyright (via HOT fAIr sample data).

The crop is the part of the scene held out from training of the shipped building model
(configs/train/buildings_five_places.yaml) and of the model shipped before it
(configs/train/shipped_buildings.yaml); `pipelines/make_demo_data.py` rebuilds both files.
"""


def held_out_bounds(config_path: Path) -> tuple[Path, Path, tuple[float, float, float, float]]:
    """The Kampala scene, its labels, and the map bounds of its validation block in the shipped config."""
    cfg = load_config(config_path)
    scene = cfg.scenes[0]
    info = inspect_scene(scene.image)
    grid = Grid.rescaled(info, cfg.resolution / info.resolution_m) if cfg.resolution else None
    height, width = (grid.height, grid.width) if grid else (info.height, info.width)
    v = cfg.validation
    if v.mode == "scenes" and scene.hold_out is not None:  # the strip held out of the Kampala scene
        left_share, right_share = scene.hold_out
        block_cols = round(left_share * width), round(right_share * width)
        from geoseg.tiling import PixelWindow

        block = PixelWindow(0, block_cols[0], height, block_cols[1] - block_cols[0])
    else:
        (block,) = validation_blocks(height, width, mode=v.mode, fraction=v.fraction, strips=v.strips,
                                     block_size=v.block_size or 4 * cfg.tile_size, seed=cfg.seed, scene=0)
    from affine import Affine

    t = Affine(*grid.transform) if grid else info.affine
    left, top = t * (block.col_off, block.row_off)
    right, bottom = t * (block.col_end, block.row_end)
    return scene.image, scene.labels, (left, bottom, right, top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    image, labels, bounds = held_out_bounds(CONFIG)
    with rasterio.open(image) as src:
        win = from_bounds(*bounds, transform=src.transform)
        # Round inwards so no pixel of the crop lies outside the held-out block.
        col0, row0 = math.ceil(win.col_off - 1e-6), max(0, math.ceil(win.row_off - 1e-6))
        col1 = min(src.width, math.floor(win.col_off + win.width + 1e-6))
        row1 = min(src.height, math.floor(win.row_off + win.height + 1e-6))
        crop = Window(col0, row0, col1 - col0, row1 - row0)
        data = src.read(window=crop)
        mask = src.dataset_mask(window=crop)
        profile = {
            "driver": "GTiff", "width": crop.width, "height": crop.height, "count": 3, "dtype": "uint8",
            "crs": src.crs, "transform": src.window_transform(crop), "tiled": True, "blockxsize": 256,
            "blockysize": 256, "compress": "jpeg", "jpeg_quality": 90, "photometric": "ycbcr",
        }
        DEMO_SCENE.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(DEMO_SCENE, "w", **profile) as dst:
            dst.write(data)
            dst.write_mask(mask)
        crop_box = box(*rasterio.windows.bounds(crop, src.transform))
    buildings = gpd.read_file(labels)
    clipped = gpd.clip(buildings, crop_box)
    clipped = clipped[~clipped.geometry.is_empty][["class_id", "class_name", "geometry"]]
    if DEMO_LABELS.exists():
        DEMO_LABELS.unlink()
    clipped.to_file(DEMO_LABELS, layer="building", driver="GPKG")
    ATTRIBUTION.write_text(ATTRIBUTION_TEXT)
    print(f"{DEMO_SCENE}: {crop.width}x{crop.height} px (cols {col0}-{col1} of the scene), "
          f"{DEMO_SCENE.stat().st_size / 1e6:.2f} MB")
    print(f"{DEMO_LABELS}: {len(clipped)} buildings")


if __name__ == "__main__":
    main()
