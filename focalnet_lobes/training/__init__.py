"""Training: what the training recipes share.

* :mod:`.plan`: steps per epoch, the learning-rate schedule, checks before training;
* :mod:`.checkpoints`: a checkpointer whose checkpoints appear only once complete;
* :mod:`.losses`: classification losses with hard or soft (mixup) targets;
* :mod:`.report`: accuracy, per-class accuracy and the confusion matrix;
* :mod:`.logs`: parsers of the logs a training run writes;
* :mod:`.cross_validation`: the ESC-50 protocol, one model per held-out fold.
"""

from focalnet_lobes import _forward_to_submodule

__getattr__ = _forward_to_submodule(__name__, "plan")
