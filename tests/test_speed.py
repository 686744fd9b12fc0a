"""The speed pieces, functionally: AMP picks the right dtype per GPU, fastcnn is a cheaper smallcnn, make bench runs."""
from __future__ import annotations

import re
from contextlib import nullcontext

import pandas as pd
import pytest
import torch

from core.models import (count_parameters, create_model, create_model_from_spec, forward_flops, is_convolutional,
                         model_spec)
from core.predict import amp_dtype, autocast_context
from tools import bench


@pytest.mark.parametrize("bf16_supported, capability, expected", [
    (False, (7, 5), torch.float16),  # Kaggle's T4: fp16 (+ GradScaler)
    (False, (6, 0), torch.float16),  # P100
    (True, (7, 5), torch.float16),  # bf16 emulated before Ampere: fp16 is the fast one
    (True, (8, 0), torch.bfloat16),  # A100
    (True, (8, 9), torch.bfloat16),  # L4
    (True, (9, 0), torch.bfloat16),  # H100
])
def test_amp_dtype_follows_the_gpu(monkeypatch, bf16_supported, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args, **kwargs: capability)
    device = torch.device("cuda", 0)
    assert amp_dtype(device) == expected
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else nullcontext():
        context = autocast_context(device, True)
    assert isinstance(context, torch.autocast) and context.fast_dtype == expected


def test_autocast_on_cpu_is_bf16_and_none_when_off():
    # the trainer asks for it on a CPU only under cpu_bf16 with AMX (tests/test_trainer.py); inference never does
    context = autocast_context(torch.device("cpu"), True)
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    assert isinstance(autocast_context(torch.device("cpu"), False), nullcontext)
    assert isinstance(autocast_context(torch.device("cuda", 0), False), nullcontext)


def test_fastcnn_is_a_cheaper_registered_cnn():
    fast, small = create_model("fastcnn"), create_model("smallcnn")
    assert fast.eval()(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert 2 * forward_flops(fast) < forward_flops(small)
    assert 50_000 <= count_parameters(fast) <= 150_000
    spec = model_spec("fastcnn")
    assert spec["family"] == "fastcnn" and spec["convolutional"] and is_convolutional("fastcnn")
    rebuilt = create_model_from_spec(spec)
    assert rebuilt.load_state_dict(fast.state_dict()) is not None
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model("fastcnn", pretrained=True)


def test_seed_style_dataset_keeps_labels():
    frame = pd.DataFrame([[7] + [0] * 784, [3] + [255] * 784], columns=["label"] + [f"pixel{i}" for i in range(784)])
    dataset = bench.SeedStyleDataset(frame, rotate_deg=10, zoom=0.1, shift=0.1)
    (x0, y0), (x1, y1) = dataset[0], dataset[1]
    assert x0.shape == (1, 28, 28) and (y0, y1) == (7, 3)
    assert x1.mean() > x0.mean()  # a white image stays brighter than a black one after augmentation


@pytest.mark.parametrize("name, precision, peak", [
    ("Tesla T4", "fp16", 65.0), ("Tesla T4", "fp32", 8.1), ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
    ("NVIDIA H100 80GB HBM3", "fp32", 67.0), ("NVIDIA L4", "fp16", 121.0), ("Tesla P100-PCIE-16GB", "fp32", 9.3),
])
def test_known_gpu_peaks(monkeypatch, name, precision, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: name)
    found, peaks = bench.device_peak(torch.device("cuda", 0))
    assert found == name and peaks[precision] == peak


@pytest.mark.parametrize("flags, per_cycle", [("fpu sse avx avx2 fma", 32), ("avx avx2 fma avx512f", 64),
                                              ("sse avx", 16), ("sse sse2", 8)])
def test_cpu_peak_from_cpuinfo(flags, per_cycle):
    cpuinfo = f"processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2500.000\nflags\t\t: {flags}\n"
    assert bench.cpu_peak_tflops(cpuinfo, threads=2) == pytest.approx(2 * per_cycle * 2.5e9 / 1e12)
    assert bench.cpu_peak_tflops("model name : no flags here", threads=2) is None


def test_flops_line_with_and_without_a_peak():
    timing = bench.Timing(images_per_s=100.0, steps=10, precision="fp32")
    assert bench.flops_line("x", timing, 10**6, None).endswith("peak unknown for this device")
    assert "0.37 % of its 8.1 TFLOP/s fp32 peak" in bench.flops_line("x", timing, 10**8, {"fp32": 8.1})
    bf16 = bench.Timing(timing.images_per_s, timing.steps, "bf16")  # cpu_bf16: a CPU peak is only known for fp32
    assert "no bf16 peak known for this device (fp32: 8.1 TFLOP/s)" in bench.flops_line("x", bf16, 10**8, {"fp32": 8.1})


def test_bench_runs_both_loops_and_ends_with_the_speed_up(tmp_path, capsys):
    from tests.test_parallel import write_train_csv

    data = write_train_csv(tmp_path / "data", n=80)
    assert bench.main(["--data", str(data), "--model", "fastcnn", "--steps", "2", "--warmup", "1", "--batch-size", "16",
                       "--loader-workers", "0", "--folds", "2", "--infer-rows", "32", "--device", "cpu",
                       "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("round ") for line in lines) == 2
    assert any(line.startswith("seed-style loop") for line in lines)
    assert re.search(r"^compute ceiling .*: [\d,]+ img/s .*digitkit reaches \d+ % of it; the ceiling is \d+\.\d\dx",
                     "\n".join(lines), re.M)
    assert any(line.startswith("inference, 2 folds × 9 TTA views") for line in lines)
    assert re.fullmatch(r"train speed-up vs seed-style loop: \d+\.\d\dx", lines[-1])


def test_bench_switches_reach_the_digitkit_loop(tmp_path, capsys):
    from tests.test_parallel import write_train_csv

    data = write_train_csv(tmp_path / "data", n=80)
    assert bench.main(["--data", str(data), "--model", "fastcnn", "--steps", "2", "--warmup", "1", "--batch-size", "16",
                       "--loader-workers", "0", "--folds", "1", "--infer-rows", "16", "--device", "cpu", "--rounds", "1",
                       "--no-channels-last", "--no-amp"]) == 0
    out = capsys.readouterr().out
    assert "digitkit trainer (device-resident uint8, in-batch augmentation, NCHW, fp32)" in out


def test_bench_times_the_trainers_own_step(monkeypatch):
    import numpy as np

    from core.config import Config

    calls = []
    real = bench.train_step
    monkeypatch.setattr(bench, "train_step", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    config = Config(model="fastcnn", batch_size=8, device="cpu")
    images, labels = np.zeros((40, 28, 28), np.uint8), np.arange(40) % 10
    cpu = torch.device("cpu")
    assert bench.time_digitkit(config, images, labels, steps=6, warmup=1, device=cpu).steps == 6  # crosses an epoch
    assert bench.time_ceiling(config, steps=2, warmup=1, device=cpu).steps == 2
    assert len(calls) == 7 + 3
