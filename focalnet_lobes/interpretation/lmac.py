"""L-MAC, Listenable Maps for Audio Classifiers, for our FocalNet and ViT classifiers.

L-MAC (Paissan, Della Libera, Ravanelli, Subakan, ICML 2024, "Listenable Maps
for Audio Classifiers"; reference code: ``recipes/ESC50/interpret/train_lmac.py``
and ``hparams/lmac_cnn14.yaml`` in speechbrain/speechbrain) interprets a frozen
classifier f after the fact: a decoder on f's representation of the input X
outputs a mask M in [0, 1], trained so that the masked-in input still gives f's
own prediction y_hat = argmax f(X) and the masked-out input does not, with a
sparsity penalty:

    loss = alpha CE(f(X_in), y_hat) - beta CE(f(X_out), y_hat) + lambda mean(|M|)

(the recipe's ``l_in = nll(log_softmax(f(mask_in)), class_pred)``,
``l_out = -nll(log_softmax(f(mask_out)), class_pred)``,
``loss = l_in_w l_in + l_out_w l_out + reg_w_l1 mean|M|``), where X_in and X_out
are the classifier's features of the masked-in and masked-out spectrograms. Its
optional guidance ("finetuning") term with the cross-correlation gate is not
implemented; its total-variation weight is 0 in the published configuration.

Where the mask lives. L-MAC masks the linear STFT magnitude and the classifier
sees its log-compressed (filterbank) features, so the masked-in spectrogram is exactly
what is listened to. Our front end (:mod:`focalnet_lobes.data.features`) computes
features ``log1p(|X| W)`` (W the filterbank of mel or linear bands, or the
identity for STFT features) and makes every method's mask M on the feature grid (T, F) listenable
as ``M_lin |X|`` with the original phase, ``M_lin = mask_to_linear(M)`` (each
linear bin takes the filter-weighted mean of the bands covering it, so
``mask_to_linear(1 - M) = 1 - M_lin``). The L-MAC decoder therefore outputs M on
the feature grid (so the common evaluator of ``recipes/interpret.py`` uses it like
every other map) and trains it through that same linear-domain mask:

* ``mask_domain="magnitude"`` (the paper's, default):
  X_in = log1p((M_lin |X|) W), X_out = log1p(((1 - M_lin) |X|) W);
* ``mask_domain="log_magnitude"`` (what SpeechBrain's recipe does: the mask
  multiplies log1p(|X|), which is ``expm1``-ed back before the filterbank):
  X_in = log1p(expm1(M_lin log1p|X|) W), likewise for X_out. With the front end's
  ``log1p_scale`` C != 1 the features are log1p(C |X| W) and the mask multiplies
  log1p(C |X|) the same way: expm1(M_lin log1p(C |X|)) / C.

For linear-frequency features (``n_mels: null``) M_lin = M and this is L-MAC on
the STFT grid exactly. With PCEN features (``compression: pcen``) the outer log1p
above (the compression) is PCEN: the masked magnitude is compressed as a whole
clip, which (unlike log1p) is not the mask times the input's features.

The decoder. SpeechBrain's L-MAC decoders (``CNN14PSI_stft``, and
``speechbrain.lobes.models.L2I.CNN14PSI_stft_2d``) are hard-wired to the four
multi-scale outputs of CNN14 (channel ratios 1 : 1/2 : 1/4 : 1/8, a 431 x 513
output), which neither our FocalNet nor our ViT has; so, as for PIQ, the decoder
is :class:`~focalnet_lobes.interpretation.piq.GridMaskDecoder` (SpeechBrain's transposed-conv /
ReLU / batch-norm blocks) on the last-stage representation given by
:func:`~focalnet_lobes.interpretation.piq.classifier_representation` (FocalNet: last stage map;
ViT: patch tokens on their grid), aligned with the input grid.

Loss weights. ``hparams/lmac_cnn14.yaml`` uses ``l_in_w: 4``, ``l_out_w: 0.2``,
``reg_w_l1: 0.4``, which are this module's defaults. Note that the recipe adds
its L1 term as ``(mean|M| * reg_w_l1 * ones(B)).sum()``, i.e. multiplied by the
batch size; here ``l1_weight`` multiplies the mean, independent of the batch size.
"""

import logging
from collections import namedtuple
from pathlib import Path  # noqa: F401  (the doctests use it)

import torch
import torch.nn.functional as F
from torch import nn

from focalnet_lobes.interpretation.interpret import MapInterpreter
from focalnet_lobes.interpretation.piq import GridMaskDecoder, checked_representation

logger = logging.getLogger(__name__)

MASK_DOMAINS = ("magnitude", "log_magnitude")
TRAINING_COST_FILE = "lmac_training.json"

LMACOutput = namedtuple("LMACOutput", ["logits", "mask_logits"])
LMACOutput.__doc__ = """What :meth:`LMACInterpreter.lmac_forward` returns.

logits : classifier logits (B, K) of the full input (no gradient);
mask_logits : (B, 1, T, F) pre-sigmoid mask on the feature grid.
"""


class LMACFolderError(FileNotFoundError):
    """The folder is not the output folder of a finished L-MAC training run.

    Example
    -------
    >>> issubclass(LMACFolderError, FileNotFoundError)
    True
    """


def masked_features(frontend, magnitude, mask, domain="magnitude"):
    """Classifier features of a masked linear magnitude, differentiable in the mask.

    Arguments
    ---------
    frontend : focalnet_lobes.data.features.SpectrogramFrontend
        The classifier's front end (gives the filterbank and ``mask_to_linear``).
    magnitude : torch.Tensor
        STFT magnitude |X| (B, T, F_linear), >= 0.
    mask : torch.Tensor
        Mask M (B, 1, T, F) on the feature grid, values in [0, 1].
    domain : str
        ``"magnitude"``: features of M_lin |X| (the paper's masking);
        ``"log_magnitude"``: features of expm1(M_lin log1p(C |X|)) / C
        (SpeechBrain's recipe; C the front end's ``log1p_scale``, 1 by default).
        M_lin = ``frontend.mask_to_linear(M)``.

    Returns
    -------
    torch.Tensor
        Features (B, 1, T, F) (the front end's compression, ``log1p`` or PCEN, >= 0).

    Raises
    ------
    ValueError
        Unknown domain, or mask and magnitude grids that do not match.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> frontend = SpectrogramFrontend(n_mels=8)
    >>> magnitude = frontend.spectrum(torch.randn(2, 4000)).abs()
    >>> features = frontend.features_from_magnitude(magnitude)
    >>> ones = torch.ones_like(features)
    >>> bool(torch.allclose(masked_features(frontend, magnitude, ones), features))
    True
    >>> float(masked_features(frontend, magnitude, 0 * ones, "log_magnitude").abs().max())
    0.0
    """
    if domain not in MASK_DOMAINS:
        raise ValueError(f"unknown mask_domain '{domain}', expected one of {MASK_DOMAINS}")
    linear_mask = frontend.mask_to_linear(mask).squeeze(1)
    if linear_mask.shape != magnitude.shape:
        raise ValueError(
            f"mask grid {tuple(linear_mask.shape)} (on the linear STFT grid) does not match "
            f"the magnitude {tuple(magnitude.shape)}"
        )
    if domain == "magnitude":
        masked = linear_mask * magnitude
    else:
        scale = getattr(frontend, "log1p_scale", 1.0)  # at 1 the product and quotient are exact
        masked = torch.expm1(linear_mask * torch.log1p(scale * magnitude)) / scale
    return frontend.features_from_magnitude(masked)


class LMACLoss(nn.Module):
    """L-MAC's objective (Paissan et al., ICML 2024; SpeechBrain's ``train_lmac.py``).

    With y_hat the class the frozen classifier f predicts on the full input,
    X_in / X_out the features of the masked-in / masked-out spectrograms
    (:func:`masked_features` with M and 1 - M):

        loss = in_weight CE(f(X_in), y_hat) - out_weight CE(f(X_out), y_hat)
               + l1_weight mean(|M|)

    The masked-in term rewards masks that keep the decision, the masked-out term
    (negative sign) masks whose complement loses it, the L1 term small masks.

    Arguments
    ---------
    in_weight : float
        alpha, SpeechBrain's ``l_in_w`` (4).
    out_weight : float
        beta, SpeechBrain's ``l_out_w`` (0.2).
    l1_weight : float
        lambda, SpeechBrain's ``reg_w_l1`` (0.4; applied to the mean, see the module).
    mask_domain : str
        See :func:`masked_features`.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> frontend = SpectrogramFrontend(n_mels=8)
    >>> classifier = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 3)
    ... )
    >>> magnitude = frontend.spectrum(torch.randn(2, 4000)).abs()
    >>> mask_logits = torch.zeros(2, 1, 22, 8, requires_grad=True)
    >>> terms = LMACLoss()(classifier, frontend, magnitude, mask_logits, torch.randn(2, 3))
    >>> sorted(k for k in terms if not k.startswith("logits"))
    ['in', 'l1', 'loss', 'masked_in', 'masked_out', 'out']
    >>> terms["l1"].item()
    0.5
    >>> terms["loss"].backward(); mask_logits.grad.shape
    torch.Size([2, 1, 22, 8])
    """

    def __init__(self, in_weight=4.0, out_weight=0.2, l1_weight=0.4, mask_domain="magnitude"):
        super().__init__()
        if mask_domain not in MASK_DOMAINS:
            raise ValueError(
                f"unknown mask_domain '{mask_domain}', expected one of {MASK_DOMAINS}"
            )
        weights = {"in_weight": in_weight, "out_weight": out_weight, "l1_weight": l1_weight}
        for name, value in weights.items():
            if float(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.in_weight = float(in_weight)
        self.out_weight = float(out_weight)
        self.l1_weight = float(l1_weight)
        self.mask_domain = mask_domain

    def forward(self, classifier, frontend, magnitude, mask_logits, logits):
        """The loss and its terms.

        Arguments
        ---------
        classifier : torch.nn.Module
            The frozen classifier (features (B, 1, T, F) -> logits (B, K)).
        frontend : focalnet_lobes.data.features.SpectrogramFrontend
            Its front end.
        magnitude : torch.Tensor
            STFT magnitude (B, T, F_linear) of the clips.
        mask_logits : torch.Tensor
            Pre-sigmoid mask (B, 1, T, F) on the feature grid.
        logits : torch.Tensor
            The classifier's logits (B, K) on the full input (gives y_hat).

        Returns
        -------
        dict
            Scalars ``loss``, ``in`` (CE of the masked-in input), ``out`` (CE of
            the masked-out input), ``l1`` (mean mask), ``masked_in``
            (in_weight * in) and ``masked_out`` (-out_weight * out); tensors
            ``logits_in``, ``logits_out`` (B, K).
        """
        mask = torch.sigmoid(mask_logits)
        predicted = logits.detach().argmax(dim=1)
        logits_in = classifier(masked_features(frontend, magnitude, mask, self.mask_domain))
        logits_out = classifier(
            masked_features(frontend, magnitude, 1.0 - mask, self.mask_domain)
        )
        loss_in = F.cross_entropy(logits_in, predicted)
        loss_out = F.cross_entropy(logits_out, predicted)
        l1 = mask.abs().mean()
        masked_in = self.in_weight * loss_in
        masked_out = -self.out_weight * loss_out
        return {
            "loss": masked_in + masked_out + self.l1_weight * l1,
            "in": loss_in,
            "out": loss_out,
            "l1": l1,
            "masked_in": masked_in,
            "masked_out": masked_out,
            "logits_in": logits_in,
            "logits_out": logits_out,
        }


class LMACInterpreter(MapInterpreter):
    """L-MAC as an interpretation method: the decoder's mask sigmoid(mask_logits) is the map.

    The frozen classifier runs once without gradients and gives the logits and
    its last-stage representation (:func:`~focalnet_lobes.interpretation.piq.classifier_representation`);
    a :class:`~focalnet_lobes.interpretation.piq.GridMaskDecoder` turns the representation into
    mask logits on the feature grid (B, 1, T, F). The map is the continuous mask
    in [0, 1], which the common evaluator thresholds at each quantile (or uses as
    a soft mask) and makes listenable on the linear STFT grid with the original
    phase (:meth:`~focalnet_lobes.data.features.SpectrogramFrontend.listenable`).

    Arguments
    ---------
    in_channels : int
        Channels C of the classifier's last-stage representation.
    num_classes : int
        Number of classes of the classifier (checked when interpreting).
    decoder_channels : sequence of int
        See :class:`~focalnet_lobes.interpretation.piq.GridMaskDecoder`.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> classifier = SpectrogramClassifier(backbone, LinearHead(192, 3)).eval()
    >>> interpreter = LMACInterpreter(192, 3, decoder_channels=(8,)).eval()
    >>> logits, maps = interpreter(classifier, torch.rand(2, 1, 87, 64))
    >>> maps.shape, bool(((maps >= 0) & (maps <= 1)).all())
    (torch.Size([2, 1, 87, 64]), True)
    """

    name = "lmac"

    def __init__(self, in_channels, num_classes, decoder_channels=(64, 32, 16, 8)):
        super().__init__()
        if int(in_channels) < 1 or int(num_classes) < 1:
            raise ValueError(
                f"in_channels and num_classes must be positive, got {in_channels}, {num_classes}"
            )
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.decoder = GridMaskDecoder(self.in_channels, decoder_channels)

    def lmac_forward(self, classifier, features):
        """Classifier logits (no gradient) and the mask logits; see :data:`LMACOutput`."""
        logits, representation, stride = checked_representation(
            classifier, features, self.num_classes, self.in_channels, "L-MAC"
        )
        mask_logits = self.decoder(representation, features.shape[-2:], stride=stride)
        return LMACOutput(logits, mask_logits)

    def compute_maps(self, classifier, features):
        """Logits of the full input and the L-MAC mask (B, 1, T, F) in [0, 1]."""
        output = self.lmac_forward(classifier, features)
        return output.logits, torch.sigmoid(output.mask_logits)


def load_training_cost(folder):
    """The ``lmac_training.json`` of an L-MAC output folder: what training L-MAC cost.

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train_lmac.py``.

    Returns
    -------
    dict
        ``method`` (``"lmac"``), ``seconds`` (wall time of the training and
        validation epochs, summed over resumed runs), ``epochs``,
        ``seconds_per_epoch``, ``params`` (trainable parameters of the decoder),
        ``best_valid_loss``, ``device``, ``classifier_folder``.

    Raises
    ------
    LMACFolderError
        When the file is missing.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "lmac_training.json").write_text('{"seconds": 12.5, "epochs": 2}')
    >>> load_training_cost(folder)["seconds"]
    12.5
    >>> load_training_cost(folder / "missing")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.lmac.LMACFolderError: .../missing/lmac_training.json is missing: ...
    """
    from focalnet_lobes.interpretation.posthoc import load_training_cost_file

    return load_training_cost_file(folder, TRAINING_COST_FILE, "recipes/train_lmac.py", LMACFolderError)


def load_lmac_interpreter(folder, classifier_folder=None, device="cpu"):
    """The trained :class:`LMACInterpreter` of an L-MAC output folder.

    Rebuilds the interpreter from the folder's ``hyperparams.yaml`` and loads the
    checkpoint with the lowest validation loss, or the last epoch's of a run without
    validation (``torch.load(weights_only=True)``).

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train_lmac.py``.
    classifier_folder : str or pathlib.Path or None
        The classifier it will interpret; a warning is logged when L-MAC was
        trained on another one.
    device : str
        Where to put the interpreter.

    Returns
    -------
    LMACInterpreter
        In evaluation mode.

    Raises
    ------
    LMACFolderError
        When the folder has no ``hyperparams.yaml``, no interpreter in it, or no
        checkpoint.

    Example
    -------
    >>> load_lmac_interpreter("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.lmac.LMACFolderError: /nonexistent is not an L-MAC training output folder: ...
    """
    from focalnet_lobes.interpretation.posthoc import load_trained_interpreter

    return load_trained_interpreter(
        folder, LMACInterpreter, "L-MAC", "recipes/train_lmac.py", LMACFolderError,
        classifier_folder, device, article="an",
    )
