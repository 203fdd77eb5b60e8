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

from focalnet_lobes import _forward_to_submodule

__getattr__ = _forward_to_submodule(__name__, "classifiers")
