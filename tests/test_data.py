"""Batching, splitting, augmentation and normalisation of on-device tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annkit.data.batcher import Batcher
from annkit.data.dataset import split_train_val
from annkit.data.images import load_image_data
from annkit.data.preprocess import Preprocess, augment, normalize, pixel_stats
from annkit.errors import AnnkitError

NO_AUGMENT = {"hflip": False, "shift": 0}


@pytest.mark.parametrize("n,bs", [(1000, 64), (1000, 1000), (1001, 64), (7, 10), (55000, 27), (257, 256), (1, 4)])
def test_every_sample_exactly_once_per_epoch(n, bs):
    images = torch.arange(n, dtype=torch.int64).view(n, 1, 1).expand(n, 2, 2).contiguous()
    labels = torch.arange(n)
    batcher = Batcher(images, labels, bs, shuffle=True, generator=torch.Generator().manual_seed(0))
    orders = []
    for _ in range(3):
        seen = []
        batches = list(batcher)
        expected = n // bs if n % bs == 1 and n > bs else -(-n // bs)  # a lone last sample joins the previous batch
        assert len(batches) == len(batcher) == expected
        assert all(len(y) >= 2 for _, y, _ in batches) or n == 1
        for x, y, w in batches:
            assert torch.equal(x[:, 0, 0], y) and w is None  # images and labels stay paired
            seen.append(y)
        order = torch.cat(seen)
        assert sorted(order.tolist()) == list(range(n))
        orders.append(order)
    if n > 10:
        assert not torch.equal(orders[0], orders[1])  # a new permutation every epoch


def test_shuffle_is_reproducible_from_the_seed():
    labels = torch.arange(500)
    a = [y for _, y, _ in Batcher(labels, labels, 64, shuffle=True, generator=torch.Generator().manual_seed(3))]
    b = [y for _, y, _ in Batcher(labels, labels, 64, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_unshuffled_batches_are_views_in_order():
    images = torch.arange(10).view(10, 1)
    batches = list(Batcher(images, torch.arange(10), 4))
    assert [y.tolist() for _, y, _ in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].data_ptr() == images.data_ptr()  # a slice, not a copy


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_train_val(100, 20, seed=7)
    assert len(val) == 20 and len(train) == 80
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    _again_train, again_val = split_train_val(100, 20, seed=7)
    assert np.array_equal(val, again_val)
    assert not np.array_equal(val, split_train_val(100, 20, seed=8)[1])


def test_normalize_formula():
    x = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    mean, std = 0.3, 0.4
    expected = (np.array([0, 51, 255]) / 255 - mean) / std
    np.testing.assert_allclose(normalize(x, mean, std).numpy()[0], expected, rtol=1e-6, atol=1e-6)
    assert normalize(x, mean, std).dtype == torch.float32


def test_pixel_stats_match_direct_computation():
    x = torch.randint(0, 256, (50, 28, 28), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    mean, std = pixel_stats(x)
    ref = x.double() / 255
    assert mean == pytest.approx(ref.mean().item(), abs=1e-12)
    assert std == pytest.approx(ref.std(unbiased=False).item(), abs=1e-12)


def _translations(img: torch.Tensor, s: int) -> list[torch.Tensor]:
    """Every shift of img by (dy, dx) in [-s, s]², zero-filled: the reference for augment()."""
    h, w = img.shape
    padded = torch.nn.functional.pad(img, (s, s, s, s))
    return [padded[dy : dy + h, dx : dx + w] for dy in range(2 * s + 1) for dx in range(2 * s + 1)]


def test_augment_flip_and_shift_are_per_image():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(1, 255, (64, 8, 8), generator=g).to(torch.uint8)
    out = augment(imgs, hflip=True, shift=0, generator=g)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, imgs)]
    assert all(f or torch.equal(o, i) for f, o, i in zip(flipped, out, imgs))
    assert 10 < sum(flipped) < 54  # about half, per image

    out = augment(imgs, hflip=False, shift=2, generator=g)
    matches = []
    for o, i in zip(out, imgs):
        candidates = _translations(i, 2)
        hits = [k for k, c in enumerate(candidates) if torch.equal(o, c)]
        assert hits, "each output is a translation of its input by at most 2 px"
        matches.append(hits[0])
    assert len(set(matches)) > 5  # different images get different shifts


def test_augment_off_is_identity_and_eval_is_never_augmented():
    imgs = torch.randint(0, 255, (4, 5, 5)).to(torch.uint8)
    assert torch.equal(augment(imgs, hflip=False, shift=0), imgs)
    prep = Preprocess(0.5, 0.25, hflip=True, shift=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(prep(imgs, False), normalize(imgs, 0.5, 0.25))


def test_load_image_data_splits_and_limits(synthetic_dir):
    data = load_image_data(
        "mnist",
        root=str(synthetic_dir),
        search=[],
        download=False,
        verify=False,
        val_size=100,
        limit_train=250,
        augment=NO_AUGMENT,
        seed=0,
        device=torch.device("cpu"),
    )
    assert (len(data.train), len(data.val), len(data.test)) == (250, 100, 200)
    assert data.train.x.dtype == torch.uint8 and data.train.y.dtype == torch.int64 and data.train.w is None
    assert data.input_shape == (28, 28) and data.num_classes == 10
    same = load_image_data(
        "mnist",
        root=str(synthetic_dir),
        search=[],
        download=False,
        verify=False,
        val_size=100,
        limit_train=None,
        augment=NO_AUGMENT,
        seed=0,
        device=torch.device("cpu"),
    )
    assert torch.equal(same.val.x, data.val.x)  # the validation set does not depend on limit_train
    assert torch.equal(same.train.x[:250], data.train.x)  # limit_train keeps the first N


def test_val_size_too_large(synthetic_dir):
    with pytest.raises(AnnkitError, match="leaves no training data"):
        load_image_data(
            "mnist",
            root=str(synthetic_dir),
            search=[],
            download=False,
            verify=False,
            val_size=600,
            limit_train=None,
            augment=NO_AUGMENT,
            seed=0,
            device=torch.device("cpu"),
        )


def test_synthetic_files_fail_the_official_checksum(synthetic_dir):
    with pytest.raises(AnnkitError, match="Checksum mismatch"):
        load_image_data(
            "mnist",
            root=str(synthetic_dir),
            search=[],
            download=False,
            verify=True,
            val_size=100,
            limit_train=None,
            augment=NO_AUGMENT,
            seed=0,
            device=torch.device("cpu"),
        )
