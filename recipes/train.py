#!/usr/bin/env python3
"""Recipe for training an environmental sound classifier on ESC-50 (or ESC-10).

The backbone (FocalNet, ViT, ...), head, front end, augmentation, optimiser,
scheduler and loss all come from the YAML file; this script only wires data and
training together.

To run this recipe, do the following:
> python recipes/train.py hparams/focalnet_cpu.yaml --data_folder DIR --esc10 True

Running the same command again after an interruption resumes from the last
checkpoint; the test stage uses the checkpoint with the lowest validation error.

Authors
 * focalnet-audio contributors
"""

import functools
import json
import logging
import math
import os
import sys

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from classification_report import ClassificationReport
from esc50_prepare import DownloadError, ESC50NotFoundError, prepare_esc50
from focalnet_lobes.audio import fix_length, load_audio

logger = logging.getLogger(__name__)


class RecipeError(ValueError):
    """A problem with the recipe's inputs that the user can fix (shown without a traceback)."""


class ESC50Brain(sb.Brain):
    """Trains a :class:`~focalnet_lobes.classifier.SpectrogramClassifier` on clips."""

    def compute_forward(self, batch, stage):
        """Waveforms -> features (augmented when training) -> logits."""
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        targets = torch.nn.functional.one_hot(batch.label, self.hparams.n_classes).float()
        if stage == sb.Stage.TRAIN and self.hparams.wav_augment is not None:
            # SpeechBrain augmenters take and return (wavs, lengths).
            augmented = self.hparams.wav_augment(wavs, wav_lens)
            wavs = augmented[0] if isinstance(augmented, tuple) else augmented
        features = self.hparams.compute_features(wavs)
        if stage == sb.Stage.TRAIN:
            if self.hparams.feature_augment is not None:
                features = self.hparams.feature_augment(features)
            if self.hparams.mixup is not None:
                features, targets = self.hparams.mixup(features, targets)
        logits = self.modules.model(features)
        return logits, targets

    def compute_objectives(self, predictions, batch, stage):
        """Loss on (possibly mixed) soft targets; collects predictions when evaluating."""
        logits, targets = predictions
        loss = self.hparams.compute_cost(logits, targets)
        if stage != sb.Stage.TRAIN:
            self.report.append(batch.id, logits.detach().float(), batch.label)
        return loss

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Step a per-batch learning-rate schedule."""
        if should_step and self.lr_scheduler is not None:
            self.lr_scheduler.step()

    def on_stage_start(self, stage, epoch=None):
        """Fresh prediction collector for every evaluation stage."""
        if stage != sb.Stage.TRAIN:
            self.report = ClassificationReport(self.hparams.class_names)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint the best model by validation error, write the test report."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        stats = {"loss": stage_loss, "error": 1.0 - self.report.accuracy()}
        if stage == sb.Stage.VALID:
            learning_rate = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": learning_rate},
                train_stats={"loss": self.train_loss},
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"error": stats["error"]}, min_keys=["error"]
            )
        elif stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            summary = self.report.write(self.hparams.output_folder, prefix="test")
            logger.info("Test accuracy: %.2f%%", 100 * summary["accuracy"])
            logger.info("Confusion matrix (rows: true, columns: predicted):\n%s",
                        self.report.confusion_text())

    def init_optimizers(self):
        """Create the optimiser and the per-step scheduler, both checkpointed."""
        super().init_optimizers()
        self.lr_scheduler = None
        factory = getattr(self.hparams, "lr_scheduler", None)
        if factory is not None and self.optimizer is not None:
            total_steps = self.hparams.number_of_epochs * self.steps_per_epoch
            self.lr_scheduler = factory(self.optimizer, total_steps=total_steps)
            if self.checkpointer is not None:
                self.checkpointer.add_recoverable("lr_scheduler", self.lr_scheduler)


def dataio_prep(hparams):
    """Datasets for the train/valid/test manifests, with cached 16 kHz audio."""
    num_samples = int(hparams["sample_rate"] * hparams["clip_seconds"])

    @functools.lru_cache(maxsize=hparams["audio_cache_size"])
    def read_clip(path):
        return fix_length(load_audio(path, hparams["sample_rate"]), num_samples)

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return read_clip(wav)

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(label):
        return torch.tensor(int(label))

    datasets = {}
    for split in ("train", "valid", "test"):
        with open(os.path.join(hparams["save_folder"], f"{split}.json"), encoding="utf-8") as fin:
            manifest = json.load(fin)
        # An empty split (e.g. no fold 5 in a development copy) has no dataset.
        datasets[split] = sb.dataio.dataset.DynamicItemDataset(
            manifest, dynamic_items=[audio_pipeline, label_pipeline], output_keys=["id", "sig", "label"]
        ) if manifest else None
    return datasets


def main(argv):
    """Prepare data, train, and test the best checkpoint."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

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
    if datasets["train"] is None or datasets["valid"] is None:
        raise RecipeError(
            f"No training or validation clips in {hparams['data_folder']} for folds "
            f"{hparams['train_folds']} / {hparams['valid_folds']}"
        )

    brain = ESC50Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    loader_opts = hparams["train_dataloader_opts"]
    if loader_opts.get("drop_last", False):
        brain.steps_per_epoch = len(datasets["train"]) // loader_opts["batch_size"]
    else:
        brain.steps_per_epoch = math.ceil(len(datasets["train"]) / loader_opts["batch_size"])

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
        min_key="error",
        test_loader_kwargs=hparams["valid_dataloader_opts"],
    )


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ESC50NotFoundError, DownloadError, RecipeError) as error:
        sys.exit(f"error: {error}")
