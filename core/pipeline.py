"""The two recipes the notebooks call: ``run_training`` (folds → train each fold → OOF → CV → plots → manifest) and
``run_inference`` (manifest → k models → TTA views → average → submission.csv)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import torch

from .atomic import write_text_atomic
from .choice import InferenceChoice, choose_inference, fold_predictions, variant_file
from .config import Config, ConfigError, is_whole
from .data import FIX_DATA, find_competition_file, read_test, read_train
from .fold_result import FoldResult, entry_files, fold_file, manifest_entry
from .folds import load_or_make_folds
from .inference import inference_views, predict_folds
from .launch import plan_parallel, train_folds_in_workers
from .manifest import ManifestError, read_manifest, sha256_file, write_manifest
from .models import count_parameters, create_model, describe_pretrained, is_convolutional, model_spec, resolve_pretrained
from .oof import fold_accuracies, local_cv, report, write_oof
from .paths import KAGGLE_INPUT, find_input_dir, given_path, on_kaggle
from .plots import plot_training_curves
from .resume import adopt_previous_output, completed_fold
from .submission import make_submission, write_submission
from .trainer import resolve_device, train_fold
from .tta import views_to_evaluate

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingRun:
    output_dir: Path
    local_cv: float
    fold_accuracy: dict[int, float]
    summary: str
    figure: object  # matplotlib Figure of the training curves
    choice: InferenceChoice | None = None  # best/SWA weights and TTA, scored on OOF with paired tests


@dataclasses.dataclass
class InferenceRun:
    submission_path: Path
    test_probs: np.ndarray  # (n_test, 10), the average over folds
    n_models: int
    weights: str = "best"  # which weights of each fold: best epoch or SWA
    views: list[str] = dataclasses.field(default_factory=list)  # TTA views averaged ([] = none)


def describe_device(device: torch.device) -> str:
    """Say early which hardware the run got (Kaggle sometimes hands out something else than asked)."""
    if device.type == "cuda":
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda × {len(names)}: {', '.join(names)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def run_training(config: Config, *, data_dir: str | Path, output_dir: str | Path,
                 folds_path: str | Path | None = None, resume_from: str | Path | None = None) -> TrainingRun:
    """Train every fold of ``config`` on ``data_dir``/train.csv and write the run into ``output_dir``.

    Writes: ``<model>_fold<k>_best.pth`` and ``_log.csv`` per fold, ``folds.csv``, ``oof.csv``, ``config.json``,
    ``training_curves.png`` and ``manifest.json`` (the contract read by the inference notebook).

    Args:
        folds_path: a folds.csv to reuse (refused when made for another train.csv or another k). Default: one found
            among Kaggle's inputs, else ``output_dir/folds.csv`` (made on first use).
        resume_from: an earlier run's output folder (on Kaggle: the previous version's output attached as input);
            its finished folds are reused after their hashes are checked, a cut fold continues at its next epoch.
            A rerun into the same ``output_dir`` resumes without it.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    log.info("device: %s; model: %s; %d folds × %d epochs", describe_device(device), config.model, config.n_folds,
             config.epochs)
    kaggle = on_kaggle()
    log.info("%s", describe_pretrained(config.pretrained, config.model, on_kaggle=kaggle))
    # config.json and the manifest record what was used, so a resume compares like with like
    config = dataclasses.replace(config, pretrained=resolve_pretrained(config.pretrained, config.model,
                                                                       on_kaggle=kaggle))

    train = read_train(find_competition_file(data_dir, "train"), group_column=config.group_column)
    folds_file = output_dir / "folds.csv"
    reuse_from = given_path(folds_path, "folds_path", folder=False) or _kaggle_input_file("folds.csv")
    folds = load_or_make_folds(folds_file, train.labels, fingerprint=train.fingerprint, n_folds=config.n_folds,
                               method=config.fold_method, seed=config.seed, groups=train.groups,
                               reuse_from=reuse_from)
    config.save(output_dir / "config.json")

    images = torch.from_numpy(train.images)
    labels = torch.from_numpy(train.labels)
    adopt_previous_output(Path(resume_from) if resume_from else None, output_dir, config.model)
    splits = {fold: (np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)) for fold in config.fold_indices()}
    done: dict[int, FoldResult] = {}  # finished folds, checked before anything is rewritten
    for fold, (_, val_idx) in splits.items():
        result = completed_fold(output_dir, config, fingerprint=train.fingerprint, fold=fold, val_idx=val_idx)
        if result is not None:
            done[fold] = result
    todo = [fold for fold in splits if fold not in done]

    def record(result: FoldResult, val_idx: np.ndarray) -> None:
        """Keep a finished fold (train_fold wrote its _oof.npz) in a manifest marked incomplete (core.resume)."""
        done[result.fold] = result
        finished = [(done[fold], splits[fold][1]) for fold in splits if fold in done]
        write_manifest(output_dir, _manifest(config, train, finished, complete=False),
                       [name for r, _ in finished for name in entry_files(manifest_entry(config.model, r))])
        # the fold now resumes from its verified files: its optimizer-state checkpoint would only bloat the output
        (output_dir / fold_file(config.model, result.fold, "last")).unlink(missing_ok=True)

    plan = plan_parallel(config, device, n_folds=len(todo))
    # One model built here: its size for the log and, when workers will train from pretrained weights, their download
    # done once (one clear error if it fails; the workers then find the weights in the hub's cache).
    log.info("model %s: %.2f M parameters", config.model, count_parameters(
        create_model(config.model, pretrained=bool(todo and plan.launches and config.pretrained))) / 1e6)
    if todo and plan.launches:  # ddp ranks or one process per device write the fold files; we record each fold
        train_folds_in_workers(config, plan, images=train.images, labels=train.labels, folds=folds, fold_list=todo,
                               output_dir=output_dir, on_fold=record)
    else:
        for fold in todo:
            train_idx, val_idx = splits[fold]
            log.info("fold %d: %d train rows, %d validation rows", fold, len(train_idx), len(val_idx))
            record(train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=fold,
                              output_dir=output_dir, device=device), val_idx)
    results = [(done[fold], splits[fold][1]) for fold in splits]

    choice = _score_inference_options(config, results, images=images, labels=train.labels, device=device)
    oof = choice.oof  # what inference will do; each variant also gets its own oof_<variant>.csv
    write_oof(output_dir / "oof.csv", oof)
    variant_files = [variant_file(name) for name in choice.frames] if len(choice.frames) > 1 else []
    for name in choice.frames if variant_files else []:
        write_oof(output_dir / variant_file(name), choice.frames[name])
    summary = report(oof, n_rows=len(train.labels)) + "\n" + choice.report()  # the notebook prints it, once
    figure = plot_training_curves({r.fold: r.history for r, _ in results}, output_dir / "training_curves.png",
                                  title=f"{config.model}: local CV {local_cv(oof):.5f}")

    manifest = _manifest(config, train, results, complete=True, oof=oof, choice=choice)
    fold_names = [name for r, _ in results for name in entry_files(manifest_entry(config.model, r))]
    write_manifest(output_dir, manifest, fold_names + variant_files + ["oof.csv", "folds.csv", "config.json"])
    return TrainingRun(output_dir=output_dir, local_cv=local_cv(oof), fold_accuracy=fold_accuracies(oof),
                       summary=summary, figure=figure, choice=choice)


def _manifest(config: Config, train, results: list[tuple[FoldResult, np.ndarray]], *, complete: bool,
              oof=None, choice: InferenceChoice | None = None) -> dict:
    """manifest.json's body; ``complete`` is False while folds are still being trained (see core.resume)."""
    manifest = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "complete": complete,
        "model": {"name": config.model, "spec": model_spec(config.model)},
        "n_folds": config.n_folds,
        "folds": [manifest_entry(config.model, r, len(idx)) for r, idx in results],
        "train_rows": int(len(train.labels)),
        "train_sha256": train.fingerprint,
        "config": config.to_dict(),
    }
    if oof is not None and choice is not None:
        manifest.update(local_cv=local_cv(oof), oof_rows=int(len(oof)), inference=choice.manifest_entry())
    return manifest


def _score_inference_options(config: Config, results: list[tuple[FoldResult, np.ndarray]], *, images: torch.Tensor,
                             labels: np.ndarray, device: torch.device) -> InferenceChoice:
    """Score best/SWA weights with and without TTA on each fold's validation rows, and choose (core.choice)."""
    images = images.to(device)
    views = views_to_evaluate(config.tta)
    folds = [fold_predictions(fold=r.fold, val_idx=idx, best_probs=r.val_probs, best_path=r.weights_path,
                              swa_probs=r.swa_val_probs, swa_path=r.swa_weights_path, images=images, views=views,
                              spec=model_spec(config.model), batch_size=config.eval_batch_size,
                              channels_last=config.channels_last and is_convolutional(config.model))
             for r, idx in results]
    return choose_inference(folds, labels, tta_setting=config.tta)


def run_inference(*, weights_dir: str | Path, data_dir: str | Path, output_dir: str | Path, device: str = "auto",
                  batch_size: int = 1024, tta: str = "auto") -> InferenceRun:
    """Predict test.csv with every fold model listed in ``weights_dir``/manifest.json: views, then folds averaged.

    Each model is built from the manifest's spec with ``pretrained=False`` (no download: the kernel runs offline)
    and loaded with ``weights_only=True`` after its sha256 is checked; the manifest says which weights (best epoch or
    SWA). ``tta``: "auto" = the views training found helpful on OOF (manifest ``inference.tta``), "none", or a
    comma-separated view list (core.tta). Writes ``submission.csv``, ``test_probs.npz`` (per-fold probabilities,
    (n_test, 10) each, and their ``mean``) and ``test_probs.json`` (what made them, for the ensemble notebook).
    """
    if not is_whole(batch_size):
        raise ConfigError(f"batch_size = {batch_size!r}: must be a positive integer (test images per forward pass; "
                          "1024 is the default)")
    torch_device = resolve_device(device)
    weights_dir, output_dir = Path(weights_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(weights_dir)
    if manifest.get("complete") is False:
        raise ManifestError(f"{weights_dir / 'manifest.json'}: training stopped after {len(manifest['folds'])} of "
                            f"{manifest['n_folds']} folds; rerun the train notebook on the same output to finish it")
    chosen = manifest.get("inference", {})
    weights, views = chosen.get("weights", "best"), inference_views(tta, manifest)
    if views != list(chosen.get("tta", [])):
        log.warning("TTA %s differs from training's choice %s: oof.csv does not describe these test predictions",
                    views or "none", chosen.get("tta") or "none")
    spec = manifest["model"]["spec"]
    log.info("device: %s; %s × %d folds (local CV %.5f), %s weights, TTA: %s", describe_device(torch_device),
             spec["name"], len(manifest["folds"]), manifest.get("local_cv", float("nan")), weights,
             ", ".join(views) or "none")

    test = read_test(find_competition_file(data_dir, "test"))
    images = torch.from_numpy(test.images).to(torch_device)
    per_fold = predict_folds(weights_dir, manifest, images, weights=weights, views=views, batch_size=batch_size)
    mean_probs = np.mean(list(per_fold.values()), axis=0)
    np.savez(output_dir / "test_probs.npz", mean=mean_probs, **per_fold)
    provenance = {"weights": weights, "tta": views, "test_sha256": test.fingerprint, "n_test": int(len(images)),
                  "manifest_sha256": sha256_file(weights_dir / "manifest.json"), "model": spec["name"]}
    write_text_atomic(output_dir / "test_probs.json", json.dumps(provenance, indent=2) + "\n")
    path = write_submission(output_dir / "submission.csv", make_submission(mean_probs), n_test=len(images))
    return InferenceRun(submission_path=path, test_probs=mean_probs, n_models=len(per_fold), weights=weights,
                        views=views)


def find_weights_dir(explicit: str | Path | None) -> Path:
    """The folder holding manifest.json: the parameter, else the attached weights dataset / kernel output."""
    return find_input_dir(explicit, "manifest.json", "weights dir")


def find_data_dir(explicit: str | Path | None) -> Path:
    """The competition folder: the parameter, else the attached digit-recognizer competition."""
    return find_input_dir(explicit, ("train.csv", "test.csv", "train.csv.gz", "test.csv.gz"), "data dir",
                          fix=FIX_DATA)


def _kaggle_input_file(name: str) -> Path | None:
    try:
        return find_input_dir(None, name, name, root=KAGGLE_INPUT) / name
    except FileNotFoundError:
        return None

