"""The bad inputs of ``fuzz/bad_inputs.py``: for each command, how to build the input and what must happen.

Each case builds its fixtures in its own empty folder (``tests/support/hostile.py``
does the building) and returns the arguments after ``geoseg -q``.  What must
happen: exit status 1 or 2 (``code`` where it is fixed), one line on stderr
starting with ``Error:`` (naming ``mentions`` when given), every file of the
folder unchanged and nothing new in it (except ``allowed`` names), within
``timeout`` seconds, and no request to the canary HTTP server.  Cases with
``code=0`` must succeed instead (a sidecar is ignored, not used).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from support import hostile as h

#: ``build(folder, env) -> argv``; ``env`` holds the canary URL and a shared model file.
Build = Callable[[Path, "Env"], list[str]]


@dataclass(frozen=True)
class Env:
    canary: str  # http://127.0.0.1:<port>, counting every request
    tiny_model: Path  # a small, real model (rebuildable U-Net, 3 bands, 2 classes, 128 px tiles)
    can_mount: bool


@dataclass(frozen=True)
class Case:
    command: str
    name: str
    build: Build
    code: int | None = None
    mentions: str | None = None
    timeout: float = 240.0
    mounts: tuple[tuple[str, str], ...] = ()  # (folder, "ro" | "full")
    allowed: tuple[str, ...] = ()  # globs (relative to the case folder) that may appear
    needs_mount: bool = field(default=False)


CASES: list[Case] = []


def case(command: str, name: str, *, code: int | None = None, mentions: str | None = None, timeout: float = 240.0,
         mounts: tuple[tuple[str, str], ...] = (), allowed: tuple[str, ...] = ()) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CASES.append(Case(command, name, build, code, mentions, timeout, mounts, allowed, bool(mounts)))
        return build

    return register


# -- shared builders ---------------------------------------------------------------------------


def _scene(d: Path, name: str = "scene.tif", **kw) -> Path:
    return h.write_scene(d / name, **kw)


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _symlink(path: Path, target: str | Path) -> Path:
    path.symlink_to(target)
    return path


def _bad_rasters(d: Path, env: Env) -> dict[str, Callable[[], Path]]:
    """Broken rasters by name; each returns the path it wrote (or a special path)."""
    secret = d / "secret.tif"

    def vrt() -> Path:
        h.write_scene(secret, size=64)
        return h.write_vrt_as_tif(d / "sneaky.tif", secret)

    return {
        "missing file": lambda: d / "missing.tif",
        "empty file": lambda: _empty(d / "empty.tif"),
        "random bytes": lambda: h.write_random_bytes(d / "random.tif"),
        "TIFF magic, directory beyond the end": lambda: h.write_tiff_magic_only(d / "magic.tif"),
        "truncated GeoTIFF": lambda: h.write_truncated(d / "truncated.tif"),
        "header-only GeoTIFF": lambda: h.write_header_only(d / "header_only.tif"),
        "corrupt tile data": lambda: h.write_corrupt_blocks(d / "corrupt.tif"),
        "a folder": lambda: _folder(d / "folder.tif"),
        "a FIFO": lambda: h.make_fifo(d / "fifo.tif"),
        "/dev/zero": lambda: Path("/dev/zero"),
        "VRT XML named .tif": vrt,
        "symlink to /etc/passwd": lambda: _symlink(d / "passwd.tif", "/etc/passwd"),
        "/vsicurl/ URL": lambda: Path(f"/vsicurl/{env.canary}/scene.tif"),
        "declares 250000 x 250000 px": lambda: h.write_declared_size(
            d / "huge.tif", width=250_000, height=250_000, rows_per_strip=256),
        "strip bomb (one 12000 x 12000 strip)": lambda: h.write_declared_size(
            d / "strip_bomb.tif", width=12_000, height=12_000, full_strip=True),
    }


def _mentions(path: Path) -> str | None:
    return None if str(path).startswith("/vsi") else path.name


# -- predict -----------------------------------------------------------------------------------

for _label in list(_bad_rasters(Path("."), Env("", Path("."), False))):
    def _build(d: Path, env: Env, label: str = _label) -> list[str]:
        scene = _bad_rasters(d, env)[label]()
        return ["predict", str(scene), "--model", str(env.tiny_model), "--out", str(d / "out.tif")]

    case("predict", f"scene: {_label}")(_build)


def _georef_case(name: str, **kw) -> None:
    @case("predict", f"scene: {name}", mentions="scene.tif")
    def build(d: Path, env: Env) -> list[str]:
        import warnings

        from affine import Affine

        options = dict(kw)
        transform = options.pop("transform", None)
        scene = h.write_scene(d / "scene.tif", **options)
        if transform is not None:
            import rasterio

            with warnings.catch_warnings(), rasterio.open(scene, "r+") as ds:
                warnings.simplefilter("ignore")
                ds.transform = Affine(*transform)
        return ["predict", str(scene), "--model", str(env.tiny_model), "--out", str(d / "out.tif")]


_georef_case("no CRS", crs=None)
_georef_case("no geotransform", transform=(1, 0, 0, 0, 1, 0))
_georef_case("rotated geotransform", transform=(0.15, 0.05, 450000, 0.05, -0.15, 40000))
_georef_case("south-up", transform=(0.15, 0, 450000, 0, 0.15, 40000))
_georef_case("two bands", bands=2)
_georef_case("uint16 pixels", dtype="uint16")


@case("predict", "scene: .msk sidecar that is a VRT reading a URL (ignored)", code=0, allowed=("out.*",))
def _msk(d: Path, env: Env) -> list[str]:
    scene = _scene(d)
    h.write_msk_sidecar(scene, f"/vsicurl/{env.canary}/mask.tif")
    return ["predict", str(scene), "--model", str(env.tiny_model), "--out", str(d / "out.tif")]


def _model_case(name: str, make: Callable[[Path], Path], mentions: str | None = None) -> None:
    @case("predict", f"model: {name}", mentions=mentions)
    def build(d: Path, env: Env) -> list[str]:
        model = make(d)
        return ["predict", str(_scene(d)), "--model", str(model), "--out", str(d / "out.tif")]


def _card(**changes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        card = h.shipped_card()
        card.update(changes)
        return h.write_card_only_model(d / "m.safetensors", card)

    return make


def _card_text(transform: Callable[[str], str]) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        return h.write_card_only_model(d / "m.safetensors", transform(json.dumps(h.shipped_card())))

    return make


def _pickle_model(d: Path) -> Path:
    (d / "m.safetensors").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return d / "m.safetensors"


def _header_length(d: Path) -> Path:
    (d / "m.safetensors").write_bytes((2**60).to_bytes(8, "little") + b"{}")
    return d / "m.safetensors"


def _not_json(d: Path) -> Path:
    (d / "m.safetensors").write_bytes((6).to_bytes(8, "little") + b"{{{{{{")
    return d / "m.safetensors"


_model_case("a folder", lambda d: _folder(d / "models"), "models")
_model_case("missing file", lambda d: d / "missing.safetensors", "missing.safetensors")
_model_case("random bytes", lambda d: h.write_random_bytes(d / "m.safetensors"), "m.safetensors")
_model_case("a pickle", _pickle_model, "m.safetensors")
_model_case("header length 2^60", _header_length, "m.safetensors")
_model_case("header not JSON", _not_json, "m.safetensors")
_model_case("a FIFO", lambda d: h.make_fifo(d / "m.safetensors"), "m.safetensors")
_model_case("no card", lambda d: h.write_safetensors(d / "m.safetensors", {"w": np.zeros(2, np.float32)},
                                                     card=None), "m.safetensors")
_model_case("card version as text", _card(version="1"), "m.safetensors")
_model_case("card resolution_range of three numbers", _card(resolution_range=[0.1, 0.2, 0.3]), "m.safetensors")
_model_case("card classes as an object", _card(classes={"0": "background", "1": "building"}), "m.safetensors")
_model_case("card normalization as a list", _card(normalization=[1, 2, 3]), "m.safetensors")
_model_case("card tile_size 10^9", _card(tile_size=10**9), "m.safetensors")
_model_case("card infinite class id", _card_text(lambda t: t.replace('"id": 1', '"id": Infinity')), "m.safetensors")
_model_case("card a list, not an object", _card_text(lambda t: f"[{t}]"), "m.safetensors")
_model_case("card nested 100000 deep", lambda d: h.write_deep_json_card(d / "m.safetensors"), "m.safetensors")
_model_case("truncated weights", lambda d: h.write_truncated_weights(d / "m.safetensors"), "m.safetensors")
_model_case("weights that do not fit the card", lambda d: h.write_mismatched_weights(d / "m.safetensors"),
            "m.safetensors")


def _out_case(name: str, args: Callable[[Path, Path], list[str]], *, code: int | None = None,
              mounts: tuple[tuple[str, str], ...] = (), size: int = 96, mentions: str | None = None) -> None:
    @case("predict", f"output: {name}", code=code, mounts=mounts, mentions=mentions)
    def build(d: Path, env: Env) -> list[str]:
        scene = _scene(d, size=size)
        return ["predict", str(scene), "--model", str(env.tiny_model), *args(d, scene)]


def _link(d: Path, name: str, target: Path, hard: bool = False) -> Path:
    if hard:
        os.link(target, d / name)
    else:
        (d / name).symlink_to(target.name)
    return d / name


_out_case("--out is the scene, --overwrite", lambda d, s: ["--out", str(s), "--overwrite"], code=2)
_out_case("--out is a symlink to the scene, --overwrite",
          lambda d, s: ["--out", str(_link(d, "out.tif", s)), "--overwrite"], code=2)
_out_case("--out is a hard link to the scene, --overwrite",
          lambda d, s: ["--out", str(_link(d, "out.tif", s, hard=True)), "--overwrite"], code=2)
_out_case("--out with ../ back to the scene, --overwrite",
          lambda d, s: ["--out", str(_folder(d / "sub") / ".." / s.name), "--overwrite"], code=2)
_out_case("--confidence is the scene, --overwrite",
          lambda d, s: ["--out", str(d / "out.tif"), "--confidence", str(s), "--overwrite"], code=2)
_out_case("--confidence equals --out", lambda d, s: ["--out", str(d / "o.tif"), "--confidence", str(d / "o.tif")],
          code=2)
_out_case("--out in a missing folder", lambda d, s: ["--out", str(d / "nope" / "out.tif")])
_out_case("--out is a folder", lambda d, s: ["--out", str(d)])
_out_case("--out exists, no --overwrite", lambda d, s: ["--out", str(_scene(d, "exists.tif"))])
_out_case("--out in a read-only folder", lambda d, s: ["--out", str(d / "ro" / "out.tif")], mounts=(("ro", "ro"),),
          mentions="read-only")
_out_case("--out on a full disk", lambda d, s: ["--out", str(d / "full" / "out.tif")], mounts=(("full", "full"),),
          size=300, mentions="disk is full")
_out_case("--out and --confidence on a disk that fills mid-write",
          lambda d, s: ["--out", str(d / "full" / "out.tif"), "--confidence", str(d / "full" / "conf.tif")],
          mounts=(("full", "full:256k"),), size=300, mentions="disk is full")
_out_case("--tta sideways", lambda d, s: ["--out", str(d / "out.tif"), "--tta", "sideways"], code=2)
_out_case("--model-weights for two models, one given",
          lambda d, s: ["--out", str(d / "out.tif"), "--model-weights", "0.5,0.5"], code=2, mentions="weight")
_out_case("--overlap >= tile size", lambda d, s: ["--out", str(d / "out.tif"), "--overlap", "128"], code=2)
_out_case("--tile-size 4", lambda d, s: ["--out", str(d / "out.tif"), "--tile-size", "4"], code=2)
_out_case("--overlap -1", lambda d, s: ["--out", str(d / "out.tif"), "--overlap", "-1"], code=2)
_out_case("--blend max", lambda d, s: ["--out", str(d / "out.tif"), "--blend", "max"], code=2)


@case("predict", "model: an ensemble whose models have other classes", code=1, mentions="other.safetensors")
def _ensemble(d: Path, env: Env) -> list[str]:
    from support.nets import tiny_unet

    other = tiny_unet(tile_size=128, classes=3).save(d / "other.safetensors")
    return ["predict", str(_scene(d)), "--model", str(env.tiny_model), "--model", str(other),
            "--out", str(d / "out.tif")]


@case("predict", "usage: --resample of a 300 m scene to a 15 cm model", code=2, mentions="coarse.tif")
def _resample(d: Path, env: Env) -> list[str]:
    scene = h.write_scene(d / "coarse.tif", size=64, res=300.0)
    return ["predict", str(scene), "--out", str(d / "out.tif"), "--resample"]


# -- vectorize ---------------------------------------------------------------------------------

for _label in list(_bad_rasters(Path("."), Env("", Path("."), False))):
    def _vbuild(d: Path, env: Env, label: str = _label) -> list[str]:
        raster = _bad_rasters(d, env)[label]()
        return ["vectorize", str(raster), "--out", str(d / "out.gpkg")]

    case("vectorize", f"raster: {_label}")(_vbuild)


def _lc(d: Path, **kw) -> Path:
    return h.write_class_raster(d / "lc.tif", **kw)


def _vcase(name: str, args: Callable[[Path], list[str]], *, code: int | None = None, mentions: str | None = None,
           mounts: tuple[tuple[str, str], ...] = ()) -> None:
    @case("vectorize", name, code=code, mentions=mentions, mounts=mounts)
    def build(d: Path, env: Env) -> list[str]:
        return ["vectorize", *args(d)]


_vcase("raster: three bands", lambda d: [str(_scene(d)), "--out", str(d / "o.gpkg")], mentions="scene.tif")
_vcase("raster: float32 values", lambda d: [str(_scene(d, dtype="float32")), "--out", str(d / "o.gpkg")],
       mentions="scene.tif")
for _tag_name, _tag in {
    "class table not JSON": "{{{",
    "class table nested 50000 deep": "[" * 50_000 + "]" * 50_000,
    "class table with an infinite id": '[{"id": 1e999, "name": "building"}]',
    "class table an object": '{"0": "background"}',
    "class table ids as text": '[{"id": "1", "name": "building"}]',
    "class table colour a number": '[{"id": 1, "name": "building", "color": 7}]',
}.items():
    _vcase(f"raster: {_tag_name}", lambda d, t=_tag: [str(_lc(d, classes=t)), "--out", str(d / "o.gpkg")],
           mentions="lc.tif")
_vcase("usage: unknown class name", lambda d: [str(_lc(d)), "--out", str(d / "o.gpkg"), "--classes", "roof"], code=2)
_vcase("usage: unknown class id", lambda d: [str(_lc(d)), "--out", str(d / "o.gpkg"), "--classes", "9"], code=2)
_vcase("usage: --min-area -1", lambda d: [str(_lc(d)), "--out", str(d / "o.gpkg"), "--min-area", "-1"], code=2)
_vcase("usage: --block-size 0", lambda d: [str(_lc(d)), "--out", str(d / "o.gpkg"), "--block-size", "0"], code=2)
_vcase("usage: --out with an unknown extension", lambda d: [str(_lc(d)), "--out", str(d / "o.xyz")], code=2)
_vcase("output: --out is the raster (.gpkg name), --overwrite",
       lambda d: [str(h.write_class_raster(d / "lc.gpkg")), "--out", str(d / "lc.gpkg"), "--overwrite"], code=2)
_vcase("output: --out is a symlink to the raster, --overwrite",
       lambda d: [str(_lc(d)), "--out", str(_link(d, "o.gpkg", d / "lc.tif")), "--overwrite"], code=2)
_vcase("output: --out is the confidence raster, --overwrite",
       lambda d: [str(_lc(d)), "--confidence", str(h.write_confidence(d / "c.gpkg")), "--out", str(d / "c.gpkg"),
                  "--overwrite"], code=2)
_vcase("output: --out exists, no --overwrite",
       lambda d: [str(_lc(d)), "--out", str(h.write_polygons(d / "o.gpkg"))])
_vcase("output: --out in a read-only folder", lambda d: [str(_lc(d)), "--out", str(d / "ro" / "o.gpkg")],
       mounts=(("ro", "ro"),), mentions="read-only")
_vcase("output: --out on a full disk", lambda d: [str(_lc(d)), "--out", str(d / "full" / "o.gpkg")],
       mounts=(("full", "full"),), mentions="disk is full")
_vcase("confidence: not on the raster's grid",
       lambda d: [str(_lc(d)), "--confidence", str(h.write_confidence(d / "c.tif", size=50)), "--out",
                  str(d / "o.gpkg")], mentions="c.tif")
_vcase("confidence: a FIFO", lambda d: [str(_lc(d)), "--confidence", str(h.make_fifo(d / "c.tif")), "--out",
                                        str(d / "o.gpkg")], mentions="c.tif")
_vcase("confidence: corrupt tile data",
       lambda d: [str(_lc(d, size=128)), "--confidence", str(h.write_corrupt_blocks(d / "c.tif")), "--out",
                  str(d / "o.gpkg")], mentions="c.tif")


@case("vectorize", "raster: .aux.xml sidecar with a class table (ignored)", code=0, allowed=("o.*",))
def _aux(d: Path, env: Env) -> list[str]:
    raster = _lc(d)
    h.write_aux_xml_sidecar(raster, classes="{{{")
    return ["vectorize", str(raster), "--out", str(d / "o.gpkg")]


# -- evaluate ----------------------------------------------------------------------------------

for _label in list(_bad_rasters(Path("."), Env("", Path("."), False))):
    def _ebuild(d: Path, env: Env, label: str = _label) -> list[str]:
        prediction = _bad_rasters(d, env)[label]()
        return ["evaluate", str(prediction), "--truth", str(h.write_polygons(d / "truth.gpkg")), "--out",
                str(d / "report")]

    case("evaluate", f"prediction: {_label}")(_ebuild)


def _ecase(name: str, truth: Callable[[Path, Env], Path], *, code: int | None = None, mentions: str | None = None,
           extra: Callable[[Path], list[str]] = lambda d: []) -> None:
    @case("evaluate", name, code=code, mentions=mentions)
    def build(d: Path, env: Env) -> list[str]:
        return ["evaluate", str(_lc(d)), "--truth", str(truth(d, env)), "--out", str(d / "report"), *extra(d)]


def _vrt_truth(suffix: str, remote: bool) -> Callable[[Path, Env], Path]:
    def make(d: Path, env: Env) -> Path:
        target = f"/vsicurl/{env.canary}/labels.gpkg" if remote else str(h.write_polygons(d / "other.gpkg"))
        return h.write_ogr_vrt(d / f"truth{suffix}", target)

    return make


def _text_file(name: str, text: str) -> Callable[[Path, Env], Path]:
    def make(d: Path, env: Env) -> Path:
        (d / name).write_text(text)
        return d / name

    return make


_ecase("truth: missing", lambda d, e: d / "missing.gpkg", mentions="missing.gpkg")
_ecase("truth: empty .gpkg", _text_file("truth.gpkg", ""), mentions="truth.gpkg")
_ecase("truth: random bytes .gpkg", lambda d, e: h.write_random_bytes(d / "truth.gpkg"), mentions="truth.gpkg")
_ecase("truth: OGR VRT named .gpkg (reads another file)", _vrt_truth(".gpkg", False), mentions="truth.gpkg")
_ecase("truth: OGR VRT named .geojson (reads a URL)", _vrt_truth(".geojson", True), mentions="truth.geojson")
_ecase("truth: GeoJSON not JSON", _text_file("truth.geojson", "{not json"), mentions="truth.geojson")
_ecase("truth: GeoJSON nested 100000 deep", _text_file("truth.geojson", '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"),
       mentions="truth.geojson")
_ecase("truth: a FIFO", lambda d, e: h.make_fifo(d / "truth.geojson"), mentions="truth.geojson")
_ecase("truth: a folder", lambda d, e: _folder(d / "truth.gpkg"), mentions="truth.gpkg")
_ecase("truth: corrupt raster tiles", lambda d, e: h.write_corrupt_blocks(d / "truth.tif"), mentions="truth.tif")
_ecase("truth: three-band raster", lambda d, e: _scene(d, "truth.tif"), mentions="truth.tif")
_ecase("truth: no class column", lambda d, e: h.write_polygons(d / "truth.gpkg", class_column="kind"))
_ecase("truth: symlink to /etc/passwd (.geojson)", lambda d, e: _symlink(d / "truth.geojson", "/etc/passwd"),
       mentions="truth.geojson")
_ecase("pred-vectors: OGR VRT named .gpkg", lambda d, e: h.write_polygons(d / "truth.gpkg"),
       extra=lambda d: ["--pred-vectors", str(h.write_ogr_vrt(d / "pv.gpkg", h.write_polygons(d / "x.gpkg")))],
       mentions="pv.gpkg")
_ecase("image: corrupt tile data", lambda d, e: h.write_polygons(d / "truth.gpkg"),
       extra=lambda d: ["--image", str(h.write_corrupt_blocks(d / "img.tif"))], mentions="img.tif")
_ecase("usage: --iou-threshold 0", lambda d, e: h.write_polygons(d / "truth.gpkg"),
       extra=lambda d: ["--iou-threshold", "0"], code=2)


@case("evaluate", "output: --out is the prediction file", mentions="lc.tif")
def _eout(d: Path, env: Env) -> list[str]:
    return ["evaluate", str(_lc(d)), "--truth", str(h.write_polygons(d / "truth.gpkg")), "--out", str(d / "lc.tif")]


@case("evaluate", "output: report folder not empty, no --overwrite")
def _enotempty(d: Path, env: Env) -> list[str]:
    (d / "report").mkdir()
    (d / "report" / "notes.txt").write_text("keep")
    return ["evaluate", str(_lc(d)), "--truth", str(h.write_polygons(d / "truth.gpkg")), "--out", str(d / "report")]


@case("evaluate", "output: report in a read-only folder", mounts=(("ro", "ro"),), mentions="read-only")
def _ero(d: Path, env: Env) -> list[str]:
    return ["evaluate", str(_lc(d)), "--truth", str(h.write_polygons(d / "truth.gpkg")), "--out",
            str(d / "ro" / "report")]


@case("evaluate", "output: report on a full disk", mounts=(("full", "full"),), mentions="disk is full")
def _efull(d: Path, env: Env) -> list[str]:
    return ["evaluate", str(_lc(d, size=256)), "--truth", str(h.write_polygons(d / "truth.gpkg")), "--out",
            str(d / "full" / "report")]


@case("evaluate", "output: report file is the prediction, --overwrite", code=2)
def _ereport_input(d: Path, env: Env) -> list[str]:
    (d / "report").mkdir()
    lc = h.write_class_raster(d / "report" / "metrics.json")
    return ["evaluate", str(lc), "--truth", str(h.write_polygons(d / "truth.gpkg")), "--out", str(d / "report"),
            "--overwrite"]


# -- train -------------------------------------------------------------------------------------


def _train_data(d: Path) -> dict:
    """A tiny, valid training config (as a mapping) over one synthetic scene with polygon labels."""
    image = h.write_scene(d / "img.tif", size=128)
    labels = h.write_polygons(d / "labels.gpkg")
    return {
        "scenes": [{"image": image.name, "labels": labels.name, "fill": 0}],
        "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "building"}],
        "model": {"architecture": "unet", "encoder": "resnet18"},
        "tile_size": 64,
        "trainer": {"epochs": 1, "batch_size": 2, "device": "cpu"},
        "sampler": {"samples_per_epoch": 4},
    }


def _no_args(d: Path) -> list[str]:
    return []


def _tcase(name: str, config: Callable[[Path], Path], *, code: int | None = None, mentions: str | None = None,
           out: Callable[[Path], Path] = lambda d: d / "m.safetensors", extra: Callable[[Path], list[str]] = _no_args,
           mounts: tuple[tuple[str, str], ...] = (), timeout: float = 300.0) -> None:
    @case("train", name, code=code, mentions=mentions, mounts=mounts, timeout=timeout)
    def build(d: Path, env: Env) -> list[str]:
        return ["train", "--config", str(config(d)), "--out", str(out(d)), *extra(d)]


def _yaml(text: str, name: str = "train.yaml") -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).write_text(text)
        return d / name

    return make


def _config(**changes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        import yaml

        data = _train_data(d)
        for key, value in changes.items():
            if key == "scene":
                data["scenes"][0].update(value(d))
            else:
                data[key] = value
        (d / "train.yaml").write_text(yaml.safe_dump(data))
        return d / "train.yaml"

    return make


_tcase("config: missing", lambda d: d / "missing.yaml", code=2, mentions="missing.yaml")
_tcase("config: a folder", lambda d: _folder(d / "c.yaml"), code=2)
_tcase("config: a FIFO", lambda d: h.make_fifo(d / "c.yaml"), code=2, mentions="c.yaml")
_tcase("config: /dev/zero", lambda d: Path("/dev/zero"), code=2)
_tcase("config: YAML alias bomb", _yaml(h.billion_laughs()), code=2, mentions="train.yaml")
_tcase("config: YAML nested 50000 deep", _yaml(h.deep_yaml()), code=2, mentions="train.yaml")
_tcase("config: anchor that contains itself", _yaml("scenes: &a [*a]\n"), code=2, mentions="train.yaml")
_tcase("config: 2 MB of YAML", _yaml("# padding\n" * 200_000 + "tile_size: 64\n"), code=2, mentions="train.yaml")
_tcase("config: not YAML", _yaml("scenes: [\n  {image: x"), code=2, mentions="train.yaml")
_tcase("config: a list, not a mapping", _yaml("- 1\n- 2\n"), code=2, mentions="train.yaml")
_tcase("config: unknown key", _config(epochz=3), code=2, mentions="train.yaml")
_tcase("config: tile_size as text", _config(tile_size="big"), code=2, mentions="train.yaml")
_tcase("config: python object tag", _yaml("tile_size: !!python/object/apply:os.system ['true']\n"), code=2,
       mentions="train.yaml")
_tcase("labels: OGR VRT named .gpkg",
       _config(scene=lambda d: {"labels": h.write_ogr_vrt(d / "vrt.gpkg", h.write_polygons(d / "x.gpkg")).name}),
       mentions="vrt.gpkg")
_tcase("labels: random bytes .gpkg",
       _config(scene=lambda d: {"labels": h.write_random_bytes(d / "bad.gpkg").name}), mentions="bad.gpkg")
_tcase("labels: missing", _config(scene=lambda d: {"labels": "missing.gpkg"}), mentions="missing.gpkg")
_tcase("image: corrupt tile data", _config(scene=lambda d: {"image": h.write_corrupt_blocks(d / "bad.tif").name}),
       mentions="bad.tif")
_tcase("image: declares 250000 x 250000 px", _config(scene=lambda d: {"image": h.write_declared_size(
    d / "huge.tif", width=250_000, height=250_000, rows_per_strip=256).name}), mentions="huge.tif")
_tcase("image: a FIFO", _config(scene=lambda d: {"image": h.make_fifo(d / "fifo.tif").name}), mentions="fifo.tif")
_tcase("output: --out is a symlink to the image, --overwrite", _config(), code=2,
       out=lambda d: _link(d, "m.safetensors", d / "img.tif"), extra=lambda d: ["--overwrite"])
_tcase("output: --out is the config's labels (as .safetensors), --overwrite",
       _config(scene=lambda d: {"labels": h.write_polygons(d / "lab.safetensors", driver="GPKG").name}),
       out=lambda d: d / "lab.safetensors", extra=lambda d: ["--overwrite"], code=2)
_tcase("usage: --out not .safetensors", _config(), code=2, out=lambda d: d / "m.pt")
_tcase("usage: --set with an alias bomb", _config(), code=2,
       extra=lambda d: ["--set", "tile_size=" + h.billion_laughs(flow=True)])
_tcase("output: --out in a read-only folder", _config(), out=lambda d: d / "ro" / "m.safetensors",
       mounts=(("ro", "ro"),), mentions="read-only")
_tcase("output: --out on a full disk", _config(), out=lambda d: d / "full" / "m.safetensors",
       mounts=(("full", "full"),), timeout=600, mentions="disk is full")


# -- batch -------------------------------------------------------------------------------------

#: What a batch run may leave under its output root even when every scene failed.
RUN_RECORDS = ("out", "out/manifest.sqlite*", "out/logs", "out/logs/*", "out/*.lock", "out/collection.json")


def _bcase(name: str, config: Callable[[Path, Env], Path], *, code: int | None = None, mentions: str | None = None,
           records: bool = False, mounts: tuple[tuple[str, str], ...] = (), root: str = "out") -> None:
    allowed = tuple(g.replace("out", root, 1) for g in RUN_RECORDS) if records else ()

    @case("batch", name, code=code, mentions=mentions, allowed=allowed, mounts=mounts)
    def build(d: Path, env: Env) -> list[str]:
        return ["batch", "run", "--config", str(config(d, env))]


def _batch(input_: Callable[[Path, Env], dict], **extra) -> Callable[[Path, Env], Path]:
    def make(d: Path, env: Env) -> Path:
        import yaml

        data = {"input": input_(d, env), "model": str(env.tiny_model), "output": "out",
                "steps": {"predict": {"device": "cpu"}}, "retries": 0, **extra}
        (d / "batch.yaml").write_text(yaml.safe_dump(data))
        return d / "batch.yaml"

    return make


def _archive(d: Path) -> Path:
    (d / "archive").mkdir(exist_ok=True)
    return d / "archive"


def _list(*entries: Callable[[Path, Env], str]) -> Callable[[Path, Env], dict]:
    def make(d: Path, env: Env) -> dict:
        lines = [e(d, env) for e in entries]
        (_archive(d) / "scenes.txt").write_text("\n".join(lines) + "\n")
        return {"list": "archive/scenes.txt"}

    return make


def _stac(*hrefs: Callable[[Path, Env], str], links: tuple[str, ...] = ()) -> Callable[[Path, Env], dict]:
    def make(d: Path, env: Env) -> dict:
        h.stac_catalog(_archive(d), {f"item{i}": f(d, env) for i, f in enumerate(hrefs)}, links=links)
        return {"stac": "archive/catalog.json"}

    return make


def _special(name: str, make: Callable[[Path], Path]) -> Callable[[Path, Env], dict]:
    def build(d: Path, env: Env) -> dict:
        return {name: str(make(d))}

    return build


_bcase("config: missing", lambda d, e: d / "missing.yaml", code=2)
_bcase("config: a FIFO", lambda d, e: h.make_fifo(d / "b.yaml"), code=2, mentions="b.yaml")
_bcase("config: /dev/zero", lambda d, e: Path("/dev/zero"), code=2)
_bcase("config: YAML alias bomb", lambda d, e: _yaml(h.billion_laughs(), "b.yaml")(d), code=2, mentions="b.yaml")
_bcase("config: YAML nested 50000 deep", lambda d, e: _yaml(h.deep_yaml(), "b.yaml")(d), code=2, mentions="b.yaml")
_bcase("config: unknown key", _batch(lambda d, e: {"folder": str(_archive(d))}, colour="red"), code=2,
       mentions="batch.yaml")
_bcase("config: model with a broken card", lambda d, e: _batch(lambda d2, e2: {"folder": str(_archive(d2))},
       model=str(_card(version="1")(d)))(d, e), code=2)
_bcase("list: /dev/zero", _batch(_special("list", lambda d: Path("/dev/zero"))), code=2)
_bcase("list: a FIFO", _batch(_special("list", lambda d: h.make_fifo(d / "scenes.txt"))), code=2,
       mentions="scenes.txt")
_bcase("list: 20 MB", _batch(_special("list", lambda d: _yaml("x.tif\n" * 3_500_000, "big.txt")(d))), code=2,
       mentions="big.txt")
_bcase("list: names /etc/passwd", _batch(_list(lambda d, e: "/etc/passwd")), code=1, records=True)
_bcase("list: a symlink out of the archive",
       _batch(_list(lambda d, e: _symlink(_archive(d) / "a.tif", _scene(d, "outside.tif")).name)), code=1,
       records=True)
_bcase("list: a /vsicurl/ URL", _batch(_list(lambda d, e: f"/vsicurl/{e.canary}/x.tif")), code=1, records=True)
_bcase("list: a FIFO scene", _batch(_list(lambda d, e: h.make_fifo(_archive(d) / "f.tif").name)), code=1,
       records=True)
_bcase("list: a corrupt scene", _batch(_list(lambda d, e: h.write_corrupt_blocks(_archive(d) / "c.tif").name)),
       code=1, records=True)
_bcase("stac: /dev/zero", _batch(_special("stac", lambda d: Path("/dev/zero"))), code=2)
_bcase("stac: a FIFO", _batch(_special("stac", lambda d: h.make_fifo(d / "catalog.json"))), code=2,
       mentions="catalog.json")
_bcase("stac: not JSON", _batch(_special("stac", lambda d: _yaml("{nope", "catalog.json")(d))), code=2,
       mentions="catalog.json")
_bcase("stac: nested 100000 deep",
       _batch(_special("stac", lambda d: _yaml("[" * 100_000 + "]" * 100_000, "catalog.json")(d))), code=2,
       mentions="catalog.json")
_bcase("stac: links of the wrong types",
       _batch(_special("stac", lambda d: _yaml(json.dumps({"type": "Catalog", "links": "x", "assets": []}),
                                               "catalog.json")(d))), code=0, records=True)
_bcase("stac: asset /etc/passwd", _batch(_stac(lambda d, e: "/etc/passwd")), code=1, records=True)
_bcase("stac: asset ../outside.tif", _batch(_stac(lambda d, e: str(_scene(d, "outside.tif")))), code=1, records=True)
_bcase("stac: asset /vsicurl/ URL", _batch(_stac(lambda d, e: f"/vsicurl/{e.canary}/x.tif")), code=1, records=True)
_bcase("stac: child link out of the archive",
       _batch(_stac(links=("../elsewhere/catalog.json",))), code=1, records=True)
def _folder_with(make: Callable[[Path], Path]) -> Callable[[Path, Env], dict]:
    def build(d: Path, env: Env) -> dict:
        make(d)
        return {"folder": str(_archive(d)), "glob": "*.tif"}

    return build


_bcase("folder: a corrupt scene", _batch(_folder_with(lambda d: h.write_corrupt_blocks(_archive(d) / "c.tif"))),
       code=1, records=True)
_bcase("folder: a symlink out of the archive",
       _batch(_folder_with(lambda d: _symlink(_archive(d) / "l.tif", _scene(d, "outside.tif")))), code=1,
       records=True)
_bcase("output: manifest is an input scene",
       lambda d, e: _batch(lambda d2, e2: {"folder": str(_archive(d2))},
                           manifest=str(_scene(_archive(d), "a.tif")))(d, e), code=2)
_bcase("output: root in a read-only folder",
       lambda d, e: _batch(lambda d2, e2: {"folder": str(_archive(d2))}, output=str(d / "ro" / "out"))(d, e),
       mounts=(("ro", "ro"),), mentions="read-only")
_bcase("output: root on a full disk (scenes fail, nothing half-written)",
       lambda d, e: _batch(_folder_with(lambda d2: _scene(_archive(d2), "a.tif", size=300)),
                           output=str(d / "full" / "out"))(d, e),
       mounts=(("full", "full"),), records=True, root="full/out")



# -- model -------------------------------------------------------------------------------------


def _model_command(name: str, make: Callable[[Path, Env], list[str]], *, code: int | None = None,
                   mentions: str | None = None) -> None:
    case("model", name, code=code, mentions=mentions)(make)


_model_command("show: a missing file", lambda d, e: ["model", "show", str(d / "none.safetensors")], code=1,
               mentions="none.safetensors")
_model_command("show: random bytes", lambda d, e: ["model", "show", str(h.write_random_bytes(d / "m.safetensors"))],
               code=1, mentions="m.safetensors")
_model_command("show: a card that is a list", lambda d, e: ["model", "show", str(
    h.write_card_only_model(d / "m.safetensors", f"[{json.dumps(h.shipped_card())}]"))], code=1)
_model_command("stac: --out is the model", lambda d, e: [
    "model", "stac", str(_link(d, "m.safetensors", e.tiny_model, hard=True)), "--out", str(d / "m.safetensors"),
    "--overwrite"], code=2)
_model_command("stac: --out in a missing folder", lambda d, e: [
    "model", "stac", str(e.tiny_model), "--out", str(d / "nope" / "item.json")], code=1)


# -- pseudo-label ------------------------------------------------------------------------------


def _pseudo(name: str, make: Callable[[Path, Env], list[str]], *, code: int | None = None,
            mentions: str | None = None) -> None:
    case("pseudo-label", name, code=code, mentions=mentions)(make)


def _pl(d: Path, e: Env, *scenes: Path, threshold: str = "0.9", out: str = "labels") -> list[str]:
    return ["pseudo-label", *map(str, scenes), "--model", str(e.tiny_model), "--min-confidence", threshold,
            "--out", str(d / out)]


_pseudo("no scenes", lambda d, e: _pl(d, e), code=2)
_pseudo("--min-confidence 0", lambda d, e: _pl(d, e, _scene(d), threshold="0"), code=2)
_pseudo("--min-confidence 1.5", lambda d, e: _pl(d, e, _scene(d), threshold="1.5"), code=2)
_pseudo("--out is a file", lambda d, e: _pl(d, e, _scene(d), out="scene.tif"), code=2)
_pseudo("a missing scene", lambda d, e: _pl(d, e, d / "missing.tif"), code=1, mentions="missing.tif")
_pseudo("a scene of random bytes", lambda d, e: _pl(d, e, h.write_random_bytes(d / "noise.tif")), code=1,
        mentions="noise.tif")
_pseudo("the second scene is truncated (nothing of the first is left)",
        lambda d, e: _pl(d, e, _scene(d), h.write_truncated(_scene(d, "cut.tif"))), code=1, mentions="cut.tif")
_pseudo("two scenes with one name", lambda d, e: _pl(d, e, _scene(d), _scene(_folder(d / "b"))), code=2)
