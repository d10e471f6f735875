"""Image preprocessing of on-device uint8 batches: the training split's pixel statistics
(:func:`pixel_stats`), batched augmentation (:func:`augment`) and :func:`normalize` to float32,
put together by :class:`Preprocess` (a :class:`~annkit.data.Data`'s ``prepare`` for images).

Images stay uint8 (1 byte/pixel) on the device until :func:`normalize` turns a batch into float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(images: torch.Tensor, *, hflip: bool, shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random left-right flips (p = ½) and translations of up to ``shift`` px, per image.

    ``images``: B×H×W (any dtype, uint8 here). The shift pads with zeros (black) and crops
    a random H×W window, so content moved out of the frame is lost, as in torchvision's
    ``RandomCrop(padding=shift)``. Cost: one ``where`` and one ``gather`` over the batch, no
    Python loop.
    """
    b, h, w = images.shape
    dev = images.device
    if hflip:
        flip = torch.rand(b, device=dev, generator=generator) < 0.5
        images = torch.where(flip[:, None, None], images.flip(-1), images)
    if shift:
        wp = w + 2 * shift  # width of the zero-padded image
        padded = F.pad(images, (shift, shift, shift, shift)).reshape(b, -1)  # B×(H+2s)(W+2s)
        window = (torch.arange(h, device=dev)[:, None] * wp + torch.arange(w, device=dev)).reshape(1, -1)
        dy = torch.randint(0, 2 * shift + 1, (b, 1), device=dev, generator=generator)
        dx = torch.randint(0, 2 * shift + 1, (b, 1), device=dev, generator=generator)
        images = padded.gather(1, window + dy * wp + dx).view(b, h, w)  # one gather for the batch
    return images


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels → float32 ``(x/255 − mean) / std`` (mean and std of x/255 on the train split)."""
    scale = 1.0 / (255.0 * std)
    return (images * scale).sub_(mean / std)  # uint8 × float promotes to float32: two kernels


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Exact mean and standard deviation of ``images/255`` (uint8), from a 256-bin histogram."""
    counts = torch.bincount(images.reshape(-1), minlength=256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64, device=counts.device) / 255.0
    n = counts.sum()
    mean = (counts * values).sum() / n
    var = (counts * (values - mean) ** 2).sum() / n
    return float(mean), float(var.sqrt())


class Preprocess:
    """Raw uint8 batch → model input: augmentation (training batches only), then :func:`normalize`."""

    def __init__(
        self, mean: float, std: float, *, hflip: bool = False, shift: int = 0, generator: torch.Generator | None = None
    ) -> None:
        self.mean, self.std = mean, std
        self.hflip, self.shift = hflip, shift
        self.generator = generator

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        if train and (self.hflip or self.shift):
            images = augment(images, hflip=self.hflip, shift=self.shift, generator=self.generator)
        return normalize(images, self.mean, self.std)
