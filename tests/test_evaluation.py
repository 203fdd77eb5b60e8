"""The library evaluator (focalnet_lobes.interpretation.evaluation): per-clip results, pairing, overlap test."""

import math

import pytest
import soundfile
import torch

from focalnet_lobes.interpretation.evaluation import (
    InterpretationError,
    evaluate_split,
    load_per_clip,
    overlap_test,
    paired_comparison,
    write_per_clip,
)
from focalnet_lobes.data.features import SpectrogramFrontend
from focalnet_lobes.interpretation.interpret import EnergyInterpreter, RandomInterpreter


def tiny_model(num_classes=3, bins=8):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d((1, bins)), torch.nn.Flatten(), torch.nn.Linear(bins, num_classes)
    ).eval()


def test_per_clip_results_round_trip_and_pair_by_clip_id(tmp_path):
    frontend = SpectrogramFrontend(n_mels=8)
    model = tiny_model()
    torch.manual_seed(1)
    wavs = torch.randn(6, 1600)
    batches = [(["c", "a", "b"], wavs[:3], torch.tensor([0, 1, 2])),
               (["f", "e", "d"], wavs[3:], torch.tensor([2, 1, 0]))]
    energy = evaluate_split(model, frontend, EnergyInterpreter(), batches, [0.5, 0.9])
    random = evaluate_split(model, frontend, RandomInterpreter(seed=0), batches, [0.5, 0.9])
    assert energy["per_clip"]["ids"] == ["c", "a", "b", "f", "e", "d"]
    assert energy["per_clip"]["predicted"] == random["per_clip"]["predicted"]
    for key in ("0.5", "0.9"):
        column = energy["per_clip"]["quantiles"][key]["fid_i"]
        assert len(column) == 6
        assert energy["quantiles"][key]["fid_i"] == pytest.approx(sum(column) / 6)
    write_per_clip(tmp_path / "energy", energy["per_clip"])
    loaded = load_per_clip(tmp_path / "energy")
    assert loaded == energy["per_clip"]
    lines = (tmp_path / "energy" / "per_clip.csv").read_text().splitlines()
    assert len(lines) == 1 + 6 * 2 and lines[0].startswith("id,label,predicted,correct,quantile,fid_i")
    # pairing follows clip ids, not positions: reverse one side, same differences
    reversed_random = {
        "ids": random["per_clip"]["ids"][::-1],
        "labels": random["per_clip"]["labels"][::-1],
        "predicted": random["per_clip"]["predicted"][::-1],
        "quantiles": {
            q: {k: v[::-1] for k, v in row.items()}
            for q, row in random["per_clip"]["quantiles"].items()
        },
    }
    straight = paired_comparison(energy["per_clip"], random["per_clip"], n_resamples=199)
    shuffled = paired_comparison(energy["per_clip"], reversed_random, n_resamples=199)
    assert straight["clips"] == shuffled["clips"] == 6
    for key in ("0.5", "0.9"):
        assert straight["quantiles"][key]["ad"]["mean"] == pytest.approx(
            shuffled["quantiles"][key]["ad"]["mean"]
        )
        expected = sum(energy["per_clip"]["quantiles"][key]["ad"]) - sum(
            random["per_clip"]["quantiles"][key]["ad"]
        )
        assert straight["quantiles"][key]["ad"]["mean"] == pytest.approx(expected / 6)
    # mask areas are equal by construction: a degenerate, non-significant difference
    area = straight["quantiles"]["0.5"]["mask_area"]
    assert abs(area["mean"]) < 0.02
    assert straight["accuracy"]["first_only"] == straight["accuracy"]["second_only"] == 0
    with pytest.raises(InterpretationError, match="no clip in common"):
        paired_comparison(energy["per_clip"], dict(energy["per_clip"], ids=list("uvwxyz")))
    with pytest.raises(InterpretationError, match="no per_clip.json"):
        load_per_clip(tmp_path / "missing")


def write_tone(path, hertz, amplitude, samples=16000):
    tone = amplitude * torch.sin(2 * math.pi * hertz * torch.arange(samples) / 16000)
    soundfile.write(path, tone.numpy(), 16000)
    return str(path)


def test_equal_rms_overlap_removes_the_loudness_advantage(tmp_path):
    """A loud low tone and a quiet high tone: at 0.8 / 0.2 the loud one dominates the
    mixture energy (share 0.8^2 / (0.8^2 + 0.2^2) ~ 0.94 once both are peak-normalised);
    at equal RMS and 0.5 / 0.5 each has half of it, and the energy mask no longer
    picks s1 because it is louder."""
    entries = [
        ("low", {"wav": write_tone(tmp_path / "low.wav", 300, 1.0), "label": 0}),
        ("high", {"wav": write_tone(tmp_path / "high.wav", 5000, 0.1), "label": 1}),
    ]
    frontend = SpectrogramFrontend(n_mels=32)
    model = tiny_model(num_classes=2, bins=32)
    loud = overlap_test(model, frontend, EnergyInterpreter(), entries, 16000, 16000, num_pairs=2)
    equal = overlap_test(
        model, frontend, EnergyInterpreter(), entries, 16000, 16000, num_pairs=2,
        weights=(0.5, 0.5), equal_rms=True,
    )
    assert equal["summary"]["equal_rms"] is True and loud["summary"]["equal_rms"] is False
    for pair in loud["pairs"]:
        assert pair["s1_share_mixture"] == pytest.approx(0.64 / 0.68, abs=0.01)
    for pair in equal["pairs"]:
        assert pair["s1_share_mixture"] == pytest.approx(0.5, abs=0.01)
    assert loud["summary"]["keeps_s1_rate"] == 1.0
    assert "keeps_s1_ci" in loud["summary"] and "keeps_predicted_rate" in loud["summary"]


def test_structure_on_cells_compares_maps_on_one_grid():
    """A map that is constant on each 2 x 2 cell has the same sparsity on cells as its
    cell values; a per-bin random map averaged over cells becomes nearly flat."""

    class FixedMaps(EnergyInterpreter):
        def __init__(self, maps):
            super().__init__()
            self.maps = maps

        def compute_maps(self, classifier, features):
            return classifier(features), self.maps

    cells = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    maps = cells.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]  # (1, 1, 4, 4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    features = torch.rand(1, 1, 4, 4)
    result = evaluate_split(
        model, None, FixedMaps(maps), [features], [0.5], structure_on="cells",
        structure_cell=(2, 2), n_resamples=0,
    )
    # Gini of (0, 1, 2, 3): 1 - 2 * (0 * 3.5 + 1 * 2.5 + 2 * 1.5 + 3 * 0.5) / (6 * 4) = 5 / 12
    assert result["quantiles"]["0.5"]["sparsity"] == pytest.approx(5 / 12)
    on_bins = evaluate_split(model, None, FixedMaps(maps), [features], [0.5], n_resamples=0)
    assert on_bins["quantiles"]["0.5"]["sparsity"] == pytest.approx(5 / 12)  # same, repeated
    random_maps = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 2)).eval()
    features = torch.rand(1, 1, 64, 64)
    per_bin = evaluate_split(model, None, FixedMaps(random_maps), [features], [0.5], n_resamples=0)
    per_cell = evaluate_split(
        model, None, FixedMaps(random_maps), [features], [0.5], structure_on="cells",
        n_resamples=0,
    )
    assert per_bin["quantiles"]["0.5"]["sparsity"] == pytest.approx(1 / 3, abs=0.01)
    # means of 256 uniforms: Gini ~ E|X - Y| / (2 mean) = (2 sd / sqrt(pi)) / 1 ~ 0.020
    assert per_cell["quantiles"]["0.5"]["sparsity"] == pytest.approx(0.020, abs=0.008)
    with pytest.raises(InterpretationError, match="structure_on"):
        evaluate_split(model, None, FixedMaps(random_maps), [features], [0.5], structure_on="x")


STAND_IN_INTERPRET = '''
import json, sys
from pathlib import Path
args = sys.argv[2:]
value = lambda key: args[args.index(key) + 1] if key in args else None
out = Path(value("--output_folder") or Path(value("--classifier_folder")) / "interpretation" / "energy")
out.mkdir(parents=True, exist_ok=True)
with open(Path(__file__).with_name("runs.txt"), "a") as log:
    log.write(" ".join(args) + "\\n")
max_clips = value("--max_clips")
(out / "hyperparams.yaml").write_text(
    "method: energy\\nsplit: %s\\nmax_clips: %s\\ninterpreter: !new:x.EnergyInterpreter\\n"
    % (value("--split") or "test", max_clips or ""))
(out / "metrics.json").write_text(json.dumps({
    "method": "energy", "interpreter": "EnergyInterpreter", "split": value("--split") or "test",
    "accuracy": 0.5, "quantiles": {}}))
'''


def test_compare_reuses_a_result_only_when_it_was_made_with_the_settings_asked_for(tmp_path):
    """compare.py's ensure_interpretation: --override max_clips=8 does not reuse a full run."""
    from focalnet_lobes.interpretation.comparison import ensure_interpretation

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "interpret.py").write_text(STAND_IN_INTERPRET)
    runs = lambda: (recipes / "runs.txt").read_text().splitlines()  # noqa: E731
    classifier = tmp_path / "run"
    first = ensure_interpretation("energy", classifier, recipes_dir=recipes)
    ensure_interpretation("energy", classifier, recipes_dir=recipes)
    assert len(runs()) == 1  # the same settings: reused
    again = ensure_interpretation("energy", classifier, overrides={"max_clips": "8"}, recipes_dir=recipes)
    assert again == first and len(runs()) == 2 and "--max_clips 8" in runs()[-1]
    ensure_interpretation("energy", classifier, overrides={"max_clips": "8"}, recipes_dir=recipes)
    assert len(runs()) == 2  # now it was made with max_clips 8
    ensure_interpretation("energy", classifier, overrides={"split": "valid"}, recipes_dir=recipes)
    assert len(runs()) == 3 and "--split valid" in runs()[-1]
    ensure_interpretation("energy", classifier, recipes_dir=recipes)
    assert len(runs()) == 4  # the YAML's own split (test) and all clips again
