"""Which device a run uses: the ``device`` setting checked against this machine, and said in one line."""
from __future__ import annotations

import re

import torch

from .config import ConfigError


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked against this machine.

    Raises:
        ConfigError: an unknown name, or a GPU this machine does not have (saying what torch found).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"device = {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} GPU(s)" if count else f"no GPU (torch {torch.__version__}: cuda.is_available() is False)"
            raise ConfigError(f"device = {device!r}, but torch finds {found} on this machine: use device = 'auto' "
                              "(the GPU when there is one) or 'cpu'")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    """Say early which hardware the run got (Kaggle sometimes hands out something else than asked)."""
    if device.type == "cuda":
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda × {len(names)}: {', '.join(names)}"
    return f"cpu ({torch.get_num_threads()} threads)"
