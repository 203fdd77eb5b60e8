#!/usr/bin/env python3
"""Recipe for training PIQ, the post-hoc interpreter baseline, on a frozen classifier.

PIQ (Paissan, Subakan, Ravanelli 2023, "Posthoc Interpretation via Quantization")
learns, after the fact, to map the classifier's last-stage representation through
a class-partitioned vector-quantised codebook to a mask over the spectrogram
(``focalnet_lobes.interpretation.piq``). The classifier comes from the output folder of
``recipes/train.py`` and stays frozen (evaluation mode, no gradient); PIQ trains
on the classifier's own train split and features, keeps the checkpoint with the
lowest validation loss (or, for a classifier trained without validation
folds, the last epoch's) and records its training time in ``piq_training.json``.

To run this recipe, do the following:
> python recipes/train_piq.py hparams/piq_focalnet_cpu.yaml \\
>     --classifier_folder results/focalnet_cpu/1986

Running the same command again after an interruption resumes from the last
checkpoint. Under ``torchrun`` (``--distributed_backend gloo`` on CPU) each
process trains on its share of the training clips, every process evaluates the
whole validation and test splits, and only the main process writes. The trained
interpreter is evaluated like every other method by
``recipes/interpret.py hparams/interpret_piq.yaml --classifier_folder C --piq_folder P``,
which loads it with :func:`focalnet_lobes.interpretation.piq.load_piq_interpreter`.

Authors
 * focalnet-audio contributors
"""

import logging
import sys

import speechbrain as sb
import torch
from speechbrain.utils.distributed import ddp_init_group

from focalnet_lobes.interpretation.piq import TRAINING_COST_FILE, representation_channels
from focalnet_lobes.interpretation.posthoc import (
    PostHocBrain,
    classifier_datasets,
    classifier_folder_from,
    load_posthoc_hparams,
    overrides_with_classifier,
    train_posthoc,
)
from focalnet_lobes.inference.trained import TrainedClassifierError, load_trained_classifier
from focalnet_lobes.training.checkpoints import CheckpointMismatchError
from focalnet_lobes.training.plan import TrainingPlanError, process_group_closed_at_exit

logger = logging.getLogger(__name__)


class PIQBrain(PostHocBrain):
    """Trains a :class:`~focalnet_lobes.interpretation.piq.PIQInterpreter` on a frozen classifier.

    ``self.classifier`` and ``self.frontend`` (set before ``fit``) are not Brain
    modules: they are neither trained, nor checkpointed, nor put in train mode.
    Every epoch logs the loss and its terms (``reconstruction``, ``codebook``,
    ``commitment``), and when evaluating the ``fidelity`` (share of clips whose
    prediction on mask * features is the prediction on the features) and the
    ``mask_mean``; the checkpoint meta holds the validation ``loss`` (none
    without validation) and the cumulated ``train_seconds``.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> from focalnet_lobes.interpretation.piq import PIQInterpreter, PIQLoss, PIQNetwork
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> network = PIQNetwork(192, 3, codebook_size=6, decoder_channels=(8,))
    >>> brain = PIQBrain(
    ...     modules={"interpreter": PIQInterpreter(network)},
    ...     hparams={"compute_cost": PIQLoss()},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> brain.classifier = SpectrogramClassifier(backbone, LinearHead(192, 3)).eval()
    >>> brain.frontend = SpectrogramFrontend(n_mels=64)
    >>> batch = PaddedBatch([{"id": i, "sig": torch.randn(8000)} for i in "ab"])
    >>> brain.on_stage_start(sb.Stage.VALID)
    >>> loss = brain.compute_objectives(
    ...     brain.compute_forward(batch, sb.Stage.VALID), batch, sb.Stage.VALID
    ... )
    >>> sorted(brain._stage_stats(float(loss.detach())))
    ['codebook', 'commitment', 'fidelity', 'loss', 'mask_mean', 'reconstruction']
    """

    forward_method = "piq_forward"

    def compute_forward(self, batch, stage):
        """Waveforms -> classifier features -> PIQ outputs (mask logits, VQ vectors)."""
        batch = batch.to(self.device)
        wavs, _ = batch.sig
        with torch.no_grad():
            features = self.frontend(wavs)
        return features, self.interpreter_forward(features)

    def compute_objectives(self, predictions, batch, stage):
        """PIQ's loss; accumulates its terms, and the mask's fidelity when evaluating."""
        features, output = predictions
        terms = self.hparams.compute_cost(
            output.mask_logits, features, output.encoded, output.quantized
        )
        batch_size = features.shape[0]
        for name, value in terms.items():
            total = self.stage_sums.get(name, 0.0)
            self.stage_sums[name] = total + float(value.detach()) * batch_size
        if stage != sb.Stage.TRAIN:
            with torch.no_grad():
                mask = torch.sigmoid(output.mask_logits)
                masked_logits = self.classifier(mask * features)
                agree = masked_logits.argmax(dim=1) == output.logits.argmax(dim=1)
            self.stage_sums["fidelity"] = self.stage_sums.get("fidelity", 0.0) + float(
                agree.float().sum()
            )
            self.stage_sums["mask_mean"] = self.stage_sums.get("mask_mean", 0.0) + float(
                mask.mean(dim=(1, 2, 3)).sum()
            )
        self.stage_count += batch_size
        return terms["loss"]


def main(argv):
    """Load the classifier, train PIQ on its train split, record the cost, test."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    ddp_init_group(run_opts)
    classifier_folder = classifier_folder_from(hparams_file, overrides, "PIQ")
    trained = load_trained_classifier(classifier_folder)
    n_classes = len(trained.class_names)
    overrides = overrides_with_classifier(
        overrides, n_classes, representation_channels(trained.model)
    )
    hparams = load_posthoc_hparams(hparams_file, overrides)  # a stop here leaves no empty folder

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    datasets = classifier_datasets(
        trained.hparams["save_folder"],
        trained.hparams["sample_rate"],
        trained.hparams["clip_seconds"],
        hparams["audio_cache_size"],
    )
    train_posthoc(PIQBrain, hparams, run_opts, trained, datasets, "piq", TRAINING_COST_FILE)


if __name__ == "__main__":
    try:
        with process_group_closed_at_exit():
            main(sys.argv[1:])
    except (TrainingPlanError, TrainedClassifierError, CheckpointMismatchError) as error:
        sys.exit(f"error: {error}")
