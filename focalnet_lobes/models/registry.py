"""Named model configurations and the ``create_model`` factory.

Every architecture module (``focalnet.py``, ``vit.py``) registers its named
configurations here with :func:`register_model`; :func:`create_model` builds one
by name with keyword overrides, as timm's ``create_model`` does.
"""

import fnmatch

_MODEL_REGISTRY = {}


def register_model(name, model_class, **config):
    """Register a named configuration of ``model_class``.

    Arguments
    ---------
    name : str
        Unique name of the configuration (e.g. ``"focalnet_tiny_srf"``).
    model_class : type
        The ``torch.nn.Module`` subclass to build.
    **config
        Constructor keyword arguments of the configuration.

    Example
    -------
    >>> import torch
    >>> register_model("_doctest_linear", torch.nn.Linear, in_features=2, out_features=3)
    >>> "_doctest_linear" in list_models("_doctest*")
    True
    >>> _ = _MODEL_REGISTRY.pop("_doctest_linear")
    """
    if name in _MODEL_REGISTRY:
        raise ValueError(f"Model config '{name}' is already registered")
    _MODEL_REGISTRY[name] = (model_class, dict(config))


def list_models(pattern="*"):
    """Return the sorted names of registered configurations matching ``pattern``.

    Arguments
    ---------
    pattern : str
        A shell-style wildcard pattern (``fnmatch``).

    Returns
    -------
    list of str

    Example
    -------
    >>> import focalnet_lobes
    >>> "focalnet_tiny_srf" in list_models("focalnet_*")
    True
    """
    return sorted(n for n in _MODEL_REGISTRY if fnmatch.fnmatch(n, pattern))


def model_config(name):
    """Return ``(model_class, config_dict)`` of a registered configuration.

    Arguments
    ---------
    name : str
        Registered configuration name.

    Returns
    -------
    tuple
        The model class and a copy of its constructor keyword arguments.

    Example
    -------
    >>> import focalnet_lobes
    >>> cls, cfg = model_config("focalnet_tiny_srf")
    >>> cfg["embed_dim"]
    96
    """
    if name not in _MODEL_REGISTRY:
        known = ", ".join(list_models())
        raise KeyError(f"Unknown model '{name}'. Known models: {known}")
    model_class, config = _MODEL_REGISTRY[name]
    return model_class, dict(config)


def create_model(name, num_classes=1000, in_chans=3, **overrides):
    """Build a registered model by name.

    Arguments
    ---------
    name : str
        Registered configuration name (see :func:`list_models`).
    num_classes : int
        Size of the classification head; ``0`` removes the head so that the
        model returns pooled features.
    in_chans : int
        Number of input channels (3 for ImageNet weights, 1 for spectrograms).
    **overrides
        Any constructor argument of the model class, overriding the config.

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> import torch, focalnet_lobes
    >>> model = create_model("focalnet_tiny_srf", num_classes=0, in_chans=1)
    >>> model(torch.randn(1, 1, 64, 64)).shape
    torch.Size([1, 768])
    """
    model_class, config = model_config(name)
    config.update(num_classes=num_classes, in_chans=in_chans)
    config.update(overrides)
    return model_class(**config)
