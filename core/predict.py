"""Batched prediction on device-resident uint8 images: logits or softmax probabilities, optionally over views."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn

from .augment import normalize, to_unit

View = Callable[[torch.Tensor], torch.Tensor]  # float [0, 1] (B, 1, 28, 28) → same shape


def autocast_context(device: torch.device, enabled: bool):
    """Mixed precision when ``enabled``: on CUDA bf16 where supported, else fp16; on a CPU bf16 (the trainer enables it
    there only for ``Config.cpu_bf16`` on a CPU with AMX, ``cpu_has_amx``); a no-op on other devices."""
    if not enabled or device.type not in ("cuda", "cpu"):
        return nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon 4th generation and newer), where oneDNN runs bf16 convolutions fast;
    without them bf16 on a CPU is emulated and slower than fp32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a CPU and on GPUs that support it (Ampere and newer), fp16 on other GPUs (e.g. Kaggle's T4)."""
    if device.type == "cpu":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        major, _ = torch.cuda.get_device_capability(device)
        if major >= 8:
            return torch.bfloat16
    return torch.float16


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1024, channels_last: bool = False,
                   amp: bool = True, view: View | None = None) -> torch.Tensor:
    """uint8 (N, 28, 28) → float32 logits (N, 10) on the images' device, in eval mode, in batches; ``amp`` takes effect
    on CUDA only (on a CPU, validation and inference are fp32)."""
    was_training = model.training
    model.eval()
    device = images.device
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        x = to_unit(images[start:start + batch_size])
        x = normalize(view(x) if view is not None else x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp and device.type == "cuda"):
            outputs.append(model(x).float())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, 10, device=device)


def predict_probs(model: nn.Module, images: torch.Tensor, *, views: Sequence[View | None] = (None,),
                  **kwargs) -> np.ndarray:
    """Softmax probabilities (N, 10) as float64 numpy, averaged over ``views`` (None = the image as it is)."""
    total: torch.Tensor | None = None
    for view in views:
        probs = torch.softmax(predict_logits(model, images, view=view, **kwargs), dim=1)
        total = probs if total is None else total + probs
    assert total is not None, "views: at least one (None: the image as it is)"
    return (total / len(views)).double().cpu().numpy()
