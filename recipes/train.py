#!/usr/bin/env python3
"""Recipe for training an environmental sound classifier on ESC-50 (or ESC-10).

The backbone (FocalNet, ViT, ...), head, front end, augmentation, optimiser,
scheduler and loss all come from the YAML file; this script only wires data and
training together.

To run this recipe, do the following:
> python recipes/train.py hparams/focalnet_cpu.yaml --data_folder DIR --esc10 True

Running the same command again after an interruption resumes from the last
checkpoint; the test stage uses the checkpoint with the lowest validation error
(``checkpoint_selection: valid_error``) or the last epoch's
(``checkpoint_selection: last_epoch``: a fixed schedule, nothing chosen on data;
``--valid_folds "[]"`` then trains without a validation split).
Running it again with more epochs (or another batch size, or another number of
processes) continues the run on the learning-rate schedule of the new length.

Several processes (GPUs, machines) follow SpeechBrain's conventions:
> torchrun --nproc_per_node=2 recipes/train.py hparams/focalnet.yaml --data_folder DIR
(add ``--distributed_backend gloo`` on CPU). Data preparation runs on the main
process while the others wait; each process trains on its share of the training
clips; every process evaluates the whole validation and test splits (so their
metrics are those of the whole split) and only the main process writes
checkpoints, logs and the test report.

Authors
 * focalnet-audio contributors
"""

import json
import logging
import os
import sys

import speechbrain as sb
import torch
from speechbrain.utils.distributed import ddp_init_group, if_main_process, run_on_main

from focalnet_lobes.training.report import ClassificationReport
from esc50_prepare import DownloadError, ESC50NotFoundError, prepare_esc50
from focalnet_lobes.interpretation.posthoc import classifier_datasets
from focalnet_lobes.models.pretrained_init import initialise_new_run
from focalnet_lobes.training.checkpoints import (
    CheckpointMismatchError, check_resumable, keep_random_state,
)
from focalnet_lobes.training.losses import TrainingForward
from focalnet_lobes.training.plan import (
    TrainingPlanError,
    batch_features,
    build_step_schedule,
    check_folds,
    check_schedule,
    check_steps,
    check_training_numbers,
    load_recipe_hparams,
    no_empty_folders_left_on,
    process_group_closed_at_exit,
    step_schedule,
    world_size,
    wrap_distributed,
)

logger = logging.getLogger(__name__)


class RecipeError(ValueError):
    """A problem with the recipe's inputs that the user can fix (shown without a traceback)."""


class ESC50Brain(sb.Brain):
    """Trains a :class:`~focalnet_lobes.models.classifier.SpectrogramClassifier` on clips."""

    def compute_forward(self, batch, stage):
        """Waveforms -> features (augmented when training) -> logits."""
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        targets = torch.nn.functional.one_hot(batch.label, self.hparams.n_classes).float()
        wav_augment = self.hparams.wav_augment if stage == sb.Stage.TRAIN else None
        cache = getattr(self.hparams, "feature_cache", None)
        wav_mix = getattr(self.hparams, "wav_mix", None)  # between-class mixing of waveforms
        if stage == sb.Stage.TRAIN and wav_mix is not None:
            mixed, targets = wav_mix(wavs, targets)
            if mixed is not wavs:  # mixes are new clips: no cached features
                wavs, cache = mixed, None
        features = batch_features(
            self.hparams.compute_features, batch.id, wavs, wav_lens, wav_augment, cache
        )
        if stage == sb.Stage.TRAIN:
            if self.hparams.feature_augment is not None:
                features = self.hparams.feature_augment(features)
            if self.hparams.mixup is not None:
                features, targets = self.hparams.mixup(features, targets)
            term = getattr(self.hparams, "masked_in_loss", None)
            if term is not None and term.active:  # the map's faithfulness terms
                model = self.modules.model
                epoch = self.hparams.epoch_counter.current  # the terms may start late
                if isinstance(model, torch.nn.parallel.DistributedDataParallel):
                    logits, extra = model(features, targets, epoch=epoch)  # DDP(TrainingForward)
                else:
                    logits, extra = term(model, features, targets, epoch=epoch)
                return logits, targets, extra
        logits = self.classifier(features)
        return logits, targets, None

    @property
    def classifier(self):
        """The model alone (DDP-wrapped under torchrun), without the training term."""
        model = self.modules.model
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            if isinstance(model.module, TrainingForward):
                return model.module.model
        return model

    @property
    def trained_model(self):
        """The model's own module: no DDP wrapper, no training term (what the weight average copies)."""
        model = self.classifier
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return model.module
        return model

    def compute_objectives(self, predictions, batch, stage):
        """Loss on (possibly mixed) soft targets; collects predictions when evaluating."""
        logits, targets, extra = predictions
        loss = self.hparams.compute_cost(logits, targets)
        if extra is not None:
            loss = loss + extra
            self.term_sum += float(extra.detach())
            self.term_batches += 1
        if stage != sb.Stage.TRAIN:
            self.report.append(batch.id, logits.detach().float(), batch.label)
        return loss

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Step the per-step learning-rate schedule and the weight average after each optimiser step."""
        if should_step:
            step_schedule(self.lr_scheduler, self.total_steps)
            if self.weight_average is not None:
                self.weight_average.update(self.trained_model, self.hparams.epoch_counter.current)

    def on_stage_start(self, stage, epoch=None):
        """Fresh prediction collector for every evaluation stage, fresh term mean for training."""
        if stage != sb.Stage.TRAIN:
            self.report = ClassificationReport(self.hparams.class_names)
        self.term_sum, self.term_batches = 0.0, 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint (the best by validation error, or the last), write the test report."""
        if stage == sb.Stage.TRAIN:
            if self.weight_average is not None and epoch >= self.hparams.number_of_epochs:
                # The schedule's end: the averaged weights become the model that the last
                # validation sees and the checkpoint keeps.
                if self.weight_average.apply_to(self.trained_model):
                    logger.info("The model is now the exponential moving average of its "
                                "weights (decay %s; %d optimiser steps averaged)",
                                self.weight_average.decay, self.weight_average.updates)
            self.train_loss = mean_over_processes(stage_loss, self.device)
            term = getattr(self.hparams, "masked_in_loss", None)
            self.train_term = None  # the faithfulness terms' mean over the epoch's batches
            if term is not None and term.active:  # the same on every process
                self.train_term = mean_over_processes(
                    self.term_sum / max(self.term_batches, 1), self.device
                )
            if not self.validates:  # a fixed schedule without a validation split
                self._end_epoch(epoch)
            return
        stats = {"loss": stage_loss, "error": 1.0 - self.report.accuracy()}
        if stage == sb.Stage.VALID:
            self._end_epoch(epoch, stats)
        elif stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            # Every process evaluated the whole split; the main one writes the report.
            if if_main_process():
                summary = self.report.write(self.hparams.output_folder, prefix="test")
                logger.info("Test accuracy: %.2f%%", 100 * summary["accuracy"])
                logger.info("Confusion matrix (rows: true, columns: predicted):\n%s",
                            self.report.confusion_text())

    def _end_epoch(self, epoch, valid_stats=None):
        """Log the epoch and checkpoint it: keep the lowest validation error, or the last."""
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]},
            train_stats={"loss": self.train_loss,
                         **({"faithfulness term": self.train_term} if self.train_term is not None else {})},
            **({"valid_stats": valid_stats} if valid_stats is not None else {}),
        )
        meta = {} if valid_stats is None else {"error": valid_stats["error"]}
        if valid_stats is None:
            # Saved from the training stage: SpeechBrain resets its step count and running
            # loss only after on_stage_end, so do it first, or the checkpoint carries them
            # into the test loss and into the next epoch of a resumed run.
            self.step, self.avg_train_loss = 0, 0.0
        if self.selection == "last_epoch":  # validation, if any, only watched
            self.checkpointer.save_and_keep_only(meta={**meta, "epoch": epoch}, num_to_keep=1)
        else:
            self.checkpointer.save_and_keep_only(meta=meta, min_keys=["error"])

    def init_optimizers(self):
        """Create the optimiser and the per-step scheduler, both checkpointed.

        ``self.steps_per_epoch`` (optimiser steps per process and epoch, see
        :func:`focalnet_lobes.training.plan.optimizer_steps_per_epoch`) is set by
        :func:`main`; the schedule spans ``number_of_epochs`` such epochs. The weight
        average (YAML ``weight_average``, when its decay is set) is created here, as a
        copy of the model, and checkpointed too.
        """
        super().init_optimizers()
        self.weight_average = getattr(self.hparams, "weight_average", None)
        if self.weight_average is not None and self.weight_average.active:
            self.weight_average.attach(self.trained_model)
            if self.checkpointer is not None:
                # optional: a run checkpointed without averaging starts a new average
                self.checkpointer.add_recoverable(
                    "weight_average", self.weight_average, optional_load=True
                )
        else:
            self.weight_average = None
        self.lr_scheduler = None
        self.total_steps = self.hparams.number_of_epochs * self.steps_per_epoch
        factory = getattr(self.hparams, "lr_scheduler", None)
        if factory is not None and self.optimizer is not None:
            self.lr_scheduler = build_step_schedule(factory, self.optimizer, self.total_steps)
            if self.checkpointer is not None:
                self.checkpointer.add_recoverable("lr_scheduler", self.lr_scheduler)

    def _wrap_distributed(self):
        """DDP-wrap the model under ``torchrun`` (CPU too: no SyncBatchNorm there).

        With an active faithfulness term the model and the term are wrapped together
        (:class:`~focalnet_lobes.training.losses.TrainingForward`), so that the masked
        passes' gradients are synchronised like the plain pass's.
        """
        if self.distributed_launch:
            term = getattr(self.hparams, "masked_in_loss", None)
            if term is not None and term.active:
                self.modules["model"] = TrainingForward(self.modules["model"], term)
            wrap_distributed(self)
        else:
            super()._wrap_distributed()

    def on_fit_start(self):
        """Recover the latest checkpoint; refit the schedule if the run's length changed.

        A checkpoint written by a run of another length (fewer epochs, another
        batch size or number of processes) holds a schedule of another total; it
        is rebuilt for this run's total and set at the optimiser steps the
        completed epochs take in this run, so training continues on the new curve
        (:func:`focalnet_lobes.training.plan.build_step_schedule`). A checkpoint
        written without a weight average, recovered by a run that averages from an
        epoch it has already passed, starts a new average and says which epochs it misses.
        """
        super().on_fit_start()
        self._warn_average_missing_epochs()
        scheduler = self.lr_scheduler
        recovered_total = getattr(scheduler, "total_steps", None)
        if scheduler is None or recovered_total in (None, self.total_steps):
            return
        epochs_done = int(self.hparams.epoch_counter.current)
        position = epochs_done * self.steps_per_epoch
        self.lr_scheduler = build_step_schedule(
            self.hparams.lr_scheduler, self.optimizer, self.total_steps, position
        )
        self.checkpointer.add_recoverable("lr_scheduler", self.lr_scheduler)
        if epochs_done < self.hparams.number_of_epochs:
            logger.warning(
                "The checkpoint's learning-rate schedule has %d steps, this run %d "
                "(%d epochs x %d steps): continuing after epoch %d on the schedule of "
                "the new length (learning rate %.3g)",
                recovered_total, self.total_steps, self.hparams.number_of_epochs,
                self.steps_per_epoch, epochs_done, self.optimizer.param_groups[0]["lr"],
            )

    def _warn_average_missing_epochs(self):
        """One warning (main process) when the recovered run is past the average's start
        epoch and its checkpoint holds no averaged step: the epochs the new average misses,
        or, for a finished run, that the model stays unaveraged."""
        average = self.weight_average
        epochs_done = int(self.hparams.epoch_counter.current)
        if (average is None or average.updates > 0 or epochs_done <= average.start_epoch
                or not if_main_process()):
            return
        if epochs_done >= self.hparams.number_of_epochs:
            logger.warning(
                "The checkpoint (after epoch %d, the last) holds no weight average and no "
                "epoch is left to average: the model stays unaveraged (train more epochs, "
                "or start in a new output folder)", epochs_done,
            )
            return
        missed = average.start_epoch + 1
        logger.warning(
            "The checkpoint (after epoch %d) holds no weight average: the average starts now "
            "and leaves out %s (weight_average_start_epoch, or number_of_epochs x "
            "weight_average_start_fraction: averaging after epoch %d)",
            epochs_done,
            f"epoch {missed}" if missed == epochs_done else f"epochs {missed}-{epochs_done}",
            average.start_epoch,
        )


def mean_over_processes(value, device="cpu"):
    """Mean of a float over the processes of a distributed run (the value itself otherwise).

    ``device`` is where the all-reduce runs (a CUDA device with NCCL).
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    total = torch.tensor([float(value)], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return float(total) / torch.distributed.get_world_size()


def dataio_prep(hparams):
    """Datasets for the train/valid/test manifests, with cached 16 kHz audio.

    An empty split (e.g. no fold 5 in a development copy) has no dataset (None);
    see :func:`focalnet_lobes.interpretation.posthoc.classifier_datasets`.
    """
    return classifier_datasets(
        hparams["save_folder"],
        hparams["sample_rate"],
        hparams["clip_seconds"],
        hparams["audio_cache_size"],
    )


def run_option(name, run_opts, hparams):
    """A run option as ``sb.Brain`` resolves it: command line, else YAML, else default."""
    if name in getattr(run_opts, "overridden_args", ()) or name not in hparams:
        return run_opts[name]
    return hparams[name]


def check_distributed_launch(hparams, run_opts):
    """Under ``torchrun``, stop at once on what would hang or time out the processes.

    The process group's collective calls time out (SpeechBrain's ``ddp_init_group``:
    2 hours) while the main process prepares the data, so a download of ESC-50
    (600 MB) must be done before, by one process; NCCL needs one GPU per process.
    Each process checks its own machine's file system, so a machine without the
    data stops too. Does nothing without ``torchrun``.

    Raises
    ------
    RecipeError
    """
    if os.environ.get("RANK") is None or os.environ.get("LOCAL_RANK") is None:
        return
    backend = run_option("distributed_backend", run_opts, hparams)
    if backend == "nccl" and int(os.environ["LOCAL_RANK"]) >= torch.cuda.device_count():
        raise RecipeError(
            f"distributed_backend nccl needs one GPU per process, this machine has "
            f"{torch.cuda.device_count()}: use --distributed_backend gloo on CPU, "
            "or fewer --nproc_per_node"
        )
    csv_path = os.path.join(hparams["data_folder"], "meta", "esc50.csv")
    if not os.path.isfile(csv_path):
        raise RecipeError(
            f"{csv_path} not found: under torchrun the data must be in place first "
            "(a download would outlast the other processes' timeout); download it "
            f"with one process: python recipes/esc50_prepare.py --data_folder "
            f"{hparams['data_folder']} --save_folder {hparams['save_folder']}, then rerun"
        )


#: ``checkpoint_selection`` values: the checkpoint the test stage (and every later
#: user of the run: interpretation, export) takes.
CHECKPOINT_SELECTIONS = ("valid_error", "last_epoch")


def check_feature_augment(hparams_file, hparams):
    """Raise a one-line RecipeError if a feature augmentation does not fit the front end.

    Each module of ``feature_augment`` with a ``check_num_bins`` method (e.g.
    :class:`~focalnet_lobes.data.augment.FrequencyWarp`) is checked against the front
    end's number of frequency bins before any work, not at the first training batch.
    """
    augment = hparams.get("feature_augment")
    if augment is None:
        return
    for module in augment.modules():
        if hasattr(module, "check_num_bins"):
            try:
                module.check_num_bins(hparams["compute_features"].num_bins)
            except ValueError as error:
                raise RecipeError(f"{hparams_file}: {error}") from None


def checked_hparams(hparams_file, run_opts, overrides):
    """Load the YAML and check everything that cannot train, before any work.

    Arguments
    ---------
    hparams_file : str
        The recipe's YAML file.
    run_opts : dict
        SpeechBrain's run options (``grad_accumulation_factor``, distributed launch).
    overrides : str or dict
        The command line's overrides, as from ``speechbrain.parse_arguments``.

    Returns
    -------
    hparams : dict
        The loaded hyperparameters, the front end added to the checkpointer's recoverables.
    selection : str
        The checkpoint selection, one of ``CHECKPOINT_SELECTIONS``.
    grad_accumulation_factor : int
        From the run options or the YAML.

    Raises
    ------
    RecipeError, TrainingPlanError, CheckpointMismatchError
        One line naming the file or setting and the problem: an unknown checkpoint
        selection, a weight average that cannot work, a feature augmentation that does
        not fit the front end, training numbers or folds that cannot train, a checkpoint
        written with other settings, a missing pretrained checkpoint, a bad launch.
    """
    hparams = load_recipe_hparams(hparams_file, overrides)
    selection = hparams.get("checkpoint_selection", "valid_error")
    if selection not in CHECKPOINT_SELECTIONS:
        raise RecipeError(
            f"{hparams_file}: checkpoint_selection must be one of "
            f"{', '.join(CHECKPOINT_SELECTIONS)}, got {selection!r}"
        )

    average = hparams.get("weight_average")
    if average is not None and average.active:
        if selection != "last_epoch":
            raise RecipeError(
                f"{hparams_file}: weight_average_decay needs checkpoint_selection last_epoch "
                "(the average replaces the model at the end of the last epoch; a checkpoint "
                f"selected by validation error would not be averaged), got {selection!r}"
            )
        if average.start_epoch >= hparams["number_of_epochs"]:
            raise RecipeError(
                f"{hparams_file}: weight_average_start_epoch is {average.start_epoch:g}, but the "
                f"epochs after it are averaged and the run has {hparams['number_of_epochs']}: "
                "lower weight_average_start_fraction (or weight_average_start_epoch)"
            )

    # Everything that cannot train stops here, before any work, on every process.
    check_feature_augment(hparams_file, hparams)
    loader_opts = hparams["train_dataloader_opts"]
    grad_accumulation_factor = run_option("grad_accumulation_factor", run_opts, hparams)
    check_training_numbers(
        hparams["number_of_epochs"], loader_opts["batch_size"], grad_accumulation_factor
    )
    check_folds(
        hparams["train_folds"], hparams["valid_folds"], hparams["test_folds"],
        valid_folds_required=selection == "valid_error",
    )
    # The front end is checkpointed too (optional, so that checkpoints written without it
    # still resume): a run resumed with another compression or PCEN values stops here,
    # before it writes anything, as one with another model size does.
    hparams["checkpointer"].add_recoverable(
        "compute_features", hparams["compute_features"], optional_load=True
    )
    keep_random_state(hparams["checkpointer"])  # a resumed run draws what an uninterrupted one would
    check_resumable(hparams["checkpointer"])
    imagenet = getattr(hparams.get("pretrained_init"), "keywords", {}).get("path")
    if imagenet and not os.path.isfile(imagenet) and hparams["checkpointer"].find_checkpoint() is None:
        raise RecipeError(f"pretrained_backbone: pretrained checkpoint not found: {imagenet}")
    check_distributed_launch(hparams, run_opts)
    return hparams, selection, grad_accumulation_factor


def main(argv):
    """Check the configuration, prepare data, train, and test the selected checkpoint."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # the load creates <output_folder>/save: a check that stops the run leaves no empty folder
    stops = (RecipeError, TrainingPlanError, CheckpointMismatchError)
    with no_empty_folders_left_on(stops, hparams_file, overrides):
        hparams, selection, grad_accumulation_factor = checked_hparams(hparams_file, run_opts, overrides)
    loader_opts = hparams["train_dataloader_opts"]
    ddp_init_group(run_opts)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    run_on_main(
        prepare_esc50,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "train_folds": hparams["train_folds"],
            "valid_folds": hparams["valid_folds"],
            "test_folds": hparams["test_folds"],
            "esc10": hparams["esc10"],
            "download": hparams["download"],
            "min_seconds": hparams.get("min_clip_seconds", 0.1),
        },
    )
    with open(os.path.join(hparams["save_folder"], "classes.json"), encoding="utf-8") as fin:
        hparams["class_names"] = json.load(fin)
    if len(hparams["class_names"]) != hparams["n_classes"]:
        raise RecipeError(
            f"The data has {len(hparams['class_names'])} classes but the model was built "
            f"for n_classes={hparams['n_classes']}: set n_classes (or esc10) accordingly"
        )

    datasets = dataio_prep(hparams)
    if datasets["train"] is None or (datasets["valid"] is None and hparams["valid_folds"]):
        raise RecipeError(
            f"No training or validation clips in {hparams['data_folder']} for folds "
            f"{hparams['train_folds']} / {hparams['valid_folds']}"
        )
    steps_per_epoch = check_steps(
        len(datasets["train"]),
        loader_opts["batch_size"],
        loader_opts.get("drop_last", False),
        world_size(),
        grad_accumulation_factor,
        where=f"train_folds {list(hparams['train_folds'])}",
    )
    check_schedule(hparams.get("lr_scheduler"), hparams["number_of_epochs"] * steps_per_epoch)

    try:  # ImageNet weights for a new run (pretrained_init in the full-size YAMLs)
        initialise_new_run(
            hparams.get("pretrained_init"), hparams["backbone"], hparams["checkpointer"]
        )
    except (ValueError, OSError) as error:
        raise RecipeError(f"pretrained_backbone: {error}") from None

    brain = ESC50Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.steps_per_epoch = steps_per_epoch
    brain.selection = selection
    brain.validates = datasets["valid"] is not None
    epochs = hparams["number_of_epochs"]
    schedule = f"a fixed schedule of {epochs} epoch{'' if epochs == 1 else 's'}"
    if not brain.validates:
        logger.info("No validation folds: %s, the last epoch's model is kept and tested", schedule)
    elif selection == "last_epoch":
        logger.info("checkpoint_selection last_epoch: %s, the validation folds are only "
                    "watched, the last epoch's model is kept and tested", schedule)

    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )

    if datasets["test"] is None:
        logger.warning("The test manifest is empty: skipping the test stage")
        return
    brain.evaluate(
        datasets["test"],
        min_key="error" if selection == "valid_error" else None,
        test_loader_kwargs=hparams["valid_dataloader_opts"],
    )


if __name__ == "__main__":
    try:
        with process_group_closed_at_exit():
            main(sys.argv[1:])
    except (ESC50NotFoundError, DownloadError, RecipeError, TrainingPlanError,
            CheckpointMismatchError) as error:
        sys.exit(f"error: {error}")
