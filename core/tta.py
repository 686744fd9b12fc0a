"""Test-time augmentation: a fixed, named, deterministic list of digit-safe views.

Each view is one affine transform (the same ``affine_matrices`` + ``warp`` that training augmentation uses) applied
to float [0, 1] images (B, 1, 28, 28) → same shape. No randomness: the same view list gives the same predictions on
every run. No flips and no large rotations: a mirrored 2 is not a 2 and a 6 turned by 180° is a 9, so every view is
a small rotation (≤ 8°), a ±1 px shift or a ±5 % zoom — all inside the training augmentation's range.

=============  =========  =====  ===========
name           rotation   zoom   shift (px)
=============  =========  =====  ===========
identity       0°         1.00   0, 0
shift_left     0°         1.00   −1, 0
shift_right    0°         1.00   +1, 0
shift_up       0°         1.00   0, −1
shift_down     0°         1.00   0, +1
rotate_ccw     +8°        1.00   0, 0
rotate_cw      −8°        1.00   0, 0
zoom_in        0°         1.05   0, 0
zoom_out       0°         0.95   0, 0
=============  =========  =====  ===========
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .augment import affine_matrices, warp
from .data import IMAGE_SIDE

MAX_ANGLE_DEG = 10.0  # views beyond this could turn one digit into another
TTA_SETTINGS = ("auto", "none")  # besides an explicit comma-separated view list


@dataclasses.dataclass(frozen=True)
class AffineView:
    """One deterministic view: rotate by ``angle_deg`` (counter-clockwise), zoom by ``scale``, shift by whole pixels.

    Called on float [0, 1] (B, 1, 28, 28) images it returns the transformed images, same shape, dtype and device.
    """

    name: str
    angle_deg: float = 0.0
    scale: float = 1.0
    shift_px: tuple[float, float] = (0.0, 0.0)  # (x → right, y → down)

    def __post_init__(self) -> None:
        assert abs(self.angle_deg) <= MAX_ANGLE_DEG, f"{self.name}: rotation beyond ±{MAX_ANGLE_DEG}° is not digit-safe"
        assert 0.8 <= self.scale <= 1.25, f"{self.name}: zoom {self.scale} is not digit-safe (and must be positive)"

    @property
    def is_identity(self) -> bool:
        return self.angle_deg == 0 and self.scale == 1 and tuple(self.shift_px) == (0, 0)

    def matrix(self, batch: int = 1) -> torch.Tensor:
        """The (batch, 2, 3) ``affine_grid`` matrix of this view."""
        shifts = torch.tensor([[self.shift_px[0] / IMAGE_SIDE, self.shift_px[1] / IMAGE_SIDE]])
        one = affine_matrices(torch.tensor([float(self.angle_deg)]), torch.tensor([float(self.scale)]), shifts)
        return one.expand(batch, 2, 3)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_identity:
            return x
        return warp(x, self.matrix(x.shape[0]).to(device=x.device, dtype=x.dtype))


VIEWS: dict[str, AffineView] = {view.name: view for view in (
    AffineView("identity"),
    AffineView("shift_left", shift_px=(-1.0, 0.0)),
    AffineView("shift_right", shift_px=(1.0, 0.0)),
    AffineView("shift_up", shift_px=(0.0, -1.0)),
    AffineView("shift_down", shift_px=(0.0, 1.0)),
    AffineView("rotate_ccw", angle_deg=8.0),
    AffineView("rotate_cw", angle_deg=-8.0),
    AffineView("zoom_in", scale=1.05),
    AffineView("zoom_out", scale=0.95),
)}
DEFAULT_VIEWS: tuple[str, ...] = tuple(VIEWS)


def parse_views(spec: str | Sequence[str]) -> list[str]:
    """A comma-separated view list (or a list of names) → the names, checked; "" → [].

    Raises:
        ValueError: an unknown or repeated name, listing the known ones.
    """
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        raise ValueError(f"TTA views {unknown} are unknown: use 'auto', 'none' or a comma-separated list of "
                         f"{', '.join(VIEWS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"TTA view list {names} repeats a view; each view counts once in the average")
    return names


def check_setting(setting: str) -> str:
    """A ``tta`` parameter, stripped: one of ``TTA_SETTINGS`` or a valid view list (ValueError naming the views)."""
    setting = (setting or "auto").strip()
    if setting not in TTA_SETTINGS:
        parse_views(setting)
    return setting


def views_to_evaluate(setting: str) -> list[str]:
    """What training scores on OOF for ``Config.tta``: the default list for "auto", nothing for "none"."""
    if setting.strip() == "none":
        return []
    if setting.strip() == "auto":
        return list(DEFAULT_VIEWS)
    return parse_views(setting)


def make_views(names: Sequence[str]) -> list[AffineView]:
    """The view callables for ``names`` (checked); an empty list means one pass on the image as it is."""
    return [VIEWS[name] for name in parse_views(list(names))] or [VIEWS["identity"]]
