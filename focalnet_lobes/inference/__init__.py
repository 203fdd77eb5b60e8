"""Inference: trained models in use.

* :mod:`.trained`: a classifier trained by ``recipes/train.py``, from its output folder;
* :mod:`.classifiers`: :class:`~.classifiers.AudioClassifier`, SpeechBrain's
  ``Pretrained`` interface (``from_hparams``) that classifies and interprets audio;
* :mod:`.export`: a training run -> a hub-ready model folder;
* :mod:`.longform`: sliding-window classification and interpretation of long recordings;
* :mod:`.cli`: the ``focalnet-audio`` command line;
* :mod:`.compat`: SpeechBrain's published ESC-50 FocalNet and ViT in our interface.

``from focalnet_lobes.inference import AudioClassifier`` works as well.
"""

import importlib


def __getattr__(name):
    """The names of :mod:`.classifiers` (e.g. ``AudioClassifier``), imported when first used."""
    if name.startswith("__"):
        raise AttributeError(name)
    module = importlib.import_module(f"{__name__}.classifiers")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
