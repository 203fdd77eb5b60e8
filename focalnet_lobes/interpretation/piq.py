"""PIQ, Posthoc Interpretation via Quantization, for our FocalNet and ViT classifiers.

PIQ (Paissan, Subakan, Ravanelli 2023) interprets a frozen classifier after the
fact: the classifier's last-stage representation goes through an adapter, is
vector-quantised with a codebook partitioned by the class the classifier predicts
(straight-through gradients), and a decoder turns the quantised map into a mask
over the input spectrogram. It is trained to reconstruct the binary mask of the
clip's salient bins (features above a fraction of the clip's maximum), with the
VQ-VAE codebook and commitment losses.

``speechbrain.lobes.models.PIQ`` provides the codebook with its class partitioning
and straight-through estimator (``VQEmbedding``, ``VectorQuantization``,
``get_irrelevant_regions``), the residual adapter (``ResBlockAudio``) and the
initialisation (``weights_init``); they are reused here. Its decoders output a
fixed 431 x 513-like grid from image-size backbones, so what lives here is what it
lacks:

* :func:`classifier_representation`: logits and the last-stage representation
  (B, C, h, w) of a :class:`~focalnet_lobes.models.classifier.SpectrogramClassifier`
  (FocalNet: the last stage map; ViT: the patch tokens on their (h, w) grid),
  with the stride of that grid on the input; :func:`checked_representation`, the
  same without gradient, checked against what a trained interpreter expects;
* :class:`GridMaskDecoder`: quantised map -> mask logits on ANY (T, F) input grid
  (431 x 64 mel, 431 x 513 STFT, ...), aligned with the input like
  :func:`focalnet_lobes.interpretation.interpret.to_input_grid`;
* :class:`PIQNetwork`: adapter -> (optional 2x grid reduction) -> class-partitioned
  VQ -> decoder, compact enough for CPU training when configured so;
* :class:`PIQLoss`: PIQ's objective;
* :class:`PIQInterpreter`: the :class:`~focalnet_lobes.interpretation.interpret.MapInterpreter`
  that gives (logits, mask in [0, 1]) for the common evaluator;
* :func:`load_piq_interpreter` and :func:`load_training_cost`: a run of
  ``recipes/train_piq.py`` back as an interpreter and its training cost (used by
  ``hparams/interpret_piq.yaml``; shared with L-MAC through
  :mod:`focalnet_lobes.interpretation.posthoc`).
"""

from collections import namedtuple

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.PIQ import (
    ResBlockAudio,
    VectorQuantization,
    VQEmbedding,
    get_irrelevant_regions,
    weights_init,
)
from torch import nn

from focalnet_lobes.interpretation.interpret import MapInterpreter, _pair, infer_stride

#: The training-cost file ``recipes/train_piq.py`` writes in its output folder.
TRAINING_COST_FILE = "piq_training.json"

PIQOutput = namedtuple("PIQOutput", ["logits", "mask_logits", "encoded", "quantized"])
PIQOutput.__doc__ = """What :meth:`PIQInterpreter.piq_forward` returns.

logits : classifier logits (B, K) of the full input;
mask_logits : (B, 1, T, F) pre-sigmoid mask on the input grid;
encoded : (B, C, h', w') adapter output, the vectors that are quantised;
quantized : (B, C, h', w') their codebook vectors (gradient to the codebook only).
"""

Representation = namedtuple("Representation", ["logits", "representation", "stride"])
Representation.__doc__ = """What :func:`classifier_representation` returns.

logits : (B, K); representation : (B, C, h, w); stride : (S_t, S_f) of the grid.
"""


def representation_channels(classifier):
    """Channels C of the last-stage representation of a SpectrogramClassifier.

    Arguments
    ---------
    classifier : focalnet_lobes.models.classifier.SpectrogramClassifier
        With a FocalNet or ViT backbone.

    Returns
    -------
    int

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> representation_channels(SpectrogramClassifier(backbone, LinearHead(192, 3)))
    192
    """
    _check_kind(classifier)
    return int(classifier.backbone.num_features)


def _check_kind(classifier):
    kind = getattr(classifier, "kind", None)
    if kind not in ("focalnet", "vit"):
        raise ValueError(
            "PIQ needs a SpectrogramClassifier with a FocalNet or ViT backbone, got "
            f"{type(getattr(classifier, 'backbone', classifier)).__name__}"
        )
    return kind


def classifier_representation(classifier, features):
    """Logits and the last-stage representation of a classifier, in one forward pass.

    * FocalNet: the output of the last stage, (B, C, h, w) (before the final
      norm), on a grid of stride ``stage_strides[-1]``;
    * ViT: the patch tokens after the final norm, without the prefix (class)
      tokens, reshaped from row-major order to (B, D, h, w), on a grid of stride
      ``total_stride`` (stem stride x patch size).

    Arguments
    ---------
    classifier : focalnet_lobes.models.classifier.SpectrogramClassifier
        FocalNet or ViT backbone.
    features : torch.Tensor
        ``log1p`` features (B, 1, T, F).

    Returns
    -------
    Representation
        ``(logits, representation, stride)``; stride is (S_t, S_f).

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model(
    ...     "focalnet_audio_small", num_classes=0, in_chans=1
    ... )
    >>> classifier = SpectrogramClassifier(backbone, LinearHead(256, 3)).eval()
    >>> logits, representation, stride = classifier_representation(
    ...     classifier, torch.rand(2, 1, 87, 64)
    ... )
    >>> tuple(logits.shape), tuple(representation.shape), stride
    ((2, 3), (2, 256, 6, 4), (16, 16))
    """
    kind = _check_kind(classifier)
    if not isinstance(features, torch.Tensor) or features.dim() != 4 or features.shape[1] != 1:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise ValueError(f"features must be (B, 1, T, F), got {shape}")
    backbone = classifier.backbone
    if kind == "focalnet":
        logits, maps = classifier.forward_with_maps(features)
        stride = int(backbone.stage_strides[-1])
        return Representation(logits, maps["stage_maps"][-1], (stride, stride))
    tokens = backbone.forward_features(classifier.normalizer(features))
    logits = classifier.head(backbone.forward_head(tokens))
    height, width = backbone.grid_size(features.shape[-2], features.shape[-1])
    patches = tokens[:, tokens.shape[1] - height * width :]
    representation = patches.transpose(1, 2).reshape(
        tokens.shape[0], tokens.shape[2], height, width
    )
    stride = int(backbone.total_stride)
    return Representation(logits, representation, (stride, stride))


def checked_representation(classifier, features, num_classes, in_channels, method):
    """:func:`classifier_representation` without gradient, checked against a trained interpreter.

    A post-hoc interpreter (PIQ, L-MAC) is trained on one classifier's logits and
    last-stage representation; given another classifier it must stop with a
    message naming the mismatch, not fail deep inside its network.

    Arguments
    ---------
    classifier, features :
        As in :func:`classifier_representation`.
    num_classes : int
        Classes the interpreter was trained for (K of the logits).
    in_channels : int
        Channels C of the representation it was trained on.
    method : str
        The interpreter's name, in the errors (``"PIQ"``, ``"L-MAC"``).

    Returns
    -------
    Representation
        ``(logits, representation, stride)``, computed under ``torch.no_grad()``.

    Raises
    ------
    ValueError
        When the classifier has another number of classes, or its last stage
        another number of channels.

    Example
    -------
    >>> from focalnet_lobes import create_model
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> vit = SpectrogramClassifier(
    ...     create_model("vit_audio_small", num_classes=0, in_chans=1), LinearHead(192, 3)
    ... )
    >>> classifier, features = vit.eval(), torch.rand(1, 1, 87, 64)
    >>> checked_representation(classifier, features, 3, 192, "PIQ").representation.shape
    torch.Size([1, 192, 11, 8])
    >>> checked_representation(classifier, features, 5, 192, "L-MAC")
    Traceback (most recent call last):
    ...
    ValueError: L-MAC was trained for 5 classes, the classifier has 3
    """
    with torch.no_grad():
        logits, representation, stride = classifier_representation(classifier, features)
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"{method} was trained for {num_classes} classes, the classifier has "
            f"{logits.shape[1]}"
        )
    if representation.shape[1] != in_channels:
        raise ValueError(
            f"{method} was trained on {in_channels}-channel representations, "
            f"the classifier's last stage has {representation.shape[1]}"
        )
    return Representation(logits, representation, stride)


class GridMaskDecoder(nn.Module):
    """Decoder from a (B, C, h, w) map to mask logits (B, 1, T, F) on any input grid.

    ``len(channels)`` upsampling blocks, each a 4x4 transposed convolution of
    stride 2 (exactly doubles h and w), ReLU and batch norm (the block of
    SpeechBrain's PIQ decoders), then a 3x3 convolution to one channel. The result
    is resized (bilinear, ``align_corners=False``) to (h S_t, w S_f), where cell
    (i, j) of the representation covers input rows [i S_t, (i + 1) S_t) and
    columns [j S_f, (j + 1) S_f), and cropped to (T, F), exactly as
    :func:`focalnet_lobes.interpretation.interpret.to_input_grid` aligns maps. With
    2 ** len(channels) equal to the stride no resizing is needed.

    Arguments
    ---------
    in_channels : int
        Channels C of the input map.
    channels : sequence of int
        Output channels of the upsampling blocks.

    Example
    -------
    >>> decoder = GridMaskDecoder(16, channels=(8, 4))
    >>> decoder(torch.randn(2, 16, 27, 4), (431, 64), stride=16).shape
    torch.Size([2, 1, 431, 64])
    >>> decoder(torch.randn(2, 16, 6, 33), (87, 513)).shape  # stride inferred
    torch.Size([2, 1, 87, 513])
    """

    def __init__(self, in_channels, channels=(128, 64, 32)):
        super().__init__()
        if int(in_channels) < 1 or any(int(c) < 1 for c in channels):
            raise ValueError(
                f"channels must be positive, got in_channels={in_channels}, channels={channels}"
            )
        blocks = []
        previous = int(in_channels)
        for width in channels:
            blocks += [
                nn.ConvTranspose2d(previous, int(width), 4, stride=2, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(int(width)),
            ]
            previous = int(width)
        self.upsample = nn.Sequential(*blocks)
        self.output = nn.Conv2d(previous, 1, 3, padding=1)

    @property
    def upsampling_factor(self):
        """How much the convolutional part enlarges h and w (2 ** number of blocks)."""
        return 2 ** (len(self.upsample) // 3)

    def forward(self, quantized, output_size, grid_size=None, stride=None):
        """Mask logits (B, 1, T, F).

        Arguments
        ---------
        quantized : torch.Tensor
            (B, C, h', w') map to decode.
        output_size : tuple of int
            (T, F) of the input grid.
        grid_size : tuple of int or None
            (h, w) of the classifier grid the map stands for (default: h', w').
        stride : int or tuple of int or None
            (S_t, S_f) of that grid on the input; ``None`` infers it with
            :func:`~focalnet_lobes.interpretation.interpret.infer_stride`.

        Returns
        -------
        torch.Tensor
        """
        if quantized.dim() != 4:
            raise ValueError(f"expected a (B, C, h, w) map, got {tuple(quantized.shape)}")
        num_frames, num_bins = (int(s) for s in output_size)
        height, width = (int(s) for s in (grid_size or quantized.shape[-2:]))
        if stride is None:
            stride_t, stride_f = infer_stride(height, num_frames), infer_stride(width, num_bins)
        else:
            stride_t, stride_f = _pair(stride, "stride")
        for cells, length, step, axis in (
            (height, num_frames, stride_t, "time"),
            (width, num_bins, stride_f, "frequency"),
        ):
            if step < 1 or -(-length // step) != cells:
                raise ValueError(
                    f"{axis}: a grid of {cells} cells with stride {step} does not cover "
                    f"{length} input bins"
                )
        decoded = self.output(self.upsample(quantized))
        size = (height * stride_t, width * stride_f)
        if tuple(decoded.shape[-2:]) != size:
            decoded = F.interpolate(decoded, size=size, mode="bilinear", align_corners=False)
        return decoded[..., :num_frames, :num_bins]


class PIQNetwork(nn.Module):
    """PIQ's interpreter network: adapter, class-partitioned VQ, decoder to the input grid.

    representation (B, C, h, w) -> ``ResBlockAudio`` adapter -> [stride-2 conv]
    -> nearest key of the codebook among the keys of the class the classifier
    predicted (straight-through) -> [stride-2 transposed conv] ->
    :class:`GridMaskDecoder` -> mask logits (B, 1, T, F). The bracketed grid
    reduction is SpeechBrain's ``adapter_reduce_dim`` (its ESC-50 recipes use it;
    it needs h, w >= 2).

    Class partitioning (SpeechBrain's ``get_irrelevant_regions``): the first
    K - shared_keys keys are split into ``num_classes`` contiguous blocks, key k
    belonging to class round(-0.5 + k (num_classes - 0.01) / (K - shared_keys - 1));
    a clip predicted as class c is quantised with c's block only. The last
    ``shared_keys`` keys are, as SpeechBrain implements it, excluded while
    training and available to every class in evaluation mode; the recipes use
    ``shared_keys=0``. :meth:`class_keys` tells which keys a class may use.

    Arguments
    ---------
    in_channels : int
        Channels C of the classifier's representation (also the codebook dimension).
    num_classes : int
        Number of classes of the classifier.
    codebook_size : int
        Number of keys K.
    shared_keys : int
        Keys shared by all classes (see above).
    class_partitioning : bool
        Restrict each clip to its predicted class's keys.
    use_adapter : bool
        Residual adapter before the quantisation.
    reduce_grid : bool
        Halve the grid before the quantisation and double it after.
    decoder_channels : sequence of int
        See :class:`GridMaskDecoder`.

    Example
    -------
    >>> network = PIQNetwork(16, num_classes=3, codebook_size=12, decoder_channels=(8,))
    >>> representation = torch.randn(2, 16, 6, 4)
    >>> labels = torch.tensor([0, 2])
    >>> mask_logits, encoded, quantized = network(representation, labels, (87, 64), stride=16)
    >>> tuple(mask_logits.shape), tuple(quantized.shape)
    ((2, 1, 87, 64), (2, 16, 6, 4))
    >>> network.class_keys(labels).nonzero()[:, 1].view(2, -1)
    tensor([[ 0,  1,  2,  3],
            [ 8,  9, 10, 11]])
    """

    def __init__(
        self,
        in_channels,
        num_classes,
        codebook_size=1024,
        shared_keys=0,
        class_partitioning=True,
        use_adapter=True,
        reduce_grid=False,
        decoder_channels=(128, 64, 32),
    ):
        super().__init__()
        in_channels, num_classes = int(in_channels), int(num_classes)
        codebook_size, shared_keys = int(codebook_size), int(shared_keys)
        if in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"in_channels and num_classes must be positive, got {in_channels}, {num_classes}"
            )
        if shared_keys < 0 or codebook_size - shared_keys < 1:
            raise ValueError(
                f"need 0 <= shared_keys < codebook_size, got shared_keys={shared_keys}, "
                f"codebook_size={codebook_size}"
            )
        if class_partitioning and codebook_size - shared_keys < num_classes:
            raise ValueError(
                f"class partitioning needs at least one key per class: codebook_size - "
                f"shared_keys = {codebook_size - shared_keys} < num_classes = {num_classes}"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.codebook_size = codebook_size
        self.shared_keys = shared_keys
        self.class_partitioning = bool(class_partitioning)
        self.reduce_grid = bool(reduce_grid)
        self.adapter = ResBlockAudio(in_channels) if use_adapter else nn.Identity()
        if self.reduce_grid:
            self.down = nn.Conv2d(in_channels, in_channels, 4, stride=2, padding=1)
            self.up = nn.ConvTranspose2d(in_channels, in_channels, 4, stride=2, padding=1)
        self.codebook = VQEmbedding(
            codebook_size,
            in_channels,
            numclasses=num_classes,
            activate_class_partitioning=self.class_partitioning,
            shared_keys=shared_keys,
        )
        self.decoder = GridMaskDecoder(in_channels, decoder_channels)
        self.apply(weights_init)

    def _check(self, representation, labels):
        if representation.dim() != 4 or representation.shape[1] != self.in_channels:
            raise ValueError(
                f"PIQ was built for a (B, {self.in_channels}, h, w) representation, got "
                f"{tuple(representation.shape)}"
            )
        if labels.shape != (representation.shape[0],):
            raise ValueError(
                f"labels must be (B,) = ({representation.shape[0]},), got {tuple(labels.shape)}"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.tolist()}")
        if self.reduce_grid and min(representation.shape[-2:]) < 2:
            raise ValueError(
                f"reduce_grid needs a grid of at least 2 x 2, got "
                f"{tuple(representation.shape[-2:])}: use longer clips or reduce_grid=False"
            )

    def encode(self, representation):
        """Adapter (and grid reduction): the vectors that get quantised, (B, C, h', w')."""
        encoded = self.adapter(representation)
        if self.reduce_grid:
            encoded = self.down(encoded)
        return encoded

    def class_keys(self, labels):
        """Boolean (B, K): the keys each label may be quantised to in the current mode.

        Arguments
        ---------
        labels : torch.Tensor
            (B,) class indices.

        Returns
        -------
        torch.Tensor
        """
        labels = torch.as_tensor(labels).reshape(-1)
        if not self.class_partitioning:
            return torch.ones(
                labels.shape[0], self.codebook_size, dtype=torch.bool, device=labels.device
            )
        irrelevant = get_irrelevant_regions(
            labels,
            self.codebook_size,
            self.num_classes,
            N_shared=self.shared_keys,
            stage="TRAIN" if self.training else "VALID",
        )
        return ~irrelevant

    def codebook_indices(self, encoded, labels):
        """Index of the key each cell of ``encoded`` (B, C, h', w') is quantised to, (B, h', w')."""
        return VectorQuantization.apply(
            encoded.detach().permute(0, 2, 3, 1).contiguous(),
            self.codebook.embedding.weight.detach(),
            labels,
            self.num_classes,
            self.class_partitioning,
            self.shared_keys,
            self.training,
        )

    def forward(self, representation, labels, output_size, stride=None):
        """Mask logits on the input grid, and the VQ vectors for the losses.

        Arguments
        ---------
        representation : torch.Tensor
            (B, C, h, w) classifier representation.
        labels : torch.Tensor
            (B,) class predicted by the classifier (selects the keys).
        output_size : tuple of int
            (T, F) of the input features.
        stride : int or tuple of int or None
            Stride of the representation's grid on the input (``None``: inferred).

        Returns
        -------
        mask_logits : torch.Tensor
            (B, 1, T, F).
        encoded : torch.Tensor
            (B, C, h', w') quantiser input.
        quantized : torch.Tensor
            (B, C, h', w') selected keys, differentiable with respect to the codebook.
        """
        labels = torch.as_tensor(labels, device=representation.device).reshape(-1).long()
        self._check(representation, labels)
        encoded = self.encode(representation)
        straight_through, quantized = self.codebook.straight_through(encoded, labels)
        if self.reduce_grid:
            straight_through = self.up(straight_through)
        mask_logits = self.decoder(
            straight_through, output_size, grid_size=representation.shape[-2:], stride=stride
        )
        return mask_logits, encoded, quantized


class PIQLoss(nn.Module):
    """PIQ's objective: salient-bin mask reconstruction + VQ codebook + commitment losses.

    With features X (B, 1, T, F) (``log1p``, so >= 0) and predicted mask
    M = sigmoid(mask_logits), the target mask is Y = 1[X > threshold * max_clip X]
    and

        loss = w_rec BCE(M, Y) + w_vq ||sg(e) - q||^2 + w_commit ||e - sg(q)||^2

    (means over elements), e the quantiser input, q its codebook vectors and sg
    the stop-gradient; the objective of SpeechBrain's ESC-50 PIQ recipes
    (``use_mask_output``), whose threshold is 0.35.

    Arguments
    ---------
    mask_threshold : float
        Fraction of the clip's maximum above which a bin is salient.
    reconstruction_weight, codebook_weight, commitment_weight : float
        Weights of the three terms.

    Example
    -------
    >>> loss = PIQLoss(mask_threshold=0.5)
    >>> features = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    >>> loss.target_mask(features)
    tensor([[[[0., 0.],
              [0., 1.]]]])
    >>> vectors = torch.zeros(1, 2, 1, 1)
    >>> terms = loss(torch.zeros(1, 1, 2, 2), features, vectors, vectors + 1)
    >>> round(terms["reconstruction"].item(), 4), terms["codebook"].item(), terms["loss"].item() > 2
    (0.6931, 1.0, True)
    """

    def __init__(
        self,
        mask_threshold=0.35,
        reconstruction_weight=1.0,
        codebook_weight=1.0,
        commitment_weight=1.0,
    ):
        super().__init__()
        if not 0.0 <= float(mask_threshold) < 1.0:
            raise ValueError(f"mask_threshold must be in [0, 1), got {mask_threshold}")
        self.mask_threshold = float(mask_threshold)
        self.reconstruction_weight = float(reconstruction_weight)
        self.codebook_weight = float(codebook_weight)
        self.commitment_weight = float(commitment_weight)

    def target_mask(self, features):
        """Y = 1[X > threshold * per-clip max of X], same shape and dtype as X."""
        peak = features.detach().flatten(1).amax(dim=1)
        shape = (-1,) + (1,) * (features.dim() - 1)
        return (features.detach() > self.mask_threshold * peak.view(shape)).to(features.dtype)

    def forward(self, mask_logits, features, encoded, quantized):
        """Dict of the terms ``reconstruction``, ``codebook``, ``commitment`` and ``loss``."""
        if mask_logits.shape != features.shape:
            raise ValueError(
                f"mask logits {tuple(mask_logits.shape)} and features "
                f"{tuple(features.shape)} must have the same shape"
            )
        reconstruction = F.binary_cross_entropy_with_logits(
            mask_logits, self.target_mask(features)
        )
        codebook = F.mse_loss(quantized, encoded.detach())
        commitment = F.mse_loss(encoded, quantized.detach())
        loss = (
            self.reconstruction_weight * reconstruction
            + self.codebook_weight * codebook
            + self.commitment_weight * commitment
        )
        return {
            "loss": loss,
            "reconstruction": reconstruction,
            "codebook": codebook,
            "commitment": commitment,
        }


class PIQInterpreter(MapInterpreter):
    """PIQ as an interpretation method: its mask sigmoid(mask_logits) is the map.

    The classifier runs once without gradients (it is frozen: nothing flows back
    into it); its predicted class selects the codebook keys; the map is the
    continuous PIQ mask in [0, 1] on the input grid, which the common evaluator
    thresholds at each quantile (or uses as a soft mask).

    Arguments
    ---------
    network : PIQNetwork
        The trained PIQ network.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> classifier = SpectrogramClassifier(backbone, LinearHead(192, 3)).eval()
    >>> interpreter = PIQInterpreter(
    ...     PIQNetwork(192, 3, codebook_size=6, decoder_channels=(8,))
    ... ).eval()
    >>> logits, maps = interpreter(classifier, torch.rand(2, 1, 87, 64))
    >>> maps.shape, bool(((maps >= 0) & (maps <= 1)).all())
    (torch.Size([2, 1, 87, 64]), True)
    """

    name = "piq"

    def __init__(self, network):
        super().__init__()
        if not isinstance(network, PIQNetwork):
            raise ValueError(f"network must be a PIQNetwork, got {type(network).__name__}")
        self.network = network

    def piq_forward(self, classifier, features):
        """Classifier logits (no gradient) and PIQ's outputs; see :data:`PIQOutput`."""
        logits, representation, stride = checked_representation(
            classifier, features, self.network.num_classes, self.network.in_channels, "PIQ"
        )
        labels = logits.argmax(dim=1)
        mask_logits, encoded, quantized = self.network(
            representation, labels, features.shape[-2:], stride=stride
        )
        return PIQOutput(logits, mask_logits, encoded, quantized)

    def compute_maps(self, classifier, features):
        """Logits of the full input and the PIQ mask (B, 1, T, F) in [0, 1]."""
        output = self.piq_forward(classifier, features)
        return output.logits, torch.sigmoid(output.mask_logits)


class PIQFolderError(FileNotFoundError):
    """The folder is not the output folder of a finished PIQ training run.

    Example
    -------
    >>> issubclass(PIQFolderError, FileNotFoundError)
    True
    """


def load_training_cost(folder):
    """The ``piq_training.json`` of a PIQ output folder: the cost of training PIQ.

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train_piq.py``.

    Returns
    -------
    dict
        ``seconds`` (wall time of the training and validation epochs, summed
        over resumed runs), ``epochs``, ``seconds_per_epoch``, ``params``
        (trainable parameters of PIQ), ``best_valid_loss``, ``device``,
        ``classifier_folder``, ``method`` (``"piq"``).

    Raises
    ------
    PIQFolderError
        When the file is missing.

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "piq_training.json").write_text('{"seconds": 12.5, "epochs": 2}')
    >>> load_training_cost(folder)["seconds"]
    12.5
    """
    from focalnet_lobes.interpretation.posthoc import load_training_cost_file

    return load_training_cost_file(folder, TRAINING_COST_FILE, "recipes/train_piq.py", PIQFolderError)


def load_piq_interpreter(folder, device="cpu", classifier_folder=None):
    """The trained :class:`PIQInterpreter` of a PIQ output folder.

    Rebuilds the interpreter from the folder's ``hyperparams.yaml`` and loads the
    checkpoint with the lowest validation loss, or the last epoch's of a run without
    validation (``torch.load(weights_only=True)``;
    :func:`focalnet_lobes.interpretation.posthoc.load_trained_interpreter`).

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train_piq.py``.
    device : str
        Where to put the interpreter.
    classifier_folder : str or pathlib.Path or None
        The classifier it will interpret; a warning is logged when PIQ was trained
        on another one.

    Returns
    -------
    PIQInterpreter
        In evaluation mode.

    Raises
    ------
    PIQFolderError
        When the folder has no ``hyperparams.yaml``, no PIQ interpreter in it,
        or no checkpoint.

    Example
    -------
    >>> load_piq_interpreter("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.piq.PIQFolderError: /nonexistent is not a PIQ training output folder: ...
    """
    from focalnet_lobes.interpretation.posthoc import load_trained_interpreter

    return load_trained_interpreter(
        folder, PIQInterpreter, "PIQ", "recipes/train_piq.py", PIQFolderError,
        classifier_folder, device,
    )
