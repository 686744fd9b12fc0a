import numpy as np
import pytest
import torch
import torch.nn as nn

from core.augment import make_batch
from core.config import Config
from core.models import create_model
from core.swa import SwaAverager, reestimate_batchnorm
from core.trainer import train_fold
from tests.test_trainer import tiny_fold


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))


def materialize(model: nn.Module) -> nn.Module:
    model(torch.zeros(2, 1, 28, 28))
    return model


def test_swa_of_two_snapshots_is_their_mean_before_update_bn():
    a, b = materialize(small_net(0)), materialize(small_net(1))
    with torch.no_grad():  # give the snapshots different BatchNorm statistics too
        a[1].running_mean.fill_(1.0)
        b[1].running_mean.fill_(3.0)
    averager = SwaAverager(a, epochs=5, swa_epochs=2)
    assert not averager.after_epoch(a, epoch=2)  # epochs 0..2 are not among the last two
    assert averager.after_epoch(a, epoch=3) and averager.after_epoch(b, epoch=4)
    assert averager.n_averaged == 2
    averaged = dict(averager.averaged.module.named_parameters())
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(averaged[name], (pa + pb) / 2)
    # buffers are not averaged (torch copies the last snapshot's): they describe no averaged net until re-estimated
    torch.testing.assert_close(averager.averaged.module[1].running_mean, torch.full((3,), 3.0))


def test_reestimate_batchnorm_gives_the_statistics_of_the_training_rows():
    model = materialize(small_net(0))
    images = (torch.rand(40, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    rows = torch.arange(0, 40, 2)
    reestimate_batchnorm(model, images, rows, batch_size=5)
    with torch.no_grad():
        features = model[0](make_batch(images[rows]))
    torch.testing.assert_close(model[1].running_mean, features.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    per_batch_var = torch.stack([features[i:i + 5].var(dim=(0, 2, 3)) for i in range(0, 20, 5)]).mean(0)
    torch.testing.assert_close(model[1].running_var, per_batch_var, rtol=1e-3, atol=1e-5)


def test_train_fold_saves_scores_and_resumes_swa(tmp_path):
    images, labels, val_idx, train_idx = tiny_fold()
    config = Config(model="smallcnn", epochs=2, swa_epochs=2, batch_size=16, learning_rate=3e-3, device="cpu")
    result = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
                        output_dir=tmp_path)
    assert result.swa_weights_path == tmp_path / "smallcnn_fold0_swa.pth"
    state = torch.load(result.swa_weights_path, weights_only=True)
    assert "n_averaged" not in state and not any(k.startswith("module.") for k in state)  # a bare state_dict
    assert result.swa_val_probs.shape == (len(val_idx), 10)
    assert result.swa_val_acc == pytest.approx((result.swa_val_probs.argmax(1) == labels[val_idx].numpy()).mean())
    best = torch.load(result.weights_path, weights_only=True)
    assert not torch.equal(state["features.1.running_mean"], best["features.1.running_mean"])

    model = create_model("smallcnn")  # the saved SWA weights reproduce the scored probabilities
    model.load_state_dict(state)
    from core.predict import predict_probs

    np.testing.assert_allclose(predict_probs(model, images[val_idx], amp=False), result.swa_val_probs, atol=1e-5)

    again = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=0,
                       output_dir=tmp_path)  # nothing left to train: SWA comes back from the resume checkpoint
    np.testing.assert_allclose(again.swa_val_probs, result.swa_val_probs, atol=1e-6)
