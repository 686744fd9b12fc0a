"""Checkpoints, loaded safely (``weights_only=True``: a pickle cannot run code): a fold's weights, with failures
explained in one sentence, and :class:`TrainingState`, the resume checkpoint ``<model>_fold<k>_last.pth`` that lets
a killed fold continue at its next epoch. The fold's result (``_oof.npz``) lives in core.fold_result."""
from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .atomic import write_bytes_atomic
from .config import with_legacy_values

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A weights file cannot be used; the message names the file, the reason and the fix."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save into memory, then an atomic write: the same tensors always give the same bytes (saving to a file
    path would embed the temp file's name), so manifest hashes are reproducible."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DistributedDataParallel (their state_dict keys carry ``module.``)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def save_state_dict(model: nn.Module, path: str | Path) -> None:
    """Save a model's weights as a plain state_dict on the CPU, without DataParallel's ``module.`` prefix."""
    save_atomic({k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}, path)


def read_state_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """torch.load with ``weights_only=True``; strips a ``module.`` prefix left by DataParallel."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file missing; train that fold again or re-download the run's output")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path.name}: refused by torch.load(weights_only=True): it holds Python objects, not just tensors, and "
            f"could run code when loaded. Only load weights saved as a state_dict.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path.name}: unreadable, probably truncated by an interrupted copy or download "
                              f"({_first_sentence(err)}); download or train it again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name}: not a state_dict of tensors; save weights with model.state_dict()")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _first_sentence(err: BaseException) -> str:
    return str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__


def load_weights(model: nn.Module, path: str | Path, *, model_name: str = "") -> nn.Module:
    """Load ``path`` into ``model`` strictly; a mismatch becomes one CheckpointError that says what differs."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        details = "; ".join(filter(None, [
            f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            f"{len(shapes)} with another shape (e.g. {shapes[0]})" if shapes else ""]))
        raise CheckpointError(
            f"{Path(path).name}: these weights are not for {model_name or 'this model'} at this input size "
            f"({details}). Use the manifest.json that came with the weights, or retrain.")
    model.load_state_dict(state, strict=True)
    return model


@dataclasses.dataclass
class TrainingState:
    """Everything a fold needs to continue after its last finished epoch; saved as one plain dict of tensors and
    Python scalars, so ``torch.load(weights_only=True)`` reads it."""

    settings: dict[str, Any]  # Config.training_settings() of the run that made it; another run's is refused
    model: dict[str, torch.Tensor]  # state_dict of the bare model (no DataParallel ``module.`` prefix)
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None  # None when config.scheduler is "none"
    scaler: dict[str, Any]  # the GradScaler's state; {} when it is disabled
    generator: torch.Tensor  # state of the fold's torch.Generator (batch order, augmentation)
    torch_rng: torch.Tensor  # torch.get_rng_state()
    epoch: int  # 0-based index of the last finished epoch
    history: list[dict[str, float | None]]  # one row per finished epoch
    best_acc: float
    best_epoch: int  # 1-based
    swa: dict[str, Any] | None = None  # SwaAverager.state_dict() when SWA is on
    noise: dict[str, Any] | None = None  # core.noise_scale.NoiseScale.state_dict() when it is measured

    def save(self, path: str | Path) -> None:
        """Write atomically to ``path`` (a kill leaves the previous epoch's checkpoint whole)."""
        save_atomic({field.name: getattr(self, field.name) for field in dataclasses.fields(self)}, path)

    @classmethod
    def load(cls, path: str | Path, settings: dict[str, Any]) -> TrainingState | None:
        """The state in ``path`` if it was made with ``settings``; None (logged) when missing, unreadable or made with
        other settings: the fold then starts from scratch."""
        path = Path(path)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            # a checkpoint older than a setting ran with its legacy value
            if with_legacy_values(state.get("settings") or {}, keys=settings) != settings:
                log.warning("%s was made with other settings; training this fold from the start", path.name)
                return None
            return cls(**{field.name: state[field.name] if field.default is dataclasses.MISSING
                          else state.get(field.name, field.default) for field in dataclasses.fields(cls)})
        except Exception as err:  # noqa: BLE001 - a checkpoint cut short by a kill (or not a dict of ours): start again
            log.warning("%s is unreadable (%s); training this fold from the start", path.name, err)
            return None
