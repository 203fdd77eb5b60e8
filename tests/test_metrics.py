"""Interpretation metrics on hand-computed values (focalnet_lobes.interpretation.metrics).

The fake classifier is linear on 2 x 2 features: logits = (x_00, x_01 + ln 2), so
every probability below is a ratio of small integers computed by hand.
"""

import math

import pytest
import torch
from torch import nn

from focalnet_lobes.interpretation.evaluation import evaluate_split
from focalnet_lobes.interpretation.interpret import MapInterpreter, RandomInterpreter, quantile_mask
from focalnet_lobes.interpretation.metrics import (
    METRIC_KEYS,
    MetricAccumulator,
    average_drop,
    average_gain,
    average_increase,
    faithfulness_masked_in,
    faithfulness_masked_out,
    gini_index,
    input_fidelity,
    interpretation_metrics,
    map_entropy,
    predicted_class_probabilities,
    summarize,
)

LN2, LN3, LN6 = math.log(2.0), math.log(3.0), math.log(6.0)


class TinyLinearClassifier(nn.Module):
    """logits = (x[0, 0], x[0, 1] + ln 2) for features (B, 1, 2, 2); K = 2."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
            self.linear.bias.copy_(torch.tensor([0.0, LN2], dtype=torch.float64))
        self.calls_in_training_mode = 0

    def forward(self, features):
        if self.training:
            self.calls_in_training_mode += 1
        return self.linear(features.reshape(features.shape[0], 4))


def grid(*values):
    """One clip's 2 x 2 grid (1, 1, 2, 2) from 4 values in row-major order."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, 2, 2)


# Clip 0: X = (ln 6, 0, 1, 1): logits (ln 6, ln 2), p = (3/4, 1/4), c = 0.
#   M = (0, 1, 1, 0): M X = (0, 0, 1, 0) -> logits (0, ln 2) -> p_in = 1/3 (argmax 1)
#                     (1-M) X = (ln 6, 0, 0, 1) -> p_out = 3/4.
# Clip 1: X = (ln 2, ln 3, 0, 0): logits (ln 2, ln 6), p = (1/4, 3/4), c = 1.
#   M = (0, 1, 1, 0): M X = (0, ln 3, 0, 0) -> logits (0, ln 6) -> p_in = 6/7
#                     (1-M) X = (ln 2, 0, 0, 0) -> logits (ln 2, ln 2) -> p_out = 1/2.
FEATURES = torch.cat([grid(LN6, 0, 1, 1), grid(LN2, LN3, 0, 0)])
MASKS = torch.cat([grid(0, 1, 1, 0), grid(0, 1, 1, 0)])
EXPECTED = {
    "pred": [0, 1],
    "p_full": [3 / 4, 3 / 4],
    "p_in": [1 / 3, 6 / 7],
    "p_out": [3 / 4, 1 / 2],
    "fid_i": [0.0, 1.0],
    "fa": [3 / 4 - 1 / 3, 3 / 4 - 6 / 7],  # 5/12, -3/28
    "ff": [0.0, 1 / 4],
    "ai": [0.0, 100.0],
    "ad": [100 * (5 / 12) / (3 / 4), 0.0],  # 500/9
    "ag": [0.0, 100 * (3 / 28) / (1 / 4)],  # 300/7
    # Gini / entropy of the masks: 2 of 4 bins kept -> 1 - 1/2, ln 2.
    "sparsity": [0.5, 0.5],
    "complexity": [LN2, LN2],
}


@pytest.fixture
def classifier():
    return TinyLinearClassifier().eval()


def logits_of(classifier, features):
    with torch.no_grad():
        return classifier(features)


def test_interpretation_metrics_hand_computed(classifier):
    scores = interpretation_metrics(classifier, FEATURES, MASKS)
    assert set(scores) == set(METRIC_KEYS) | {"pred", "p_full", "p_in", "p_out"}
    for key, expected in EXPECTED.items():
        assert scores[key].shape == (2,), key
        torch.testing.assert_close(
            scores[key].double(), torch.tensor(expected, dtype=torch.float64), msg=key
        )
    assert scores["pred"].dtype == torch.int64


def test_single_metric_functions_match_hand_values(classifier):
    full = logits_of(classifier, FEATURES)
    masked_in = logits_of(classifier, MASKS * FEATURES)
    masked_out = logits_of(classifier, (1 - MASKS) * FEATURES)
    pairs = {
        "fid_i": input_fidelity(full, masked_in),
        "fa": faithfulness_masked_in(full, masked_in),
        "ff": faithfulness_masked_out(full, masked_out),
        "ai": average_increase(full, masked_in),
        "ad": average_drop(full, masked_in),
        "ag": average_gain(full, masked_in),
    }
    for key, value in pairs.items():
        torch.testing.assert_close(value, torch.tensor(EXPECTED[key], dtype=torch.float64), msg=key)
    predicted, (p_full,) = predicted_class_probabilities(full)
    assert predicted.tolist() == [0, 1]
    torch.testing.assert_close(p_full, torch.tensor([0.75, 0.75], dtype=torch.float64))


def test_metrics_are_for_the_class_predicted_on_the_full_input():
    # The masked-in input predicts class 0 strongly, but c = 1 on the full input:
    # p_in is p_1(M X), not max_k p_k(M X).
    full = torch.tensor([[0.0, LN3]])  # p_1 = 3/4
    masked_in = torch.tensor([[LN3, 0.0]])  # p_1 = 1/4
    assert input_fidelity(full, masked_in).item() == 0.0
    assert faithfulness_masked_in(full, masked_in).item() == pytest.approx(0.5, abs=1e-6)
    assert average_drop(full, masked_in).item() == pytest.approx(100 * 0.5 / 0.75, abs=1e-4)


def test_guard_probability_one_gives_no_nan():
    full = torch.tensor([[1000.0, 0.0], [1000.0, 0.0]])  # p_c = 1 exactly in float64
    masked_in = torch.tensor([[1000.0, 0.0], [0.0, LN2]])  # p_c = 1, then 1/3
    _, (p_full,) = predicted_class_probabilities(full)
    assert p_full.tolist() == [1.0, 1.0]
    gain = average_gain(full, masked_in)
    drop = average_drop(full, masked_in)
    assert gain.tolist() == [0.0, 0.0]
    torch.testing.assert_close(drop, torch.tensor([0.0, 100 * 2 / 3], dtype=torch.float64))
    assert average_increase(full, masked_in).tolist() == [0.0, 0.0]


def test_gini_index_hand_values():
    maps = torch.tensor(
        [
            [1.0, 2.0, 3.0, 4.0],  # 1 - 2 (1*3.5 + 2*2.5 + 3*1.5 + 4*0.5) / (10 * 4) = 1/4
            [4.0, 3.0, 2.0, 1.0],  # order does not matter
            [0.0, 0.0, 0.0, 7.0],  # single non-zero: 1 - 1/n
            [2.0, 2.0, 2.0, 2.0],  # constant: 0
            [0.0, 0.0, 0.0, 0.0],  # all zero: defined as 0
            [1.0, 0.0, 1.0, 0.0],  # binary, area 1/2: 1 - 1/2
        ]
    )
    expected = torch.tensor([0.25, 0.25, 0.75, 0.0, 0.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(gini_index(maps), expected)
    assert not torch.isnan(gini_index(torch.zeros(3, 1, 5, 5))).any()


def test_map_entropy_hand_values():
    maps = torch.tensor(
        [
            [1.0, 2.0, 3.0, 4.0],
            [0.0, 0.0, 0.0, 7.0],
            [2.0, 2.0, 2.0, 2.0],
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 1.0, 0.0],
        ]
    )
    first = -sum(p * math.log(p) for p in (0.1, 0.2, 0.3, 0.4))
    expected = torch.tensor([first, 0.0, math.log(4), math.log(4), LN2], dtype=torch.float64)
    torch.testing.assert_close(map_entropy(maps), expected)


def test_structure_metrics_reject_negative_maps():
    with pytest.raises(ValueError, match="non-negative"):
        gini_index(torch.tensor([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        map_entropy(torch.tensor([[1.0, -1.0]]))


def test_sparsity_and_complexity_on_maps_when_given(classifier):
    maps = torch.cat([grid(1, 2, 3, 4), grid(0, 0, 0, 7)])
    scores = interpretation_metrics(classifier, FEATURES, MASKS, maps=maps)
    torch.testing.assert_close(scores["sparsity"], torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert scores["complexity"][1].item() == 0.0
    # the probability metrics do not depend on the maps
    torch.testing.assert_close(scores["fa"], torch.tensor(EXPECTED["fa"], dtype=torch.float64))


def test_given_logits_replace_the_full_forward(classifier):
    fake_full = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # p_c = 1/2, c = 0
    scores = interpretation_metrics(classifier, FEATURES, MASKS, logits=fake_full)
    assert scores["pred"].tolist() == [0, 0]
    torch.testing.assert_close(scores["p_full"], torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_interpretation_metrics_eval_mode_and_restores_training(classifier):
    classifier.train()
    interpretation_metrics(classifier, FEATURES, MASKS)
    assert classifier.calls_in_training_mode == 0
    assert classifier.training


def test_full_mask_and_empty_mask(classifier):
    ones = torch.ones_like(FEATURES)
    scores = interpretation_metrics(classifier, FEATURES, ones)
    assert scores["fa"].abs().max().item() < 1e-12
    assert scores["fid_i"].tolist() == [1.0, 1.0]
    assert scores["ad"].abs().max().item() < 1e-10
    # the masked-out input is all silence: logits (0, ln 2), p = (1/3, 2/3)
    torch.testing.assert_close(scores["p_out"], torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    empty = interpretation_metrics(classifier, FEATURES, torch.zeros_like(FEATURES))
    assert not any(torch.isnan(v.double()).any() for v in empty.values())
    # an all-zero mask: Gini 0 and entropy log n by definition
    assert empty["sparsity"].tolist() == [0.0, 0.0]
    uniform_entropy = torch.full((2,), math.log(4), dtype=torch.float64)
    torch.testing.assert_close(empty["complexity"], uniform_entropy)


def test_bad_masks_raise(classifier):
    with pytest.raises(ValueError, match="shape"):
        interpretation_metrics(classifier, FEATURES, MASKS[:, :, :1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpretation_metrics(classifier, FEATURES, MASKS * 2)
    with pytest.raises(ValueError, match="logits"):
        input_fidelity(torch.zeros(2, 3), torch.zeros(2, 4))


def test_metric_accumulator_and_summarize(classifier):
    scores = interpretation_metrics(classifier, FEATURES, MASKS)
    first = {key: value[:1] for key, value in scores.items()}
    second = {key: value[1:] for key, value in scores.items()}
    accumulator = MetricAccumulator()
    accumulator.append(first)
    accumulator.append(second)
    assert len(accumulator) == 2
    summary = accumulator.summarize()
    assert "pred" not in summary
    for key in METRIC_KEYS:
        assert summary[key] == pytest.approx(sum(EXPECTED[key]) / 2, abs=1e-9), key
    assert summarize([first, second]) == summary
    with pytest.raises(ValueError, match="keys"):
        accumulator.append({"fa": torch.zeros(1)})


class FixedMapInterpreter(MapInterpreter):
    """Returns the given maps, and the classifier's logits."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def compute_maps(self, classifier, features):
        return classifier(features), self.maps[: features.shape[0]]


def evaluate_quantiles(classifier, interpreter, batches, quantiles, structure_on="maps"):
    """The library evaluator on feature batches, means keyed by float quantile."""
    result = evaluate_split(
        classifier, None, interpreter, batches, quantiles, structure_on=structure_on,
        n_resamples=0,
    )
    return {float(key): row for key, row in result["quantiles"].items()}


def test_evaluate_split_on_features_hand_computed(classifier):
    # At q = 0.5 both maps give the mask (0, 1, 1, 0) of the hand-computed example:
    # clip 0 (0, 2, 1, 0): sorted (0, 0, 1, 2), threshold 0 + 0.5 * (1 - 0) = 0.5;
    # clip 1 (0, 2, 0.1, 0): threshold 0.05.
    maps = torch.cat([grid(0, 2, 1, 0), grid(0, 2, 0.1, 0)])
    interpreter = FixedMapInterpreter(maps)
    table = evaluate_quantiles(
        classifier, interpreter, [FEATURES], quantiles=(0.5,), structure_on="masks"
    )
    assert table[0.5]["clips"] == 2
    for key in METRIC_KEYS:
        assert table[0.5][key] == pytest.approx(sum(EXPECTED[key]) / 2, abs=1e-9), key
    on_maps = evaluate_quantiles(classifier, interpreter, [FEATURES], quantiles=(0.5,))
    assert on_maps[0.5]["sparsity"] == pytest.approx(gini_index(maps).mean().item())
    # the per-clip values are kept, clip by clip
    result = evaluate_split(
        classifier, None, interpreter, [FEATURES], (0.5,), structure_on="masks"
    )
    assert result["per_clip"]["ids"] == ["0", "1"] and result["accuracy"] is None
    for key in METRIC_KEYS:
        assert result["per_clip"]["quantiles"]["0.5"][key] == pytest.approx(
            EXPECTED[key], abs=1e-9
        ), key
        ci = result["ci"]["0.5"][key]
        assert ci["low"] - 1e-9 <= table[0.5][key] <= ci["high"] + 1e-9, key


def test_evaluate_split_on_features_matches_per_batch_metrics(classifier):
    torch.manual_seed(0)
    batches = [(torch.rand(3, 1, 2, 2).double(), "labels"), torch.rand(2, 1, 2, 2).double()]
    interpreter = RandomInterpreter(seed=3)
    classifier.train()
    table = evaluate_quantiles(classifier, interpreter, batches, quantiles=(0.25, 0.75))
    assert classifier.training and classifier.calls_in_training_mode == 0
    for q in (0.25, 0.75):
        interpreter.reset()
        per_batch = []
        for batch in batches:
            features = batch[0] if isinstance(batch, tuple) else batch
            logits, maps = interpreter(classifier.eval(), features)
            per_batch.append(
                interpretation_metrics(classifier, features, quantile_mask(maps, q), maps=maps)
            )
        expected = summarize(per_batch)
        assert table[q]["clips"] == 5
        for key in METRIC_KEYS:
            assert table[q][key] == pytest.approx(expected[key]), (q, key)


def test_evaluate_split_errors(classifier):
    with pytest.raises(ValueError, match="quantiles"):
        evaluate_quantiles(classifier, RandomInterpreter(), [FEATURES], quantiles=(1.5,))
    with pytest.raises(ValueError, match="batch"):
        evaluate_quantiles(classifier, RandomInterpreter(), ["not a tensor"], quantiles=(0.5,))
