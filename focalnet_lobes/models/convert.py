"""Convert microsoft/FocalNet, timm and Hugging Face transformers state dicts to ours.

:func:`convert_state_dict` detects the architecture (FocalNet or ViT) from the keys
and maps every tensor to the parameter names of :class:`focalnet_lobes.FocalNet` or
:class:`focalnet_lobes.VisionTransformer`, so that ``model.load_state_dict(...,
strict=True)`` works on the result.
"""


import re

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
    # microsoft/FocalNet and timm training checkpoints wrap the weights: {"model": {...}}
    wrapper_keys = {"model", "epoch", "optimizer", "lr_scheduler", "config", "max_accuracy"}
    if set(state_dict) <= wrapper_keys and isinstance(state_dict.get("model"), dict):
        state_dict = state_dict["model"]
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
    >>> from focalnet_lobes.models.focalnet import FocalNet
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

# Our ViT uses timm's parameter names; these are the ones a timm ``vit_*`` state dict
# may hold that our model has (no register tokens, pre-norm, fc_norm, attention
# pooling, layer scale or q/k norm, which our model does not implement).
_VIT_TIMM_NAMES = frozenset(
    [
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    ]
)
_VIT_TIMM_BLOCK_MODULES = frozenset(
    ["norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
)
# Hugging Face ViT layer parameters, in both the hub checkpoint layout
# (``encoder.layer.N.attention.attention.query``...) and the transformers>=5 module
# layout (``layers.N.attention.q_proj``...).
_VIT_HF_LAYER_PREFIXES = ("encoder.layer.", "layers.")
_VIT_HF_LAYER_NAMES = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_VIT_HF_QKV_NAMES = {
    "attention.attention.query": 0,
    "attention.attention.key": 1,
    "attention.attention.value": 2,
    "attention.q_proj": 0,
    "attention.k_proj": 1,
    "attention.v_proj": 2,
}
_VIT_HF_NAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
# Parameters of Hugging Face models that are not part of ours: the pooler
# (dense + tanh on the class token, unused by ViTForImageClassification and by the
# paper's recipe, which averaged ``last_hidden_state``) and the mask token of
# masked-image-modelling pre-training.
_VIT_HF_DROPPED = frozenset(("pooler.dense.weight", "pooler.dense.bias", "embeddings.mask_token"))


def convert_vit(state_dict, source):
    """ViT state dict from ``source`` -> ours (see :func:`convert_state_dict`).

    ``"timm"``: ``vit_*`` models with a class token and the class token's entry in
    the position embedding (``no_embed_class=False``), without register tokens,
    ``norm_pre``, ``fc_norm``, attention pooling, layer scale or q/k norm. The
    names are ours already; unsupported parameters raise a ValueError.

    ``"transformers"``: ``ViTModel`` or ``ViTForImageClassification`` (keys
    prefixed with ``vit.``), in the hub checkpoint layout
    (``encoder.layer.N.attention.attention.query``...) or the transformers>=5
    layout (``layers.N.attention.q_proj``...). Query, key and value are
    concatenated into ``attn.qkv``; ``classifier`` becomes ``head``. The pooler
    (``pooler.dense``, a dense + tanh on the class token that Hugging Face's
    classification head does not use) and ``embeddings.mask_token`` are not part
    of our model and are dropped. Hugging Face configs use ``layer_norm_eps=1e-12``:
    build our model with the same epsilon.

    Arguments
    ---------
    state_dict : dict
        The reference model's parameters.
    source : str
        ``"timm"`` or ``"transformers"``.

    Returns
    -------
    dict
        Parameters for :class:`focalnet_lobes.models.vit.VisionTransformer`, loadable
        with ``strict=True`` into a model of the same configuration.

    Example
    -------
    >>> from focalnet_lobes.models.vit import VisionTransformer
    >>> model = VisionTransformer(patch_size=4, embed_dim=8, depth=1, num_heads=2,
    ...                           num_classes=3, pos_embed_grid=2)
    >>> converted = convert_vit(model.state_dict(), "timm")
    >>> model.load_state_dict(converted, strict=True)
    <All keys matched successfully>
    >>> convert_vit(model.state_dict(), "microsoft")
    Traceback (most recent call last):
    ...
    ValueError: source 'microsoft' has no ViT: use 'timm' or 'transformers'
    """
    if source == "timm":
        return _convert_vit_timm(state_dict)
    if source == "transformers":
        return _convert_vit_transformers(state_dict)
    if source == "microsoft":
        raise ValueError("source 'microsoft' has no ViT: use 'timm' or 'transformers'")
    raise ValueError(f"Unknown ViT source '{source}': expected 'timm' or 'transformers'")


def _convert_vit_timm(state_dict):
    """timm ``vit_*`` -> ours: same names; reject what our model does not have."""
    unsupported = sorted(key for key in state_dict if not _is_vit_timm_key(key))
    if unsupported:
        raise ValueError(
            "timm ViT parameters that VisionTransformer does not implement "
            f"(register tokens, norm_pre, fc_norm, attention pooling, layer scale, "
            f"q/k norm?): {unsupported[:8]}"
        )
    if "cls_token" not in state_dict:
        raise ValueError("timm ViT without a class token: build it with class_token=False")
    return dict(state_dict)


def _is_vit_timm_key(key):
    """Whether ``key`` names a parameter that our ViT shares with timm's."""
    if key in _VIT_TIMM_NAMES:
        return True
    parts = key.split(".")
    return (
        len(parts) >= 4
        and parts[0] == "blocks"
        and parts[1].isdigit()
        and ".".join(parts[2:-1]) in _VIT_TIMM_BLOCK_MODULES
        and parts[-1] in ("weight", "bias")
    )


def _split_vit_hf_layer_key(name):
    """``"encoder.layer.3.attention.output.dense.bias"`` -> ``("3", "attention.output.dense",
    "bias")``; None when ``name`` is not a layer parameter."""
    for layer_prefix in _VIT_HF_LAYER_PREFIXES:
        if name.startswith(layer_prefix):
            layer, _, rest = name[len(layer_prefix) :].partition(".")
            module, _, kind = rest.rpartition(".")
            if layer.isdigit() and module and kind in ("weight", "bias"):
                return layer, module, kind
    return None


def _convert_vit_transformers(state_dict):
    """Hugging Face ``ViTModel`` / ``ViTForImageClassification`` -> ours."""
    import torch

    cls_keys = [key for key in state_dict if key.endswith("embeddings.cls_token")]
    if len(cls_keys) != 1:
        raise ValueError(
            "not a Hugging Face ViT state dict: expected one '[vit.]embeddings.cls_token', "
            f"found {cls_keys}"
        )
    prefix = cls_keys[0][: -len("embeddings.cls_token")]
    converted, qkv_parts, unknown = {}, {}, []
    for key, tensor in state_dict.items():
        if key in ("classifier.weight", "classifier.bias"):
            converted["head." + key.split(".")[-1]] = tensor
            continue
        if not key.startswith(prefix):
            unknown.append(key)
            continue
        name = key[len(prefix) :]
        if name in _VIT_HF_DROPPED:
            continue
        if name in _VIT_HF_NAMES:
            converted[_VIT_HF_NAMES[name]] = tensor
            continue
        layer_key = _split_vit_hf_layer_key(name)
        if layer_key is None:
            unknown.append(key)
            continue
        layer, module, kind = layer_key
        if module in _VIT_HF_LAYER_NAMES:
            converted[f"blocks.{layer}.{_VIT_HF_LAYER_NAMES[module]}.{kind}"] = tensor
        elif module in _VIT_HF_QKV_NAMES:
            parts = qkv_parts.setdefault((layer, kind), [None, None, None])
            parts[_VIT_HF_QKV_NAMES[module]] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"Hugging Face ViT parameters with no counterpart in ours: {unknown[:8]}")
    for (layer, kind), parts in qkv_parts.items():
        if any(part is None for part in parts):
            raise ValueError(f"layer {layer}: query, key and value {kind} are not all present")
        converted[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)
    return converted


# --- Architecture settings read from a state dict ----------------------------------

_FOCALNET_BLOCK_KEY = re.compile(r"^(?P<prefix>.*?)stages\.(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.(?P<rest>.+)$")
_VIT_BLOCK_KEY = re.compile(r"^(?P<prefix>.*?)blocks\.(?P<block>\d+)\.attn\.qkv\.weight$")


def architecture_settings(state_dict):
    """The architecture settings of one of our FocalNet or ViT state dicts, from keys and shapes.

    Reads what our parameter names and shapes determine (as converted by
    :func:`convert_state_dict`, or ``model.state_dict()``; a common prefix such
    as ``"backbone."`` is allowed), so that a checkpoint that does not fit a
    model can be explained by the *setting* that differs rather than by a
    tensor shape.

    FocalNet: ``depths``, ``embed_dim``, ``focal_levels`` and ``focal_windows``
    (per stage, from the depthwise focal convolutions), ``stem`` (``"patch"`` or
    ``"cnn"``), ``use_conv_embed`` (3x3 downsampling convolutions), ``patch_size``,
    ``in_chans``, ``use_layerscale``, ``use_postln_in_modulation``, ``mlp_ratio``
    and ``num_classes``. ViT: ``depth``, ``embed_dim``, ``patch_size``,
    ``in_chans``, ``mlp_ratio``, ``position_embeddings`` and ``num_classes``.
    Settings that cannot be told apart from the tensors (e.g. the number of
    attention heads) are not reported.

    Arguments
    ---------
    state_dict : dict
        Parameter name -> tensor.

    Returns
    -------
    dict
        ``{"architecture": "focalnet" | "vit" | None, setting: value, ...}``.

    Example
    -------
    >>> from focalnet_lobes.models.focalnet import FocalNet
    >>> model = FocalNet(embed_dim=8, depths=(1, 2), focal_levels=(3, 2), use_conv_embed=True)
    >>> settings = architecture_settings(model.state_dict())
    >>> settings["depths"], settings["focal_levels"], settings["use_conv_embed"]
    ([1, 2], [3, 2], True)
    """
    keys = list(state_dict)
    focal = [_FOCALNET_BLOCK_KEY.match(key) for key in keys]
    focal = [match for match in focal if match and match["rest"].startswith("modulation")]
    if focal:
        return _focalnet_settings(state_dict, focal[0]["prefix"])
    vit = [match for match in map(_VIT_BLOCK_KEY.match, keys) if match]
    if vit:
        return _vit_settings(state_dict, vit[0]["prefix"])
    return {"architecture": None}


def _shape(state_dict, key):
    value = state_dict.get(key)
    return tuple(value.shape) if hasattr(value, "shape") else None


def _focalnet_settings(state_dict, prefix):
    blocks, levels, windows = {}, {}, {}
    for key in state_dict:
        match = _FOCALNET_BLOCK_KEY.match(key)
        if not match or match["prefix"] != prefix:
            continue
        stage, block = int(match["stage"]), int(match["block"])
        blocks.setdefault(stage, set()).add(block)
        conv = re.match(r"modulation\.focal_convs\.(\d+)\.weight$", match["rest"])
        if conv and block == 0:
            levels[stage] = max(levels.get(stage, 0), int(conv[1]) + 1)
            if conv[1] == "0":
                windows[stage] = _shape(state_dict, key)[-1]
    stages = sorted(blocks)
    settings = {
        "architecture": "focalnet",
        "depths": [len(blocks[stage]) for stage in stages],
        "focal_levels": [levels.get(stage) for stage in stages],
        "focal_windows": [windows.get(stage) for stage in stages],
    }
    first_block = f"{prefix}stages.{stages[0]}.blocks.0."
    projection = _shape(state_dict, first_block + "modulation.modulator_proj.weight")
    if projection:
        settings["embed_dim"] = projection[0]
    hidden = _shape(state_dict, first_block + "mlp.fc1.weight")
    if hidden and projection:
        settings["mlp_ratio"] = hidden[0] / projection[0]
    stem_keys = [key for key in state_dict if key.startswith(prefix + "patch_embed.proj.")]
    embed = _shape(state_dict, prefix + "patch_embed.proj.weight")
    if stem_keys and embed is None:
        settings["stem"] = "cnn"
    elif embed is not None:
        settings["stem"] = "patch"
        settings["in_chans"] = embed[1]
    downsample = _shape(state_dict, f"{prefix}stages.{stages[-1]}.downsample.proj.weight")
    if downsample is not None:
        settings["use_conv_embed"] = downsample[-1] == 3
    elif embed is not None:
        settings["use_conv_embed"] = embed[-1] == 7
    if embed is not None and not settings.get("use_conv_embed"):
        settings["patch_size"] = embed[-1]
    settings["use_layerscale"] = any(key.endswith("modulation_layer_scale") for key in state_dict)
    settings["use_postln_in_modulation"] = any(
        key.endswith("modulation.output_norm.weight") for key in state_dict
    )
    head = _shape(state_dict, prefix + "head.weight")
    settings["num_classes"] = head[0] if head else 0
    return settings


def _vit_settings(state_dict, prefix):
    depth = len({m["block"] for m in map(_VIT_BLOCK_KEY.match, state_dict) if m and m["prefix"] == prefix})
    settings = {"architecture": "vit", "depth": depth}
    embed = _shape(state_dict, prefix + "patch_embed.proj.weight")
    if embed is not None:
        settings.update(embed_dim=embed[0], in_chans=embed[1], patch_size=embed[-1])
    hidden = _shape(state_dict, prefix + "blocks.0.mlp.fc1.weight")
    if hidden:
        settings["mlp_ratio"] = hidden[0] / hidden[1]
    position = _shape(state_dict, prefix + "pos_embed")
    if position:
        settings["position_embeddings"] = position[1]
    head = _shape(state_dict, prefix + "head.weight")
    settings["num_classes"] = head[0] if head else 0
    return settings


def state_dict_differences(checkpoint_state, model_state):
    """The parameters that keep a checkpoint from loading strictly into a model.

    Arguments
    ---------
    checkpoint_state, model_state : dict
        State dicts (name -> tensor) of the checkpoint and of the model.

    Returns
    -------
    missing : list of str
        Names the model has and the checkpoint lacks, sorted.
    unexpected : list of str
        Names the checkpoint has and the model lacks, sorted.
    mismatched : list of str
        ``"name (checkpoint shape) vs (model shape)"`` for the shared names whose
        shapes differ, sorted by name.

    All three are empty when ``model.load_state_dict(checkpoint_state,
    strict=True)`` can load it.

    Example
    -------
    >>> import torch
    >>> checkpoint = {"a": torch.zeros(2), "b": torch.zeros(3, 1), "c": torch.zeros(1)}
    >>> model = {"a": torch.zeros(2), "b": torch.zeros(3, 2), "d": torch.zeros(1)}
    >>> state_dict_differences(checkpoint, model)
    (['d'], ['c'], ['b (3, 1) vs (3, 2)'])
    """
    missing = sorted(set(model_state) - set(checkpoint_state))
    unexpected = sorted(set(checkpoint_state) - set(model_state))
    mismatched = [
        f"{key} {tuple(checkpoint_state[key].shape)} vs {tuple(model_state[key].shape)}"
        for key in sorted(set(model_state) & set(checkpoint_state))
        if tuple(checkpoint_state[key].shape) != tuple(model_state[key].shape)
    ]
    return missing, unexpected, mismatched


def architecture_differences(checkpoint_state, model_state, ignore=()):
    """The settings on which a checkpoint and a model differ, one phrase each.

    Arguments
    ---------
    checkpoint_state, model_state : dict
        State dicts in our parameter names (see :func:`architecture_settings`).
    ignore : sequence of str
        Settings not to compare (e.g. ``"position_embeddings"``, which
        :func:`focalnet_lobes.models.pretrained_init.adapt_state_dict` resamples).

    Returns
    -------
    list of str
        ``"focal_levels: checkpoint has [4, 4], model has [3, 3]"``...; empty
        when no setting we can read differs.

    Example
    -------
    >>> from focalnet_lobes.models.focalnet import FocalNet
    >>> checkpoint = FocalNet(embed_dim=8, depths=(1, 1), focal_levels=4, use_conv_embed=True)
    >>> model = FocalNet(embed_dim=8, depths=(1, 1), focal_levels=3)
    >>> architecture_differences(checkpoint.state_dict(), model.state_dict())
    ['focal_levels: checkpoint has [4, 4], model has [3, 3]', 'use_conv_embed: checkpoint has True, model has False']
    """
    ours, theirs = architecture_settings(checkpoint_state), architecture_settings(model_state)
    if ours["architecture"] != theirs["architecture"]:
        return [f"architecture: checkpoint is {ours['architecture']}, model is {theirs['architecture']}"]
    differences = []
    for name, value in ours.items():
        if name in ignore or name == "architecture" or name not in theirs:
            continue
        if value != theirs[name]:
            differences.append(f"{name}: checkpoint has {value}, model has {theirs[name]}")
    return differences
