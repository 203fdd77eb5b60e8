"""Quantitative evaluation of interpretation masks: FID-I, FA, FF, AI, AD, AG, sparsity, complexity.

All metrics are per clip, for the class c the model predicts on the full input X,
with probabilities p = softmax(logits) of the logits the model was trained with
(a cosine head's scale is part of the classifier's logits). With a mask M on the
feature grid (``log1p`` or PCEN features; 0 is silence for both):

* masked-in input M * X (only what the interpretation selects is kept),
* masked-out input (1 - M) * X (what it selects is removed),

(with PCEN features M * X is not the PCEN of the masked magnitude, which the
listenable audio is: :mod:`focalnet_lobes.data.features`),

and p_full = p_c(X), p_in = p_c(M * X), p_out = p_c((1 - M) * X):

=============  ====================================================================
``fid_i``      FID-I, fidelity to input: 1[argmax_k p_k(M * X) = c]
``fa``         FA, the paper's faithfulness: p_full - p_in (small is good)
``ff``         FF, PIQ's faithfulness on spectra: p_full - p_out (large is good)
``ai``         AI, average increase (%): 100 * 1[p_in > p_full]
``ad``         AD, average drop (%): 100 * max(0, p_full - p_in) / p_full
``ag``         AG, average gain (%): 100 * max(0, p_in - p_full) / (1 - p_full),
               0 when p_full = 1
``sparsity``   Gini index of the map (:func:`gini_index`, large is sparse)
``complexity`` entropy of the map normalised to sum 1 (:func:`map_entropy`)
=============  ====================================================================

The probabilities are computed in float64 so that p close to 1 keeps its
difference to 1. The dataset value of a metric is its mean over clips
(:class:`MetricAccumulator`, :func:`summarize`).

Differences from SpeechBrain's ESC-50 interpretation recipes (speechbrain/speechbrain,
``recipes/ESC50/interpret/``), which report metrics with the same names:

* ``train_piq.py``: ``compute_objectives`` passes softmax probabilities to
  ``compute_AD``, which applies ``F.softmax`` to them again, so its AD is computed
  on softmax(softmax(logits)), a much flatter distribution; here AD uses
  p = softmax(logits) once, like AI and AG. Its "faithfulness" is
  p_c(X) - p_c((1 - M) * X) on the masked-out input, which is FF here.
* ``test_focalnet.py`` (the FocalNet by-design recipe): ``compute_faithfulness``
  classifies ``interpret_computation_steps(wavs)[0]``, i.e. M * X, the masked-in
  input, so its "faithfulness" is FA here, not FF. It also resizes the
  modulation map straight to the input size rather than aligning the padded
  grid (:func:`focalnet_lobes.interpretation.interpret.to_input_grid`).
* ``interpreter_brain.py``: AD and AG add eps = 1e-10 to the denominators
  (p_full + eps, 1 - p_full + eps); here AG is defined as 0 when p_full = 1 and
  AD needs no guard (p_full >= 1 / K as the largest probability).
"""

import math

import torch


PROBABILITY_KEYS = ("fid_i", "fa", "ff", "ai", "ad", "ag")
STRUCTURE_KEYS = ("sparsity", "complexity")
METRIC_KEYS = PROBABILITY_KEYS + STRUCTURE_KEYS
DEFAULT_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _check_logits(*logits):
    shape = logits[0].shape
    for value in logits:
        if value.dim() != 2 or value.shape != shape:
            raise ValueError(
                "logits must all be (B, num_classes) of the same shape, got "
                f"{[tuple(v.shape) for v in logits]}"
            )


def predicted_class_probabilities(logits_full, *other_logits):
    """Predicted class c = argmax logits_full and p_c of each set of logits.

    Arguments
    ---------
    logits_full : torch.Tensor
        (B, K) logits of the full inputs.
    *other_logits : torch.Tensor
        (B, K) logits of modified inputs.

    Returns
    -------
    predicted : torch.Tensor
        (B,) class indices c.
    probabilities : list of torch.Tensor
        (B,) float64 p_c = softmax(logits)_c for ``logits_full`` then each of
        ``other_logits``.

    Example
    -------
    >>> full = torch.tensor([[math.log(3.0), 0.0]])
    >>> masked = torch.tensor([[0.0, 0.0]])
    >>> c, (p_full, p_in) = predicted_class_probabilities(full, masked)
    >>> c.tolist(), round(p_full.item(), 4), round(p_in.item(), 4)
    ([0], 0.75, 0.5)
    """
    _check_logits(logits_full, *other_logits)
    predicted = logits_full.detach().argmax(dim=1)
    index = predicted.cpu()[:, None]
    probabilities = [
        logits.detach().cpu().double().softmax(dim=1).gather(1, index)[:, 0]
        for logits in (logits_full,) + other_logits
    ]
    return predicted.cpu(), probabilities


def input_fidelity(logits_full, logits_in):
    """FID-I per clip: 1[argmax_k p_k(M * X) = argmax_k p_k(X)].

    Arguments
    ---------
    logits_full, logits_in : torch.Tensor
        (B, K) logits of X and of M * X.

    Returns
    -------
    torch.Tensor
        (B,) float64 in {0, 1}.

    Example
    -------
    >>> full = torch.tensor([[2.0, 1.0], [0.0, 1.0]])  # c = (0, 1)
    >>> input_fidelity(full, torch.tensor([[0.5, 0.1], [1.0, 0.0]]))
    tensor([1., 0.], dtype=torch.float64)
    """
    _check_logits(logits_full, logits_in)
    same = logits_in.detach().argmax(dim=1) == logits_full.detach().argmax(dim=1)
    return same.cpu().double()


def faithfulness_masked_in(logits_full, logits_in):
    """FA per clip (the paper's faithfulness): p_c(X) - p_c(M * X).

    Small (or negative) values mean the masked-in part alone keeps the decision.

    Arguments
    ---------
    logits_full, logits_in : torch.Tensor
        (B, K) logits of X and of M * X.

    Returns
    -------
    torch.Tensor
        (B,) float64 in [-1, 1].

    Example
    -------
    >>> full = torch.tensor([[math.log(3.0), 0.0]])  # p_c = 3/4
    >>> faithfulness_masked_in(full, torch.zeros(1, 2))  # p_c = 1/2
    tensor([0.2500], dtype=torch.float64)
    """
    _, (p_full, p_in) = predicted_class_probabilities(logits_full, logits_in)
    return p_full - p_in


def faithfulness_masked_out(logits_full, logits_out):
    """FF per clip (PIQ's faithfulness on spectra): p_c(X) - p_c((1 - M) * X).

    Large values mean removing the masked-in part destroys the decision.

    Arguments
    ---------
    logits_full, logits_out : torch.Tensor
        (B, K) logits of X and of (1 - M) * X.

    Returns
    -------
    torch.Tensor
        (B,) float64 in [-1, 1].

    Example
    -------
    >>> full = torch.tensor([[math.log(3.0), 0.0]])  # p_c = 3/4
    >>> faithfulness_masked_out(full, torch.tensor([[0.0, math.log(3.0)]]))  # p_c = 1/4
    tensor([0.5000], dtype=torch.float64)
    """
    _, (p_full, p_out) = predicted_class_probabilities(logits_full, logits_out)
    return p_full - p_out


def average_increase(logits_full, logits_in):
    """AI per clip (%): 100 * 1[p_c(M * X) > p_c(X)].

    Arguments
    ---------
    logits_full, logits_in : torch.Tensor
        (B, K) logits of X and of M * X.

    Returns
    -------
    torch.Tensor
        (B,) float64 in {0, 100}.

    Example
    -------
    >>> full = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> average_increase(full, torch.tensor([[2.0, 0.0], [1.0, 0.0]]))
    tensor([100.,   0.], dtype=torch.float64)
    """
    _, (p_full, p_in) = predicted_class_probabilities(logits_full, logits_in)
    return 100.0 * (p_in > p_full).double()


def average_drop(logits_full, logits_in):
    """AD per clip (%): 100 * max(0, p_c(X) - p_c(M * X)) / p_c(X).

    p_c(X) is the largest of K probabilities, so p_c(X) >= 1 / K > 0.

    Arguments
    ---------
    logits_full, logits_in : torch.Tensor
        (B, K) logits of X and of M * X.

    Returns
    -------
    torch.Tensor
        (B,) float64 in [0, 100].

    Example
    -------
    >>> full = torch.tensor([[math.log(3.0), 0.0]])  # p_c = 3/4
    >>> average_drop(full, torch.zeros(1, 2))  # p_c = 1/2: 100 * (1/4) / (3/4)
    tensor([33.3333], dtype=torch.float64)
    """
    _, (p_full, p_in) = predicted_class_probabilities(logits_full, logits_in)
    return 100.0 * (p_full - p_in).clamp_min(0.0) / p_full.clamp_min(1e-300)


def average_gain(logits_full, logits_in):
    """AG per clip (%): 100 * max(0, p_c(M * X) - p_c(X)) / (1 - p_c(X)); 0 if p_c(X) = 1.

    With p_c(X) = 1 no gain is possible, and the value is defined as 0 (never NaN).

    Arguments
    ---------
    logits_full, logits_in : torch.Tensor
        (B, K) logits of X and of M * X.

    Returns
    -------
    torch.Tensor
        (B,) float64 in [0, 100].

    Example
    -------
    >>> full = torch.zeros(1, 2)  # p_c = 1/2
    >>> gain = average_gain(full, torch.tensor([[math.log(3.0), 0.0]]))  # 100 * (1/4) / (1/2)
    >>> round(gain.item(), 4)
    50.0
    >>> average_gain(torch.tensor([[1000.0, 0.0]]), torch.zeros(1, 2))
    tensor([0.], dtype=torch.float64)
    """
    _, (p_full, p_in) = predicted_class_probabilities(logits_full, logits_in)
    headroom = 1.0 - p_full
    gain = (p_in - p_full).clamp_min(0.0)
    safe = torch.where(headroom > 0, headroom, torch.ones_like(headroom))
    return torch.where(headroom > 0, 100.0 * gain / safe, torch.zeros_like(gain))


def _flat_non_negative(maps):
    if maps.dim() < 2 or maps[0].numel() == 0:
        raise ValueError(f"maps must be (B, ...) with a non-empty clip, got {tuple(maps.shape)}")
    flat = maps.detach().reshape(maps.shape[0], -1).double()
    if torch.isnan(flat).any():
        raise ValueError("maps contain NaN")
    if (flat < 0).any():
        raise ValueError(
            "sparsity and complexity need non-negative maps, got a minimum of "
            f"{flat.min().item():.4g}"
        )
    return flat


def gini_index(maps):
    """Sparsity per clip: the Gini index of the map (Chalasani et al. 2020).

    For the n values of a clip sorted ascending, v_(1) <= ... <= v_(n), and
    S = sum_k v_(k) > 0:

        G = 1 - 2 * sum_k (v_(k) / S) * (n - k + 1/2) / n

    G = 0 for a constant map, G = 1 - 1/n for a single non-zero bin, and
    G = 1 - a for a binary mask keeping a fraction a of the bins. An all-zero map
    (S = 0) is defined as G = 0, like a constant map.

    Arguments
    ---------
    maps : torch.Tensor
        (B, ...) non-negative maps.

    Returns
    -------
    torch.Tensor
        (B,) float64 in [0, 1).

    Example
    -------
    >>> gini_index(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]]))
    tensor([0.2500, 0.7500, 0.0000], dtype=torch.float64)
    """
    flat = _flat_non_negative(maps)
    count = flat.shape[1]
    ordered = flat.sort(dim=1).values
    total = ordered.sum(dim=1)
    rank = torch.arange(1, count + 1, dtype=flat.dtype, device=flat.device)
    weights = (count - rank + 0.5) / count
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    gini = 1.0 - 2.0 * (ordered * weights).sum(dim=1) / safe_total
    return torch.where(total > 0, gini, torch.zeros_like(gini)).clamp_min(0.0).cpu()


def map_entropy(maps):
    """Complexity per clip: entropy (nats) of the map normalised to sum 1.

    With p_i = v_i / sum_j v_j: H = -sum_i p_i log p_i (0 log 0 = 0). H = 0 for a
    single non-zero bin, log n for a constant map; an all-zero map is treated as
    the uniform distribution, H = log n (no concentration, like a constant map).

    Arguments
    ---------
    maps : torch.Tensor
        (B, ...) non-negative maps.

    Returns
    -------
    torch.Tensor
        (B,) float64 in [0, log n].

    Example
    -------
    >>> maps = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    >>> map_entropy(maps)
    tensor([0.6931, 0.0000, 1.3863], dtype=torch.float64)
    """
    flat = _flat_non_negative(maps)
    total = flat.sum(dim=1, keepdim=True)
    uniform = torch.full_like(flat, 1.0 / flat.shape[1])
    probabilities = torch.where(total > 0, flat / torch.where(total > 0, total, 1.0), uniform)
    logs = torch.where(probabilities > 0, probabilities.log(), torch.zeros_like(probabilities))
    return ((-(probabilities * logs).sum(dim=1)).clamp_min(0.0) + 0.0).cpu()


def _check_masks(features, masks):
    if features.dim() != 4 or features.shape[1] != 1:
        raise ValueError(
            f"features must be (B, 1, T, F), got shape {tuple(features.shape)}"
        )
    if masks.shape != features.shape:
        raise ValueError(
            f"masks must have the features' shape {tuple(features.shape)}, "
            f"got {tuple(masks.shape)}"
        )
    if torch.isnan(masks).any() or masks.min() < 0 or masks.max() > 1:
        raise ValueError("masks must take values in [0, 1] (and contain no NaN)")


def interpretation_metrics(classifier, features, masks, maps=None, logits=None):
    """Every metric of this module, per clip, for one batch of masks.

    The classifier runs in evaluation mode under ``torch.no_grad()`` on X (unless
    ``logits`` are given), M * X and (1 - M) * X; its previous mode is restored.

    Arguments
    ---------
    classifier : torch.nn.Module
        Maps features (B, 1, T, F) to logits (B, K).
    features : torch.Tensor
        Features X (``log1p`` or PCEN), (B, 1, T, F).
    masks : torch.Tensor
        Masks M in [0, 1], (B, 1, T, F).
    maps : torch.Tensor or None
        Non-negative maps (B, 1, T, F) on which sparsity and complexity are
        computed; ``None``: computed on the masks.
    logits : torch.Tensor or None
        Logits of X if already known (e.g. from the interpreter's pass).

    Returns
    -------
    dict of torch.Tensor
        (B,) CPU tensors: ``"fid_i"``, ``"fa"``, ``"ff"``, ``"ai"``, ``"ad"``,
        ``"ag"``, ``"sparsity"``, ``"complexity"`` (float64), ``"pred"`` (c,
        int64), ``"p_full"``, ``"p_in"``, ``"p_out"`` (float64).

    Example
    -------
    >>> classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> features = torch.rand(2, 1, 2, 2)
    >>> masks = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).expand(2, 1, 2, 2)
    >>> scores = interpretation_metrics(classifier, features, masks)
    >>> scores["fa"].shape, sorted(scores)[:4]
    (torch.Size([2]), ['ad', 'ag', 'ai', 'complexity'])
    >>> torch.allclose(scores["sparsity"], torch.full((2,), 0.75, dtype=torch.float64))
    True
    """
    _check_masks(features, masks)
    masks = masks.to(device=features.device, dtype=features.dtype)
    was_training = classifier.training
    classifier.eval()
    try:
        with torch.no_grad():
            if logits is None:
                logits = classifier(features)
            logits_in = classifier(masks * features)
            logits_out = classifier((1.0 - masks) * features)
    finally:
        classifier.train(was_training)
    predicted, (p_full, p_in, p_out) = predicted_class_probabilities(
        logits, logits_in, logits_out
    )
    structure = masks if maps is None else maps
    if structure.shape != features.shape:
        raise ValueError(
            f"maps must have the features' shape {tuple(features.shape)}, "
            f"got {tuple(structure.shape)}"
        )
    return {
        "fid_i": input_fidelity(logits, logits_in),
        "fa": faithfulness_masked_in(logits, logits_in),
        "ff": faithfulness_masked_out(logits, logits_out),
        "ai": average_increase(logits, logits_in),
        "ad": average_drop(logits, logits_in),
        "ag": average_gain(logits, logits_in),
        "sparsity": gini_index(structure),
        "complexity": map_entropy(structure),
        "pred": predicted,
        "p_full": p_full,
        "p_in": p_in,
        "p_out": p_out,
    }


class MetricAccumulator:
    """Collects per-clip metric dicts over batches and averages them over clips.

    Example
    -------
    >>> accumulator = MetricAccumulator()
    >>> accumulator.append({"fa": torch.tensor([0.1, 0.3]), "pred": torch.tensor([0, 1])})
    >>> accumulator.append({"fa": torch.tensor([0.5]), "pred": torch.tensor([2])})
    >>> len(accumulator), round(accumulator.summarize()["fa"], 4)
    (3, 0.3)
    """

    #: Keys that are per-clip labels, not metrics, and are not averaged.
    NOT_AVERAGED = ("pred",)

    def __init__(self):
        self.scores = {}

    def append(self, per_clip):
        """Add a dict of (B,) per-clip tensors (e.g. from :func:`interpretation_metrics`)."""
        sizes = {key: value.numel() for key, value in per_clip.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"per-clip tensors of different sizes: {sizes}")
        if self.scores and set(per_clip) != set(self.scores):
            raise ValueError(
                f"metric keys changed: had {sorted(self.scores)}, got {sorted(per_clip)}"
            )
        for key, value in per_clip.items():
            self.scores.setdefault(key, []).append(value.detach().reshape(-1).cpu())

    def __len__(self):
        if not self.scores:
            return 0
        return sum(value.numel() for value in next(iter(self.scores.values())))

    def per_clip(self):
        """All clips so far: dict of concatenated (N,) tensors."""
        return {key: torch.cat(values) for key, values in self.scores.items()}

    def summarize(self):
        """Mean over all clips of each metric (a dict of floats; empty if no clip)."""
        return {
            key: torch.cat(values).double().mean().item()
            for key, values in self.scores.items()
            if key not in self.NOT_AVERAGED
        }


def summarize(per_clip_dicts):
    """Mean over all clips of a list of per-clip metric dicts.

    Arguments
    ---------
    per_clip_dicts : list of dict
        Each from :func:`interpretation_metrics`.

    Returns
    -------
    dict of float

    Example
    -------
    >>> summarize([{"ai": torch.tensor([100.0, 0.0])}, {"ai": torch.tensor([100.0])}])["ai"]
    66.66666666666667
    """
    accumulator = MetricAccumulator()
    for per_clip in per_clip_dicts:
        accumulator.append(per_clip)
    return accumulator.summarize()
