import h5py
import numpy as np
import pytest
import torch

from wsseg.atomic import staged_folder
from wsseg.checkpoint import read_checkpoint
from wsseg.data import cache
from wsseg.data.cache import check_cache, content_digest, read_cache, write_cache
from wsseg.errors import CacheError
from wsseg.hashing import config_hash


def test_round_trip_keeps_arrays_strings_ragged_and_attributes(tmp_path):
    ragged = [np.ones((2, 3), np.uint8), np.zeros((0, 0), np.uint8), np.arange(4, dtype=np.uint8).reshape(2, 2)]
    arrays = {
        "images": np.random.rand(3, 8, 8).astype(np.float32),
        "case_id": np.array(["a", "b", "c"]),
        "ragged": ragged,
    }
    write_cache(tmp_path / "c.h5", arrays, config="abc", level="slice")
    loaded = read_cache(tmp_path / "c.h5", expected_config="abc")
    np.testing.assert_array_equal(loaded["images"], arrays["images"])
    assert list(loaded["case_id"]) == ["a", "b", "c"]
    assert [r.shape for r in loaded["ragged"]] == [(2, 3), (0, 0), (2, 2)]
    np.testing.assert_array_equal(loaded["ragged"][2], ragged[2])
    assert loaded.attrs["level"] == "slice"
    assert check_cache(tmp_path / "c.h5", expected_config="abc") == loaded.attrs


def test_the_content_digest_follows_the_arrays_not_the_configuration(tmp_path):
    arrays = {"images": np.zeros((2, 4, 4), np.float32), "case_id": np.array(["a", "b"]), "ragged": [np.ones((1, 2))]}
    variants = {
        "a": (arrays, "one"),
        "b": (arrays, "two"),
        "c": ({**arrays, "case_id": np.array(["a", "c"])}, "one"),
        "d": ({**arrays, "ragged": [np.ones((2, 1))]}, "one"),  # same values, another shape
    }
    for name, (content, config) in variants.items():
        write_cache(tmp_path / f"{name}.h5", content, config=config)
    digests = [content_digest(tmp_path / f"{name}.h5") for name in variants]
    assert digests[0] == digests[1] and len(set(digests)) == 3
    assert content_digest(tmp_path / "missing.h5") is None


def test_images_are_chunked_per_slice_and_compressed(tmp_path):
    write_cache(tmp_path / "c.h5", {"images": np.zeros((4, 16, 16), np.float32)}, config="x")
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["images"].chunks == (1, 16, 16)
        assert f["images"].compression == "gzip"


@pytest.mark.parametrize("read", [read_cache, check_cache])
def test_other_configuration_is_refused_with_the_command_to_rerun(read, tmp_path):
    write_cache(tmp_path / "c.h5", {"x": np.zeros(3)}, config="one")
    with pytest.raises(CacheError, match="another configuration.*wsseg ingest"):
        read(tmp_path / "c.h5", expected_config="two", rerun="wsseg ingest")


@pytest.mark.parametrize("read", [read_cache, check_cache])
def test_other_version_is_refused(read, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "__version__", "0.0.0-old")
    write_cache(tmp_path / "c.h5", {"x": np.zeros(3)}, config="one")
    monkeypatch.undo()
    with pytest.raises(CacheError, match="0.0.0-old"):
        read(tmp_path / "c.h5")


def test_failed_write_leaves_the_previous_cache_and_no_temporary_file(tmp_path):
    write_cache(tmp_path / "c.h5", {"x": np.arange(3)}, config="old")

    class Boom:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_cache(tmp_path / "c.h5", {"y": np.arange(5), "z": Boom()}, config="new")
    assert read_cache(tmp_path / "c.h5", expected_config="old")["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]


@pytest.mark.parametrize("read", [read_cache, check_cache])
def test_missing_and_corrupt_caches_give_clear_errors(read, tmp_path):
    with pytest.raises(CacheError, match="does not exist"):
        read(tmp_path / "none.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(CacheError, match="not a readable HDF5"):
        read(tmp_path / "bad.h5")


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_a_staged_folder_appears_only_when_its_writer_succeeds(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_folder(out) as staging:
        (staging / "a.png").write_bytes(b"half")
        raise RuntimeError("failed on the second file")
    assert [p.name for p in tmp_path.iterdir()] == []
    out.mkdir()
    (out / "keep.txt").write_text("earlier result")
    with staged_folder(out) as staging:
        (staging / "a.png").write_bytes(b"done")
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_corrupt_or_foreign_model_file_is_refused(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"\x80\x04 not a torch file")
    with pytest.raises(CacheError, match="not a readable model file.*wsseg train-myo"):
        read_checkpoint(tmp_path / "m.pt", rerun="wsseg train-myo")
    torch.save({"state": {}, "config_hash": "x", "wsseg_version": "0.0.0-old"}, tmp_path / "old.pt")
    with pytest.raises(CacheError, match="0.0.0-old"):
        read_checkpoint(tmp_path / "old.pt")
