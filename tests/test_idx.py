"""The IDX reader: format round trips, every kind of damage, and md5 verification."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest

from annkit.data.idx import load_idx, parse_idx, read_bytes, write_idx
from annkit.data.sources import DATASETS, FILES, find_files, load_arrays
from annkit.errors import AnnkitError


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = load_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_header_layout_is_the_published_one(tmp_path):
    # magic 0x00000803 for a 3-d uint8 array, then the sizes as big-endian uint32 (LeCun's spec)
    path = write_idx(tmp_path / "x.idx", np.zeros((4, 28, 28), np.uint8))
    raw = path.read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", raw[4:16]) == (4, 28, 28)
    assert len(raw) == 16 + 4 * 28 * 28


def test_values_are_big_endian(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + struct.pack(">2i", 1, -258))
    np.testing.assert_array_equal(load_idx(path), [1, -258])


def test_truncated_gzip_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5000, dtype=np.uint8) % 10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnnkitError, match="truncated") as err:
        load_idx(path)
    assert str(path) in str(err.value)


def test_corrupted_gzip_names_the_file(tmp_path):
    path = write_idx(
        tmp_path / "t10k-images-idx3-ubyte.gz", np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(AnnkitError) as err:
        load_idx(path)
    assert str(path) in str(err.value)


def test_data_shorter_than_header_says(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28) + bytes(100))
    with pytest.raises(AnnkitError, match="100 of 7840 data bytes"):
        load_idx(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(AnnkitError, match="IDX magic number"):
        load_idx(path)


def test_md5_is_checked_on_the_decompressed_bytes(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    raw = write_idx(tmp_path / "a.idx", array)
    digest = hashlib.md5(raw.read_bytes()).hexdigest()
    gz = tmp_path / "b.idx.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes(), mtime=123))  # another compression, same payload
    np.testing.assert_array_equal(load_idx(gz, digest), array)
    altered = bytearray(raw.read_bytes())
    altered[-1] ^= 1
    raw.write_bytes(bytes(altered))
    with pytest.raises(AnnkitError, match="Checksum mismatch") as err:
        load_idx(raw, digest)
    assert str(raw) in str(err.value) and digest in str(err.value)


def test_find_files_prefers_raw_and_needs_all_four(tmp_path):
    for base in FILES.values():
        (tmp_path / f"{base}.gz").write_bytes(b"")
    (tmp_path / FILES["train_images"]).write_bytes(b"")
    found = find_files(tmp_path)
    assert found["train_images"].name == "train-images-idx3-ubyte"
    assert found["test_labels"].name == "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert find_files(tmp_path) is None


def test_real_fashion_mnist_verifies(fashion_dir):
    arrays = load_arrays(find_files(fashion_dir), DATASETS["fashion_mnist"], verify=True)
    assert arrays["train_images"].shape == (60000, 28, 28)
    assert arrays["test_images"].shape == (10000, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class
    assert np.bincount(arrays["train_labels"]).tolist() == [6000] * 10
    assert np.bincount(arrays["test_labels"]).tolist() == [1000] * 10


def test_labels_out_of_range_are_refused(tmp_path):
    from tests.conftest import make_idx_dataset

    folder = make_idx_dataset(tmp_path / "d", n_train=20, n_test=10)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(AnnkitError, match="outside 0…9"):
        load_arrays(find_files(folder), DATASETS["mnist"], verify=False)


def test_read_bytes_passes_raw_files_through(tmp_path):
    path = tmp_path / "plain"
    path.write_bytes(b"\x01\x02")
    assert read_bytes(path) == b"\x01\x02"
    assert parse_idx(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x07\x09", path).tolist() == [7, 9]


def test_a_file_of_another_known_dataset_is_named(tmp_path):
    raw = write_idx(tmp_path / "train-images-idx3-ubyte", np.arange(10, dtype=np.uint8))
    actual = hashlib.md5(raw.read_bytes()).hexdigest()
    with pytest.raises(
        AnnkitError, match="is fashion_mnist's train-images-idx3-ubyte, not the file this dataset needs"
    ):
        load_idx(raw, "0" * 32, known={actual: "fashion_mnist's train-images-idx3-ubyte"})
    np.testing.assert_array_equal(load_idx(raw, actual, known={actual: "itself"}), np.arange(10))  # a match is a match
