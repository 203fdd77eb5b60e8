"""ModulationContributionInterpreter: the predicted logit split exactly over the last stage."""

import pytest
import torch

import focalnet_lobes
from focalnet_lobes.models.classifier import SpectrogramClassifier
from focalnet_lobes.models.heads import CosineHead, LinearHead
from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter


@pytest.mark.parametrize("pool", ["avg", "modulation"])
def test_contributions_sum_to_the_predicted_logit(pool):
    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(
        "focalnet_audio_small", num_classes=0, in_chans=1, global_pool=pool
    )
    classifier = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 7)).eval()
    features = torch.rand(3, 1, 120, 64)
    with torch.no_grad():
        logits, grid = ModulationContributionInterpreter.contributions(classifier, features)
        predicted = logits.argmax(1)
        expected = logits.gather(1, predicted[:, None])[:, 0] - classifier.head.fc.bias[predicted]
        torch.testing.assert_close(grid.sum((1, 2)), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(logits, classifier(features))
        _, maps = ModulationContributionInterpreter()(classifier, features)
    assert maps.shape == features.shape
    assert float(maps.flatten(1).amin(1).abs().max()) < 1e-6  # shifted to a zero minimum
    # The top cell of the map is the top contribution (upsampling keeps the ranking of cells).
    cell = grid[0].flatten().argmax()
    h, w = grid.shape[1:]
    row, col = divmod(int(cell), w)
    stride_t, stride_f = -(-120 // h), -(-64 // w)
    block = maps[0, 0, row * stride_t:(row + 1) * stride_t, col * stride_f:(col + 1) * stride_f]
    assert float(block.max()) == pytest.approx(float(maps[0].max()), rel=0.2)


@pytest.mark.parametrize("pool", ["avg", "modulation"])
def test_contributions_of_the_papers_cosine_head_sum_to_its_logit(pool):
    """CosineHead with a BatchNorm + Linear block (hparams/focalnet.yaml): exact in eval mode."""
    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(
        "focalnet_audio_small", num_classes=0, in_chans=1, global_pool=pool
    )
    head = CosineHead(backbone.num_features, 6, scale=30.0, lin_blocks=1, lin_neurons=12)
    classifier = SpectrogramClassifier(backbone, head)
    with torch.no_grad():
        classifier.train()(torch.rand(8, 1, 96, 64))  # non-trivial BatchNorm statistics
        classifier.eval()
        features = torch.rand(3, 1, 96, 64)
        logits, grid = ModulationContributionInterpreter.contributions(classifier, features)
    torch.testing.assert_close(grid.sum((1, 2)), logits.max(1).values, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, classifier(features))
    classifier.train()
    with pytest.raises(ValueError, match="evaluation mode"):
        ModulationContributionInterpreter.contributions(classifier, features)


def test_contribution_needs_a_decomposable_head_and_a_focalnet():
    class MLPHead(torch.nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(dim, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))

        def forward(self, x):
            return self.net(x if x.ndim == 2 else x.mean((2, 3)))

    backbone = focalnet_lobes.create_model("focalnet_audio_small", num_classes=0, in_chans=1)
    classifier = SpectrogramClassifier(backbone, MLPHead(backbone.num_features)).eval()
    with pytest.raises(ValueError, match="needs a head whose logit splits over positions"):
        ModulationContributionInterpreter()(classifier, torch.rand(1, 1, 64, 64))
    vit = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    classifier = SpectrogramClassifier(vit, LinearHead(vit.num_features, 4)).eval()
    with pytest.raises(ValueError, match="modulators"):
        ModulationContributionInterpreter()(classifier, torch.rand(1, 1, 64, 64))
