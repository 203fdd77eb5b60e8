"""Confidence intervals and paired tests (focalnet_lobes.interpretation.stats) on hand-checkable samples."""

import math

import numpy as np
import pytest

from focalnet_lobes.interpretation.stats import bootstrap_ci, mcnemar_exact, paired_difference


def test_ci_of_a_hand_checkable_case():
    """100 clips, half right: mean 0.5, standard error sqrt(0.25 / 100) = 0.05.

    The normal-approximation 95% interval is 0.5 +- 1.96 * 0.05 = [0.402, 0.598];
    the bootstrap (percentile and BCa) lands within a resampling step of it.
    """
    values = [0.0, 1.0] * 50
    for method in ("percentile", "BCa"):
        ci = bootstrap_ci(values, method=method)
        assert ci["mean"] == 0.5 and ci["n"] == 100
        assert ci["low"] == pytest.approx(0.5 - 1.96 * 0.05, abs=0.015), method
        assert ci["high"] == pytest.approx(0.5 + 1.96 * 0.05, abs=0.015), method
    # a fixed seed: the same interval again; another seed: almost the same
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=1)["low"] == pytest.approx(bootstrap_ci(values)["low"], abs=0.02)


def test_ci_narrows_with_more_clips_and_covers_the_mean():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(1.0, 1.0, 25))
    large = bootstrap_ci(rng.normal(1.0, 1.0, 400))
    assert small["low"] < small["mean"] < small["high"]
    width_small, width_large = small["high"] - small["low"], large["high"] - large["low"]
    # the width scales as 1 / sqrt(n): 2 * 1.96 / sqrt(n)
    assert width_small == pytest.approx(2 * 1.96 / 5, rel=0.3)
    assert width_large == pytest.approx(2 * 1.96 / 20, rel=0.15)


def test_degenerate_samples_do_not_crash():
    assert bootstrap_ci([0.7] * 40) == {"mean": 0.7, "low": 0.7, "high": 0.7, "n": 40}
    assert bootstrap_ci([0.2]) == {"mean": 0.2, "low": 0.2, "high": 0.2, "n": 1}
    # one differing clip among 80: BCa is undefined on most resamples, falls back
    ci = bootstrap_ci([0.0] * 79 + [1.0])
    assert math.isfinite(ci["low"]) and math.isfinite(ci["high"])
    assert 0.0 <= ci["low"] <= ci["mean"] <= ci["high"] <= 1.0
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])


def test_paired_difference_that_must_be_significant():
    """Method A beats B by 0.1 on every clip, on top of a large clip-to-clip spread.

    Unpaired, the spread (standard deviation 0.3) would hide a 0.1 gap on 40 clips;
    paired, every difference is 0.1 +- 0.02 and the CI is far from 0.
    """
    rng = np.random.default_rng(1)
    clip_effect = rng.uniform(0.0, 0.8, 40)
    first = clip_effect + 0.1 + rng.uniform(-0.02, 0.02, 40)
    second = clip_effect
    result = paired_difference(first, second)
    assert result["significant"] is True
    assert result["mean"] == pytest.approx(0.1, abs=0.01)
    assert 0.09 < result["low"] < result["high"] < 0.11
    # and the sign follows the order
    assert paired_difference(second, first)["high"] < 0


def test_paired_difference_that_must_not_be_significant():
    """Two methods that each win on half of the clips by the same amount: mean 0."""
    first = [1.0, 0.0] * 20
    second = [0.0, 1.0] * 20
    result = paired_difference(first, second)
    assert result["mean"] == 0.0
    assert result["low"] < 0 < result["high"]
    assert result["significant"] is False
    # identical methods: a degenerate difference of exactly 0, not significant
    same = paired_difference(first, first)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 40, "significant": False}
    with pytest.raises(ValueError, match="same clips"):
        paired_difference([1.0, 2.0], [1.0])


def test_paired_difference_round_off_is_a_tie_a_small_real_difference_is_not():
    """Differences within float round-off count as 0; a small systematic one still counts."""
    import numpy as np

    areas = np.linspace(0.05, 0.95, 320)
    as_float32 = areas.astype(np.float32).astype(np.float64)  # one run stored float32
    assert np.any(as_float32 != areas)
    tie = paired_difference(as_float32, areas)
    assert tie == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 320, "significant": False}
    # the archived case: every clip 2.13e-9 apart (session 16's mask areas at q = 0.95)
    constant = paired_difference(areas + 2.13e-9, areas)
    assert constant["significant"] is False and constant["mean"] == 0.0
    # an archive's 6 significant digits against the unrounded values: a tie
    rounded = np.array([float(f"{value:.6g}") for value in areas + 1.234567e-7])
    assert paired_difference(rounded, areas + 1.234567e-7)["mean"] == 0.0
    # one mask bin of 431 x 64 on every clip (3.6e-5): not round-off, so significant
    bin_area = 1.0 / (431 * 64)
    real = paired_difference(areas + bin_area, areas)
    assert real["significant"] is True
    assert real["low"] == pytest.approx(bin_area, rel=1e-6)
    # round-off on some clips, a real difference on others: only the real ones count
    mixed = paired_difference(np.concatenate([areas[:300] + 1e-12, areas[300:] + 0.1]), areas)
    assert mixed["mean"] == pytest.approx(20 * 0.1 / 320)


def test_difference_cell_shows_the_sign_of_every_bound_and_bolds_visible_differences():
    from focalnet_lobes.interpretation.evaluation import difference_cell

    # session 15's W' FF at q = 0.9: a CI above 0 by less than 0.0005 must show its sign,
    # the three numbers at one precision
    ff = {"mean": -0.011, "low": -0.022, "high": -0.0004, "significant": True}
    assert difference_cell(ff) == "**-0.01100 [-0.02200, -0.00040]**"
    # the same numbers with a CI that includes 0: not bold
    assert difference_cell({**ff, "high": 0.0004, "significant": False}) == (
        "-0.01100 [-0.02200, +0.00040]"
    )
    # a systematic difference below 0.0005: its digits shown, not bold
    tiny = {"mean": 3.4e-7, "low": 1.1e-7, "high": 9.1e-7, "significant": True}
    assert difference_cell(tiny) == "+0.00000034 [+0.00000011, +0.00000091]"
    assert difference_cell({"mean": 0.00049, "low": 0.0002, "high": 0.0008, "significant": True}) == (
        "+0.00049 [+0.00020, +0.00080]"
    )
    # from 0.0005 on, a significant difference is bold
    assert difference_cell({"mean": 0.0006, "low": 0.0002, "high": 0.001, "significant": True}) == (
        "**+0.00060 [+0.00020, +0.00100]**"
    )
    assert difference_cell({"mean": 0.02, "low": 0.01, "high": 0.03, "significant": True}) == (
        "**+0.020 [+0.010, +0.030]**"
    )
    assert difference_cell({"mean": 0.0, "low": 0.0, "high": 0.0, "significant": False}) == (
        "+0.000 [+0.000, +0.000]"
    )


def test_mcnemar_exact_hand_values():
    # 8 discordant clips, all for the first classifier: p = 2 * 0.5^8 = 0.0078125
    first = [True] * 8 + [True] * 30 + [False] * 2
    second = [False] * 8 + [True] * 30 + [False] * 2
    result = mcnemar_exact(first, second)
    assert (result["first_only"], result["second_only"], result["n"]) == (8, 0, 40)
    assert result["p_value"] == pytest.approx(2 * 0.5**8)
    assert result["accuracy_difference"] == pytest.approx(8 / 40)
    # 3 against 2 discordant: far from significant (p = 1 for a 3-2 split of 5)
    balanced = mcnemar_exact([1, 1, 1, 0, 0], [0, 0, 0, 1, 1])
    assert balanced["p_value"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same non-empty clips"):
        mcnemar_exact([1], [1, 0])
