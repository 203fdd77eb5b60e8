"""Load a classifier trained by ``recipes/train.py`` from its output folder.

The training recipe leaves in its output folder ``hyperparams.yaml`` (the YAML
with the command-line overrides applied), ``save/CKPT+*/model.ckpt`` (checkpoints
of the :class:`~focalnet_lobes.models.classifier.SpectrogramClassifier`, the best kept
by validation error), ``save/{train,valid,test}.json`` manifests and
``save/classes.json``. :func:`load_trained_classifier` rebuilds the front end and
the classifier from them, for interpretation, PIQ and L-MAC training, export and
the benchmarks (moved here from ``recipes/trained_classifier.py``: recipes and
benchmarks import the library, not each other).

Authors
 * focalnet-audio contributors
"""

import json
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.checkpoints import Checkpointer


class TrainedClassifierError(FileNotFoundError):
    """The folder is not the output folder of a finished training run."""


class TrainedClassifier:
    """A trained classifier with everything needed to use it.

    Attributes
    ----------
    folder : pathlib.Path
        The training output folder.
    hparams : dict
        The training hyperparameters (objects instantiated).
    model : focalnet_lobes.models.classifier.SpectrogramClassifier
        The classifier, in eval mode, weights of the best checkpoint.
    frontend : focalnet_lobes.data.features.SpectrogramFrontend
        The front end the classifier was trained with.
    class_names : list of str
        Class names in label order.
    checkpoint : pathlib.Path
        The checkpoint folder the weights come from.
    """

    def __init__(self, folder, hparams, checkpoint, class_names):
        self.folder = Path(folder)
        self.hparams = hparams
        self.model = hparams["model"].eval()
        self.frontend = hparams["compute_features"].eval()
        self.checkpoint = checkpoint
        self.class_names = class_names

    def manifest(self, split):
        """Path of the ``train``/``valid``/``test`` manifest written by the preparation."""
        return Path(self.hparams["save_folder"]) / f"{split}.json"

    def to(self, device):
        """Move the model and front end to ``device``; returns ``self``."""
        self.model.to(device)
        self.frontend.to(device)
        return self


def load_trained_classifier(folder, device="cpu", overrides=None):
    """Rebuild the kept classifier of a training run (lowest validation error, or the last epoch).

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train.py`` (holds ``hyperparams.yaml`` and
        ``save/``).
    device : str
        Where to put the model.
    overrides : dict or None
        Overrides for the saved ``hyperparams.yaml`` (e.g. a moved ``data_folder``).

    Returns
    -------
    TrainedClassifier

    Raises
    ------
    TrainedClassifierError
        When the folder has no ``hyperparams.yaml`` or no checkpoint.

    Example
    -------
    >>> load_trained_classifier("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.inference.trained.TrainedClassifierError: /nonexistent is not a training output folder: ...
    """
    folder = Path(folder)
    hparams_file = folder / "hyperparams.yaml"
    if not hparams_file.is_file():
        raise TrainedClassifierError(
            f"{folder} is not a training output folder: {hparams_file} is missing "
            "(expected the output_folder of recipes/train.py)"
        )
    # The saved YAML holds resolved paths: point them at this folder, which may have
    # been copied or moved since training.
    all_overrides = {"output_folder": str(folder)}
    if (folder / "save").is_dir():
        all_overrides["save_folder"] = str(folder / "save")
    all_overrides.update(overrides or {})
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, all_overrides)
    checkpoints_dir = Path(hparams["save_folder"])
    checkpointer = Checkpointer(checkpoints_dir)
    # the lowest validation error; a fixed schedule (last_epoch) keeps one, the last
    checkpoint = checkpointer.find_checkpoint(min_key="error") or checkpointer.find_checkpoint()
    if checkpoint is None:
        raise TrainedClassifierError(
            f"No checkpoint in {checkpoints_dir}: has the training run "
            "finished at least one epoch?"
        )
    state = torch.load(checkpoint.paramfiles["model"], map_location="cpu", weights_only=True)
    hparams["model"].load_state_dict(state)
    classes_file = Path(hparams["save_folder"]) / "classes.json"
    if classes_file.is_file():
        class_names = json.loads(classes_file.read_text(encoding="utf-8"))
    else:
        class_names = [str(i) for i in range(hparams["n_classes"])]
    return TrainedClassifier(folder, hparams, checkpoint.path, class_names).to(device)
