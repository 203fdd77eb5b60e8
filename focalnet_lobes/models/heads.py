"""Classification heads on pooled backbone features.

* :class:`LinearHead`: mean pooling (of a feature map or a token sequence) + dropout
  + linear layer.
* :class:`CosineHead`: the paper's head, SpeechBrain's ECAPA-TDNN ``Classifier``
  (optional BatchNorm + Linear blocks, then the cosine similarity between the
  normalised features and the normalised class weights) with the softmax scale made
  explicit: :meth:`CosineHead.cosine` gives the cosines and ``forward`` the logits
  ``scale * cosine``, so that ``softmax(logits)`` are the probabilities the model was
  trained with. :meth:`CosineHead.load_ecapa_state_dict` loads a ``Classifier``
  state dict.
The matching loss is :class:`focalnet_lobes.training.losses.AdditiveAngularMarginLoss` (on the
logits, numerically SpeechBrain's ``LogSoftmaxWrapper(AdditiveAngularMargin(margin,
scale))``; the paper's recipe uses margin 0.2, scale 30). SpeechBrain's own loss works
too, on ``head.cosine(x).unsqueeze(1)`` and targets of shape (B, 1)::

    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
    loss_fn = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    loss = loss_fn(head.cosine(features).unsqueeze(1), targets.unsqueeze(1))

Train with the margin, predict with ``head(features)`` (no margin).
"""


import torch
import torch.nn.functional as F
from torch import nn


def _pool(x, name):
    """(B, D) as is; (B, N, D) mean over N; (B, C, H, W) mean over H and W."""
    if not isinstance(x, torch.Tensor) or x.ndim not in (2, 3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{name} expects (batch, dim), (batch, tokens, dim) or (batch, channels, "
            f"height, width), got {shape}"
        )
    if x.ndim == 3:
        return x.mean(dim=1)
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    return x


def _check_features(features, in_features, name):
    """Raise a ValueError unless the pooled ``features`` are (B, in_features)."""
    if features.shape[-1] != in_features:
        raise ValueError(
            f"{name} expects {in_features} features, got {features.shape[-1]} "
            f"(pooled input shape {tuple(features.shape)})"
        )


def _check_terms_inputs(tokens, weights, classes, in_features, name):
    """Raise a ValueError unless tokens (B, ..., D), weights (B, ...) and classes (B,) agree."""
    if tokens.ndim < 2 or tokens.shape[-1] != in_features or tuple(weights.shape) != tuple(tokens.shape[:-1]):
        raise ValueError(
            f"{name}.logit_terms expects tokens (B, ..., {in_features}) and weights of their "
            f"leading shape, got {tuple(tokens.shape)} and {tuple(weights.shape)}"
        )
    if tuple(classes.shape) != (tokens.shape[0],):
        raise ValueError(f"{name}.logit_terms expects one class per clip, got {tuple(classes.shape)}")


class LinearHead(nn.Module):
    """Mean pooling, dropout and a linear layer.

    Arguments
    ---------
    in_features : int
        Feature size D (channels C of a feature map).
    num_classes : int
        Number of classes.
    dropout : float
        Dropout before the linear layer.

    Example
    -------
    >>> head = LinearHead(8, num_classes=3)
    >>> head(torch.randn(2, 8)).shape
    torch.Size([2, 3])
    >>> tokens = torch.randn(2, 5, 8)
    >>> torch.allclose(head(tokens), head(tokens.mean(1)))
    True
    >>> head(torch.randn(2, 8, 4, 6)).shape
    torch.Size([2, 3])
    """

    def __init__(self, in_features, num_classes, dropout=0.0):
        super().__init__()
        if in_features < 1 or num_classes < 1:
            raise ValueError(
                f"in_features and num_classes must be positive, got {in_features}, {num_classes}"
            )
        self.in_features = in_features
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        """Logits (B, num_classes) of ``x`` (B, D), (B, N, D) or (B, D, H, W)."""
        features = _pool(x, "LinearHead")
        _check_features(features, self.in_features, "LinearHead")
        return self.fc(self.dropout(features))

    def logit_terms(self, tokens, weights, classes):
        """Each position's exact share of a class's logit under weighted pooling.

        With pooled features ``f = sum_p w_p t_p`` (weights summing to 1 over the
        positions p), the logit of class c is ``W_c . f + b_c = sum_p w_p (W_c . t_p)
        + b_c``: the class activation map (Zhou et al., CVPR 2016) generalised to
        weighted pooling. Dropout is the identity here (the decomposition is of the
        evaluation-mode logit).

        Arguments
        ---------
        tokens : torch.Tensor
            (B, ..., D) per-position features, e.g. (B, h, w, D).
        weights : torch.Tensor
            (B, ...) pooling weights, each clip's summing to 1.
        classes : torch.Tensor
            (B,) class index per clip (long).

        Returns
        -------
        torch.Tensor
            (B, ...) terms; their sum plus ``fc.bias[c]`` is the logit of class c.

        Raises
        ------
        ValueError
            Shapes that do not agree.

        Example
        -------
        >>> head = LinearHead(4, num_classes=3).eval()
        >>> tokens, weights = torch.randn(2, 5, 4), torch.softmax(torch.randn(2, 5), 1)
        >>> pooled = (weights[..., None] * tokens).sum(1)
        >>> classes = torch.tensor([0, 2])
        >>> terms = head.logit_terms(tokens, weights, classes)
        >>> logits = head(pooled)[torch.arange(2), classes]
        >>> torch.allclose(terms.sum(1) + head.fc.bias[classes], logits, atol=1e-6)
        True
        """
        _check_terms_inputs(tokens, weights, classes, self.in_features, "LinearHead")
        class_weights = self.fc.weight[classes].reshape(
            (tokens.shape[0],) + (1,) * (tokens.ndim - 2) + (self.in_features,)
        )
        return weights * (tokens * class_weights).sum(-1)


class CosineHead(nn.Module):
    """Cosine-similarity classifier (SpeechBrain ECAPA ``Classifier``) with a scale.

    ``lin_blocks`` blocks of ``BatchNorm1d`` + ``Linear`` (no activation, as the
    ECAPA ``Classifier``) map the features to ``lin_neurons``; the cosine of the
    result with each class weight vector is the class score.

    Arguments
    ---------
    in_features : int
        Feature size D. Inputs (B, D), (B, N, D) (mean-pooled over N, so the
        ECAPA-style (B, 1, D) works) and (B, D, H, W) (mean-pooled over H, W).
    num_classes : int
        Number of classes.
    scale : float
        Logits are ``scale * cosine``; use the scale of the training loss (30 in
        the paper's recipe). Stored as a buffer, so it is saved with the weights.
    lin_blocks : int
        Number of BatchNorm + Linear blocks before the cosine layer.
    lin_neurons : int
        Output size of those blocks.

    Example
    -------
    >>> head = CosineHead(8, num_classes=4, scale=30.0, lin_blocks=1, lin_neurons=6).eval()
    >>> features = torch.randn(2, 8)
    >>> cosines = head.cosine(features)
    >>> cosines.shape, bool(cosines.abs().max() <= 1)
    (torch.Size([2, 4]), True)
    >>> torch.allclose(head(features), 30.0 * cosines)
    True
    """

    def __init__(self, in_features, num_classes, scale=30.0, lin_blocks=0, lin_neurons=192):
        super().__init__()
        if in_features < 1 or num_classes < 1 or lin_blocks < 0 or lin_neurons < 1:
            raise ValueError(
                "need in_features, num_classes, lin_neurons >= 1 and lin_blocks >= 0, got "
                f"{in_features}, {num_classes}, {lin_neurons}, {lin_blocks}"
            )
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.blocks = nn.ModuleList()
        size = in_features
        for _ in range(lin_blocks):
            block = nn.Module()
            block.norm = nn.BatchNorm1d(size)
            block.linear = nn.Linear(size, lin_neurons)
            self.blocks.append(block)
            size = lin_neurons
        self.weight = nn.Parameter(torch.empty(num_classes, size))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def cosine(self, x):
        """Cosine similarities (B, num_classes) in [-1, 1] between features and classes.

        Arguments
        ---------
        x : torch.Tensor
            (B, D), (B, N, D) or (B, D, H, W).

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> head = CosineHead(2, num_classes=2)
        >>> with torch.no_grad():
        ...     _ = head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        >>> head.cosine(torch.tensor([[3.0, 0.0], [1.0, 1.0]]))
        tensor([[1.0000, 0.0000],
                [0.7071, 0.7071]], grad_fn=<MmBackward0>)
        """
        features = _pool(x, "CosineHead")
        _check_features(features, self.in_features, "CosineHead")
        for block in self.blocks:
            features = block.linear(block.norm(features))
        return F.linear(F.normalize(features), F.normalize(self.weight))

    def forward(self, x):
        """Logits ``scale * cosine(x)`` (B, num_classes)."""
        return self.scale * self.cosine(x)

    def logit_terms(self, tokens, weights, classes):
        """Each position's exact share of a class's logit under weighted pooling.

        In evaluation mode every ``BatchNorm1d`` + ``Linear`` block is affine, so
        with ``f = sum_p w_p t_p`` and weights summing to 1 the blocks' output is
        ``g(f) = sum_p w_p g(t_p)``, and the logit ``scale * W^_c . g(f) / |g(f)|``
        (``W^_c`` the normalised class weights) is ``sum_p w_p scale W^_c . g(t_p) /
        |g(f)|``: one term per position, no bias (``|g(f)|`` is the clip's own
        positive constant, so it does not change a clip's ranking of positions).

        Arguments and shapes are those of :meth:`LinearHead.logit_terms`; the
        (B, ...) terms returned sum to the logit of class c (no bias term).

        Raises
        ------
        ValueError
            Shapes that do not agree, or the head in training mode (batch
            statistics make the blocks non-affine over positions).

        Example
        -------
        >>> head = CosineHead(4, num_classes=3, lin_blocks=1, lin_neurons=6)
        >>> _ = head(torch.randn(16, 4))  # training mode: BatchNorm running statistics move
        >>> head = head.eval()
        >>> tokens, weights = torch.randn(2, 5, 4), torch.softmax(torch.randn(2, 5), 1)
        >>> pooled = (weights[..., None] * tokens).sum(1)
        >>> classes = torch.tensor([1, 0])
        >>> terms = head.logit_terms(tokens, weights, classes)
        >>> torch.allclose(terms.sum(1), head(pooled)[torch.arange(2), classes], atol=1e-5)
        True
        """
        _check_terms_inputs(tokens, weights, classes, self.in_features, "CosineHead")
        if self.training and len(self.blocks):
            raise ValueError("CosineHead.logit_terms needs evaluation mode (head.eval())")
        per_position = tokens.reshape(-1, tokens.shape[-1])
        for block in self.blocks:
            per_position = block.linear(block.norm(per_position))
        per_position = per_position.reshape(tokens.shape[:-1] + (-1,))
        pooled = (weights[..., None] * per_position).flatten(1, -2).sum(1)  # g(f), (B, size)
        class_weights = F.normalize(self.weight)[classes]
        scale = self.scale / pooled.norm(dim=-1).clamp_min(1e-12)  # F.normalize's epsilon
        shape = (tokens.shape[0],) + (1,) * (tokens.ndim - 2)
        projected = (per_position * class_weights.reshape(shape + (-1,))).sum(-1)
        return weights * projected * scale.reshape(shape)

    def load_ecapa_state_dict(self, state_dict, strict=True):
        """Load the state dict of a ``speechbrain.lobes.models.ECAPA_TDNN.Classifier``.

        The ECAPA names ``blocks.{2i}.norm.*`` (its ``BatchNorm1d`` wrapper) and
        ``blocks.{2i+1}.w.*`` (its ``Linear`` wrapper) become ``blocks.{i}.norm.*``
        and ``blocks.{i}.linear.*``; ``weight`` stays ``weight``. The ECAPA
        ``Classifier`` has no scale: this head keeps its own.

        Arguments
        ---------
        state_dict : dict
            ``Classifier(...).state_dict()``, built with the same ``lin_blocks``,
            ``lin_neurons``, input size and number of classes.
        strict : bool
            Passed to ``load_state_dict``.

        Returns
        -------
        The result of ``load_state_dict``.

        Example
        -------
        >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
        >>> ecapa = Classifier(input_size=8, lin_blocks=1, lin_neurons=4, out_neurons=3)
        >>> head = CosineHead(8, num_classes=3, lin_blocks=1, lin_neurons=4)
        >>> head.load_ecapa_state_dict(ecapa.state_dict())
        <All keys matched successfully>
        """
        converted = {"scale": self.scale}
        for key, tensor in state_dict.items():
            parts = key.split(".")
            if key == "weight":
                converted[key] = tensor
            elif len(parts) >= 3 and parts[0] == "blocks" and parts[1].isdigit():
                index = int(parts[1])
                wrapper, rest = parts[2], ".".join(parts[3:])
                if index % 2 == 0 and wrapper == "norm":
                    converted[f"blocks.{index // 2}.norm.{rest}"] = tensor
                elif index % 2 == 1 and wrapper == "w":
                    converted[f"blocks.{index // 2}.linear.{rest}"] = tensor
                else:
                    raise ValueError(f"unexpected ECAPA Classifier parameter '{key}'")
            else:
                raise ValueError(f"unexpected ECAPA Classifier parameter '{key}'")
        return self.load_state_dict(converted, strict=strict)
