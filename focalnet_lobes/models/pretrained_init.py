"""Start training from ImageNet weights (timm, microsoft/FocalNet or transformers files).

:func:`load_pretrained_backbone` reads a checkpoint file, converts it to our
parameter names with :func:`focalnet_lobes.convert_state_dict`, adapts it to the
audio model (3 -> 1 input channels by summing the first convolution's filters,
ImageNet classifier dropped, ViT position embeddings resampled to the model's
grid) and loads it, raising a ValueError that lists every parameter that does not
fit. It returns the model, so that a YAML file can wrap the backbone in it::

    pretrained_backbone: null  # a timm / microsoft / transformers checkpoint file
    pretrained_source: timm
    backbone: !apply:focalnet_lobes.models.pretrained_init.load_pretrained_backbone
        model: !apply:focalnet_lobes.create_model
            name: focalnet_tiny_srf
            num_classes: 0
            in_chans: 1
        path: !ref <pretrained_backbone>
        source: !ref <pretrained_source>

With ``path: null`` the model is returned untouched (training from scratch).
"""

import logging
import pathlib
import re

import torch

from focalnet_lobes.models.convert import (
    SOURCES,
    architecture_differences,
    convert_state_dict,
    state_dict_differences,
)

logger = logging.getLogger(__name__)

# The convolution that sees the input, in our models (FocalNet and ViT without stem).
INPUT_CONV_KEY = "patch_embed.proj.weight"


_BLOCKED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def load_weights_file(path, what="checkpoint"):
    """``torch.load(path, weights_only=True)`` with every failure as one line.

    Weights-only loading refuses pickled objects other than tensors and plain
    containers (they could run code when unpickled). A file that holds one
    (e.g. ``{"model": ..., "config": argparse.Namespace(...)}`` from another
    code base) gets a ValueError naming the blocked object and the way out:
    re-save its state dict of tensors. Other failures (not a torch file,
    truncated archive) give the first line of torch's reason.

    Arguments
    ---------
    path : str or pathlib.Path
        The file.
    what : str
        What the file is, for the message (``"pretrained checkpoint"``...).

    Returns
    -------
    object
        What the file holds.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file cannot be read with ``weights_only=True``; one line.

    Example
    -------
    >>> import argparse, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "other_codebase.pth")
    >>> torch.save({"model": {"w": torch.zeros(1)}, "config": argparse.Namespace(lr=1)}, path)
    >>> load_weights_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read checkpoint '...other_codebase.pth': it holds a pickled argparse.Namespace object, ...
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (pickle, zip and I/O errors)
        text = str(error)
        blocked = _BLOCKED_GLOBAL.search(text)
        if blocked:
            name = blocked.group(1)
            raise ValueError(
                f"cannot read {what} '{path}': it holds a pickled {name} object, which "
                "weights-only loading refuses (unpickling it could run code); re-save the "
                "weights alone, in a Python session you trust: "
                f"state = torch.load('{path.name}', weights_only=False); "
                "torch.save(state['model'] (or the entry holding the tensors), 'weights.pt')"
            ) from None
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
        raise ValueError(f"cannot read {what} '{path}': {first_line}") from None


def read_checkpoint(path):
    """Read the state dict of a checkpoint file.

    ``.safetensors`` files are read with safetensors; other files with
    ``torch.load(weights_only=True)``. A ``{"model": ...}`` (microsoft/FocalNet)
    or ``{"state_dict": ...}`` wrapper is removed.

    Arguments
    ---------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    dict
        Parameter name -> tensor.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "focalnet.pth")
    >>> torch.save({"model": {"head.bias": torch.zeros(2)}, "epoch": 300}, path)
    >>> list(read_checkpoint(path))
    ['head.bias']
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            state = load_file(str(path))
        except Exception as error:  # noqa: BLE001  (safetensors errors)
            raise ValueError(f"cannot read pretrained checkpoint '{path}': {error}") from None
    else:
        state = load_weights_file(path, "pretrained checkpoint")
    for wrapper in ("model", "state_dict", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        others = (
            sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))[:4]
            if isinstance(state, dict) else type(state).__name__
        )
        raise ValueError(
            f"{path} does not hold a state dict of tensors (non-tensor entries: {others}); "
            "re-save the model's state_dict()"
        )
    return state


def _grid_of(num_positions):
    side = int(round(num_positions**0.5))
    if side * side != num_positions:
        raise ValueError(
            f"cannot infer the grid of {num_positions} position embeddings (not a square)"
        )
    return side, side


def adapt_state_dict(model, state_dict, adapt_in_chans=True):
    """Adapt a converted ImageNet state dict to ``model``; returns (state dict, notes).

    * The input convolution (``patch_embed.proj.weight``) with 3 input channels
      becomes 1-channel by summing its filters over the channels (timm's
      ``adapt_input_conv``), when ``model`` takes 1 channel and
      ``adapt_in_chans``.
    * ``head.*`` is dropped when ``model`` has no head (``num_classes=0``).
    * A ViT ``pos_embed`` stored for another (square) grid is resampled bicubically
      to the model's ``pos_embed_grid``.

    Arguments
    ---------
    model : torch.nn.Module
        Our FocalNet or VisionTransformer.
    state_dict : dict
        Converted with :func:`focalnet_lobes.convert_state_dict`.
    adapt_in_chans : bool
        Allow the 3 -> 1 channel adaptation.

    Returns
    -------
    state_dict : dict
    notes : list of str
        What was changed.

    Example
    -------
    >>> from focalnet_lobes.models.focalnet import FocalNet
    >>> rgb = FocalNet(in_chans=3, num_classes=5, embed_dim=8, depths=(1,)).state_dict()
    >>> mono = FocalNet(in_chans=1, num_classes=0, embed_dim=8, depths=(1,))
    >>> adapted, notes = adapt_state_dict(mono, rgb)
    >>> tuple(adapted["patch_embed.proj.weight"].shape), "head.weight" in adapted
    ((8, 1, 4, 4), False)
    """
    own = model.state_dict()
    adapted, notes = dict(state_dict), []
    weight = adapted.get(INPUT_CONV_KEY)
    target = own.get(INPUT_CONV_KEY)
    if (
        weight is not None
        and target is not None
        and weight.dim() == 4
        and weight.shape[1] != target.shape[1]
        and weight.shape[0] == target.shape[0]
        and weight.shape[2:] == target.shape[2:]
    ):
        if not (adapt_in_chans and target.shape[1] == 1):
            raise ValueError(
                f"{INPUT_CONV_KEY}: the checkpoint takes {weight.shape[1]} input channels, "
                f"the model {target.shape[1]} (only 3 -> 1 is adapted, with adapt_in_chans=True)"
            )
        adapted[INPUT_CONV_KEY] = weight.sum(dim=1, keepdim=True)
        notes.append(f"{INPUT_CONV_KEY}: summed {weight.shape[1]} input channels into 1")
    head_keys = [key for key in adapted if key.startswith("head.")]
    if head_keys and not any(key.startswith("head.") for key in own):
        for key in head_keys:
            del adapted[key]
        notes.append("dropped the ImageNet classifier (the model has no head)")
    position = adapted.get("pos_embed")
    if position is not None and "pos_embed" in own and position.shape != own["pos_embed"].shape:
        from focalnet_lobes.models.vit import resample_position_embedding

        prefix = getattr(model, "num_prefix_tokens", 1)
        old_grid = _grid_of(position.shape[1] - prefix)
        adapted["pos_embed"] = resample_position_embedding(
            position, model.pos_embed_grid, old_grid, num_prefix_tokens=prefix,
            antialias=getattr(model, "pos_embed_antialias", True),
        )
        notes.append(f"pos_embed: resampled from {old_grid} to {tuple(model.pos_embed_grid)}")
    return adapted, notes


def load_pretrained_backbone(model, path, source, adapt_in_chans=True):
    """Load ImageNet weights from a timm, microsoft/FocalNet or transformers file.

    Arguments
    ---------
    model : torch.nn.Module
        Our :class:`~focalnet_lobes.FocalNet` or
        :class:`~focalnet_lobes.VisionTransformer`, built with the checkpoint's
        architecture (``in_chans`` 1 or 3, any ``num_classes``).
    path : str or pathlib.Path or None
        The checkpoint; ``None`` returns ``model`` unchanged.
    source : str
        ``"timm"``, ``"microsoft"`` or ``"transformers"``.
    adapt_in_chans : bool
        Sum the first convolution's filters over its 3 input channels for a
        1-channel model.

    Returns
    -------
    torch.nn.Module
        ``model``, with the weights loaded.

    Raises
    ------
    ValueError
        The file cannot be read with ``weights_only=True`` (the message names
        the blocked object and how to re-save the file), or it does not fit the
        model: the message names the architecture settings that differ (e.g.
        ``focal_levels: checkpoint has [4, 4, 4, 4], model has [3, 3, 3, 3]``,
        :func:`focalnet_lobes.models.convert.architecture_differences`), then the
        missing, unexpected and mismatched parameters.

    Example
    -------
    >>> import tempfile, os
    >>> from focalnet_lobes.models.vit import VisionTransformer
    >>> path = os.path.join(tempfile.mkdtemp(), "vit_imagenet.pth")
    >>> imagenet = VisionTransformer(in_chans=3, num_classes=10, patch_size=8, embed_dim=16,
    ...                              depth=1, num_heads=2, pos_embed_grid=4)
    >>> torch.save(imagenet.state_dict(), path)  # timm's parameter names
    >>> audio = VisionTransformer(in_chans=1, num_classes=0, patch_size=8, embed_dim=16,
    ...                           depth=1, num_heads=2, pos_embed_grid=(6, 2))
    >>> audio = load_pretrained_backbone(audio, path, "timm")
    >>> tuple(audio.patch_embed.proj.weight.shape), tuple(audio.pos_embed.shape)
    ((16, 1, 8, 8), (1, 13, 16))
    >>> wider = VisionTransformer(in_chans=1, num_classes=0, patch_size=8, embed_dim=32,
    ...                           depth=1, num_heads=2, pos_embed_grid=4)
    >>> load_pretrained_backbone(wider, path, "timm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... does not fit VisionTransformer: ... shape mismatch ...
    """
    if path is None:
        return model
    if source not in SOURCES:
        raise ValueError(f"Unknown source '{source}': expected one of {SOURCES}")
    state = read_checkpoint(path)
    try:
        converted = convert_state_dict(state, source)
    except ValueError as error:
        raise ValueError(
            f"{path} is not a '{source}' checkpoint we can convert: {error}"
        ) from error
    adapted, notes = adapt_state_dict(model, converted, adapt_in_chans)
    own = model.state_dict()
    missing, unexpected, mismatched = state_dict_differences(adapted, own)
    if missing or unexpected or mismatched:
        settings = architecture_differences(adapted, own, ignore=("num_classes",))
        raise ValueError(
            f"{path} ({source}) does not fit {type(model).__name__}: "
            + (f"settings differ: {'; '.join(settings)}; " if settings else "")
            + f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}, "
            f"shape mismatch (checkpoint vs model) {mismatched[:6]}"
            f"{' ...' if len(mismatched) > 6 else ''}: build the model with the "
            "checkpoint's architecture (a stem='cnn' model has no ImageNet weights)"
        )
    model.load_state_dict(adapted, strict=True)
    for note in notes:
        logger.info("load_pretrained_backbone: %s", note)
    logger.info("Loaded %s weights from %s", source, path)
    return model


def initialise_new_run(pretrained_init, model, checkpointer=None):
    """Apply an ImageNet initialisation to ``model`` when a run starts, not when it resumes.

    The training YAMLs name the loader with ``!name:`` (``pretrained_init``), so
    reading a YAML, or a trained run's saved ``hyperparams.yaml``, never opens the
    ImageNet file; ``recipes/train.py`` calls this once, before training. A run
    that resumes from a checkpoint gets its weights from the checkpoint instead.

    Arguments
    ---------
    pretrained_init : callable or None
        ``pretrained_init(model)`` loads the weights (e.g. ``functools.partial`` of
        :func:`load_pretrained_backbone` with ``path`` and ``source``); None: nothing.
    model : torch.nn.Module
        The backbone.
    checkpointer : speechbrain.utils.checkpoints.Checkpointer or None
        The run's checkpointer; when it holds a checkpoint, nothing is loaded.

    Returns
    -------
    bool
        True when the initialisation ran.

    Raises
    ------
    ValueError
        From the loader: an unreadable file or one that does not fit the model.

    Example
    -------
    >>> import torch
    >>> calls = []
    >>> initialise_new_run(calls.append, torch.nn.Linear(2, 2)), len(calls)
    (True, 1)
    >>> initialise_new_run(None, torch.nn.Linear(2, 2))
    False
    """
    if pretrained_init is None:
        return False
    if checkpointer is not None and checkpointer.find_checkpoint() is not None:
        return False
    pretrained_init(model)
    return True
