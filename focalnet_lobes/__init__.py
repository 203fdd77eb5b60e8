"""focalnet-audio lobes: FocalNet and ViT that expose their interpretation maps.

Model code only (no file I/O): architectures, heads, named configurations, and
weight conversion from microsoft/FocalNet, timm and Hugging Face transformers.
"""

from focalnet_lobes.registry import create_model, list_models, model_config, register_model
from focalnet_lobes.stems import ConvStem
from focalnet_lobes import focalnet, vit  # noqa: F401  (register the named configs)
from focalnet_lobes.focalnet import FocalNet, FocalModulation
from focalnet_lobes.vit import VisionTransformer
from focalnet_lobes.convert import convert_state_dict

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
