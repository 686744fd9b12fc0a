import torch

from core.augment import MNIST_MEAN, MNIST_STD, affine_matrices, make_batch, random_affine, warp


def vertical_bar() -> torch.Tensor:
    """A centred "1": (1, 1, 28, 28) in [0, 1]."""
    x = torch.zeros(1, 1, 28, 28)
    x[..., 6:22, 13:15] = 1.0
    return x


def test_identity_matrix_keeps_the_image():
    x = vertical_bar()
    same = warp(x, affine_matrices(torch.zeros(1), torch.ones(1), torch.zeros(1, 2)))
    assert torch.allclose(same, x, atol=1e-5)


def test_shift_moves_the_digit_right_by_the_fraction_of_the_side():
    x = vertical_bar()
    shifted = warp(x, affine_matrices(torch.zeros(1), torch.ones(1), torch.tensor([[4 / 28, 0.0]])))
    col_before = (x[0, 0].sum(0) * torch.arange(28)).sum() / x[0, 0].sum()
    col_after = (shifted[0, 0].sum(0) * torch.arange(28)).sum() / shifted[0, 0].sum()
    assert abs((col_after - col_before).item() - 4) < 0.2


def test_small_random_affine_keeps_the_digit_mostly_in_place():
    x = vertical_bar().repeat(64, 1, 1, 1)
    out = random_affine(x, rotate_deg=10, zoom=0.1, shift=0.1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1.0001
    mass = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((mass > 0.75) & (mass < 1.3)).all()  # zoom ±10 % changes the ink by ≤ 21 %; nothing falls off the canvas
    assert not torch.allclose(out[0], out[1])  # each image gets its own transform


def test_make_batch_normalises_and_is_reproducible():
    images = (vertical_bar()[:, 0] * 255).to(torch.uint8).repeat(8, 1, 1)
    plain = make_batch(images)
    assert plain.shape == (8, 1, 28, 28) and plain.dtype == torch.float32
    assert torch.isclose(plain[0, 0, 0, 0], torch.tensor(-MNIST_MEAN / MNIST_STD))
    a = make_batch(images, augment=True, rotate_deg=10, zoom=0.1, shift=0.1, generator=torch.Generator().manual_seed(1))
    b = make_batch(images, augment=True, rotate_deg=10, zoom=0.1, shift=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert make_batch(images, channels_last=True).is_contiguous(memory_format=torch.channels_last)
