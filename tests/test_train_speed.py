"""Training speed-ups that must not change what is computed: the feature cache and
the channels_last stem; and benchmarks/train_speed.py that measures them."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from focalnet_lobes.data.augment import RandomGain
from focalnet_lobes.data.features import FeatureCache, SpectrogramFrontend
from focalnet_lobes.models.stems import ConvStem
from focalnet_lobes.training.plan import batch_features

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def frontend():
    return SpectrogramFrontend(n_mels=32)


def test_cache_equals_the_frontend_with_and_without_gains(frontend):
    cache = FeatureCache(frontend, max_items=10)
    wavs = 0.1 * torch.randn(3, 8000)
    ids = ["a", "b", "c"]
    torch.testing.assert_close(cache(ids, wavs), frontend(wavs))
    gains = torch.tensor([0.5, 1.0, 2.0])
    torch.testing.assert_close(
        cache(ids, wavs, gains), frontend(wavs * gains[:, None]), atol=1e-5, rtol=1e-5
    )
    # A second call reads the cache: the same ids with other waveforms give the
    # cached clips' features (ids name clips; a clip does not change between epochs).
    torch.testing.assert_close(cache(ids, torch.zeros_like(wavs)), frontend(wavs))


def test_cache_counts_hits_and_computes_only_misses(frontend, monkeypatch):
    cache = FeatureCache(frontend, max_items=10)
    wavs = 0.1 * torch.randn(4, 8000)
    rows = []
    original = frontend.spectrum
    monkeypatch.setattr(frontend, "spectrum", lambda w: rows.append(w.shape[0]) or original(w))
    cache(["a", "b"], wavs[:2])
    cache(["a", "b", "c", "d"], wavs)  # only c and d are new
    cache(["d", "a"], wavs[[3, 0]])
    assert rows == [2, 2]
    assert len(cache) == 4


def test_cache_is_bounded_and_drops_the_least_recently_used(frontend):
    cache = FeatureCache(frontend, max_items=2)
    wavs = 0.1 * torch.randn(3, 4000)
    cache(["a"], wavs[:1])
    cache(["b"], wavs[1:2])
    cache(["a"], wavs[:1])  # a used last: b is the oldest
    cache(["c"], wavs[2:3])
    assert len(cache) == 2
    assert set(cache._entries) == {("a", 4000), ("c", 4000)}


def test_cache_keys_include_the_padded_length(frontend):
    cache = FeatureCache(frontend, max_items=10)
    clip = 0.1 * torch.randn(1, 4000)
    padded = torch.nn.functional.pad(clip, (0, 2000))
    short = cache(["a"], clip)
    long = cache(["a"], padded)
    assert short.shape[2] < long.shape[2]
    torch.testing.assert_close(long, frontend(padded))


def test_cache_disabled_and_bad_arguments(frontend):
    cache = FeatureCache(frontend, max_items=0)
    wavs = 0.1 * torch.randn(2, 4000)
    torch.testing.assert_close(cache(["a", "b"], wavs), frontend(wavs))
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_items"):
        FeatureCache(frontend, max_items=-1)
    with pytest.raises(ValueError, match="1 ids for 2 waveforms"):
        FeatureCache(frontend)(["a"], wavs)


def test_batch_features_draws_the_same_gains_as_the_augmentation(frontend):
    wavs = 0.1 * torch.randn(4, 8000)
    ids = list("abcd")
    torch.manual_seed(3)
    direct = batch_features(frontend, ids, wavs, None, RandomGain(-6.0, 6.0), None)
    torch.manual_seed(3)
    cached = batch_features(frontend, ids, wavs, None, RandomGain(-6.0, 6.0), FeatureCache(frontend))
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-5)
    # Not the unaugmented features: the gain was applied.
    assert not torch.allclose(cached, frontend(wavs), atol=1e-3)


def test_batch_features_bypasses_the_cache_for_other_augmentations(frontend):
    calls = []

    class Reverse(torch.nn.Module):
        def forward(self, wavs, lengths):
            calls.append(lengths)
            return wavs.flip(-1), lengths

    cache = FeatureCache(frontend)
    wavs = 0.1 * torch.randn(2, 8000)
    lens = torch.ones(2)
    features = batch_features(frontend, ["a", "b"], wavs, lens, Reverse(), cache)
    torch.testing.assert_close(features, frontend(wavs.flip(-1)))
    assert len(calls) == 1 and len(cache) == 0
    # RandomGain in eval mode is the identity: cached, no gain.
    evaluated = batch_features(frontend, ["a", "b"], wavs, lens, RandomGain().eval(), cache)
    torch.testing.assert_close(evaluated, frontend(wavs))


def test_channels_last_stem_computes_the_same_function():
    torch.manual_seed(0)
    fast = ConvStem(1, channels=(8, 16), embed_dim=24)
    slow = ConvStem(1, channels=(8, 16), embed_dim=24, channels_last=False)
    slow.load_state_dict(fast.state_dict())
    assert fast.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert slow.blocks[0].conv1.weight.is_contiguous()
    x = torch.randn(2, 1, 50, 32)
    torch.testing.assert_close(fast.eval()(x), slow.eval()(x), atol=1e-5, rtol=1e-5)
    fast.train(), slow.train()
    torch.testing.assert_close(fast(x), slow(x), atol=1e-5, rtol=1e-5)
    # Loading a (default-layout) state dict keeps the layout.
    fast.load_state_dict({k: v.contiguous() for k, v in slow.state_dict().items()})
    assert fast.blocks[0].conv2.weight.is_contiguous(memory_format=torch.channels_last)


def test_train_speed_benchmark_runs_and_reports_equal_functions(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "train_speed_under_test", REPO / "benchmarks" / "train_speed.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "speed.json"
    rows = module.main([
        "--configs", "focalnet_cpu", "--threads", "1", "--batch_size", "2",
        "--train_clips", "4", "--valid_clips", "2", "--min_run_time", "0.01",
        "--reference_epochs", "80", "--epochs", "40", "--candidate", "1", "20",
        "--output", str(output),
    ])
    assert [row["variant"] for row in rows] == [*module.VARIANTS, f"{module.VARIANTS[-1]}, batch 1"]
    assert rows[0]["speedup"] == 1.0 and rows[0]["run_speedup"] == 1.0
    assert all(row["epoch_s"] > 0 for row in rows)
    assert [row["epochs"] for row in rows] == [80, 40, 40, 20]
    assert [row["batch_size"] for row in rows] == [2, 2, 2, 1]
    for row in rows[:3]:  # a whole run: epochs x epoch, against the 80-epoch reference
        assert row["run_s"] == pytest.approx(row["epochs"] * row["epoch_s"])
        assert row["run_speedup"] == pytest.approx(2 * row["speedup"]) or row is rows[0]
    # the candidate against today's recipe (the third row): its own run over today's
    assert rows[2]["vs_today"] == 1.0
    assert rows[3]["vs_today"] == pytest.approx(rows[2]["run_s"] / (20 * rows[3]["epoch_s"]))
    assert rows[0]["max_logit_difference"] < module.LOGIT_TOLERANCE
    record = json.loads(output.read_text())
    assert record["rows"] == rows
    assert "| focalnet_cpu | channels_last+feature_cache |" in capsys.readouterr().out
