"""Convert microsoft/FocalNet, timm and Hugging Face transformers state dicts to ours.

:func:`convert_state_dict` detects the architecture (FocalNet or ViT) from the keys
and maps every tensor to the parameter names of :class:`focalnet_lobes.FocalNet` or
:class:`focalnet_lobes.VisionTransformer`, so that ``model.load_state_dict(...,
strict=True)`` works on the result.
"""

SOURCES = ("microsoft", "timm", "transformers")


def convert_state_dict(state_dict, source):
    """Return ``state_dict`` renamed (and reshaped where needed) for our models.

    Arguments
    ---------
    state_dict : dict
        Parameters of a reference model.
    source : str
        Where they come from: ``"microsoft"`` (microsoft/FocalNet),
        ``"timm"`` (``focalnet_*`` or ``vit_*``) or ``"transformers"``
        (``FocalNetModel``/``FocalNetBackbone``/``FocalNetForImageClassification``,
        ``ViTModel``/``ViTForImageClassification``).

    Returns
    -------
    dict
        A state dict that the matching model of ours loads with ``strict=True``.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown source '{source}': expected one of {SOURCES}")
    if any("modulation" in key for key in state_dict):
        return convert_focalnet(state_dict, source)
    return convert_vit(state_dict, source)


# --- FocalNet ------------------------------------------------------------------------

# Names inside a block (after ``...blocks.J.``/``...layers.J.``), per source -> ours.
# Focal convolutions (``modulation.focal_layers.L.0``) are handled separately.
_FOCALNET_BLOCK_NAMES = {
    "microsoft": {
        "norm1": "modulation_norm",
        "norm2": "mlp_norm",
        "gamma_1": "modulation_layer_scale",
        "gamma_2": "mlp_layer_scale",
        "modulation.f": "modulation.input_proj",
        "modulation.h": "modulation.modulator_proj",
        "modulation.proj": "modulation.output_proj",
        "modulation.ln": "modulation.output_norm",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    },
    "timm": {
        "norm1": "modulation_norm",
        "norm1_post": "modulation_norm",
        "norm2": "mlp_norm",
        "norm2_post": "mlp_norm",
        "ls1.gamma": "modulation_layer_scale",
        "ls2.gamma": "mlp_layer_scale",
        "modulation.f": "modulation.input_proj",
        "modulation.h": "modulation.modulator_proj",
        "modulation.proj": "modulation.output_proj",
        "modulation.norm": "modulation.output_norm",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    },
    "transformers": {
        "norm1": "modulation_norm",
        "norm2": "mlp_norm",
        "gamma_1": "modulation_layer_scale",
        "gamma_2": "mlp_layer_scale",
        "modulation.projection_in": "modulation.input_proj",
        "modulation.projection_context": "modulation.modulator_proj",
        "modulation.projection_out": "modulation.output_proj",
        "modulation.layernorm": "modulation.output_norm",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    },
}
# Top-level names (stem, final norm, classifier), per source -> ours.
_FOCALNET_TOP_NAMES = {
    "microsoft": {
        "patch_embed.proj": "patch_embed.proj",
        "patch_embed.norm": "patch_embed.norm",
        "norm": "norm",
        "head": "head",
    },
    "timm": {
        "stem.proj": "patch_embed.proj",
        "stem.norm": "patch_embed.norm",
        "norm": "norm",
        "head.fc": "head",
    },
    "transformers": {
        "embeddings.patch_embeddings.projection": "patch_embed.proj",
        "embeddings.norm": "patch_embed.norm",
        "layernorm": "norm",
        "classifier": "head",
    },
}
# (container of stages, name of the blocks inside a stage, name of the downsampling
# projection, offset from the stage index of the source to ours for downsampling:
# microsoft and transformers downsample at the END of stage i, we (and timm) at the
# START of stage i + 1).
_FOCALNET_STAGE_LAYOUT = {
    "microsoft": ("layers.", "blocks", "proj", 1),
    "timm": ("layers.", "blocks", "proj", 0),
    "transformers": ("encoder.stages.", "layers", "projection", 1),
}
# Our parameters that are nn.Linear where a source may store a 1x1 convolution.
_FOCALNET_LINEAR_SUFFIXES = (
    "modulation.input_proj.weight",
    "modulation.modulator_proj.weight",
    "modulation.output_proj.weight",
    "mlp.fc1.weight",
    "mlp.fc2.weight",
)
# transformers parameters with no counterpart in our model (dropped):
# the mask token and the pixel decoder of FocalNetForMaskedImageModeling, and
# per-stage output norms that some backbone variants add for dense prediction.
_FOCALNET_HF_DROPPED_PREFIXES = ("embeddings.mask_token", "decoder.", "hidden_states_norms.")


def _split_name(key):
    """``"a.b.weight"`` -> ``("a.b", "weight")``."""
    module, _, param = key.rpartition(".")
    return module, param


def _convert_focalnet_stage_key(rest, source):
    """Map ``I.<...>`` (the part after the stage container) to ours, or None."""
    _, blocks_name, down_proj, down_offset = _FOCALNET_STAGE_LAYOUT[source]
    stage, _, inner = rest.partition(".")
    if not stage.isdigit():
        return None
    stage = int(stage)
    if inner.startswith("downsample."):
        module, param = _split_name(inner[len("downsample."):])
        if param not in ("weight", "bias"):
            return None
        mapped = {down_proj: "proj", "norm": "norm"}.get(module)
        if mapped is None:
            return None
        return f"stages.{stage + down_offset}.downsample.{mapped}.{param}"
    if not inner.startswith(blocks_name + "."):
        return None
    block, _, name = inner[len(blocks_name) + 1:].partition(".")
    if not block.isdigit():
        return None
    prefix = f"stages.{stage}.blocks.{block}."
    if name in ("gamma_1", "gamma_2") and source != "timm":
        return prefix + _FOCALNET_BLOCK_NAMES[source][name]
    if name.startswith("modulation.focal_layers."):
        level, _, tail = name[len("modulation.focal_layers."):].partition(".")
        if level.isdigit() and tail == "0.weight":
            return f"{prefix}modulation.focal_convs.{level}.weight"
        return None
    module, param = _split_name(name)
    if source == "timm" and param == "gamma" and module in ("ls1", "ls2"):
        return prefix + _FOCALNET_BLOCK_NAMES["timm"][name]
    mapped = _FOCALNET_BLOCK_NAMES[source].get(module)
    if mapped is None or param not in ("weight", "bias"):
        return None
    return f"{prefix}{mapped}.{param}"


def _convert_focalnet_key(key, source):
    """Our name for ``key`` of ``source``; None if unknown, "" if deliberately dropped."""
    if source == "transformers":
        if key.startswith("focalnet."):
            key = key[len("focalnet."):]
        if key.startswith(_FOCALNET_HF_DROPPED_PREFIXES):
            return ""
    container = _FOCALNET_STAGE_LAYOUT[source][0]
    if key.startswith(container):
        return _convert_focalnet_stage_key(key[len(container):], source)
    module, param = _split_name(key)
    mapped = _FOCALNET_TOP_NAMES[source].get(module)
    if mapped is None or param not in ("weight", "bias"):
        return None
    return f"{mapped}.{param}"


def convert_focalnet(state_dict, source):
    """FocalNet state dict from ``source`` -> ours (see :func:`convert_state_dict`).

    Every tensor is renamed; 1x1-convolution weights (timm's ``f``, ``proj``,
    ``mlp.fc*``; every source's ``h``) become the matching ``nn.Linear`` weights.
    Our model must be built with the source's options (depths, embed_dim, focal
    levels/windows, ``use_conv_embed``, ``use_layerscale``, ``use_postln``,
    ``use_postln_in_modulation``, ``normalize_modulator``; ``patch_norm=True``,
    which timm and transformers always use) and with ``num_classes`` equal to the
    source's head size, or 0 when the state dict has no head.

    * ``"microsoft"``: microsoft/FocalNet ``classification/focalnet.py`` (the
      checkpoints' ``"model"`` entry). Its downsampling at the end of
      ``layers.i`` becomes the downsampling at the start of our ``stages.i+1``.
    * ``"timm"``: timm ``focalnet_*`` (``stem``, ``layers.i.downsample``,
      ``ls1.gamma``, ``norm1_post``...; ``head.fc`` -> ``head``). timm models built
      with ``head_hidden_size`` (an MLP head) are not supported.
    * ``"transformers"``: ``FocalNetModel`` (no prefix, no classifier: load into
      ``num_classes=0``), ``FocalNetForImageClassification`` and ``FocalNetBackbone``
      (prefix ``focalnet.``; ``classifier`` -> ``head``). ``FocalNetBackbone`` keeps
      the final ``layernorm`` that becomes our ``norm``. Dropped, since our model has
      no counterpart: ``embeddings.mask_token`` and ``decoder.*``
      (``FocalNetForMaskedImageModeling``) and ``hidden_states_norms.*`` (per-stage
      output norms of dense-prediction backbones).

    Arguments
    ---------
    state_dict : dict
        FocalNet parameters from ``source``.
    source : str
        ``"microsoft"``, ``"timm"`` or ``"transformers"``.

    Returns
    -------
    dict
        Our parameter names -> tensors.

    Example
    -------
    >>> import torch
    >>> from focalnet_lobes.focalnet import FocalNet
    >>> ours = FocalNet(num_classes=0, embed_dim=8, depths=(1, 1))
    >>> microsoft = {"layers.0.blocks.0.modulation.h.weight": torch.zeros(8, 8, 1, 1),
    ...              "layers.0.downsample.proj.bias": torch.zeros(16)}
    >>> {k: tuple(v.shape) for k, v in convert_focalnet(microsoft, "microsoft").items()}
    {'stages.0.blocks.0.modulation.modulator_proj.weight': (8, 8), 'stages.1.downsample.proj.bias': (16,)}
    """
    if source not in _FOCALNET_STAGE_LAYOUT:
        raise ValueError(f"Unknown FocalNet source '{source}': expected one of {SOURCES}")
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        new_key = _convert_focalnet_key(key, source)
        if new_key is None:
            unknown.append(key)
            continue
        if new_key == "":
            continue
        if new_key.endswith(_FOCALNET_LINEAR_SUFFIXES) and tensor.ndim == 4:
            if tuple(tensor.shape[2:]) != (1, 1):
                raise ValueError(f"'{key}' should be a 1x1 convolution, got {tuple(tensor.shape)}")
            tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        if new_key in converted:
            raise ValueError(f"Two '{source}' parameters map to '{new_key}' (second: '{key}')")
        converted[new_key] = tensor
    if unknown:
        shown = ", ".join(unknown[:8]) + (", ..." if len(unknown) > 8 else "")
        raise ValueError(
            f"{len(unknown)} parameter(s) are not part of a '{source}' FocalNet that we "
            f"can convert: {shown}"
        )
    return converted


# --- ViT -----------------------------------------------------------------------------


def convert_vit(state_dict, source):
    """ViT state dict from ``source`` -> ours (see :func:`convert_state_dict`)."""
    raise NotImplementedError
