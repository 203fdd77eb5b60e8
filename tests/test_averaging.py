"""The exponential moving average of the weights (lever W of session 14)."""

import numpy as np
import pytest
import torch

from focalnet_lobes.training.averaging import WeightAverage


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def train_steps(model, average, epochs, steps, lr=0.1):
    """Plain SGD steps on random data; the average updated after each, as the recipe does.

    Returns the model's parameters and buffers after every averaged step.
    """
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    averaged = []
    for epoch in range(1, epochs + 1):
        for _ in range(steps):
            loss = model(torch.randn(8, 3)).pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            average.update(model, epoch)
            if epoch > average.start_epoch:
                averaged.append([t.detach().clone() for t in list(model.parameters()) + list(model.buffers())])
    return averaged


def test_the_average_is_the_ema_of_the_steps_after_the_start_epoch():
    decay = 0.9
    model = small_model()
    average = WeightAverage(decay=decay, start_epoch=2)
    average.attach(model)
    snapshots = train_steps(model, average, epochs=4, steps=5)
    assert average.updates == len(snapshots) == 2 * 5  # epochs 3 and 4 only
    expected = [t.clone().float() for t in snapshots[0]]  # the first update copies
    for snapshot in snapshots[1:]:
        expected = [decay * e + (1 - decay) * s.float() for e, s in zip(expected, snapshot)]
    raw = [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())]
    assert average.apply_to(model)
    kept = list(model.parameters()) + list(model.buffers())
    for got, want, last in zip(kept, expected, raw):
        if got.is_floating_point():  # weights and BatchNorm running statistics
            torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-6)
        else:  # counts (num_batches_tracked) are the model's, not averaged and rounded down
            assert torch.equal(got, last) and int(got) == 4 * 5
    # averaging changed the weights that are kept: they are not the last step's
    assert any(not torch.equal(g, r) for g, r in zip(kept, raw) if g.is_floating_point())


def test_off_by_default_and_with_nothing_averaged_the_model_is_untouched():
    model = small_model()
    before = [t.clone() for t in model.state_dict().values()]
    off = WeightAverage()
    off.attach(model)
    assert not off.active and off.average is None and off.updates == 0
    off.update(model, epoch=5)
    assert not off.apply_to(model)
    late = WeightAverage(decay=0.99, start_epoch=10)
    late.attach(model)
    train_steps(model, late, epochs=2, steps=2)  # never after epoch 10
    trained = [t.clone() for t in model.state_dict().values()]
    assert late.updates == 0 and not late.apply_to(model)
    assert all(torch.equal(a, b) for a, b in zip(trained, model.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(before, trained))


def test_the_average_resumes_from_its_state_dict():
    """A checkpointed average continues where it was: the same result as without a break."""
    torch.manual_seed(1)
    model = small_model()
    steps = [[p + 0.1 * (i + 1) * torch.randn_like(p) if p.is_floating_point() else p + i
              for p in model.state_dict().values()] for i in range(6)]

    def set_weights(target, values):
        with torch.no_grad():
            for tensor, value in zip(target.state_dict().values(), values):
                tensor.copy_(value)

    straight = WeightAverage(decay=0.8)
    straight.attach(model)
    for values in steps:
        set_weights(model, values)
        straight.update(model, epoch=1)
    state = None
    for part in (steps[:3], steps[3:]):
        resumed = WeightAverage(decay=0.8)
        resumed.attach(model)
        if state is not None:
            resumed.load_state_dict(state)
        for values in part:
            set_weights(model, values)
            resumed.update(model, epoch=1)
        state = resumed.state_dict()
    assert resumed.updates == straight.updates == 6
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(state[key], value)


def test_feature_norm_update_count_is_copied_not_averaged():
    """GlobalFeatureNorm uses its count (running mean weights 1 / (count + 1), max_updates):
    the averaged model's count is the model's, so a continued run weighs new batches right."""
    from focalnet_lobes.models.classifier import GlobalFeatureNorm

    norm = GlobalFeatureNorm(num_bins=3, max_updates=5)
    average = WeightAverage(decay=0.9)
    average.attach(norm)
    for _ in range(20):
        norm(torch.randn(2, 1, 4, 3))
        average.update(norm, epoch=1)
    assert int(norm.num_updates) == 5
    assert average.apply_to(norm) and int(norm.num_updates) == 5


@pytest.mark.parametrize("decay, start, message", [
    (1.0, 0, r"weight_average_decay must be in \[0, 1\) or null, got 1.0"),
    (-0.1, 0, r"weight_average_decay must be in \[0, 1\)"),
    ("abc", 0, r"weight_average_decay must be in \[0, 1\) or null, got 'abc'"),
    (True, 0, r"weight_average_decay must be in \[0, 1\) or null, got True"),
    (0.9, -1, "weight_average_start_epoch must be a number >= 0, got -1"),
    (None, None, "weight_average_start_epoch must be a number >= 0, got None"),
])
def test_bad_settings_are_one_clear_error(decay, start, message):
    with pytest.raises(ValueError, match=message):
        WeightAverage(decay=decay, start_epoch=start)


def test_cpu_yamls_have_averaging_off_and_specaugment_stripes_as_keys(tmp_path):
    """Both CPU recipes keep the session-13 defaults; the stripe counts are overridable keys."""
    from hyperpyyaml import load_hyperpyyaml

    from focalnet_lobes.data.augment import SpecMasking

    from conftest import REPO

    for name in ("focalnet_cpu.yaml", "vit_cpu.yaml"):
        with open(REPO / "hparams" / name, encoding="utf-8") as fin:
            text = fin.read()
        defaults = load_hyperpyyaml(text, {"data_folder": str(tmp_path)})
        assert not defaults["weight_average"].active
        assert defaults["weight_average"].start_epoch == defaults["number_of_epochs"] * 0.5
        masking = next(m for m in defaults["feature_augment"] if isinstance(m, SpecMasking))
        assert (masking.time_drop.drop_count_low, masking.time_drop.drop_count_high) == (1, 1)
        assert (masking.freq_drop.drop_count_low, masking.freq_drop.drop_count_high) == (1, 1)
        assert (masking.time_drop.drop_length_low, masking.time_drop.drop_length_high) == (0, 40)
        assert (masking.freq_drop.drop_length_low, masking.freq_drop.drop_length_high) == (0, 8)
        lever = load_hyperpyyaml(text, {"data_folder": str(tmp_path), "num_time_masks": [2, 2],
                                        "num_freq_masks": [2, 2], "weight_average_decay": 0.995})
        masking = next(m for m in lever["feature_augment"] if isinstance(m, SpecMasking))
        assert (masking.time_drop.drop_count_low, masking.time_drop.drop_count_high) == (2, 2)
        assert (masking.freq_drop.drop_count_low, masking.freq_drop.drop_count_high) == (2, 2)
        assert lever["weight_average"].active and lever["weight_average"].decay == 0.995


@pytest.mark.parametrize("key, value, message", [
    ("num_time_masks", 2, r"num_time_masks must be \[low, high\] integers with 0 <= low <= high, got 2"),
    ("time_mask_width", [5, 5], r"time_mask_width must be \[low, high\] integers with 0 <= low < high \(high excluded\), got \[5, 5\]"),
    ("freq_mask_width", [8, 0], "freq_mask_width must be"),
    ("num_freq_masks", [2, 1], "num_freq_masks must be"),
    ("num_freq_masks", [1.0, 2], "num_freq_masks must be"),
])
def test_specaugment_keys_are_checked_with_their_name(tmp_path, key, value, message):
    """A bad stripe key stops the YAML's loading with one line naming the key (the
    recipes print it as `error: <file>: ...`), not at the first training step."""
    from focalnet_lobes.training.plan import TrainingPlanError, load_recipe_hparams

    from conftest import REPO

    with pytest.raises(TrainingPlanError, match=message):
        load_recipe_hparams(REPO / "hparams" / "focalnet_cpu.yaml",
                            {"data_folder": str(tmp_path), key: value})


def test_specaugment_takes_numpy_integers_and_zero_stripes():
    """NumPy integers are integers (as Python's), bools are not; zero stripes on both axes
    leave the features unchanged (the way to turn SpecAugment off: num_*_masks [0, 0]); the
    input tensor (a cached feature, say) is never changed in place."""
    from focalnet_lobes.data.augment import SpecMasking

    masking = SpecMasking([np.int64(0), np.int64(40)],
                          np.array([2, 2]), (0, 8), (0, 0)).train()
    assert type(masking.time_drop.drop_count_low) is int and masking.time_drop.drop_count_low == 2
    features = torch.rand(3, 1, 100, 64) + 1.0  # no zeros before masking
    before = features.clone()
    assert bool(masking(features).eq(0).any())
    assert torch.equal(features, before)  # masked a copy
    off = SpecMasking((0, 40), (0, 0), (0, 8), (0, 0)).train()
    assert torch.equal(off(features), before)
    for counts in ((np.True_, 2), (True, 2), np.array([1.0, 2.0]), np.array([[1, 2]]),
                   np.array(5), np.array([[1, 2], [3, 4]])):
        with pytest.raises(ValueError, match="num_time_masks must be") as error:
            SpecMasking((0, 40), counts, (0, 8), (1, 1))
        assert "\n" not in str(error.value)  # one line, a 2-D array's repr too


@pytest.mark.parametrize("epochs_done, start, updates, expected", [
    (1, 1, 0, None),  # done == start: nothing missed
    (1, 0, 0, "leaves out epoch 1 (weight_average_start_epoch, or number_of_epochs x "
              "weight_average_start_fraction: averaging after epoch 0)"),
    (3, 1, 0, "leaves out epochs 2-3 (weight_average_start_epoch, or number_of_epochs x "
              "weight_average_start_fraction: averaging after epoch 1)"),
    (3, 4 * 0.7, 0, "leaves out epoch 3 (weight_average_start_epoch, or number_of_epochs x "
                    "weight_average_start_fraction: averaging after epoch 2)"),  # a fraction's start
    (3, 0, 5, None),  # an average was recovered
    (4, 1, 0, "(after epoch 4, the last) holds no weight average and no epoch is left to average"),
])
def test_recovered_run_warns_of_the_epochs_its_new_average_misses(caplog, epochs_done, start,
                                                                    updates, expected):
    """recipes/train.py, after checkpoint recovery: a checkpoint without an averaged step,
    recovered past the average's start epoch, gets one warning naming what is missed."""
    import logging
    from types import SimpleNamespace

    from conftest import load_script

    recipe = load_script("recipes/train.py")
    average = WeightAverage(decay=0.5, start_epoch=start)
    average.attach(torch.nn.Linear(1, 1))
    for _ in range(updates):
        average.update(torch.nn.Linear(1, 1), epoch=start + 1)
    brain = SimpleNamespace(weight_average=average, hparams=SimpleNamespace(
        epoch_counter=SimpleNamespace(current=epochs_done), number_of_epochs=4))
    with caplog.at_level(logging.WARNING):
        recipe.ESC50Brain._warn_average_missing_epochs(brain)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and expected in warnings[0], warnings


def test_start_epoch_is_floored_as_the_faithfulness_terms_start():
    """90 x 0.7 = 62.99999...: both the average and the terms start after epoch 63."""
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    assert 90 * 0.7 < 63
    average = WeightAverage(decay=0.9, start_epoch=90 * 0.7)
    terms = MaskedInFidelityLoss(interpreter=None, cost=None, start_epoch=90 * 0.7)
    assert average.start_epoch == terms.start_epoch == 63
    assert WeightAverage(decay=0.9, start_epoch=20.5).start_epoch == 20
