"""The whole classifier on spectrogram features: normalisation, backbone, head.

:class:`SpectrogramClassifier` is the one module the recipes train, checkpoint,
interpret and export. Its input is the front end's features (B, 1, T, F) (``log1p`` or PCEN),
the grid on which interpretation masks act; it standardises them with
:class:`GlobalFeatureNorm`, runs a backbone (FocalNet, ViT or anything that maps
features to pooled embeddings) and a head that gives the logits whose softmax is
the model's probability. :meth:`SpectrogramClassifier.forward_with_maps` returns
the logits together with the maps the interpretation works from.
"""

import torch
from torch import nn


class GlobalFeatureNorm(nn.Module):
    """Per-frequency-bin standardisation with statistics of the training data.

    While training, the mean and variance of each frequency bin are accumulated
    over all the (B, 1, T, F) batches seen (a cumulative average, as SpeechBrain's
    global ``InputNormalization``); evaluation uses the stored statistics. They are
    buffers, so they are saved with the model's ``state_dict``.

    Under ``torchrun`` (an initialised ``torch.distributed`` process group with
    more than one process) each training batch's statistics are those of the
    batches of all processes together (an all-reduce of the per-bin counts, sums
    and sums of squares), so every process holds the same statistics: the ones
    one process would accumulate on the concatenated batch. Every process must
    then run the training forward passes in lockstep, as DistributedDataParallel
    training does.

    Arguments
    ---------
    num_bins : int
        Number of frequency bins F.
    max_updates : int or None
        Stop updating the statistics after this many training batches
        (``None``: never stop).
    eps : float
        Floor of the standard deviation.
    sync_across_processes : bool
        All-reduce the batch statistics across processes when training under an
        initialised process group (no effect in a single process).

    Example
    -------
    >>> norm = GlobalFeatureNorm(4)
    >>> _ = norm.train()(torch.randn(8, 1, 10, 4) * 3 + 5)
    >>> bool((norm.mean - 5).abs().max() < 1.0)
    True
    >>> out = norm.eval()(torch.full((1, 1, 2, 4), 5.0))
    >>> out.shape
    torch.Size([1, 1, 2, 4])
    """

    def __init__(self, num_bins, max_updates=None, eps=1e-5, sync_across_processes=True):
        super().__init__()
        self.num_bins = num_bins
        self.max_updates = max_updates
        self.eps = eps
        self.sync_across_processes = sync_across_processes
        self.register_buffer("mean", torch.zeros(num_bins))
        self.register_buffer("var", torch.ones(num_bins))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def forward(self, features):
        """Standardise ``features`` (B, 1, T, F), updating the statistics when training."""
        if features.shape[-1] != self.num_bins:
            raise ValueError(
                f"GlobalFeatureNorm expects {self.num_bins} frequency bins, "
                f"got input of shape {tuple(features.shape)}"
            )
        if self.training and (
            self.max_updates is None or int(self.num_updates) < self.max_updates
        ):
            with torch.no_grad():
                flat = features.detach().float().reshape(-1, self.num_bins)
                batch_mean, batch_var = self._batch_statistics(flat)
                count = int(self.num_updates)
                weight = 1.0 / (count + 1)
                self.mean.mul_(1 - weight).add_(batch_mean, alpha=weight)
                self.var.mul_(1 - weight).add_(batch_var, alpha=weight)
                self.num_updates += 1
        std = self.var.clamp_min(self.eps**2).sqrt()
        return (features - self.mean) / std

    def _batch_statistics(self, flat):
        """Per-bin mean and (biased) variance of ``flat`` (N, F), over all processes."""
        distributed = (
            self.sync_across_processes
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )
        if not distributed:
            return flat.mean(0), flat.var(0, unbiased=False)
        # Counts, sums and sums of squares (float64: no cancellation in E[x^2] - E[x]^2).
        flat = flat.double()
        totals = torch.cat([
            torch.full((1,), float(flat.shape[0]), dtype=torch.float64, device=flat.device),
            flat.sum(0),
            flat.square().sum(0),
        ])
        torch.distributed.all_reduce(totals)
        count = totals[0]
        mean = totals[1:1 + self.num_bins] / count
        var = (totals[1 + self.num_bins:] / count - mean.square()).clamp_min(0.0)
        return mean.float(), var.float()


class SpectrogramClassifier(nn.Module):
    """Feature normalisation + backbone + head, with access to interpretation maps.

    Arguments
    ---------
    backbone : torch.nn.Module
        Maps normalised features (B, 1, T, F) to pooled embeddings (B, D); a
        :class:`~focalnet_lobes.FocalNet` or
        :class:`~focalnet_lobes.VisionTransformer` built with ``num_classes=0``.
    head : torch.nn.Module
        Maps embeddings (B, D) to logits (B, num_classes).
    normalizer : torch.nn.Module or None
        Applied to the features first (e.g. :class:`GlobalFeatureNorm`).

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model(
    ...     "focalnet_audio_small", num_classes=0, in_chans=1
    ... )
    >>> model = SpectrogramClassifier(
    ...     backbone, LinearHead(backbone.num_features, 10), GlobalFeatureNorm(64)
    ... ).eval()
    >>> features = torch.rand(2, 1, 101, 64)
    >>> model(features).shape
    torch.Size([2, 10])
    >>> logits, maps = model.forward_with_maps(features)
    >>> [tuple(m.shape) for m in maps["modulators"]]
    [(2, 64, 26, 16), (2, 128, 13, 8), (2, 256, 7, 4)]
    """

    def __init__(self, backbone, head, normalizer=None):
        super().__init__()
        self.normalizer = normalizer if normalizer is not None else nn.Identity()
        self.backbone = backbone
        self.head = head

    @property
    def kind(self):
        """``"focalnet"``, ``"vit"`` or ``"other"``: which maps the backbone exposes."""
        from focalnet_lobes.models.focalnet import FocalNet
        from focalnet_lobes.models.vit import VisionTransformer

        if isinstance(self.backbone, FocalNet):
            return "focalnet"
        if isinstance(self.backbone, VisionTransformer):
            return "vit"
        return "other"

    def embed(self, features):
        """Pooled embeddings (B, D) of features (B, 1, T, F)."""
        return self.backbone(self.normalizer(features))

    def forward(self, features):
        """Logits (B, num_classes) of features (B, 1, T, F)."""
        return self.head(self.embed(features))

    def forward_with_maps(self, features):
        """Logits and the backbone's interpretation maps in one forward pass.

        Arguments
        ---------
        features : torch.Tensor
            Features (B, 1, T, F) (``log1p`` or PCEN).

        Returns
        -------
        logits : torch.Tensor
            (B, num_classes).
        maps : dict
            FocalNet: ``"modulators"``, the last-layer modulator of each stage,
            (B, C_s, h_s, w_s), and ``"stage_maps"``. ViT: ``"attentions"``, one
            (B, heads, N+1, N+1) tensor per layer, and ``"grid_size"`` (h, w) of the
            N = h * w patch tokens. Other backbones: an empty dict. The maps stay in
            the autograd graph.
        """
        normalized = self.normalizer(features)
        kind = self.kind
        if kind == "focalnet":
            stage_maps, modulators = self.backbone.forward_features(
                normalized, return_modulators=True
            )
            embeddings = self.backbone.forward_head(stage_maps[-1], modulator=modulators[-1])
            maps = {"modulators": modulators, "stage_maps": stage_maps}
        elif kind == "vit":
            tokens, attentions = self.backbone.forward_features(
                normalized, return_attentions=True
            )
            embeddings = self.backbone.forward_head(tokens)
            grid = self.backbone.grid_size(normalized.shape[-2], normalized.shape[-1])
            maps = {"attentions": attentions, "grid_size": grid}
        else:
            embeddings = self.backbone(normalized)
            maps = {}
        return self.head(embeddings), maps
