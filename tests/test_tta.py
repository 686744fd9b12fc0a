import numpy as np
import pytest
import torch
import torch.nn as nn

from core.config import Config, ConfigError
from core.predict import predict_probs
from core.tta import DEFAULT_VIEWS, VIEWS, AffineView, make_views, parse_views, views_to_evaluate


def one() -> torch.Tensor:
    """A hand-made centred "1" with a serif and a foot: (1, 1, 28, 28) in [0, 1]."""
    x = torch.zeros(1, 1, 28, 28)
    x[..., 5:23, 13:15] = 1.0  # the stroke
    x[..., 5:8, 10:13] = 1.0  # the flag at the top left
    x[..., 21:23, 10:18] = 1.0  # the foot
    return x


def six() -> torch.Tensor:
    """A hand-made "6": a loop at the bottom and a stem rising on the left. Its 180° turn is a "9"."""
    x = torch.zeros(1, 1, 28, 28)
    x[..., 14:24, 8:11] = x[..., 14:24, 17:20] = 1.0
    x[..., 14:17, 8:20] = x[..., 21:24, 8:20] = 1.0
    x[..., 4:15, 8:11] = 1.0
    x[..., 4:7, 8:18] = 1.0
    return x


def centroid(x: torch.Tensor) -> torch.Tensor:
    grid = torch.arange(28, dtype=torch.float32)
    img = x[0, 0]
    return torch.stack([(img.sum(0) * grid).sum(), (img.sum(1) * grid).sum()]) / img.sum()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Similarity of two images after a 3×3 blur (so that a 1-px shift of a thin stroke still overlaps)."""
    def blur(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1).flatten()

    return torch.nn.functional.cosine_similarity(blur(a), blur(b), dim=0).item()


@pytest.mark.parametrize("name", DEFAULT_VIEWS)
def test_every_view_keeps_a_one_centred_and_upright(name):
    x = one()
    y = VIEWS[name](x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.linalg.norm(centroid(y) - centroid(x)) <= 1.5  # a shifted "1" stays centred enough
    assert 0.9 <= (y.sum() / x.sum()).item() <= 1.15  # nothing cropped, nothing invented
    assert cosine(y, x) > cosine(y, torch.flip(x, dims=[3]))  # closer to itself than to its mirror image


@pytest.mark.parametrize("name", DEFAULT_VIEWS)
def test_no_view_turns_a_six_into_a_nine_or_mirrors_it(name):
    x = six()
    y = VIEWS[name](x)
    # a nearest-template reader still reads a 6: not the 9 (its 180° turn), not its mirror image
    assert cosine(y, x) > 0.9
    assert cosine(y, x) > cosine(y, torch.rot90(x, 2, dims=(2, 3))) + 0.1
    assert cosine(y, x) > cosine(y, torch.flip(x, dims=[3])) + 0.05


@pytest.mark.parametrize("name", DEFAULT_VIEWS)
def test_the_view_list_holds_no_flip_and_no_large_rotation(name):
    view = VIEWS[name]
    linear = view.matrix()[0, :, :2]
    assert torch.det(linear).item() > 0  # a reflection has a negative determinant
    assert abs(view.angle_deg) <= 10 and 0.9 <= view.scale <= 1.1
    assert max(abs(s) for s in view.shift_px) <= 1


def test_digit_unsafe_views_cannot_be_made():
    with pytest.raises(AssertionError):
        AffineView("upside_down", angle_deg=180)
    with pytest.raises(AssertionError):
        AffineView("mirror", scale=-1.0)


def test_shift_views_move_by_exactly_one_pixel():
    x = one()
    right, down = VIEWS["shift_right"](x), VIEWS["shift_down"](x)
    assert torch.allclose(right[..., 1:], x[..., :-1], atol=1e-5)
    assert torch.allclose(down[..., 1:, :], x[..., :-1, :], atol=1e-5)


def test_views_are_deterministic_and_identity_is_exact():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert VIEWS["identity"](x) is x
    for view in make_views(DEFAULT_VIEWS):
        assert torch.equal(view(x), view(x))


def test_parse_views():
    assert parse_views(" shift_left, rotate_cw ,") == ["shift_left", "rotate_cw"]
    assert parse_views("") == [] and make_views([]) == [VIEWS["identity"]]
    with pytest.raises(ValueError, match="unknown"):
        parse_views("identity,hflip")
    with pytest.raises(ValueError, match="repeats"):
        parse_views("identity,identity")
    assert views_to_evaluate("auto") == list(DEFAULT_VIEWS) and views_to_evaluate("none") == []
    assert views_to_evaluate("zoom_in") == ["zoom_in"]


def test_config_checks_tta_and_swa():
    assert Config.from_mapping({"tta": "identity,shift_left"}).tta == "identity,shift_left"
    with pytest.raises(ConfigError, match="tta"):
        Config.from_mapping({"tta": "identity,vflip"})
    with pytest.raises(ConfigError, match="swa_epochs"):
        Config.from_mapping({"epochs": 2, "swa_epochs": 3})


def test_predict_probs_averages_the_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    images = (torch.rand(8, 28, 28) * 255).to(torch.uint8)
    views = make_views(["identity", "rotate_ccw", "zoom_out"])
    averaged = predict_probs(model, images, views=views, amp=False)
    each = [predict_probs(model, images, views=[v], amp=False) for v in views]
    np.testing.assert_allclose(averaged, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)
