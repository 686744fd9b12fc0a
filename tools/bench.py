"""`make bench`: digitkit's trainer against a seed-style training loop, same model, data, batch and machine.

    python -m tools.bench [--data data/digit-recognizer] [--model NAME] [--steps 60] [--batch-size N]

(a) seed-style: a per-sample ``torch.utils.data.Dataset`` that reads one DataFrame row per item (reshape, tensor,
    per-image augmentation), ``DataLoader(num_workers=2)``, fp32, NCHW, the model in ``nn.DataParallel``.
(b) digitkit: the trainer's own pieces in a loop: ``core.trainer.prepare_fold`` (model, layout, AdamW, scheduler,
    AMP scaler), then per step ``fold_batch`` (the whole set as one uint8 tensor on the device, index batches,
    in-batch augmentation) and ``train_step``; no validation or checkpoint writes in between.
(c) the compute ceiling: the same setup and ``train_step`` on one batch made once and kept on the device, so no
    data path at all. No training loop can be faster with this model on this machine, so ceiling / seed-style is
    the largest speed-up a data path can buy here, and digitkit / ceiling says how much of that digitkit gets.

Both use the same model, optimizer (``core.scheduler.build_optimizer``), loss and batch size, and augment every
image. Warm-up steps are left out of the timing; the two loops alternate ``--rounds`` times and the medians count,
so that load from other jobs on a shared machine hits both alike. Then: inference throughput of 5 fold models × the
TTA views, and the FLOP/s each loop achieves (``torch.utils.flop_counter``; training ≈ 3 × forward) against the
device's peak where it is known. The last line is ``train speed-up vs seed-style loop: <x.xx>x``.
Local-only code: it may import core.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from core.augment import normalize, random_affine
from core.config import Config
from core.data import IMAGE_SIDE, NUM_CLASSES, find_competition_file, read_train
from core.device import resolve_device
from core.models import create_model_from_spec, forward_flops, is_convolutional
from core.predict import amp_dtype, predict_probs
from core.scheduler import build_optimizer
from core.targets import one_hot, smooth_targets, soft_target_cross_entropy
from core.trainer import (SYNC_EVERY, FoldSetup, fold_batch, for_steps, measure_noise, prepare_fold, seed_everything,
                          train_step)

# Dense peak TFLOP/s per GPU from the vendors' data sheets: (16-bit tensor cores, fp32). Sparsity not counted.
GPU_PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "T4": (65.0, 8.1),
    "P100": (18.7, 9.3),
    "V100": (125.0, 15.7),
    "A100": (312.0, 19.5),
    "H100": (989.0, 67.0),  # SXM; the PCIe card: 756 / 51
    "L4": (121.0, 30.3),
}


@dataclasses.dataclass
class Timing:
    images_per_s: float
    steps: int
    precision: str  # "fp32", "fp16" or "bf16": which peak applies


# ----------------------------------------------------------------------------------------------- (a) seed-style
class SeedStyleDataset(Dataset):
    """What a typical Kaggle kernel does: one DataFrame row per item, reshaped and made a tensor, augmented alone."""

    def __init__(self, frame: pd.DataFrame, *, rotate_deg: float, zoom: float, shift: float):
        self.frame, self.rotate_deg, self.zoom, self.shift = frame, rotate_deg, zoom, shift

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.frame.iloc[index]
        image = row.drop("label").to_numpy(dtype=np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE) / 255.0
        x = torch.tensor(image).unsqueeze(0)  # (1, 28, 28)
        x = random_affine(x.unsqueeze(0), rotate_deg=self.rotate_deg, zoom=self.zoom, shift=self.shift)[0]
        return normalize(x), int(row["label"])


def time_seed_style(config: Config, frame: pd.DataFrame, *, steps: int, warmup: int, device: torch.device,
                    loader_workers: int) -> Timing:
    """Train ``warmup + steps`` steps the seed's way; images/s over the last ``steps``."""
    seed_everything(config.seed)
    model = nn.DataParallel(create_model_from_spec(config.model_spec()).to(device))
    recipe = config.resolved
    optimizer = build_optimizer(model, learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay)
    dataset = SeedStyleDataset(frame, rotate_deg=recipe.rotate_deg, zoom=recipe.zoom, shift=recipe.shift)
    loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, num_workers=loader_workers,
                        drop_last=True, pin_memory=device.type == "cuda")
    model.train()
    stamps: list[float] = []
    while len(stamps) < warmup + steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = soft_target_cross_entropy(model(x), smooth_targets(one_hot(y), config.label_smoothing))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # the seed logs the loss every step (and this waits for the GPU)
            stamps.append(time.perf_counter())
            if len(stamps) == warmup + steps:
                break
    return _timing(stamps, warmup=warmup, batch_size=recipe.batch_size, precision="fp32")


# ------------------------------------------------------------------------------------------------ (b) digitkit
def _wait_for(device: torch.device) -> None:
    """Let the device finish its queued work (a no-op on the CPU, where every op is done when it returns)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(config: Config, *, n_train: int, steps: int, device: torch.device) -> FoldSetup:
    """The trainer's own setup for a run of exactly ``steps`` optimizer steps on ``n_train`` rows."""
    return prepare_fold(for_steps(config, n_train, steps), n_train=n_train, fold=0, device=device)


def _time_steps(setup: FoldSetup, next_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor, float]], *,
                steps: int, warmup: int) -> list[float]:
    """Call the trainer's ``train_step`` on ``next_batch(step)`` (x, targets, loss weight) ``warmup + steps`` times;
    return when each step ended (perf_counter seconds). The loss is read as often as the trainer reads it, and the
    device is waited for where the timing starts and ends."""
    setup.model.train()
    stamps: list[float] = []
    for step in range(warmup + steps):
        x, targets, weight = next_batch(step)
        loss = train_step(setup.train_model, setup.optimizer, setup.scheduler, setup.scaler, x, targets,
                          amp=setup.amp, weight=weight)
        if (step + 1) % SYNC_EVERY == 0:
            loss.item()
        if step + 1 in (max(warmup, 1), warmup + steps):
            _wait_for(setup.device)
        stamps.append(time.perf_counter())
    return stamps


def time_digitkit(config: Config, images: np.ndarray, labels: np.ndarray, *, steps: int, warmup: int,
                  device: torch.device, noise_every: int = 0) -> Timing:
    """Train ``warmup + steps`` steps with the trainer's setup, batches and step; images/s over the last ``steps``.

    Each epoch's order is a fresh permutation of all rows, as in ``train_fold``; its per-epoch validation and
    checkpoint writes are not part of the loop. ``noise_every`` > 0 also measures the gradient noise scale every
    that many steps, as the trainer does (``core.trainer.measure_noise``).
    """
    config = dataclasses.replace(config, noise_scale_every=noise_every)
    setup = _setup(config, n_train=len(labels), steps=warmup + steps, device=device)
    images_on, labels_on = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    order = torch.arange(len(labels), device=device)

    def next_batch(step: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        nonlocal order
        start = step % setup.steps_per_epoch * setup.batch_size
        if start == 0:
            order = order[torch.randperm(len(order), generator=setup.generator).to(device)]
        batch = fold_batch(config, images_on, labels_on, order[start:start + setup.batch_size],
                           channels_last=setup.channels_last, generator=setup.generator)
        if noise_every and (step + 1) % noise_every == 0:
            measure_noise(setup, *batch[:2])
        return batch

    stamps = _time_steps(setup, next_batch, steps=steps, warmup=warmup)
    return _timing(stamps, warmup=warmup, batch_size=setup.batch_size, precision=_precision(setup))


# ------------------------------------------------------------------------------------------------ (c) ceiling
def time_ceiling(config: Config, *, steps: int, warmup: int, device: torch.device) -> Timing:
    """Images/s of the model's own training work: the trainer's setup and step on one resident batch."""
    batch_size = config.resolved.batch_size
    setup = _setup(config, n_train=batch_size, steps=warmup + steps, device=device)
    x = torch.randn(batch_size, 1, IMAGE_SIDE, IMAGE_SIDE, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if setup.channels_last else x
    targets = smooth_targets(one_hot(torch.arange(batch_size, device=device) % NUM_CLASSES),
                              config.label_smoothing)
    stamps = _time_steps(setup, lambda step: (x, targets, 1.0), steps=steps, warmup=warmup)
    return _timing(stamps, warmup=warmup, batch_size=batch_size, precision=_precision(setup))


def _timing(stamps: list[float], *, warmup: int, batch_size: int, precision: str) -> Timing:
    """Images/s over the steps after the first ``warmup`` (``stamps``: when each step ended, in seconds)."""
    start = stamps[warmup - 1] if warmup else stamps[0]
    counted = len(stamps) - max(warmup, 1)
    return Timing(counted * batch_size / (stamps[-1] - start), counted, precision)


def _precision(setup: FoldSetup) -> str:
    """What the digitkit step computes in, as ``prepare_fold`` decided: fp16 / bf16 under autocast (AMP on CUDA,
    ``cpu_bf16`` on a CPU with AMX), else fp32."""
    if not setup.amp:
        return "fp32"
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}[amp_dtype(setup.device)]


# ------------------------------------------------------------------------------------------------- inference, FLOPs
def tta_views() -> tuple[list, str]:
    """The TTA view callables and their source: core.tta's default list, else identity + 4 one-pixel shifts."""
    try:
        from core.tta import DEFAULT_VIEWS, make_views

        return make_views(DEFAULT_VIEWS), "core.tta default views"
    except ImportError:
        from core.augment import affine_matrices, warp

        def shifted(dx: float, dy: float):
            def view(x: torch.Tensor) -> torch.Tensor:
                matrices = affine_matrices(torch.zeros(len(x)), torch.ones(len(x)), torch.tensor([[dx, dy]] * len(x)))
                return warp(x, matrices.to(x.device))
            return view

        return [None] + [shifted(dx / IMAGE_SIDE, dy / IMAGE_SIDE) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))], \
            "identity + 4 one-pixel shifts"


def time_inference(config: Config, images: np.ndarray, *, folds: int, device: torch.device) -> tuple[float, int, str]:
    """(test images/s through ``folds`` models × all TTA views, number of views, where the views come from)."""
    views, source = tta_views()
    channels_last = config.channels_last and is_convolutional(config.model)
    x = torch.from_numpy(images).to(device)
    models = []
    for _ in range(folds):
        model = create_model_from_spec(config.model_spec()).to(device).eval()
        models.append(model.to(memory_format=torch.channels_last) if channels_last else model)
    predict = functools.partial(predict_probs, views=views, batch_size=config.eval_batch_size,
                                channels_last=channels_last, amp=config.amp and device.type == "cuda")
    predict(models[0], x[:config.eval_batch_size])  # warm-up
    started = time.perf_counter()
    for model in models:
        predict(model, x)  # returns numpy: waits for the device
    return len(x) / (time.perf_counter() - started), len(views), source


def cpu_peak_tflops(cpuinfo: str, threads: int) -> float | None:
    """Nominal fp32 peak of ``threads`` cores from /proc/cpuinfo's text: cores × FLOP per cycle (2 FMA units of the
    widest vector the flags name: AVX-512 64, AVX2+FMA 32, AVX 16, else 8) × the clock. None when the text lacks
    flags or clock. An upper bound: turbo, shared FMA units and the hypervisor all move the real figure."""
    flags_line = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    clock = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)
    if flags_line is None or clock is None:
        return None
    flags = set(flags_line.group(1).split())
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16 if "avx" in flags else 8
    return threads * per_cycle * float(clock.group(1)) * 1e6 / 1e12


def device_peak(device: torch.device) -> tuple[str, dict[str, float] | None]:
    """(device name, {"fp32": TFLOP/s, "fp16": …, "bf16": …}) or None when the peak is not known."""
    if device.type != "cuda":
        threads = min(torch.get_num_threads(), os.cpu_count() or 1)
        name = f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
        try:
            peak = cpu_peak_tflops(Path("/proc/cpuinfo").read_text(), threads)
        except OSError:  # not Linux
            peak = None
        if peak is None:
            return name, None
        return f"{name}, nominal fp32 peak {peak:.3f} TFLOP/s (cores × FLOP/cycle × clock)", {"fp32": peak}
    name = torch.cuda.get_device_name(device)
    for key, (half, single) in GPU_PEAK_TFLOPS.items():
        if key in name.replace(" ", "").upper().replace("TESLA", ""):
            return name, {"fp16": half, "bf16": half, "fp32": single}
    return name, None


def flops_line(label: str, timing: Timing, flops_per_image: int, peaks: dict[str, float] | None) -> str:
    achieved = 3 * flops_per_image * timing.images_per_s  # backward ≈ 2 × forward
    text = f"{label}: {achieved / 1e12:.3f} TFLOP/s achieved ({timing.precision})"
    if peaks is None:
        return text + ", peak unknown for this device"
    if timing.precision not in peaks:  # a CPU's bf16 on AMX: /proc/cpuinfo gives no figure for it
        return text + f", no {timing.precision} peak known for this device (fp32: {peaks['fp32']:.3g} TFLOP/s)"
    return text + f", {100 * achieved / (peaks[timing.precision] * 1e12):.2f} % of its {peaks[timing.precision]:.3g} " \
                  f"TFLOP/s {timing.precision} peak"


def _median(timings: list[Timing]) -> Timing:
    return sorted(timings, key=lambda t: t.images_per_s)[len(timings) // 2]


# ----------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DATA", "data/digit-recognizer"),
                        help="folder in Kaggle's layout (default: $DATA or data/digit-recognizer)")
    parser.add_argument("--model", default=Config.model,
                        help=f"smallcnn, fastcnn or a timm name (default: {Config.model})")
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps per loop and round")
    parser.add_argument("--warmup", type=int, default=5, help="steps run first and left out of the timing")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the loops alternate this many times; medians are reported (a shared machine's load "
                             "changes within minutes)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the model's recipe (core/families.py FAMILIES)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="px the digits are resized to (default: the model's recipe, e.g. 56 for efficientnet)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--loader-workers", type=int, default=2, help="the seed-style DataLoader's num_workers")
    parser.add_argument("--folds", type=int, default=5, help="fold models in the inference timing")
    parser.add_argument("--infer-rows", type=int, default=2000, help="images in the inference timing")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the digitkit loop")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                        help="mixed precision in the digitkit loop on CUDA (fp16 or bf16; default: on)")
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="bf16 autocast in the digitkit loop on a CPU with AMX (Config.cpu_bf16; default: fp32)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="channels_last memory format for CNNs in the digitkit loop (default: on)")
    args = parser.parse_args(argv)
    assert args.steps >= 2 and args.warmup >= 0 and args.rounds >= 1
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    config = Config(model=args.model, batch_size=args.batch_size, device=args.device, compile=args.compile,
                    amp=args.amp, cpu_bf16=args.cpu_bf16, channels_last=args.channels_last, input_size=args.input_size)
    device = resolve_device(config.device)
    path = find_competition_file(args.data, "train")
    train = read_train(path)
    frame = pd.read_csv(path)  # the seed keeps the DataFrame and reads rows from it
    name, peaks = device_peak(device)
    flops = forward_flops(create_model_from_spec(config.model_spec()))
    print(f"machine: {name}; torch {torch.__version__}")
    print(f"data: {path} ({len(train.labels)} rows); model {config.model}: {flops / 1e6:.1f} MFLOP per image "
          f"forward; batch {config.batch_size}; {args.steps} timed steps after {args.warmup} warm-up steps")

    seeds, fasts, ceilings, noisy = [], [], [], []
    for round_ in range(1, args.rounds + 1):  # alternate, so that a change of load hits all loops alike
        seeds.append(time_seed_style(config, frame, steps=args.steps, warmup=args.warmup, device=device,
                                     loader_workers=args.loader_workers))
        fasts.append(time_digitkit(config, train.images, train.labels, steps=args.steps, warmup=args.warmup,
                                   device=device))
        ceilings.append(time_ceiling(config, steps=args.steps, warmup=args.warmup, device=device))
        noisy.append(time_digitkit(config, train.images, train.labels, steps=args.steps, warmup=args.warmup,
                                   device=device, noise_every=config.noise_scale_every))
        print(f"round {round_}/{args.rounds}: seed-style {seeds[-1].images_per_s:,.0f} img/s, digitkit "
              f"{fasts[-1].images_per_s:,.0f} img/s ({fasts[-1].images_per_s / seeds[-1].images_per_s:.2f}x), "
              f"compute ceiling {ceilings[-1].images_per_s:,.0f} img/s")
    seed, fast, ceiling = _median(seeds), _median(fasts), _median(ceilings)
    speed_up = float(np.median([f.images_per_s / s.images_per_s for s, f in zip(seeds, fasts, strict=True)]))
    print(f"seed-style loop (Dataset row per item, DataLoader num_workers={args.loader_workers}, fp32, NCHW, "
          f"DataParallel): {seed.images_per_s:,.0f} img/s (median of {args.rounds})")
    layout = "channels_last" if config.channels_last and is_convolutional(config.model) else "NCHW"
    print(f"digitkit trainer (device-resident uint8, in-batch augmentation, {layout}, {fast.precision}"
          f"{', compiled' if config.compile else ''}): {fast.images_per_s:,.0f} img/s (median of {args.rounds})")
    ceiling_ratio = float(np.median([c.images_per_s / s.images_per_s for s, c in zip(seeds, ceilings, strict=True)]))
    share = float(np.median([f.images_per_s / c.images_per_s for f, c in zip(fasts, ceilings, strict=True)]))
    print(f"compute ceiling (the model's forward + backward + AdamW step on one batch kept on the device, no data "
          f"path): {ceiling.images_per_s:,.0f} img/s (median of {args.rounds}); digitkit reaches {100 * share:.0f} % "
          f"of it; the ceiling is {ceiling_ratio:.2f}x the seed-style loop, the most any data path can gain "
          f"with this model on this machine")

    cost = float(np.median([f.images_per_s / n.images_per_s - 1 for f, n in zip(fasts, noisy, strict=True)]))
    print(f"digitkit + the gradient noise scale measured every {config.noise_scale_every} "
          "steps (as training does): "
          f"{_median(noisy).images_per_s:,.0f} img/s (median of {args.rounds}); the measurement costs "
          f"{100 * cost:+.1f} % training time")

    rows = min(args.infer_rows, len(train.labels))
    per_s, n_views, source = time_inference(config, train.images[:rows], folds=args.folds, device=device)
    print(f"inference, {args.folds} folds × {n_views} TTA views ({source}): {per_s:,.0f} test img/s "
          f"= {per_s * args.folds * n_views:,.0f} forward img/s; the 28,000 test images in "
          f"{28000 / per_s:,.0f} s")
    print(flops_line("seed-style", seed, flops, peaks))
    print(flops_line("digitkit  ", fast, flops, peaks))
    print(flops_line("ceiling   ", ceiling, flops, peaks))
    print(f"train speed-up vs seed-style loop: {speed_up:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
