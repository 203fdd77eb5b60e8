"""Training: what the training recipes share.

* :mod:`.plan`: steps per epoch, the learning-rate schedule, checks before training;
* :mod:`.checkpoints`: a checkpointer whose checkpoints appear only once complete;
* :mod:`.losses`: classification losses with hard or soft (mixup) targets;
* :mod:`.report`: accuracy, per-class accuracy and the confusion matrix;
* :mod:`.logs`: parsers of the logs a training run writes;
* :mod:`.cross_validation`: the ESC-50 protocol, one model per held-out fold.
"""

import importlib


def __getattr__(name):
    """``focalnet_lobes.training.<name>`` of the flat layout: the names of :mod:`.plan`."""
    if name.startswith("__"):
        raise AttributeError(name)
    module = importlib.import_module(f"{__name__}.plan")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
