import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from core.config import Config
from core.fold_result import fold_file
from core.trainer import train_fold


def tiny_fold(n: int = 96):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 10
    images = (torch.rand(n, 28, 28, generator=generator) * 60).to(torch.uint8)
    for i, label in enumerate(labels.tolist()):  # a learnable signal: a bright bar whose position is the label
        images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
    return images, labels, np.arange(0, n, 4), np.setdiff1d(np.arange(n), np.arange(0, n, 4))


@pytest.fixture
def config():
    return Config(model="smallcnn", epochs=2, batch_size=16, learning_rate=3e-3, device="cpu")


def test_train_fold_writes_fold_tagged_files(tmp_path, config):
    images, labels, val_idx, train_idx = tiny_fold()
    epochs_started = []
    result = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=3,
                        output_dir=tmp_path, before_epoch=epochs_started.append)
    assert epochs_started == [0, 1]  # the hook runs before each epoch (fold workers take up freed threads there)
    assert result.weights_path.name == "smallcnn_fold3_best.pth" == fold_file("smallcnn", 3, "best")
    state = torch.load(result.weights_path, weights_only=True)
    assert not any(k.startswith("module.") for k in state)
    log = pd.read_csv(tmp_path / "smallcnn_fold3_log.csv")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "val_acc", "lr", "seconds", "noise_scale"]
    assert log["epoch"].tolist() == [1, 2]
    assert result.best_val_acc == pytest.approx(log["val_acc"].max())
    assert result.best_epoch == int(log.loc[log["val_acc"].idxmax(), "epoch"])
    assert result.val_probs.shape == (len(val_idx), 10)
    np.testing.assert_allclose(result.val_probs.sum(1), 1.0, rtol=1e-5)
    # the probabilities come from the best epoch's weights
    assert (result.val_probs.argmax(1) == labels[val_idx].numpy()).mean() == pytest.approx(result.best_val_acc)


def test_seeded_runs_are_identical_on_cpu(tmp_path, config):
    images, labels, val_idx, train_idx = tiny_fold()
    a = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
                   output_dir=tmp_path / "a")
    b = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
                   output_dir=tmp_path / "b")
    np.testing.assert_array_equal(a.val_probs, b.val_probs)


def test_rerun_resumes_instead_of_retraining(tmp_path, config, caplog):
    images, labels, val_idx, train_idx = tiny_fold()
    first = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=1,
                       output_dir=tmp_path)
    caplog.set_level("INFO")
    again = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=1,
                       output_dir=tmp_path)
    assert "resuming at epoch 3/2" in caplog.text
    assert again.history == first.history
    np.testing.assert_array_equal(again.val_probs, first.val_probs)
    longer = Config(**{**config.to_dict(), "epochs": 3})  # other settings: the checkpoint is not reused
    fresh = train_fold(longer, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=1,
                       output_dir=tmp_path)
    assert len(fresh.history) == 3


def test_a_fold_whose_loss_is_not_finite_stops_and_keeps_no_weights(tmp_path, config):
    import dataclasses

    from core.trainer import DivergedError

    images, labels, val_idx, train_idx = tiny_fold()
    blown = dataclasses.replace(config, learning_rate=1e6, min_lr=0.0, epochs=3)
    with pytest.raises(DivergedError) as info:
        train_fold(blown, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=2,
                   output_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"fold 2 diverged in epoch {info.value.epoch}/3: train loss ")
    assert "learning_rate = 1e+06 is probably too high for batch_size = 16" in message
    assert "learning_rate = 100000" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "smallcnn_fold2_best.pth").exists()  # never "best", never inference weights


def test_cpu_bf16_trains_under_bf16_autocast_with_amx_and_validates_in_fp32(tmp_path, config, monkeypatch):
    import core.trainer as trainer
    from core.predict import predict_logits

    monkeypatch.setattr(trainer, "cpu_has_amx", lambda: True)
    seen = []
    forward = torch.nn.Module.__call__

    def recording_call(module, *args, **kwargs):
        if module.__class__.__name__ == "SmallCNN":
            seen.append((module.training, torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu")))
        return forward(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", recording_call)
    bf16 = dataclasses.replace(config, cpu_bf16=True)
    images, labels, val_idx, train_idx = tiny_fold()
    result = train_fold(bf16, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
                        output_dir=tmp_path)
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}  # every training step in bf16
    assert {dtype for training, dtype in seen if not training} == {False}  # validation in fp32
    assert np.isfinite(result.val_probs).all() and result.val_probs.dtype != np.float16
    model = torch.nn.Conv2d(1, 1, 3)
    assert predict_logits(torch.nn.Sequential(model, torch.nn.Flatten(), torch.nn.LazyLinear(10)),
                          images[:4], amp=True).dtype == torch.float32  # inference on a CPU: fp32 whatever amp says


def test_cpu_bf16_without_amx_says_so_and_trains_in_fp32(tmp_path, config, monkeypatch, caplog):
    import core.trainer as trainer

    monkeypatch.setattr(trainer, "cpu_has_amx", lambda: False)
    images, labels, val_idx, train_idx = tiny_fold()
    plain = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
                       output_dir=tmp_path / "plain")
    caplog.set_level("WARNING")
    asked = train_fold(dataclasses.replace(config, cpu_bf16=True), images=images, labels=labels,
                       train_idx=train_idx, val_idx=val_idx, fold=0, output_dir=tmp_path / "asked")
    assert "cpu_bf16 = True, but this CPU has no AMX" in caplog.text and "training in fp32" in caplog.text
    np.testing.assert_array_equal(plain.val_probs, asked.val_probs)  # exactly the fp32 run


def test_cpu_bf16_is_a_training_setting_and_old_configs_read_as_fp32():
    from core.config import with_legacy_values

    assert Config(cpu_bf16=True).training_settings() != Config().training_settings()  # never reused across precisions
    assert with_legacy_values({"model": "fastcnn"})["cpu_bf16"] is False
