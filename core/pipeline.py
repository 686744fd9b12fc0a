"""The train notebook's recipe, one function per step, each returning what the notebook shows below it:

1. ``prepare_run``: the config resolved (pretrained auto → yes/no), the device and how the folds use it, the recipe
   in words (core.recipe);
2. data: ``core.data.read_train`` (validated) — the notebook plots its class counts — and ``check_test_data``:
   test.csv and sample_submission.csv, which inference reads after training, checked before any fold trains;
3. ``prepare_folds``: folds.csv made once or reused (and from where) → a fold × class table, and a warning when
   identical train images sit in different folds;
4. ``describe_model`` and ``planned_schedule``: parameters, MFLOP per image, the learning rate of every optimizer step;
5. ``train_folds``: every fold not finished yet (in this process or in workers, core.launch), each recorded in
   manifest.json as soon as it ends, so that a killed run resumes at the next fold;
6. ``score_out_of_fold``: best/SWA weights × TTA chosen on the OOF rows with paired tests (core.choice), oof.csv,
   the per-fold table and the local CV;
7. error analysis: core.plots on the OOF rows;
8. ``training_curves`` (training_curves.png), then ``finish_run``: the complete manifest.json — what inference loads.

``run_training`` is all of them in one call (tests, scripts).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .choice import InferenceChoice, choose_inference, fold_predictions, variant_file
from .config import Config
from .data import (FIX_DATA, IMAGE_SIDE, TrainData, check_sample_submission, find_competition_file, find_duplicates,
                   read_test, read_train)
from .device import describe_device, resolve_device
from .fold_result import FoldResult, entry_files, final_noise_scale, fold_file, manifest_entry
from .folds import load_or_make_folds, warn_about_duplicates
from .launch import ParallelPlan, plan_parallel, train_folds_in_workers
from .manifest import sha256_file, write_manifest
from .noise_scale import batch_hint
from .models import (count_parameters, create_model_from_spec, describe_pretrained, forward_flops, is_convolutional,
                     resolve_pretrained)
from .oof import PROB_COLUMNS, fold_accuracies, local_cv, report, write_oof
from .paths import find_input_file, given_path, on_kaggle
from .plots import plot_lr_schedule, plot_training_curves
from .presets import expected_result
from .pseudo import PseudoLabels, fold_training_data, load_pseudo_labels
from .recipe import describe_parallel, describe_recipe
from .resume import adopt_previous_output, completed_fold
from .scheduler import schedule_rates
from .trainer import plan_fold, train_fold
from .tta import views_to_evaluate

log = logging.getLogger(__name__)

__all__ = ["RunSetup", "TestFiles", "FoldSplit", "Schedule", "OutOfFold", "TrainingRun", "prepare_run",
           "check_test_data", "prepare_folds", "describe_model", "planned_schedule", "train_folds", "score_out_of_fold",
           "training_curves", "finish_run", "run_training"]


@dataclasses.dataclass
class RunSetup:
    """What every step of one training run shares: the resolved config, where it writes, the device and the plan."""

    config: Config  # ``pretrained`` resolved to True/False: config.json and the manifest record what was used
    output_dir: Path
    device: torch.device
    plan: ParallelPlan  # for all the folds of config.fold_indices(); train_folds re-plans for the folds left
    pretrained_setting: bool | str = "auto"  # what the notebook asked for ("auto", True, False), for the words
    commit: str = "unknown"  # the digitkit commit the notebook was built from (build.py fills it in)
    started: float = dataclasses.field(default_factory=time.time)  # Unix time the run was set up: wall time's start

    @property
    def recipe(self) -> str:
        """The run in one markdown paragraph (the notebook shows it first)."""
        gpus = torch.cuda.device_count() if self.device.type == "cuda" else 0
        return describe_recipe(self.config, model=describe_pretrained(self.pretrained_setting, self.config.model,
                                                                      on_kaggle=on_kaggle()),
                               devices=describe_device(self.device),
                               parallel=describe_parallel(self.plan.mode, self.plan.workers, gpus=gpus),
                               expected=expected_result(self.config))

    def _repr_markdown_(self) -> str:
        return self.recipe

    def __repr__(self) -> str:  # what a saved notebook keeps as text beside the markdown
        return f"RunSetup({self.config.model}, {self.config.n_folds} folds × {self.config.epochs} epochs, " \
               f"{self.device}, parallel {self.plan.mode} → {self.output_dir})"


@dataclasses.dataclass
class FoldSplit:
    """The run's folds (core.folds logs whether they were made or reused, and from where)."""

    folds: np.ndarray  # int64 (N,): the fold of each train.csv row
    path: Path  # the run's folds.csv
    labels: np.ndarray  # int64 (N,)
    pseudo: PseudoLabels | None = None  # test rows each fold also trains on (config.pseudo_labels)

    def splits(self, fold_indices: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """fold → (training row indices, validation row indices)."""
        return {f: (np.flatnonzero(self.folds != f), np.flatnonzero(self.folds == f)) for f in fold_indices}

    def n_train(self, fold: int) -> int:
        """Rows fold ``fold`` trains on: train.csv's other folds, plus its pseudo-labelled test rows."""
        return int((self.folds != fold).sum()) + (len(self.pseudo.rows(fold)) if self.pseudo is not None else 0)

    def table(self) -> pd.DataFrame:
        """Rows per fold (rows) and digit (columns), with totals: each fold should hold every digit alike."""
        return pd.crosstab(pd.Series(self.folds, name="fold"), pd.Series(self.labels, name="digit"),
                           margins=True, margins_name="all")

    def _repr_html_(self) -> str:
        html = self.table().to_html()
        if self.pseudo is not None:
            html += (f"<p>and pseudo-labelled test rows per fold (from {self.pseudo.source}, fold k's own earlier "
                     f"model, top probability ≥ {self.pseudo.threshold:g}):</p>{self.pseudo.table().to_html()}")
        return html

    def __repr__(self) -> str:
        return str(self.table()) + (f"\n{self.pseudo!r}" if self.pseudo is not None else "")


@dataclasses.dataclass
class OutOfFold:
    """Step 6's result: the OOF predictions of what inference will do, the options compared, the local CV."""

    choice: InferenceChoice
    table: pd.DataFrame  # one row per fold (+ "all"): validation rows, best epoch, accuracy of each option
    n_rows: int  # rows of train.csv (the OOF rows cover them all unless folds_to_run picks some folds)
    noise: str = ""  # each fold's gradient noise scale beside the batch size, with a hint when they are far apart

    @property
    def report(self) -> str:
        """The local CV and the options compared, with their paired tests (the per-fold figures are in ``table``)."""
        return f"{report(self.oof, n_rows=self.n_rows)}\n{self.choice.report()}" + (f"\n{self.noise}" if self.noise
                                                                                     else "")

    @property
    def oof(self) -> pd.DataFrame:
        return self.choice.oof

    @property
    def local_cv(self) -> float:
        return local_cv(self.choice.oof)

    @property
    def row_ids(self) -> np.ndarray:
        """int (M,): the train.csv rows the OOF predictions are of (0-based, ascending)."""
        return self.oof["row_id"].to_numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.oof["label"].to_numpy()

    @property
    def preds(self) -> np.ndarray:
        return self.oof["pred"].to_numpy()

    @property
    def probs(self) -> np.ndarray:
        """float (M, 10): the probabilities inference's option gives each OOF row."""
        return self.oof[PROB_COLUMNS].to_numpy()


@dataclasses.dataclass
class TrainingRun:
    output_dir: Path
    local_cv: float
    fold_accuracy: dict[int, float]
    summary: str
    figure: object  # matplotlib Figure of the training curves
    choice: InferenceChoice | None = None  # best/SWA weights and TTA, scored on OOF with paired tests


# -------------------------------------------------------------------------------------------------- 1 · recipe
def prepare_run(config: Config, *, output_dir: str | Path, commit: str = "unknown") -> RunSetup:
    """Resolve ``pretrained`` and the device, plan how the folds use it, and make ``output_dir``. ``commit`` (the
    digitkit commit the notebook was built from) is recorded in manifest.json with the device and the wall time."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    resolved = dataclasses.replace(config, pretrained=resolve_pretrained(config.pretrained, config.model,
                                                                         on_kaggle=on_kaggle()))
    return RunSetup(config=resolved, output_dir=output_dir, device=device, pretrained_setting=config.pretrained,
                    plan=plan_parallel(resolved, device, n_folds=len(resolved.fold_indices())), commit=commit)


# ---------------------------------------------------------------------------------------------------- 2 · data
@dataclasses.dataclass
class TestFiles:
    """What inference will read, checked before training: test.csv (None when the folder has none) and its rows, and
    sample_submission.csv (None when absent)."""

    __test__ = False  # not a pytest test class

    test_path: Path | None
    rows: int = 0
    sample_path: Path | None = None

    def __repr__(self) -> str:
        if self.test_path is None:
            return "test.csv: not in data_dir (training goes on; the inference notebook will need it)"
        sample = (f"; {self.sample_path.name}: ImageId,Label, one row per test image" if self.sample_path else
                  "; no sample_submission.csv")
        return f"{self.test_path.name}: {self.rows:,} images, valid{sample}"


def check_test_data(data_dir: str | Path) -> TestFiles:
    """Validate ``data_dir``'s test.csv (core.data.read_test) and, when present, check sample_submission.csv against it
    (core.data.check_sample_submission), so that a bad file stops the run before the folds train rather than in the
    inference notebook after them. A folder without test.csv (a train-only copy) is logged and allowed.

    Raises:
        DataError: test.csv or sample_submission.csv is unusable; the message names the file and the fix.
    """
    data_dir = Path(data_dir)
    stems = [data_dir / f"{stem}{ext}" for stem in ("test", "sample_submission") for ext in (".csv", ".csv.gz")]
    present = [path for path in stems if path.exists() or path.is_symlink()]  # a broken link is refused by the reader
    if not any(path.name.startswith("test.") for path in present):
        log.warning("%s has no test.csv: training goes on, but the inference notebook will need it (%s)", data_dir,
                    FIX_DATA)
        return TestFiles(test_path=None)
    test_path = find_competition_file(data_dir, "test")
    rows = len(read_test(test_path).images)
    sample = next((path for path in present if path.name.startswith("sample_submission.")), None)
    if sample is not None:
        check_sample_submission(sample, rows, test_name=str(test_path))
    return TestFiles(test_path=test_path, rows=rows, sample_path=sample)


# --------------------------------------------------------------------------------------------------- 3 · folds
def prepare_folds(setup: RunSetup, train: TrainData, *, folds_path: str | Path | None = None,
                  data_dir: str | Path | None = None) -> FoldSplit:
    """The run's ``folds.csv``: reused from ``folds_path`` (refused when made for another train.csv or another k) or
    one attached among Kaggle's inputs, else the output folder's own (made on first use, then reused); with
    ``config.pseudo_labels``, each fold's pseudo-labelled rows of ``data_dir``'s test.csv (core.pseudo). Identical
    train images in different folds are logged as a warning (core.folds.warn_about_duplicates); the folds are kept."""
    config = setup.config
    reuse_from = given_path(folds_path, "folds_path", folder=False) or find_input_file("folds.csv")
    path = setup.output_dir / "folds.csv"
    folds = load_or_make_folds(path, train.labels, fingerprint=train.fingerprint, n_folds=config.n_folds,
                               method=config.fold_method, seed=config.seed, groups=train.groups, reuse_from=reuse_from)
    split = FoldSplit(folds=np.asarray(folds, dtype=np.int64), path=path,
                      labels=np.asarray(train.labels, dtype=np.int64))
    warn_about_duplicates(find_duplicates(train.images, train.labels), split.folds)
    if config.pseudo_labels:
        assert data_dir is not None, "pseudo-labels need data_dir: the folder of this run's test.csv"
        split.pseudo = load_pseudo_labels(config.pseudo_labels, test=read_test(find_competition_file(data_dir, "test")),
                                          n_folds=config.n_folds, folds_sha256=sha256_file(path),
                                          threshold=config.pseudo_threshold)
    return split


# ------------------------------------------------------------------------------------- 4 · model and schedule
def describe_model(setup: RunSetup) -> str:
    """"smallcnn: 0.29 M parameters, 58.3 MFLOP per 28×28 image (forward; training ≈ 3×)", from one model built
    here with random weights (nothing is downloaded)."""
    config = setup.config
    model = create_model_from_spec(config.model_spec())
    resized = f" (resized to {config.input_size} px)" if config.input_size != IMAGE_SIDE else ""
    return (f"{config.model}: {count_parameters(model) / 1e6:.2f} M parameters, {forward_flops(model) / 1e6:.1f} "
            f"MFLOP per 28×28 image{resized} (forward; training ≈ 3×)")


@dataclasses.dataclass
class Schedule:
    """The learning rate of every optimizer step of one fold."""

    rates: list[float]
    steps_per_epoch: int
    warmup_steps: int
    batch_size: int

    def figure(self, title: str = ""):
        return plot_lr_schedule(self.rates, steps_per_epoch=self.steps_per_epoch, warmup_steps=self.warmup_steps,
                                title=title or f"learning rate per optimizer step: {len(self.rates)} steps = "
                                               f"{len(self.rates) / self.steps_per_epoch:g} epochs × "
                                               f"{self.steps_per_epoch} steps of {self.batch_size} images")


def planned_schedule(setup: RunSetup, split: FoldSplit) -> Schedule:
    """The schedule a fold follows (its training rows: all rows but the first trained fold's)."""
    config = setup.config
    n_train = split.n_train(config.fold_indices()[0])
    batch, per_epoch, total, epochs = plan_fold(config, n_train)
    rates, warmup = schedule_rates(scheduler=config.scheduler, learning_rate=config.resolved.learning_rate,
                                   min_lr=config.min_lr, total_steps=total, epochs=epochs,
                                   warmup_epochs=config.resolved.warmup_epochs)
    return Schedule(rates=rates, steps_per_epoch=per_epoch, warmup_steps=warmup, batch_size=batch)


# ------------------------------------------------------------------------------------------------ 5 · training
def train_folds(setup: RunSetup, train: TrainData, split: FoldSplit, *,
                resume_from: str | Path | None = None) -> list[tuple[FoldResult, np.ndarray]]:
    """Train every fold of ``config.fold_indices()`` that is not finished yet; return [(result, val_idx)] in order.

    Finished folds of an earlier run in ``output_dir`` (or copied from ``resume_from``: on Kaggle the previous
    version's output attached as input) are reused after their hashes are checked; a cut fold continues at its next
    epoch. Each fold is recorded in manifest.json (marked incomplete) as soon as it ends.
    """
    config, output_dir = setup.config, setup.output_dir
    config.save(output_dir / "config.json")
    adopt_previous_output(Path(resume_from) if resume_from else None, output_dir, config.model)
    splits = split.splits(config.fold_indices())
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
        manifest = _manifest(config, train, finished, complete=False)
        write_manifest(output_dir, manifest, [name for entry in manifest["folds"] for name in entry_files(entry)])
        # the fold now resumes from its verified files: its optimizer-state checkpoint would only bloat the output
        (output_dir / fold_file(config.model, result.fold, "last")).unlink(missing_ok=True)

    plan = plan_parallel(config, setup.device, n_folds=len(todo))
    if todo and plan.launches and config.pretrained:
        # the workers' pretrained weights downloaded once, here: one clear error if that fails, and the workers then
        # find them in the hub's cache instead of each downloading them
        create_model_from_spec(config.model_spec(), pretrained=True)
    if todo and plan.launches:  # ddp ranks or one process per device write the fold files; we record each fold
        train_folds_in_workers(config, plan, images=train.images, labels=train.labels, folds=split.folds,
                               fold_list=todo, output_dir=output_dir, on_fold=record, pseudo=split.pseudo)
    else:
        for fold in todo:
            train_idx, val_idx = splits[fold]
            images, labels, train_idx = fold_training_data(split.pseudo, train.images, train.labels, train_idx, fold)
            log.info("fold %d: %d train rows, %d validation rows", fold, len(train_idx), len(val_idx))
            record(train_fold(config, images=torch.from_numpy(images), labels=torch.from_numpy(labels),
                              train_idx=train_idx, val_idx=val_idx, fold=fold, output_dir=output_dir,
                              device=setup.device), val_idx)
    return [(done[fold], splits[fold][1]) for fold in splits]


# ---------------------------------------------------------------------------------------------- 6 · OOF → CV
def score_out_of_fold(setup: RunSetup, train: TrainData,
                      results: list[tuple[FoldResult, np.ndarray]]) -> OutOfFold:
    """Score best/SWA weights with and without TTA on each fold's validation rows, choose (core.choice), write
    ``oof.csv`` (what inference will do) and, when several options were scored, ``oof_<option>.csv`` each."""
    config, output_dir = setup.config, setup.output_dir
    images = torch.from_numpy(train.images).to(setup.device)
    views = views_to_evaluate(config.tta)
    folds = [fold_predictions(fold=r.fold, val_idx=idx, best_probs=r.val_probs, best_path=r.weights_path,
                              swa_probs=r.swa_val_probs, swa_path=r.swa_weights_path, images=images, views=views,
                              spec=config.model_spec(), batch_size=config.eval_batch_size,
                              channels_last=config.channels_last and is_convolutional(config.model))
             for r, idx in results]
    choice = choose_inference(folds, train.labels, tta_setting=config.tta)
    write_oof(output_dir / "oof.csv", choice.oof)
    for name in choice.frames if len(choice.frames) > 1 else []:
        write_oof(output_dir / variant_file(name), choice.frames[name])
    return OutOfFold(choice=choice, table=_cv_table(choice, results), n_rows=len(train.labels),
                     noise=describe_noise_scale([final_noise_scale(r.history) for r, _ in results],
                                                batch_size=config.resolved.batch_size))


def describe_noise_scale(values: list[float | None], *, batch_size: int) -> str:
    """One line: the folds' gradient noise scale B_simple at their last epoch beside the batch size, and a hint
    (core.noise_scale.batch_hint) when the two are far apart; "" when no fold measured one."""
    measured = [v for v in values if v is not None]
    if not measured:
        return ""
    median = float(np.median(measured))
    line = (f"gradient noise scale B_simple at the last epoch: {', '.join(f'{v:,.0f}' for v in measured)} "
            f"(median {median:,.0f}) with batch_size = {batch_size}")
    hint = batch_hint(batch_size, median)
    return line + (f"\nhint: {hint}" if hint else "")


def _cv_table(choice: InferenceChoice, results: list[tuple[FoldResult, np.ndarray]]) -> pd.DataFrame:
    by_option = {name: fold_accuracies(frame) for name, frame in choice.frames.items()}
    rows: list[dict[str, Any]] = [{"fold": r.fold, "validation rows": len(idx), "best epoch": r.best_epoch,
             **{name: acc[r.fold] for name, acc in by_option.items()}} for r, idx in results]
    rows.append({"fold": "all (local CV)", "validation rows": sum(len(idx) for _, idx in results), "best epoch": "",
                 **{name: local_cv(frame) for name, frame in choice.frames.items()}})
    table = pd.DataFrame(rows).set_index("fold")
    return table.rename(columns={choice.variant: f"{choice.variant} (inference)"})


# -------------------------------------------------------------------------------------- 8 · curves, manifest
def training_curves(setup: RunSetup, results: list[tuple[FoldResult, np.ndarray]], scored: OutOfFold):
    """Loss, accuracy and learning rate per epoch of every fold, saved as training_curves.png; returns the figure."""
    return plot_training_curves({r.fold: r.history for r, _ in results}, setup.output_dir / "training_curves.png",
                                title=f"{setup.config.model}: local CV {scored.local_cv:.5f}",
                                batch_size=setup.config.resolved.batch_size)


def finish_run(setup: RunSetup, train: TrainData, results: list[tuple[FoldResult, np.ndarray]],
               scored: OutOfFold) -> dict:
    """Write the complete manifest.json (with every file's sha256): what inference loads. Returns the manifest."""
    config, output_dir, choice = setup.config, setup.output_dir, scored.choice
    variant_files = [variant_file(name) for name in choice.frames] if len(choice.frames) > 1 else []
    manifest = _manifest(config, train, results, complete=True, choice=choice)
    manifest["run"] = run_record(setup)
    fold_names = [name for entry in manifest["folds"] for name in entry_files(entry)]
    return write_manifest(output_dir, manifest, fold_names + variant_files + ["oof.csv", "folds.csv", "config.json"])


def run_record(setup: RunSetup) -> dict:
    """manifest.json's ``run``: what the experiment journal (tools/journal.py) lists beside the local CV — the
    digitkit commit, the device, where it ran, and the wall time (s) from ``prepare_run`` to now (this session only
    when the run resumed an earlier one's folds)."""
    return {"commit": setup.commit, "device": describe_device(setup.device), "on_kaggle": on_kaggle(),
            "started": dt.datetime.fromtimestamp(setup.started, dt.UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(time.time() - setup.started, 1)}


def run_training(config: Config, *, data_dir: str | Path, output_dir: str | Path,
                 folds_path: str | Path | None = None, resume_from: str | Path | None = None,
                 commit: str = "unknown") -> TrainingRun:
    """Every step of the train notebook in one call: ``data_dir``/train.csv → ``output_dir`` (``data_dir``'s
    test.csv and sample_submission.csv, when there, checked first: inference reads them).

    Writes per fold ``<model>_fold<k>_best.pth`` (``_swa.pth`` with SWA), ``_log.csv`` and ``_oof.npz`` (its result,
    core.fold_result), then ``folds.csv``, ``oof.csv`` (and ``oof_<option>.csv`` per inference option scored),
    ``config.json``, ``training_curves.png`` and ``manifest.json`` (the contract read by the inference notebook).
    """
    setup = prepare_run(config, output_dir=output_dir, commit=commit)
    log.info("device: %s; model: %s; %d folds × %d epochs", describe_device(setup.device), config.model,
             config.n_folds, config.epochs)
    log.info("%s", describe_pretrained(config.pretrained, config.model, on_kaggle=on_kaggle()))
    train = read_train(find_competition_file(data_dir, "train"), group_column=config.group_column)
    checked = check_test_data(data_dir)  # a folder without test.csv was logged as a warning
    if checked.test_path is not None:
        log.info("%s", checked)
    split = prepare_folds(setup, train, data_dir=data_dir, folds_path=folds_path)
    log.info("%s", describe_model(setup))
    results = train_folds(setup, train, split, resume_from=resume_from)
    scored = score_out_of_fold(setup, train, results)
    figure = training_curves(setup, results, scored)
    finish_run(setup, train, results, scored)
    return TrainingRun(output_dir=setup.output_dir, local_cv=scored.local_cv,
                       fold_accuracy=fold_accuracies(scored.oof), summary=scored.report, figure=figure,
                       choice=scored.choice)


def _manifest(config: Config, train: TrainData, results: list[tuple[FoldResult, np.ndarray]], *, complete: bool,
              choice: InferenceChoice | None = None) -> dict:
    """manifest.json's body; ``complete`` is False while folds are still being trained (see core.resume), and the
    local CV and inference choice come with ``choice`` once every fold is scored."""
    manifest = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "model": {"name": config.model, "spec": config.model_spec()},
        "n_folds": config.n_folds,
        "folds": [manifest_entry(config.model, r, len(idx)) for r, idx in results],
        "train_rows": len(train.labels),
        "train_sha256": train.fingerprint,
        "config": config.to_dict(),
    }
    if choice is not None:
        manifest.update(local_cv=local_cv(choice.oof), oof_rows=len(choice.oof), inference=choice.manifest_entry())
    return manifest

