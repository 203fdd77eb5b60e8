#!/usr/bin/env python3
"""Recipe for training L-MAC, the post-hoc listenable-map baseline, on a frozen classifier.

L-MAC (Paissan, Della Libera, Ravanelli, Subakan, ICML 2024, "Listenable Maps for
Audio Classifiers"; SpeechBrain's ``recipes/ESC50/interpret/train_lmac.py``)
learns a decoder from the classifier's last-stage representation to a mask whose
masked-in spectrogram keeps the classifier's prediction and whose masked-out
spectrogram loses it, with an L1 penalty (``focalnet_lobes.interpretation.lmac``). The
classifier comes from the output folder of ``recipes/train.py`` and stays frozen
(evaluation mode, no parameter gradients); L-MAC trains on the classifier's own
train split and front end, keeps the checkpoint with the lowest validation loss
(or, for a classifier trained without validation folds, the last epoch's)
and records its training time in ``lmac_training.json``.

To run this recipe, do the following:
> python recipes/train_lmac.py hparams/lmac_focalnet_cpu.yaml \\
>     --classifier_folder results/focalnet_cpu/1986 --output_folder results/lmac_focalnet_cpu/1986

Running the same command again after an interruption resumes from the last
checkpoint; a finished run is not retrained. The trained interpreter is evaluated
like every other method:
> python recipes/interpret.py hparams/interpret_lmac.yaml --classifier_folder C --lmac_folder L

Authors
 * focalnet-audio contributors
"""

import logging
import sys

import speechbrain as sb
import torch
from speechbrain.utils.distributed import ddp_init_group

from focalnet_lobes.interpretation.lmac import TRAINING_COST_FILE
from focalnet_lobes.interpretation.piq import representation_channels
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


class LMACBrain(PostHocBrain):
    """Trains a :class:`~focalnet_lobes.interpretation.lmac.LMACInterpreter` on a frozen classifier.

    ``self.classifier`` and ``self.frontend`` (set before ``fit``) are not Brain
    modules: they are neither trained, nor checkpointed, nor put in train mode.
    Every epoch logs the loss and its terms (``in``, ``out``: cross-entropies of
    the masked-in and masked-out inputs with the classifier's prediction; ``l1``:
    mean mask; ``masked_in``, ``masked_out``: their weighted, signed
    contributions); when evaluating also the ``fidelity`` (share of clips whose
    prediction on the masked-in input is the prediction on the input). The
    checkpoint meta holds the validation ``loss`` (none without validation) and
    the cumulated ``train_seconds``.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> from focalnet_lobes.interpretation.lmac import LMACInterpreter, LMACLoss
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> brain = LMACBrain(
    ...     modules={"interpreter": LMACInterpreter(192, 3, decoder_channels=(8,))},
    ...     hparams={"compute_cost": LMACLoss()},
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
    ['fidelity', 'in', 'l1', 'loss', 'masked_in', 'masked_out', 'out']
    """

    forward_method = "lmac_forward"

    def compute_forward(self, batch, stage):
        """Waveforms -> magnitude and features -> classifier logits and mask logits."""
        batch = batch.to(self.device)
        wavs, _ = batch.sig
        with torch.no_grad():
            magnitude = self.frontend.spectrum(wavs).abs()
            features = self.frontend.features_from_magnitude(magnitude)
        return magnitude, self.interpreter_forward(features)

    def compute_objectives(self, predictions, batch, stage):
        """L-MAC's loss; accumulates its terms, and the fidelity when evaluating."""
        magnitude, output = predictions
        terms = self.hparams.compute_cost(
            self.classifier, self.frontend, magnitude, output.mask_logits, output.logits
        )
        batch_size = magnitude.shape[0]
        for name, value in terms.items():
            if value.dim() == 0:
                total = self.stage_sums.get(name, 0.0)
                self.stage_sums[name] = total + float(value.detach()) * batch_size
        if stage != sb.Stage.TRAIN:
            agree = terms["logits_in"].argmax(dim=1) == output.logits.argmax(dim=1)
            self.stage_sums["fidelity"] = self.stage_sums.get("fidelity", 0.0) + float(
                agree.float().sum()
            )
        self.stage_count += batch_size
        return terms["loss"]



def main(argv):
    """Load the classifier, train L-MAC on its train split, record the cost, test."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    ddp_init_group(run_opts)  # under torchrun (SpeechBrain's convention)
    classifier_folder = classifier_folder_from(hparams_file, overrides, "L-MAC")
    trained = load_trained_classifier(classifier_folder)
    overrides = overrides_with_classifier(
        overrides, len(trained.class_names), representation_channels(trained.model)
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
    train_posthoc(LMACBrain, hparams, run_opts, trained, datasets, "lmac", TRAINING_COST_FILE)


if __name__ == "__main__":
    try:
        with process_group_closed_at_exit():
            main(sys.argv[1:])
    except (TrainingPlanError, TrainedClassifierError, CheckpointMismatchError) as error:
        sys.exit(f"error: {error}")
