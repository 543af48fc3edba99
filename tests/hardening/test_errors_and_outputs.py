"""One exception tree that survives Dask, and outputs that never destroy inputs or stay half-written."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import rasterio
from support import hostile as h

from geoseg.atomic import (
    TMP_MARKER,
    atomic_path,
    check_folder_writable,
    check_not_input,
    check_writable,
    output_errors,
)
from geoseg.errors import (
    ConfigError,
    GeoSegError,
    InputError,
    OutputError,
    OutputExistsError,
    UsageError,
    output_error,
)
from geoseg.safety.files import same_file


def _raise_from_gdal(path: Path) -> None:
    try:
        with rasterio.open(path) as ds:
            ds.read()
    except Exception:
        raise InputError(f"{path.name}: reading failed; the file may be corrupt") from None


def test_an_error_raised_from_none_crosses_dask_as_itself(tmp_path):
    """The hidden GDAL context of a read error would make Dask send a bare Exception (and a traceback)."""
    from distributed.core import error_message
    from distributed.protocol import pickle as dask_pickle

    corrupt = h.write_corrupt_blocks(tmp_path / "corrupt.tif")
    with pytest.raises(InputError) as info:
        _raise_from_gdal(corrupt)
    assert info.value.__context__ is None and info.value.__suppress_context__
    sent = dask_pickle.loads(error_message(info.value)["exception"].data)
    assert type(sent) is InputError and str(sent) == "corrupt.tif: reading failed; the file may be corrupt"
    assert type(pickle.loads(pickle.dumps(info.value))) is InputError


def test_context_is_kept_when_not_raised_from_none():
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            raise InputError("outer")  # noqa: B904 - the context is the point here
    except InputError as exc:
        assert isinstance(exc.__context__, KeyError)


def test_usage_errors_are_configuration_and_input_errors():
    error = UsageError("overlap must be smaller than the tile size")
    assert isinstance(error, ConfigError) and isinstance(error, InputError) and isinstance(error, GeoSegError)


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
     (errno.EDQUOT, "quota")],
)
def test_output_error_names_the_file_and_the_fix(code, words):
    error = output_error("/data/out.tif", OSError(code, os.strerror(code)))
    assert isinstance(error, OutputError) and isinstance(error, OSError) and error.errno == code
    assert "'/data/out.tif'" in str(error) and words in str(error) and "\n" not in str(error)


def test_output_error_reads_gdal_and_sqlite_words():
    assert output_error("x.gpkg", RuntimeError("sqlite3_step() failed: database or disk is full")).errno == errno.ENOSPC
    assert output_error("x.tif", RuntimeError("Read-only file system")).errno == errno.EROFS


def test_same_file_through_links_dots_and_hard_links(tmp_path):
    scene = h.write_scene(tmp_path / "scene.tif")
    (tmp_path / "sym.tif").symlink_to("scene.tif")
    os.link(scene, tmp_path / "hard.tif")
    (tmp_path / "sub").mkdir()
    for other in ("sym.tif", "hard.tif", "sub/../scene.tif"):
        assert same_file(tmp_path / other, scene), other
    assert not same_file(tmp_path / "new.tif", scene)
    assert same_file(tmp_path / "dangling", tmp_path / "dangling")
    assert not same_file("a\0b", scene)


@pytest.mark.parametrize("name", ["scene.tif", "sym.tif", "hard.tif", "sub/../scene.tif"])
def test_an_output_that_is_an_input_is_refused(tmp_path, name):
    scene = h.write_scene(tmp_path / "scene.tif")
    before = scene.read_bytes()
    (tmp_path / "sym.tif").symlink_to("scene.tif")
    os.link(scene, tmp_path / "hard.tif")
    (tmp_path / "sub").mkdir()
    with pytest.raises(UsageError, match="is the input .*scene.tif.*choose another output file"):
        check_writable(tmp_path / name, overwrite=True, inputs=[scene])
    with pytest.raises(UsageError):
        with atomic_path(tmp_path / name, overwrite=True, inputs=[scene]) as tmp:
            tmp.write_bytes(b"x")
    assert scene.read_bytes() == before
    check_not_input(tmp_path / "other.tif", [scene, None])


def test_check_writable_refusals(tmp_path):
    existing = h.write_scene(tmp_path / "a.tif")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        check_writable(existing, overwrite=False)
    with pytest.raises(OutputExistsError, match="is a directory"):
        check_writable(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match="does not exist; create it first") as info:
        check_writable(tmp_path / "nope" / "x.tif", overwrite=False)
    assert isinstance(info.value, FileNotFoundError) is False and info.value.errno == errno.ENOENT
    assert not list(tmp_path.glob(f"*{TMP_MARKER}*"))


def test_read_only_folder_fails_before_any_work(read_only):
    with pytest.raises(OutputError, match="read-only") as info:
        check_writable(read_only / "out.tif", overwrite=False)
    assert info.value.errno == errno.EROFS
    with pytest.raises(OutputError, match="read-only"):
        check_folder_writable(read_only / "report" / "deeper")


def test_full_disk_while_writing_is_one_output_error_and_leaves_nothing(full_disk):
    with pytest.raises(OutputError, match="disk is full") as info:
        with atomic_path(full_disk / "big.bin") as tmp:
            tmp.write_bytes(b"\0" * 100_000)
    assert info.value.errno == errno.ENOSPC
    assert list(full_disk.iterdir()) == []


def test_a_library_failing_on_a_full_disk_is_recognised(full_disk):
    """GDAL and SQLite do not always say why; a failure with no space left is taken for a full disk."""
    (full_disk / "filler").write_bytes(b"\0" * 12_000)
    with pytest.raises(OutputError, match="disk is full"), output_errors(full_disk / "x.gpkg"):
        try:
            (full_disk / "more").write_bytes(b"\0" * 100_000)
        except OSError:
            raise RuntimeError("no such table: gpkg_contents") from None


def test_other_errors_pass_through_output_errors(tmp_path):
    with pytest.raises(KeyError), output_errors(tmp_path / "x.tif"):
        raise KeyError("not a write failure")
    with pytest.raises(InputError), output_errors(tmp_path / "x.tif"):
        raise InputError("a geoseg error stays itself")
