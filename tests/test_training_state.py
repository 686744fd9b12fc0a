"""core.checkpoint.TrainingState: the resume checkpoint round-trips and is refused when it cannot be trusted."""
from __future__ import annotations

import logging

import torch

from core.checkpoint import TrainingState, save_atomic


def state(**overrides) -> TrainingState:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    values = dict(settings={"model": "m", "epochs": 2}, model=model.state_dict(), optimizer=optimizer.state_dict(),
                  scheduler=None, scaler={}, generator=torch.Generator().manual_seed(1).get_state(),
                  torch_rng=torch.get_rng_state(), epoch=0, history=[{"epoch": 1, "val_acc": 0.5}], best_acc=0.5,
                  best_epoch=1, swa=None)
    return TrainingState(**{**values, **overrides})


def test_round_trip(tmp_path):
    saved = state(swa={"n": 1})
    saved.save(tmp_path / "m_fold0_last.pth")
    back = TrainingState.load(tmp_path / "m_fold0_last.pth", {"model": "m", "epochs": 2})
    assert (back.epoch, back.history, back.best_acc, back.best_epoch, back.swa) == (0, saved.history, 0.5, 1, {"n": 1})
    assert torch.equal(back.model["weight"], saved.model["weight"]) and torch.equal(back.generator, saved.generator)


def test_missing_other_settings_or_unreadable_gives_none(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "m_fold0_last.pth"
    assert TrainingState.load(path, {}) is None
    state().save(path)
    assert TrainingState.load(path, {"model": "m", "epochs": 3}) is None
    assert "made with other settings" in caplog.text
    path.write_bytes(path.read_bytes()[:100])  # cut short by a kill
    assert TrainingState.load(path, {"model": "m", "epochs": 2}) is None
    assert "unreadable" in caplog.text


def test_a_checkpoint_holding_python_objects_is_refused(tmp_path):
    path = tmp_path / "m_fold0_last.pth"
    save_atomic({"settings": {}, "payload": object()}, path)  # weights_only=True cannot load it
    assert TrainingState.load(path, {}) is None


def test_a_checkpoint_without_swa_still_loads(tmp_path):
    path = tmp_path / "m_fold0_last.pth"
    old = {name: value for name, value in vars(state()).items() if name != "swa"}  # before SWA existed
    save_atomic(old, path)
    assert TrainingState.load(path, {"model": "m", "epochs": 2}).swa is None


def test_a_checkpoint_older_than_a_setting_counts_with_its_legacy_value(tmp_path):
    path = tmp_path / "m_fold0_last.pth"
    state().save(path)  # settings {"model", "epochs"}: made before input_size existed, so at 28 px
    assert TrainingState.load(path, {"model": "m", "epochs": 2, "input_size": 28}) is not None
    assert TrainingState.load(path, {"model": "m", "epochs": 2, "input_size": 56}) is None
