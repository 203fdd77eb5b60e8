"""Tests of the classification heads and the angular-margin loss against SpeechBrain."""


import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

from focalnet_lobes.models.heads import CosineHead, LinearHead


def _randomise_batchnorm(module, generator):
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    for submodule in module.modules():
        if isinstance(submodule, torch.nn.BatchNorm1d):
            size = submodule.num_features
            submodule.running_mean.copy_(torch.randn(size, generator=generator))
            submodule.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            submodule.weight.data.copy_(torch.randn(size, generator=generator))
            submodule.bias.data.copy_(torch.randn(size, generator=generator))


# --- LinearHead ----------------------------------------------------------------------


def test_linear_head_shapes_and_mean_pooling():
    torch.manual_seed(0)
    head = LinearHead(16, num_classes=5).eval()
    features = torch.randn(3, 16)
    tokens = torch.randn(3, 7, 16)
    feature_map = torch.randn(3, 16, 4, 6)
    assert head(features).shape == head(tokens).shape == head(feature_map).shape == (3, 5)
    expected = features @ head.fc.weight.T + head.fc.bias
    assert torch.allclose(head(features), expected, atol=1e-6)
    assert torch.allclose(head(tokens), head(tokens.mean(dim=1)), atol=1e-6)
    assert torch.allclose(head(feature_map), head(feature_map.mean(dim=(2, 3))), atol=1e-6)


def test_linear_head_dropout_only_in_training():
    head = LinearHead(64, num_classes=2, dropout=0.5)
    features = torch.randn(8, 64)
    head.eval()
    assert torch.equal(head(features), head(features))
    head.train()
    torch.manual_seed(0)
    assert not torch.allclose(head(features), head.eval()(features))


def test_linear_head_bad_inputs():
    head = LinearHead(16, num_classes=5)
    with pytest.raises(ValueError, match="16 features"):
        head(torch.randn(3, 8))
    with pytest.raises(ValueError, match="expects"):
        head(torch.randn(16))
    with pytest.raises(ValueError):
        LinearHead(0, 3)


# --- CosineHead ----------------------------------------------------------------------


@pytest.mark.parametrize("lin_blocks", [0, 1, 2])
def test_cosine_head_matches_ecapa_classifier(lin_blocks):
    generator = torch.Generator().manual_seed(lin_blocks)
    torch.manual_seed(lin_blocks)
    ecapa = Classifier(input_size=24, lin_blocks=lin_blocks, lin_neurons=12, out_neurons=6)
    with torch.no_grad():
        _randomise_batchnorm(ecapa, generator)
    ecapa.eval()
    head = CosineHead(24, num_classes=6, scale=30.0, lin_blocks=lin_blocks, lin_neurons=12)
    head.load_ecapa_state_dict(ecapa.state_dict())
    head.eval()
    features = torch.randn(5, 24, generator=generator)
    with torch.no_grad():
        expected = ecapa(features.unsqueeze(1)).squeeze(1)  # ECAPA takes (B, 1, D)
        cosines = head.cosine(features)
    assert cosines.shape == (5, 6)
    assert torch.allclose(cosines, expected, atol=1e-6)
    assert torch.allclose(head.cosine(features.unsqueeze(1)), expected, atol=1e-6)
    assert torch.allclose(head(features), 30.0 * expected, atol=1e-5)
    assert cosines.abs().max() <= 1.0 + 1e-6


def test_cosine_head_matches_ecapa_in_training_mode():
    """BatchNorm batch statistics: the same on (B, D) as ECAPA's on (B, 1, D)."""
    torch.manual_seed(0)
    ecapa = Classifier(input_size=10, lin_blocks=1, lin_neurons=8, out_neurons=4).train()
    head = CosineHead(10, num_classes=4, lin_blocks=1, lin_neurons=8).train()
    head.load_ecapa_state_dict(ecapa.state_dict())
    features = torch.randn(6, 10) * 3 + 1
    expected = ecapa(features.unsqueeze(1)).squeeze(1)
    assert torch.allclose(head.cosine(features), expected, atol=1e-6)
    assert torch.allclose(head.blocks[0].norm.running_mean, ecapa.blocks[0].norm.running_mean)


def test_cosine_head_scale_is_saved_and_probabilities():
    head = CosineHead(8, num_classes=3, scale=20.0)
    assert "scale" in head.state_dict() and head.scale.item() == 20.0
    other = CosineHead(8, num_classes=3, scale=30.0)
    other.load_state_dict(head.state_dict())
    assert other.scale.item() == 20.0
    features = torch.randn(4, 8)
    probabilities = head(features).softmax(-1)
    assert torch.allclose(probabilities, (20.0 * head.cosine(features)).softmax(-1))
    # the cosine is invariant to the feature norm
    assert torch.allclose(head.cosine(features), head.cosine(7.0 * features), atol=1e-6)


def test_cosine_head_errors():
    with pytest.raises(ValueError, match="scale"):
        CosineHead(8, 3, scale=0.0)
    head = CosineHead(8, 3, lin_blocks=1, lin_neurons=4)
    with pytest.raises(ValueError, match="8 features"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match="unexpected ECAPA"):
        head.load_ecapa_state_dict({"blocks.0.w.weight": torch.zeros(4, 8)})
