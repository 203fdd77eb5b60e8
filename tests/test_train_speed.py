"""Training speed-ups that must not change what is computed: the feature cache and
the channels_last stem; and benchmarks/train_speed.py that measures them."""

import json

import pytest
import torch

from conftest import load_benchmark
from focalnet_lobes.data.augment import RandomGain
from focalnet_lobes.data.features import FeatureCache, SpectrogramFrontend
from focalnet_lobes.models.stems import ConvStem
from focalnet_lobes.training.plan import batch_features


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


@pytest.mark.parametrize("height, width", [(431, 64), (15, 16), (7, 9), (1, 1)])
def test_strided_stem_blocks_keep_the_output_grid(height, width):
    vgg = ConvStem(1, channels=(4, 8, 8), embed_dim=8)
    x = torch.randn(2, 1, height, width)
    for strided in (1, 2, 3):
        stem = ConvStem(1, channels=(4, 8, 8), embed_dim=8, strided_blocks=strided)
        kinds = [type(block).__name__ for block in stem.blocks]
        assert kinds == ["StridedConvBlock"] * strided + ["ConvBlock"] * (3 - strided)
        assert stem(x).shape == vgg(x).shape == (2, 8, *vgg.output_size(height, width))
    # one convolution instead of two: fewer parameters, no full-resolution activation
    strided = ConvStem(1, channels=(4, 8, 8), embed_dim=8, strided_blocks=1)
    assert sum(p.numel() for p in strided.parameters()) < sum(p.numel() for p in vgg.parameters())
    assert strided.blocks[0].conv1.stride == (2, 2)


@pytest.mark.parametrize("bad", [-1, 4, 1.0, True, "1", None])
def test_strided_blocks_must_count_stem_blocks(bad):
    with pytest.raises(ValueError, match=r"\(YAML: stem_strided_blocks\) must be an int in \[0, 3\]"):
        ConvStem(1, channels=(4, 8, 8), embed_dim=8, strided_blocks=bad)


def test_recipes_pass_the_stem_option_to_both_models():
    module = load_benchmark("train_speed")
    for config in ("focalnet_cpu", "vit_cpu"):
        for strided in (0, 1):
            hparams = module.load_recipe(config, overrides={"stem_strided_blocks": strided})
            stems = [m for m in hparams["model"].modules() if isinstance(m, ConvStem)]
            assert len(stems) == 1 and stems[0].strided_blocks == strided


def test_an_unwritable_output_ends_with_one_line_after_the_table(tmp_path, capsys):
    module = load_benchmark("train_speed")
    (tmp_path / "file").write_text("")
    output = tmp_path / "file" / "speed.json"
    with pytest.raises(SystemExit) as raised:
        module.main(["--configs", "focalnet_cpu", "--threads", "1", "--batch_size", "2", "--train_clips", "4",
                     "--valid_clips", "2", "--min_run_time", "0.01", "--epochs", "10", "--output", str(output)])
    assert raised.value.code == 2
    printed = capsys.readouterr()
    assert f"| focalnet_cpu | {module.TODAY} |" in printed.out
    assert printed.err == f"train_speed.py: error: {output}: cannot write the report (a folder above it is a file)\n"


def test_train_speed_benchmark_runs_and_reports_equal_functions(tmp_path, capsys):
    module = load_benchmark("train_speed")
    output = tmp_path / "speed.json"
    rows = module.main([
        "--configs", "focalnet_cpu", "--threads", "1", "--batch_size", "2",
        "--train_clips", "4", "--valid_clips", "2", "--min_run_time", "0.01",
        "--reference_epochs", "80", "--epochs", "40", "--candidate", "1", "20",
        "--output", str(output),
    ])
    names = [*module.VARIANTS, f"{module.VARIANTS[-1]}+terms", module.TODAY,
             f"{module.TODAY}, batch 1"]
    assert [row["variant"] for row in rows] == names
    assert json.loads(output.read_text())["rows"] == rows
    rows = [rows[0], rows[1], rows[2], rows[4], rows[5], rows[3]]  # the +terms row last
    assert rows[0]["speedup"] == 1.0 and rows[0]["run_speedup"] == 1.0
    assert all(row["epoch_s"] > 0 for row in rows)
    assert [row["epochs"] for row in rows] == [80, 40, 40, 40, 20, 40]
    assert [row["batch_size"] for row in rows] == [2, 2, 2, 2, 1, 2]
    # the previous default: the reference model with today's terms in the same 12 epochs
    assert rows[5]["term_epochs"] == 12 and rows[5]["model_changes"] == {}
    for row in rows[:3]:  # a whole run: epochs x epoch, against the 80-epoch reference
        assert row["term_epochs"] == 0 and row["term_step_s"] is None
        assert row["run_s"] == pytest.approx(row["epochs"] * row["epoch_s"])
        assert row["run_speedup"] == pytest.approx(2 * row["speedup"]) or row is rows[0]
    # today's recipe runs the faithfulness terms in its last 30% of epochs, with their
    # own (dearer) step: 28 plain epochs + 12 with the terms of 40; the candidate 14 + 6
    today, candidate = rows[3], rows[4]
    assert (today["term_epochs"], candidate["term_epochs"]) == (12, 6)
    assert today["term_step_s"] > 0 and today["term_epoch_s"] > 0
    assert today["run_s"] == pytest.approx(28 * today["epoch_s"] + 12 * today["term_epoch_s"])
    assert today["vs_today"] == 1.0
    assert candidate["vs_today"] == pytest.approx(today["run_s"] / candidate["run_s"])
    assert candidate["run_s"] == pytest.approx(
        14 * candidate["epoch_s"] + 6 * candidate["term_epoch_s"]
    )
    assert rows[0]["max_logit_difference"] < module.LOGIT_TOLERANCE
    for row in rows:  # each step time has its spread over the timer's blocks
        timed = ["train_step", "eval_step"] + (["term_step"] if row["term_step_s"] else [])
        assert sorted(row["blocks"]) == sorted(timed) and min(row["blocks"].values()) >= 1
        for name in timed:
            assert 0 <= row[f"{name}_iqr_s"] < 10 * row[f"{name}_s"]
        if not row["term_step_s"]:
            assert row["term_step_iqr_s"] is None
    out = capsys.readouterr().out
    assert "| focalnet_cpu | channels_last+feature_cache | 2 | " in out
    first = rows[0]["blocks"]["train_step"]
    spread = f"IQR {1000 * rows[0]['train_step_iqr_s']:.0f}" if first > 1 else "1 block"
    assert f"| {1000 * rows[0]['train_step_s']:.0f} ({spread}) |" in out


def test_train_speed_reference_undoes_todays_model_options():
    """The reference row is built with the VGG stem and fused attention whatever the YAML says."""
    module = load_benchmark("train_speed")
    today = module.load_recipe("vit_cpu", overrides={"stem_strided_blocks": 1, "fused_attention": False})
    assert module.model_changes(today) == {"stem_strided_blocks": 1, "fused_attention": False}
    # today's vit_cpu.yaml differs from the reference in both; undone, nothing differs
    changes = module.model_changes(module.load_recipe("vit_cpu"))
    assert changes == {"stem_strided_blocks": 1, "fused_attention": False}
    reference = module.load_recipe(
        "vit_cpu", overrides={key: module.REFERENCE_MODEL[key] for key in changes}
    )
    assert module.model_changes(reference) == {}
    assert module.term_epochs(today, 80) == (80, 0)  # the ViT has no faithfulness terms
    focalnet = module.load_recipe("focalnet_cpu", overrides={"number_of_epochs": 10})
    assert module.term_epochs(focalnet, 10) == (7, 3)
    plain = module.load_recipe("focalnet_cpu", overrides={"masked_in_weight": 0.0, "masked_out_weight": 0.0})
    assert module.term_epochs(plain, 40) == (40, 0)


def test_train_speed_times_levers_as_overrides_of_today(tmp_path, monkeypatch, capsys):
    """``--lever NAME KEY=VALUE``: today's recipe with YAML overrides, side by side; a weight
    average is updated after every timed training step."""
    from focalnet_lobes.training.averaging import WeightAverage

    module = load_benchmark("train_speed")
    updates = []
    original = WeightAverage.update
    monkeypatch.setattr(WeightAverage, "update",
                        lambda self, model, epoch: updates.append(self.decay) or original(self, model, epoch))
    rows = module.main([
        "--configs", "focalnet_cpu", "--threads", "1", "--batch_size", "2",
        "--train_clips", "4", "--valid_clips", "2", "--min_run_time", "0.01", "--epochs", "10",
        "--lever", "W", "weight_average_decay=0.9",
        "--lever", "A", "num_time_masks=[2, 2]", "num_freq_masks=[2, 2]",
        "--output", str(tmp_path / "speed.json"),
    ])
    import shlex  # the recorded command runs again as written: quoted overrides kept
    command = shlex.split(json.loads((tmp_path / "speed.json").read_text())["command"])
    assert command[command.index("A") + 1:command.index("A") + 3] == ["num_time_masks=[2, 2]", "num_freq_masks=[2, 2]"]
    names = [row["variant"] for row in rows]
    assert names[-3:] == [module.TODAY, f"{module.TODAY}+W", f"{module.TODAY}+A"]
    assert updates and set(updates) == {0.9}  # only the W row averages
    today = rows[-3]
    for row in rows[-2:]:
        assert row["epochs"] == 10 and row["term_epochs"] == today["term_epochs"] == 3
        assert row["vs_today"] == pytest.approx(today["run_s"] / row["run_s"])
    assert f"| focalnet_cpu | {module.TODAY}+A |" in capsys.readouterr().out
    assert rows[-1]["lever_overrides"] == {"num_time_masks": [2, 2], "num_freq_masks": [2, 2]}
    assert today["lever_overrides"] is None
    # a lever that changes the front end is timed with its own front end
    from focalnet_lobes.data.features import SpectrogramFrontend

    compressions = []
    original_compress = SpectrogramFrontend.compress
    monkeypatch.setattr(SpectrogramFrontend, "compress",
                        lambda self, projected: compressions.append(self.compression)
                        or original_compress(self, projected))
    rows = module.main([
        "--configs", "focalnet_cpu", "--threads", "1", "--batch_size", "2",
        "--train_clips", "4", "--valid_clips", "2", "--min_run_time", "0.01", "--epochs", "10",
        "--lever", "P", "compression=pcen", "--output", str(tmp_path / "speed_pcen.json"),
    ])
    assert rows[-1]["variant"] == f"{module.TODAY}+P" and "pcen" in compressions
    for words, message in (
        (["W", "weight_average_decay"], "--lever W: expected KEY=VALUE, got 'weight_average_decay'"),
        (["L", "number_of_epochs=80"], "--lever L: number_of_epochs is set by --epochs"),
        (["T", "weight_avrage_decay=0.9"], "--lever T: "),
        (["D", "weight_average_decay=2"], "weight_average_decay must be in [0, 1)"),
        (["W", "weight_average_decay=0.9", "--lever", "W", "weight_average_decay=0.8"],
         "--lever names must differ, got ['W', 'W']"),
    ):
        with pytest.raises(SystemExit):
            module.main(["--configs", "focalnet_cpu", "--lever", *words])
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error
