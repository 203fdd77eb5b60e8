"""Confidence intervals and paired tests over clips, with SciPy.

Every figure of an interpretation benchmark is a mean over clips; these functions
give it a 95% confidence interval (bootstrap over clips,
:func:`scipy.stats.bootstrap`), compare two methods evaluated on the same clips
(bootstrap of the per-clip difference: the pairing removes the clip-to-clip
variance both methods share) and two classifiers on the same clips (exact
McNemar test: a two-sided binomial test on the discordant pairs,
:func:`scipy.stats.binomtest`).

Defaults: 95% confidence, ``n_resamples = 9999``, bias-corrected and accelerated
(BCa) intervals (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 14), falling back to the percentile interval when BCa is undefined; a fixed
seed (0), so that a rerun gives the same interval. A constant sample (every clip
the same value, e.g. a metric that saturates) has the degenerate interval
[value, value] instead of an error.

Authors
 * focalnet-audio contributors
"""

import math
import warnings

import numpy as np

#: Defaults of every interval: confidence level, bootstrap resamples, method, seed.
CONFIDENCE = 0.95
N_RESAMPLES = 9999
METHOD = "BCa"
SEED = 0
#: Per-clip differences within round-off count as ties (``numpy.isclose``): relative
#: and absolute tolerance of :func:`paired_difference`. The relative one covers float32
#: storage and the 6 significant digits of the cross-validation's per-clip archives
#: (a relative error up to 5e-6), so that an archive and its unrounded run agree; on a
#: metric in percent (AI, AD, AG: up to 100) it ties differences up to 0.001 points.
ROUNDOFF_RTOL = 1e-5
ROUNDOFF_ATOL = 1e-8


def _as_sample(values, name="values"):
    sample = np.asarray([float(v) for v in values], dtype=np.float64)
    if sample.ndim != 1 or sample.size == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers")
    if not np.all(np.isfinite(sample)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return sample


def bootstrap_ci(
    values, confidence=CONFIDENCE, n_resamples=N_RESAMPLES, method=METHOD, seed=SEED
):
    """Mean of per-clip values with its bootstrap confidence interval over clips.

    Arguments
    ---------
    values : sequence of float
        One value per clip (finite).
    confidence : float
        Confidence level in (0, 1).
    n_resamples : int
        Bootstrap resamples.
    method : str
        ``"BCa"``, ``"percentile"`` or ``"basic"`` (:func:`scipy.stats.bootstrap`);
        BCa falls back to percentile when it is undefined (NaN).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``mean``, ``low``, ``high`` (floats), ``n`` (clips). A constant sample or a
        single clip gives ``low == high == mean``.

    Raises
    ------
    ValueError
        Empty sample or non-finite values.

    Example
    -------
    >>> ci = bootstrap_ci([0.0] * 50 + [1.0] * 50, method="percentile")
    >>> ci["mean"], round(ci["low"], 1), round(ci["high"], 1)
    (0.5, 0.4, 0.6)
    >>> bootstrap_ci([0.3, 0.3, 0.3])
    {'mean': 0.3, 'low': 0.3, 'high': 0.3, 'n': 3}
    """
    from scipy import stats

    sample = _as_sample(values)
    mean = float(sample.mean())
    if sample.size == 1 or np.all(sample == sample[0]):
        return {"mean": mean, "low": mean, "high": mean, "n": int(sample.size)}

    def interval(how):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (sample,),
                np.mean,
                confidence_level=float(confidence),
                n_resamples=int(n_resamples),
                method=how,
                random_state=np.random.default_rng(int(seed)),
                vectorized=True,
            )
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    low, high = interval(method)
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = interval("percentile")
    return {"mean": mean, "low": low, "high": high, "n": int(sample.size)}


def paired_difference(
    first, second, confidence=CONFIDENCE, n_resamples=N_RESAMPLES, method=METHOD, seed=SEED
):
    """Mean of ``first - second`` over the same clips, its bootstrap CI and significance.

    Arguments
    ---------
    first, second : sequence of float
        Per-clip values of two methods on the same clips, in the same order.
    confidence, n_resamples, method, seed :
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``mean``, ``low``, ``high``, ``n`` of the per-clip differences and
        ``significant``: True when the interval excludes 0. A clip whose two values
        agree within round-off (:func:`numpy.isclose` with ``ROUNDOFF_RTOL``,
        ``ROUNDOFF_ATOL``: e.g. a mask area stored in float32 by one run and float64
        by the other, or rounded to 6 significant digits in an archive) counts as a
        difference of exactly 0, so that round-off alone never makes a difference
        "significant".

    Raises
    ------
    ValueError
        Samples of different lengths (not the same clips), empty or non-finite.

    Example
    -------
    >>> better = paired_difference([1.0, 0.9, 0.8, 1.0] * 10, [0.5, 0.45, 0.4, 0.5] * 10)
    >>> round(better["mean"], 3), better["significant"]
    (0.463, True)
    >>> paired_difference([1.0, 0.0] * 20, [0.0, 1.0] * 20)["significant"]
    False
    >>> paired_difference([0.05 + 2e-9] * 40, [0.05] * 40)["significant"]  # round-off
    False
    """
    first = _as_sample(first, "first")
    second = _as_sample(second, "second")
    if first.shape != second.shape:
        raise ValueError(
            f"paired samples must cover the same clips: {first.size} against {second.size} values"
        )
    difference = np.where(
        np.isclose(first, second, rtol=ROUNDOFF_RTOL, atol=ROUNDOFF_ATOL), 0.0, first - second
    )
    result = bootstrap_ci(difference, confidence, n_resamples, method, seed)
    result["significant"] = bool(result["low"] > 0 or result["high"] < 0)
    return result


def mcnemar_exact(correct_first, correct_second):
    """Exact McNemar test of two classifiers on the same clips.

    Only the discordant clips count: b (first right, second wrong) and c (first
    wrong, second right); under the null hypothesis of equal accuracy b follows
    Binomial(b + c, 1/2) (McNemar, *Psychometrika* 12, 1947; exact form: the
    two-sided :func:`scipy.stats.binomtest`). No discordant clip gives p = 1.

    Arguments
    ---------
    correct_first, correct_second : sequence of bool
        Whether each classifier is right on each clip (same clips, same order).

    Returns
    -------
    dict
        ``n``, ``first_only`` (b), ``second_only`` (c), ``p_value``,
        ``accuracy_difference`` ((b - c) / n).

    Example
    -------
    >>> result = mcnemar_exact([1] * 10 + [0] * 0, [0] * 10)
    >>> result["first_only"], result["second_only"], round(result["p_value"], 4)
    (10, 0, 0.002)
    >>> mcnemar_exact([1, 0], [1, 0])["p_value"]
    1.0
    """
    from scipy import stats

    first = np.asarray([bool(v) for v in correct_first])
    second = np.asarray([bool(v) for v in correct_second])
    if first.shape != second.shape or first.size == 0:
        raise ValueError(
            f"McNemar needs the same non-empty clips: {first.size} against {second.size}"
        )
    only_first = int(np.sum(first & ~second))
    only_second = int(np.sum(~first & second))
    discordant = only_first + only_second
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(only_first, discordant).pvalue)
    return {
        "n": int(first.size),
        "first_only": only_first,
        "second_only": only_second,
        "p_value": min(1.0, p_value),
        "accuracy_difference": (only_first - only_second) / first.size,
    }


def format_ci(ci, digits=3):
    """``"mean [low, high]"`` of a :func:`bootstrap_ci` / :func:`paired_difference` dict.

    Example
    -------
    >>> format_ci({"mean": 0.5, "low": 0.4, "high": 0.61})
    '0.500 [0.400, 0.610]'
    """
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"
