"""The two recipes the notebooks call: ``run_training`` (folds → train each fold → OOF → CV → plots → manifest) and
``run_inference`` (manifest → k models → average → submission.csv)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_weights
from .config import Config
from .data import find_competition_file, read_test, read_train
from .folds import load_or_make_folds
from .manifest import read_manifest, verify_files, write_manifest
from .models import create_model_from_spec, is_convolutional, model_spec
from .oof import fold_accuracies, local_cv, oof_frame, report, write_oof
from .paths import KAGGLE_INPUT, find_input_dir
from .plots import plot_training_curves
from .predict import predict_probs
from .submission import make_submission, write_submission
from .trainer import resolve_device, train_fold, weights_name

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingRun:
    output_dir: Path
    local_cv: float
    fold_accuracy: dict[int, float]
    summary: str
    figure: object  # matplotlib Figure of the training curves


@dataclasses.dataclass
class InferenceRun:
    submission_path: Path
    test_probs: np.ndarray  # (n_test, 10), the average over folds
    n_models: int


def describe_device(device: torch.device) -> str:
    """Say early which hardware the run got (Kaggle sometimes hands out something else than asked)."""
    if device.type == "cuda":
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda × {len(names)}: {', '.join(names)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def run_training(config: Config, *, data_dir: str | Path, output_dir: str | Path,
                 folds_path: str | Path | None = None) -> TrainingRun:
    """Train every fold of ``config`` on ``data_dir``/train.csv and write the run into ``output_dir``.

    Writes: ``<model>_fold<k>_best.pth`` and ``_log.csv`` per fold, ``folds.csv``, ``oof.csv``, ``config.json``,
    ``training_curves.png`` and ``manifest.json`` (the contract read by the inference notebook).

    Args:
        folds_path: a folds.csv to reuse (refused when made for another train.csv or another k). Default: one found
            among Kaggle's inputs, else ``output_dir/folds.csv`` (made on first use).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    log.info("device: %s; model: %s; %d folds × %d epochs", describe_device(device), config.model, config.n_folds,
             config.epochs)

    train = read_train(find_competition_file(data_dir, "train"), group_column=config.group_column)
    folds_file = output_dir / "folds.csv"
    reuse_from = Path(folds_path) if folds_path else _kaggle_input_file("folds.csv")
    folds = load_or_make_folds(folds_file, train.labels, fingerprint=train.fingerprint, n_folds=config.n_folds,
                               method=config.fold_method, seed=config.seed, groups=train.groups,
                               reuse_from=reuse_from)
    config.save(output_dir / "config.json")

    images = torch.from_numpy(train.images)
    labels = torch.from_numpy(train.labels)
    results = []
    for fold in config.fold_indices():
        train_idx, val_idx = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        log.info("fold %d: %d train rows, %d validation rows", fold, len(train_idx), len(val_idx))
        result = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=fold,
                            output_dir=output_dir, device=device)
        results.append((result, val_idx))

    oof = oof_frame(row_ids=np.concatenate([idx for _, idx in results]),
                    folds=np.concatenate([np.full(len(idx), r.fold) for r, idx in results]),
                    labels=np.concatenate([train.labels[idx] for _, idx in results]),
                    probs=np.concatenate([r.val_probs for r, _ in results]))
    write_oof(output_dir / "oof.csv", oof)
    summary = report(oof, n_rows=len(train.labels))
    log.info("\n%s", summary)
    figure = plot_training_curves({r.fold: r.history for r, _ in results}, output_dir / "training_curves.png",
                                  title=f"{config.model}: local CV {local_cv(oof):.5f}")

    weight_files = [r.weights_path.name for r, _ in results]
    log_files = [weights_name(config.model, r.fold, "log").replace(".pth", ".csv") for r, _ in results]
    manifest = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": config.model, "spec": model_spec(config.model)},
        "n_folds": config.n_folds,
        "folds": [{"fold": r.fold, "weights": r.weights_path.name, "val_acc": r.best_val_acc,
                   "best_epoch": r.best_epoch, "n_val": int(len(idx))} for r, idx in results],
        "local_cv": local_cv(oof),
        "oof_rows": int(len(oof)),
        "train_rows": int(len(train.labels)),
        "train_sha256": train.fingerprint,
        "config": config.to_dict(),
        "inference": {"weights": "best", "tta": []},
    }
    write_manifest(output_dir, manifest, weight_files + log_files + ["oof.csv", "folds.csv", "config.json"])
    return TrainingRun(output_dir=output_dir, local_cv=local_cv(oof), fold_accuracy=fold_accuracies(oof),
                       summary=summary, figure=figure)


def run_inference(*, weights_dir: str | Path, data_dir: str | Path, output_dir: str | Path, device: str = "auto",
                  batch_size: int = 1024) -> InferenceRun:
    """Predict test.csv with every fold model listed in ``weights_dir``/manifest.json and average the folds.

    Each model is built from the manifest's spec with ``pretrained=False`` (no download: the kernel runs offline)
    and loaded with ``weights_only=True`` after its sha256 is checked. Writes ``submission.csv`` and
    ``test_probs.npz`` (per-fold probabilities, (n_test, 10) each, for the ensemble notebook).
    """
    weights_dir, output_dir = Path(weights_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(weights_dir)
    verify_files(weights_dir, manifest, names=[entry["weights"] for entry in manifest["folds"]])
    torch_device = resolve_device(device)
    spec = manifest["model"]["spec"]
    log.info("device: %s; %s × %d folds (local CV %.5f)", describe_device(torch_device), spec["name"],
             len(manifest["folds"]), manifest.get("local_cv", float("nan")))

    test = read_test(find_competition_file(data_dir, "test"))
    images = torch.from_numpy(test.images).to(torch_device)
    channels_last = manifest["config"].get("channels_last", False) and is_convolutional(spec["name"])
    per_fold = {}
    for entry in manifest["folds"]:
        model = create_model_from_spec(spec, pretrained=False).to(torch_device)
        load_weights(model, weights_dir / entry["weights"], model_name=spec["name"])
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        per_fold[f"fold{entry['fold']}"] = predict_probs(model, images, batch_size=batch_size,
                                                         channels_last=channels_last)
        log.info("fold %d predicted", entry["fold"])
    mean_probs = np.mean(list(per_fold.values()), axis=0)
    np.savez(output_dir / "test_probs.npz", mean=mean_probs, **per_fold)
    path = write_submission(output_dir / "submission.csv", make_submission(mean_probs), n_test=len(images))
    return InferenceRun(submission_path=path, test_probs=mean_probs, n_models=len(per_fold))


def find_weights_dir(explicit: str | Path | None) -> Path:
    """The folder holding manifest.json: the parameter, else the attached weights dataset / kernel output."""
    return find_input_dir(explicit, "manifest.json", "weights dir")


def find_data_dir(explicit: str | Path | None) -> Path:
    """The competition folder: the parameter, else the attached digit-recognizer competition."""
    return find_input_dir(explicit, ("train.csv", "test.csv", "train.csv.gz", "test.csv.gz"), "data dir")


def _kaggle_input_file(name: str) -> Path | None:
    try:
        return find_input_dir(None, name, name, root=KAGGLE_INPUT) / name
    except FileNotFoundError:
        return None

