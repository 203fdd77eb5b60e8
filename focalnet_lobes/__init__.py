"""focalnet-audio: FocalNet and ViT audio classifiers that expose their interpretation maps.

The package is grouped by what a reader looks for:

* :mod:`focalnet_lobes.models`: the architectures (FocalNet, ViT), stems, heads, the
  whole spectrogram classifier, named configurations and weight conversion. Model
  code imports nothing from the other subpackages.
* :mod:`focalnet_lobes.data`: reading audio, the spectrogram front end, augmentations,
  dataset manifests and downloads.
* :mod:`focalnet_lobes.interpretation`: interpretation maps and masks, the metrics, the
  one evaluator, comparisons with confidence intervals, PIQ and L-MAC.
* :mod:`focalnet_lobes.training`: what the training recipes share: the training plan,
  checkpoints, losses, log parsing, accuracy reports and cross-validation.
* :mod:`focalnet_lobes.inference`: trained models in use: loading a run, export to a
  hub folder, :class:`~focalnet_lobes.inference.classifiers.AudioClassifier`, long
  recordings and the ``focalnet-audio`` command line.

The names below are the model API (``focalnet_lobes.create_model(...)``).

Example
-------
>>> import focalnet_lobes
>>> "focalnet_audio_small" in focalnet_lobes.list_models()
True
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from focalnet_lobes.models.registry import create_model, list_models, model_config, register_model
from focalnet_lobes.models.stems import ConvStem
from focalnet_lobes.models import focalnet, vit  # noqa: F401  (register the named configs)
from focalnet_lobes.models.focalnet import FocalNet, FocalModulation
from focalnet_lobes.models.vit import VisionTransformer
from focalnet_lobes.models.convert import convert_state_dict

__all__ = [
    "ConvStem",
    "FocalModulation",
    "FocalNet",
    "VisionTransformer",
    "convert_state_dict",
    "create_model",
    "list_models",
    "model_config",
    "register_model",
]


def _forward_to_submodule(package, module):
    """A module-level ``__getattr__`` (PEP 562) for ``package``: the names of one submodule.

    ``focalnet_lobes.training.<name>`` keeps the flat layout's
    ``focalnet_lobes.training`` module (now :mod:`focalnet_lobes.training.plan`),
    and ``focalnet_lobes.inference.AudioClassifier`` reads as before; the
    submodule is imported when a name is first asked for, so importing the
    package stays cheap.

    Arguments
    ---------
    package : str
        Full name of the package, e.g. ``"focalnet_lobes.training"``.
    module : str
        Its submodule whose names it answers with, e.g. ``"plan"``.

    Returns
    -------
    callable
        ``__getattr__(name)``: the submodule's ``name``; raises AttributeError
        (naming ``package``) for a name the submodule lacks and for dunder names,
        so that ``hasattr`` and the import system see an ordinary module.

    Example
    -------
    >>> getattr_ = _forward_to_submodule("focalnet_lobes.training", "plan")
    >>> getattr_("clips_per_process").__module__
    'focalnet_lobes.training.plan'
    >>> getattr_("no_such_name")
    Traceback (most recent call last):
    ...
    AttributeError: module 'focalnet_lobes.training' has no attribute 'no_such_name'
    """

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        target = importlib.import_module(f"{package}.{module}")
        try:
            return getattr(target, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    __getattr__.__doc__ = f"The names of :mod:`{package}.{module}`, imported when first used."
    return __getattr__


# The flat module names of versions before the subpackages, and where each module is now.
# Exported model folders and user YAMLs written then (``!new:focalnet_lobes.heads...``)
# still load: the old name imports the new module, with a DeprecationWarning.
MOVED_MODULES = {
    "focalnet": "models.focalnet", "vit": "models.vit", "layers": "models.layers",
    "stems": "models.stems", "heads": "models.heads", "classifier": "models.classifier",
    "registry": "models.registry", "convert": "models.convert",
    "compat": "inference.compat",
    "pretrained_init": "models.pretrained_init",
    "audio": "data.audio", "augment": "data.augment", "features": "data.features",
    "manifests": "data.manifests", "download": "data.download",
    "interpret": "interpretation.interpret", "metrics": "interpretation.metrics",
    "evaluation": "interpretation.evaluation", "comparison": "interpretation.comparison",
    "piq": "interpretation.piq", "lmac": "interpretation.lmac",
    "posthoc": "interpretation.posthoc", "stats": "interpretation.stats",
    "training": "training.plan", "checkpoints": "training.checkpoints",
    "losses": "training.losses", "cross_validation": "training.cross_validation",
    "logs": "training.logs", "report": "training.report",
    "inference": "inference.classifiers", "cli": "inference.cli", "export": "inference.export",
    "longform": "inference.longform", "trained": "inference.trained",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Loads an old flat module name as the module that now holds its code."""

    def __init__(self, new_name):
        self.new_name = new_name

    def create_module(self, spec):
        """The module of the new name (imported once, shared by both names)."""
        warnings.warn(f"{spec.name} moved to {self.new_name}; the old name will be removed",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new_name)
        self.new_spec = module.__spec__
        return module

    def exec_module(self, module):
        """Nothing to run; give the module back the spec of its new name.

        The import system sets the alias spec on the module it got from
        :meth:`create_module`; the module keeps describing where it really lives.
        """
        module.__spec__ = self.new_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds ``focalnet_lobes.<old name>`` for the names of :data:`MOVED_MODULES`.

    ``focalnet_lobes.training`` and ``focalnet_lobes.inference`` are subpackages now,
    so only the other old names need the finder; those two resolve to the subpackage.
    """

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or "." in name or name not in MOVED_MODULES:
            return None
        new_name = f"{__name__}.{MOVED_MODULES[name]}"
        if new_name.startswith(fullname + "."):  # a subpackage of that name exists
            return None
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new_name))


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())
