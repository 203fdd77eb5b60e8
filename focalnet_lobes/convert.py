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


def convert_focalnet(state_dict, source):
    """FocalNet state dict from ``source`` -> ours (see :func:`convert_state_dict`)."""
    raise NotImplementedError


# --- ViT -----------------------------------------------------------------------------


def convert_vit(state_dict, source):
    """ViT state dict from ``source`` -> ours (see :func:`convert_state_dict`)."""
    raise NotImplementedError
