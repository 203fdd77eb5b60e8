"""Our lobes in the layout of SpeechBrain's published ESC-50 FocalNet and ViT models.

SpeechBrain's ``speechbrain/focalnet-base-esc50`` and ``speechbrain/vit-base-esc50``
were trained by ``recipes/ESC50/classification/train_{focalnet,vit}_classifier.py``
(speechbrain/speechbrain). Their classifier input is an ImageNet-sized image made
from the ``log1p`` STFT magnitude: the (T, F) spectrogram is resized to S x S
(``torchvision.transforms.functional.resize``: bilinear, antialiased) and repeated
to 3 channels. :class:`ImageInputAdapter` does the same as the ``normalizer`` of a
:class:`~focalnet_lobes.models.classifier.SpectrogramClassifier`, so that the classifier
still takes (B, 1, T, F) features and masks stay on the spectrogram grid.

The backbone's maps then live on a grid of the S x S image, which covers the whole
spectrogram (resized, not padded): :class:`ResizedModulationInterpreter` and
:class:`ResizedAttentionInterpreter` bring them back to (T, F) by resizing, as the
published interpretation recipes (``recipes/ESC50/interpret/test_{focalnet,vit}.py``)
do, instead of the padding-aware alignment of
:func:`focalnet_lobes.interpretation.interpret.to_input_grid`.

Model code only (no file I/O); the checkpoint loaders are in
:mod:`focalnet_lobes.inference.classifiers`.
"""

import torch.nn.functional as F
from torch import nn

from focalnet_lobes.interpretation.interpret import (
    AttentionInterpreter,
    ModulationInterpreter,
    attention_map,
)


class ImageInputAdapter(nn.Module):
    """Resize (B, 1, T, F) features to (B, channels, size, size), as the published recipes.

    Bilinear interpolation with ``align_corners=False`` and antialiasing, i.e.
    ``torchvision.transforms.functional.resize(features, (size, size))`` with its
    defaults, then the single channel repeated ``channels`` times.

    Arguments
    ---------
    size : int or tuple of int
        Output height and width (224 for the published models).
    channels : int
        Output channels (3: the backbones were pretrained on RGB images).
    antialias : bool
        Antialiasing of the (down)sampling, as torchvision's default.

    Example
    -------
    >>> import torch
    >>> adapter = ImageInputAdapter(size=32, channels=3)
    >>> adapter(torch.rand(2, 1, 431, 513)).shape
    torch.Size([2, 3, 32, 32])
    >>> adapter.output_size(431, 513)
    (32, 32)
    """

    def __init__(self, size=224, channels=3, antialias=True):
        super().__init__()
        if isinstance(size, int):
            size = (size, size)
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1 or channels < 1:
            raise ValueError(
                f"need a positive size (int or pair) and channels >= 1, got {size}, {channels}"
            )
        self.size = size
        self.channels = int(channels)
        self.antialias = antialias

    def output_size(self, time_steps, freq_bins):
        """(height, width) of the output for a (T, F) input: always ``size``."""
        return self.size

    def forward(self, features):
        """(B, 1, T, F) -> (B, channels, size[0], size[1])."""
        if features.dim() != 4 or features.shape[1] != 1:
            raise ValueError(
                f"ImageInputAdapter expects (B, 1, T, F) features, got {tuple(features.shape)}"
            )
        image = F.interpolate(
            features,
            size=self.size,
            mode="bilinear",
            align_corners=False,
            antialias=self.antialias,
        )
        return image.expand(-1, self.channels, -1, -1).contiguous()

    def extra_repr(self):
        return f"size={self.size}, channels={self.channels}, antialias={self.antialias}"


def _resize_to_features(grid_map, features, mode):
    """(B, h, w) map covering the whole input -> (B, 1, T, F) by plain resizing."""
    values = grid_map[:, None]
    if not values.is_floating_point():
        values = values.float()
    size = tuple(features.shape[-2:])
    if mode == "nearest":
        return F.interpolate(values, size=size, mode="nearest")
    return F.interpolate(values, size=size, mode="bilinear", align_corners=False)


def backbone_input_size(classifier, features):
    """(height, width) of what the backbone of ``classifier`` sees for ``features``.

    The ``normalizer`` of a :class:`~focalnet_lobes.models.classifier.SpectrogramClassifier`
    may change the size (:class:`ImageInputAdapter`); otherwise it is (T, F).

    Example
    -------
    >>> import torch
    >>> from types import SimpleNamespace
    >>> classifier = SimpleNamespace(normalizer=ImageInputAdapter(size=48))
    >>> backbone_input_size(classifier, torch.zeros(1, 1, 100, 64))
    (48, 48)
    """
    time_steps, freq_bins = features.shape[-2:]
    normalizer = getattr(classifier, "normalizer", None)
    if hasattr(normalizer, "output_size"):
        return tuple(normalizer.output_size(time_steps, freq_bins))
    return int(time_steps), int(freq_bins)


class ResizedModulationInterpreter(ModulationInterpreter):
    """:class:`~focalnet_lobes.interpretation.interpret.ModulationInterpreter` for resized inputs.

    The modulation map of the chosen stage is resized to the (T, F) feature grid
    (the grid of a backbone fed through :class:`ImageInputAdapter` covers the
    whole spectrogram). With the defaults (last stage, L2 norm over channels,
    bilinear) this is the map of the published FocalNet interpretation recipe.

    Example
    -------
    >>> import torch
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.focalnet import FocalNet
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = FocalNet(in_chans=3, num_classes=0, embed_dim=8, depths=(1, 1))
    >>> classifier = SpectrogramClassifier(
    ...     backbone, LinearHead(16, 4), ImageInputAdapter(size=32)
    ... ).eval()
    >>> logits, maps = ResizedModulationInterpreter()(classifier, torch.rand(2, 1, 50, 40))
    >>> logits.shape, maps.shape
    (torch.Size([2, 4]), torch.Size([2, 1, 50, 40]))
    """

    def _to_input_grid(self, grid_map, features, stride=None):
        return _resize_to_features(grid_map, features, self.upsampling)


class ResizedAttentionInterpreter(AttentionInterpreter):
    """:class:`~focalnet_lobes.interpretation.interpret.AttentionInterpreter` for resized inputs.

    The patch grid is the one of the image the ViT sees (e.g. 14 x 14 for 224 x
    224 images and 16 x 16 patches); the class-token attention (mean over heads)
    on that grid is resized to the (T, F) feature grid. With ``method="cls"`` and
    ``layer=-1`` this is the map of the published ViT interpretation recipe.

    Example
    -------
    >>> import torch
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> from focalnet_lobes.models.vit import VisionTransformer
    >>> backbone = VisionTransformer(in_chans=3, num_classes=0, patch_size=8, embed_dim=16,
    ...                              depth=1, num_heads=2, pos_embed_grid=4)
    >>> classifier = SpectrogramClassifier(
    ...     backbone, LinearHead(16, 4), ImageInputAdapter(size=32)
    ... ).eval()
    >>> logits, maps = ResizedAttentionInterpreter()(classifier, torch.rand(2, 1, 50, 40))
    >>> maps.shape
    torch.Size([2, 1, 50, 40])
    """

    def compute_maps(self, classifier, features):
        """Logits and attention maps resized from the backbone's patch grid."""
        if not hasattr(classifier, "forward_with_maps"):
            raise ValueError(
                f"{type(self).__name__} needs a SpectrogramClassifier, got "
                f"{type(classifier).__name__}"
            )
        logits, maps = classifier.forward_with_maps(features)
        if "attentions" not in maps:
            raise ValueError(
                f"{type(self).__name__} needs a ViT backbone's attentions, got maps {sorted(maps)}"
            )
        grid = classifier.backbone.grid_size(*backbone_input_size(classifier, features))
        grid_map = attention_map(maps["attentions"], grid, self.method, self.layer)
        return logits, _resize_to_features(grid_map, features, self.upsampling)
