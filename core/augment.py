"""Batches straight from one uint8 tensor on the device: scale, augment in batch, normalise. No per-sample Python.

Augmentation is a random affine per image (rotation, zoom, shift) done with one ``affine_grid`` + ``grid_sample``
call for the whole batch, on [0, 1] pixels so that the zero padding is the digit's black background. It never
flips: a mirrored 2 is not a 2, and a 6 rotated by 180° is a 9.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) → float32 (B, 1, 28, 28) in [0, 1]."""
    return images.unsqueeze(1).float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels → zero-mean, unit-variance pixels (MNIST statistics)."""
    return (x - MNIST_MEAN) / MNIST_STD


def affine_matrices(angles_deg: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Per-image 2×3 matrices for ``affine_grid`` (B, 2, 3).

    Args:
        angles_deg: (B,) rotation in degrees, counter-clockwise.
        scales: (B,) zoom factor; 1.1 shows the digit 10 % larger.
        shifts: (B, 2) translation (x, y) as a fraction of the image side; +0.1 moves the digit right/down by 10 %.
    """
    theta = angles_deg * (math.pi / 180.0)
    cos, sin = torch.cos(theta) / scales, torch.sin(theta) / scales
    # affine_grid maps output coords to input coords, in [-1, 1] units: a shift of s image sides is 2 s units.
    tx, ty = -2.0 * shifts[:, 0], -2.0 * shifts[:, 1]
    row0 = torch.stack([cos, -sin, cos * tx - sin * ty], dim=1)
    row1 = torch.stack([sin, cos, sin * tx + cos * ty], dim=1)
    return torch.stack([row0, row1], dim=1)


def warp(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply (B, 2, 3) affine matrices to (B, C, H, W) images with bilinear sampling and zero padding."""
    grid = F.affine_grid(matrices.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(x: torch.Tensor, *, rotate_deg: float, zoom: float, shift: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random rotation in ±rotate_deg, zoom in 1 ± zoom, shift in ±shift of the side, drawn per image."""
    batch = x.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1  # drawn on the CPU: B numbers, negligible

    angles = uniform(batch) * rotate_deg
    scales = 1.0 + uniform(batch) * zoom
    shifts = uniform(batch, 2) * shift
    return warp(x, affine_matrices(angles, scales, shifts).to(x.device))


def make_batch(images: torch.Tensor, *, augment: bool = False, rotate_deg: float = 0.0, zoom: float = 0.0,
               shift: float = 0.0, channels_last: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, 28, 28) on any device → normalised float (B, 1, 28, 28) ready for the model, on the same device."""
    x = to_unit(images)
    if augment and (rotate_deg or zoom or shift):
        x = random_affine(x, rotate_deg=rotate_deg, zoom=zoom, shift=shift, generator=generator)
    x = normalize(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
