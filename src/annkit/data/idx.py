"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), gzipped or not.

Layout: a 4-byte magic number ``00 00 <dtype> <ndim>``, then ``ndim`` big-endian uint32 sizes,
then the values, big-endian, in C order. Fashion-MNIST's images are ``08 03`` (uint8, 3 dims:
N×28×28) and its labels ``08 01`` (uint8, N).

Checksums are computed over the *decompressed* bytes, so a copy that was gzipped again
(Debian's ``dataset-fashion-mnist`` is) verifies the same as the original.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from annkit.errors import AnnkitError

# dtype byte of the magic number → numpy dtype (big-endian where it matters)
IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def _damaged(path: Path, what: str) -> AnnkitError:
    return AnnkitError(
        f"{path} is damaged (it fails the integrity check): {what}. The file is not the one the dataset was released with "
        f"(an interrupted download or copy does this). Delete it and fetch it again — "
        f"annkit downloads it when dataset.download=true, or reinstall the package it came from "
        f"(for Debian's Fashion-MNIST: apt-get install --reinstall dataset-fashion-mnist)."
    )


def read_bytes(path: Path) -> bytes:
    """The file's contents, decompressed when the name ends in .gz."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise _damaged(path, "the gzip stream ends early (the file is truncated)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise _damaged(path, f"it does not decompress ({err})") from None


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    """Decode IDX bytes into an array; every size is checked against the header."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise _damaged(path, f"it does not start with an IDX magic number (got {data[:4].hex()})")
    dtype = np.dtype(IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _damaged(path, f"its header is cut short ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise _damaged(path, f"the header says {shape} but it holds {len(data) - header} of {expected} data bytes")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)  # native byte order, writable


def load_idx(path: Path, md5: str | None = None, known: Mapping[str, str] | None = None) -> np.ndarray:
    """Read one IDX file; with ``md5``, refuse it unless the decompressed bytes match.

    ``known`` maps other md5 sums to what they are, so that a valid file of another dataset is
    named as such instead of being called altered.
    """
    path = Path(path)
    data = read_bytes(path)
    if md5 is not None:
        actual = hashlib.md5(data).hexdigest()
        if actual != md5 and known and actual in known:
            raise AnnkitError(
                f"{path} is {known[actual]}, not the file this dataset needs (md5 {md5}). The folder "
                f"holds another dataset: pick the matching one with dataset=<name> (not dataset.name=…), "
                f"or point dataset.root at the right folder."
            )
        if actual != md5:
            raise AnnkitError(
                f"Checksum mismatch for {path}: the md5 of its contents is {actual}, the official "
                f"file's is {md5}. The file was altered or is a different version. Delete it and "
                f"fetch it again (annkit downloads it when dataset.download=true), or set "
                f"dataset.verify=false if you really mean to train on a modified file."
            )
    return parse_idx(data, path)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write an array as an IDX file (gzipped when the name ends in .gz): for tests and tools."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    code = codes.get(native.str)
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    big = np.ascontiguousarray(array, dtype=np.dtype(IDX_DTYPES[code]))
    data = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path
