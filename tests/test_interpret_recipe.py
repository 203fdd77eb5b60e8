"""The interpretation recipe and the comparison table, end to end on generated data.

One ``compare.py`` command interprets the shared 2-epoch FocalNet and ViT runs
(``trained_runs``) with ``interpret.py`` (FocalNet modulation maps, ViT attention,
and on both classifiers the energy, saliency, Grad-CAM and random controls) and
builds the table with CIs and paired differences; the tests check
every file it writes, the numbers in it against the training run and against
hand-computable values, and the errors on bad input.
"""

import csv
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import pytest
import soundfile
import torch

from conftest import REPO, run_recipe

pytestmark = pytest.mark.slow

QUANTILES = ["0.5", "0.6", "0.7", "0.8", "0.9", "0.95"]
METRICS = ["fid_i", "fa", "ff", "ai", "ad", "ag", "sparsity", "complexity"]
METHODS = ["focalnet", "vit", "random"]
CONTROLS = ["energy", "saliency", "gradcam", "random"]
#: Rows of the comparison, in order: by-design maps, then the controls of each classifier.
LABELS = ["focalnet", "vit"] + [
    f"{control} ({backbone})" for backbone in ("focalnet", "vit") for control in CONTROLS
]
NUM_EXAMPLES = 2
OVERLAP_PAIRS = 4
CLIP_SAMPLES = 16000  # the generated clips: 1 s at 16 kHz
TEST_CLIPS = 20
#: The small-data overrides of every interpretation the comparison runs.
OVERRIDES = {
    "num_examples": NUM_EXAMPLES, "overlap_pairs": OVERLAP_PAIRS, "latency_clips": 2,
    "latency_repeats": 1, "batch_size": 20,
}


@pytest.fixture(scope="module")
def comparison(trained_runs, tmp_path_factory):
    """Run the README's single comparison command on the FocalNet and ViT runs."""
    focalnet = trained_runs("focalnet_cpu.yaml")
    vit = trained_runs("vit_cpu.yaml")
    output = tmp_path_factory.mktemp("comparison")
    # fmt: off
    command = [
        sys.executable, str(REPO / "recipes" / "compare.py"),
        "--focalnet", str(focalnet), "--vit", str(vit),
        "--output_folder", str(output), "--split", "test", "--rerun", "--only_named",
    ]
    # fmt: on
    for key, value in OVERRIDES.items():
        command += ["--override", f"{key}={value}"]
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-4000:]
    folders = {
        "focalnet": focalnet / "interpretation" / "focalnet",
        "vit": vit / "interpretation" / "vit",
        "random": focalnet / "interpretation" / "random",
    }
    label_folders = {"focalnet": folders["focalnet"], "vit": folders["vit"]}
    for backbone, run in (("focalnet", focalnet), ("vit", vit)):
        for control in CONTROLS:
            label_folders[f"{control} ({backbone})"] = run / "interpretation" / control
    return {
        "output": output,
        "stdout": result.stdout,
        "folders": folders,
        "label_folders": label_folders,
        "runs": {"focalnet": focalnet, "vit": vit, "random": focalnet},
    }


def read_metrics(comparison, method):
    return json.loads((comparison["folders"][method] / "metrics.json").read_text())


@pytest.mark.parametrize("method", METHODS)
def test_metrics_json_has_every_quantile_and_metric_in_range(comparison, method):
    metrics = read_metrics(comparison, method)
    assert metrics["method"] == method
    assert metrics["split"] == "test"
    assert metrics["num_clips"] == TEST_CLIPS
    assert metrics["soft"] is False
    assert Path(metrics["classifier_folder"]) == comparison["runs"][method]
    assert metrics["backbone"] == ("vit" if method == "vit" else "focalnet")
    assert metrics["compression"] == "log1p"  # the front end's, recorded for the report
    assert sorted(metrics["quantiles"], key=float) == QUANTILES
    max_entropy = math.log(87 * 64)  # T x F of a 1 s clip with 64 mel bands
    for q, values in metrics["quantiles"].items():
        assert set(METRICS) <= set(values)
        assert all(math.isfinite(values[key]) for key in METRICS)
        assert values["clips"] == TEST_CLIPS
        assert 0.0 <= values["fid_i"] <= 1.0
        assert -1.0 <= values["fa"] <= 1.0 and -1.0 <= values["ff"] <= 1.0
        for key in ("ai", "ad", "ag"):
            assert 0.0 <= values[key] <= 100.0
        assert 0.0 <= values["sparsity"] < 1.0
        assert 0.0 <= values["complexity"] <= max_entropy + 1e-9
        # FA is the mean of p_full - p_in, FF of p_full - p_out.
        assert values["fa"] == pytest.approx(values["p_full"] - values["p_in"], abs=1e-9)
        assert values["ff"] == pytest.approx(values["p_full"] - values["p_out"], abs=1e-9)
        # A binary mask at quantile q keeps about 1 - q of the bins (ties are kept).
        assert values["mask_area"] >= 1.0 - float(q) - 0.01


def test_accuracy_is_the_training_runs_test_accuracy(comparison):
    for method in METHODS:
        summary = json.loads((comparison["runs"][method] / "test_results.json").read_text())
        assert read_metrics(comparison, method)["accuracy"] == pytest.approx(summary["accuracy"])


def test_random_baseline_numbers(comparison):
    """Uniform i.i.d. maps: the masks keep 1 - q of the bins, and the maps' Gini index is 1/3."""
    metrics = read_metrics(comparison, "random")
    for q, values in metrics["quantiles"].items():
        assert values["mask_area"] == pytest.approx(1.0 - float(q), abs=2e-3)
        assert values["sparsity"] == pytest.approx(1.0 / 3.0, abs=0.01)
    # The maps do not depend on q: every quantile has the same sparsity.
    assert len({round(v["sparsity"], 12) for v in metrics["quantiles"].values()}) == 1


@pytest.mark.parametrize("method", METHODS)
def test_csv_markdown_and_plot(comparison, method):
    folder = comparison["folders"][method]
    metrics = read_metrics(comparison, method)
    with open(folder / "metrics.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    assert [row["quantile"] for row in rows] == [str(float(q)) for q in QUANTILES]
    for row in rows:
        expected = metrics["quantiles"][f"{float(row['quantile']):g}"]
        for key in METRICS:
            assert float(row[key]) == pytest.approx(expected[key])
    markdown = (folder / "metrics.md").read_text()
    assert markdown.count("\n| 0.") == len(QUANTILES)
    assert "FID-I" in markdown and "Overlap test" in markdown
    assert (folder / "fidelity_faithfulness.png").stat().st_size > 10_000
    assert "classifier_folder" in (folder / "hyperparams.yaml").read_text()


@pytest.mark.parametrize("method", METHODS)
def test_listenable_examples(comparison, method):
    """Interpretation WAVs have the input's length, are finite and not silent; PNGs are drawn."""
    folder = comparison["folders"][method]
    examples = read_metrics(comparison, method)["examples"]
    assert len(examples) == NUM_EXAMPLES
    for example in examples:
        original, rate = soundfile.read(folder / example["original_wav"])
        interpretation, rate_out = soundfile.read(folder / example["interpretation_wav"])
        assert rate == rate_out == 16000
        assert len(original) == len(interpretation) == CLIP_SAMPLES
        assert abs(original).max() == pytest.approx(1.0, abs=1e-4)  # peak-normalised input
        assert all(map(math.isfinite, interpretation))
        rms = float((interpretation**2).mean() ** 0.5)
        assert rms > 1e-4
        assert rms == pytest.approx(example["interpretation_rms"], rel=1e-4)
        # Keeping ~10% of the bins removes energy: quieter than the input.
        assert rms < float((original**2).mean() ** 0.5)
        image = matplotlib.image.imread(folder / example["png"])
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("method", METHODS)
def test_overlap_report(comparison, method):
    folder = comparison["folders"][method]
    report = json.loads((folder / "overlap.json").read_text())
    pairs = report["pairs"]
    assert len(pairs) == OVERLAP_PAIRS
    assert report["weights"] == [0.8, 0.2]
    for pair in pairs:
        assert pair["s1_class"] != pair["s2_class"]
        assert 0.0 <= pair["s2_kept"] <= 1.0 and 0.0 <= pair["s1_kept"] <= 1.0
        assert pair["keeps"] == ("s1" if pair["s1_kept"] > pair["s2_kept"] else "s2")
        # 0.8 s1 dominates the energy of 0.2 s2 (both peak-normalised).
        assert pair["s1_share_mixture"] > 0.5
        assert pair["predicts_s1"] == (pair["predicted_class"] == pair["s1_class"])
    summary = report["summary"]
    assert summary["pairs"] == OVERLAP_PAIRS
    assert summary["s1_kept"] == pytest.approx(sum(p["s1_kept"] for p in pairs) / len(pairs))
    assert summary["keeps_s1_rate"] == pytest.approx(
        sum(p["keeps"] == "s1" for p in pairs) / len(pairs)
    )
    assert read_metrics(comparison, method)["overlap"] == summary
    mixture, _ = soundfile.read(folder / pairs[0]["mixture_wav"])
    interpretation, _ = soundfile.read(folder / pairs[0]["interpretation_wav"])
    assert len(mixture) == len(interpretation) == CLIP_SAMPLES


@pytest.mark.parametrize("method", METHODS)
def test_latency_is_reported(comparison, method):
    latency = read_metrics(comparison, method)["latency_ms_per_clip"]
    assert latency["clips"] == 2 and latency["batch_size"] == 1
    for key in ("features_ms", "forward_ms", "interpretation_total_ms", "listenable_ms"):
        assert math.isfinite(latency[key]) and latency[key] > 0
    assert latency["map_mask_overhead_ms"] == pytest.approx(
        max(0.0, latency["interpretation_total_ms"] - latency["forward_ms"])
    )


def test_comparison_table_has_every_method_at_every_quantile(comparison):
    output = comparison["output"]
    report = json.loads((output / "comparison.json").read_text())
    assert [m["label"] for m in report["methods"]] == LABELS
    assert [f"{q:g}" for q in report["quantiles"]] == QUANTILES
    with open(output / "comparison.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    assert {(row["label"], f"{float(row['quantile']):g}") for row in rows} == {
        (label, q) for label in LABELS for q in QUANTILES
    }
    for row in rows:
        folder = comparison["label_folders"][row["label"]]
        expected = json.loads((folder / "metrics.json").read_text())
        ci = expected["ci"][f"{float(row['quantile']):g}"]["fid_i"]
        assert float(row["fid_i_low"]) == pytest.approx(ci["low"])
        assert ci["low"] <= float(row["fid_i"]) <= ci["high"]
        assert float(row["accuracy"]) == pytest.approx(expected["accuracy"])
        assert float(row["fid_i"]) == pytest.approx(
            expected["quantiles"][f"{float(row['quantile']):g}"]["fid_i"]
        )
    markdown = (output / "comparison.md").read_text()
    for q in QUANTILES:
        block = markdown.split(f"## q = {q}\n")[1].split("## q =")[0]
        assert all(f"| {label} |" in block for label in LABELS)
        for column in ("Accuracy", "FID-I", "FA", "FF", "AI", "AD", "AG", "Sparsity", "Complexity"):
            assert column in block
    assert (output / "comparison.png").stat().st_size > 10_000
    # what compare.py prints: every metric with its CI, and the paired differences
    assert "# Paired differences" in comparison["stdout"]
    assert "| focalnet | " in comparison["stdout"] and " [" in comparison["stdout"]


def test_paired_differences_against_the_by_design_map(comparison):
    """Each control is paired with its classifier's by-design map, clip by clip."""
    report = json.loads((comparison["output"] / "comparison.json").read_text())
    pairs = {(d["label"], d["reference"]): d for d in report["paired_differences"]}
    for backbone in ("focalnet", "vit"):
        for control in CONTROLS:
            assert (f"{control} ({backbone})", backbone) in pairs
    assert ("focalnet", "vit") in pairs
    pair = pairs[("energy (focalnet)", "focalnet")]
    assert pair["clips"] == TEST_CLIPS
    first = json.loads((comparison["label_folders"]["energy (focalnet)"] / "per_clip.json").read_text())
    second = json.loads((comparison["label_folders"]["focalnet"] / "per_clip.json").read_text())
    assert first["ids"] == second["ids"] and len(first["ids"]) == TEST_CLIPS
    for q in QUANTILES:
        difference = pair["quantiles"][q]["fid_i"]
        expected = sum(first["quantiles"][q]["fid_i"]) - sum(second["quantiles"][q]["fid_i"])
        assert difference["mean"] == pytest.approx(expected / TEST_CLIPS)
        assert difference["low"] <= difference["mean"] <= difference["high"]
        assert difference["significant"] == (difference["low"] > 0 or difference["high"] < 0)
    # the same classifier: no discordant clip in the McNemar test
    assert pair["accuracy"]["first_only"] == pair["accuracy"]["second_only"] == 0


def test_energy_control_and_equal_rms_overlap_are_reported(comparison):
    """The energy control runs its own interpreter; every method has the equal-RMS overlap test."""
    metrics = json.loads(
        (comparison["label_folders"]["energy (focalnet)"] / "metrics.json").read_text()
    )
    assert metrics["interpreter"] == "EnergyInterpreter"
    assert metrics["overlap_equal_rms"]["equal_rms"] is True
    assert metrics["overlap_equal_rms"]["weights"] == [0.5, 0.5]


def test_compare_adds_any_further_result(comparison, tmp_path):
    """A later method (e.g. PIQ) given as a metrics.json gets its rows; results made with
    the same settings are reused (not recomputed)."""
    piq = read_metrics(comparison, "focalnet")
    piq["method"] = "piq"
    piq_file = tmp_path / "piq" / "metrics.json"
    piq_file.parent.mkdir()
    piq_file.write_text(json.dumps(piq))
    from focalnet_lobes.interpretation import comparison as library

    made = {m: (comparison["folders"][m] / "metrics.json").stat().st_mtime_ns for m in ("focalnet", "vit")}
    results = library.collect_results(
        [str(piq_file)],
        {"focalnet": comparison["runs"]["focalnet"], "vit": comparison["runs"]["vit"]},
        overrides={"split": "test", **OVERRIDES},
        include_other_methods=False,
    )
    assert [r["label"] for r in results] == ["focalnet", "vit", "piq"]
    for method, mtime in made.items():  # reused: the fixture's files, untouched
        assert (comparison["folders"][method] / "metrics.json").stat().st_mtime_ns == mtime, method
    library.write_comparison(results, tmp_path / "table")
    rows = list(csv.DictReader(open(tmp_path / "table" / "comparison.csv")))
    assert sum(row["label"] == "piq" for row in rows) == len(QUANTILES)


# ----------------------------------------------------------------------------- errors


def interpret_command(hparams, *extra):
    return [
        sys.executable,
        str(REPO / "recipes" / "interpret.py"),
        str(REPO / "hparams" / hparams),
        *extra,
    ]


def test_not_a_training_folder_exits_with_a_clear_message(tmp_path):
    result = run_recipe(
        interpret_command("interpret_focalnet.yaml", "--classifier_folder", str(tmp_path))
    )
    assert result.returncode != 0
    assert f"{tmp_path} is not a training output folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_interpreter_not_matching_the_backbone_names_the_folder(trained_runs, tmp_path):
    vit = trained_runs("vit_cpu.yaml")
    result = run_recipe(
        interpret_command(
            "interpret_focalnet.yaml",
            "--classifier_folder",
            str(vit),
            "--output_folder",
            str(tmp_path / "out"),
            "--max_clips",
            "1",
        )
    )
    assert result.returncode != 0
    assert "InputWeightedInterpreter cannot interpret the vit classifier in" in result.stderr
    assert "ModulationContributionInterpreter needs" in result.stderr  # the wrapped map
    assert str(vit) in result.stderr and "modulators" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_compare_without_results_exits_with_a_clear_message(tmp_path):
    command = [
        sys.executable,
        str(REPO / "recipes" / "compare.py"),
        str(tmp_path),
        "--output_folder",
        str(tmp_path / "t"),
    ]
    result = run_recipe(command)
    assert result.returncode != 0
    assert "no metrics.json in" in result.stderr and "Traceback" not in result.stderr


def test_empty_test_split_suggests_the_valid_split(tmp_path):
    from focalnet_lobes.interpretation.evaluation import InterpretationError, split_entries

    (tmp_path / "save").mkdir()
    (tmp_path / "save" / "test.json").write_text("{}")
    with pytest.raises(InterpretationError, match="has no clips.*--split valid"):
        split_entries(tmp_path / "save" / "test.json", "test")
    with pytest.raises(InterpretationError, match="no 'valid' manifest"):
        split_entries(tmp_path / "save" / "valid.json", "valid")


# ----------------------------------------------------------------------------- overlap attribution


def test_source_attribution_hand_values():
    """Two tones in separate bands: a mask on the low band keeps all of s1 and none of s2."""
    from focalnet_lobes.data.features import SpectrogramFrontend
    from focalnet_lobes.interpretation.evaluation import source_attribution

    frontend = SpectrogramFrontend()
    time_axis = torch.arange(16000) / 16000
    tone1 = 0.8 * torch.sin(2 * math.pi * 250 * time_axis)[None]
    tone2 = 0.2 * torch.sin(2 * math.pi * 5000 * time_axis)[None]
    low_band = torch.zeros(1, 1, 87, 513)
    low_band[..., :128] = 1.0  # below 4 kHz
    shares = source_attribution(frontend, low_band, tone1, tone2)
    assert float(shares["s1_kept"]) == pytest.approx(1.0, abs=1e-3)
    assert float(shares["s2_kept"]) == pytest.approx(0.0, abs=1e-3)
    assert float(shares["s1_share"]) == pytest.approx(1.0, abs=1e-3)
    # Energies scale with the squared weights: 0.64 / (0.64 + 0.04).
    assert float(shares["s1_share_mixture"]) == pytest.approx(0.64 / 0.68, abs=2e-3)
    # A full mask keeps everything; its share is the mixture's.
    full = source_attribution(frontend, torch.ones(1, 1, 87, 513), tone1, tone2)
    assert float(full["s1_kept"]) == pytest.approx(1.0) and float(full["s2_kept"]) == pytest.approx(
        1.0
    )
    assert float(full["s1_share"]) == pytest.approx(float(full["s1_share_mixture"]))
    # A half-amplitude mask keeps a quarter of the energy.
    half = source_attribution(frontend, torch.full((1, 1, 87, 513), 0.5), tone1, tone2)
    assert float(half["s1_kept"]) == pytest.approx(0.25)


def test_overlap_pairs_have_different_classes_and_are_seeded():
    from focalnet_lobes.interpretation.evaluation import choose_overlap_pairs

    labels = [0, 0, 1, 1, 2, 2, 3]
    pairs = choose_overlap_pairs(labels, num_pairs=5, seed=3)
    assert len(pairs) == 5 and len({i for i, _ in pairs}) == 5
    assert all(labels[i] != labels[j] for i, j in pairs)
    assert pairs == choose_overlap_pairs(labels, num_pairs=5, seed=3)
    assert len(choose_overlap_pairs(labels, num_pairs=50, seed=0)) == len(labels)


@pytest.mark.real_data
def test_default_map_of_the_shipped_model_beats_the_random_floors_on_real_esc10(esc50_dev):
    """Issue 4, must-show 4, on the real clips: the model this package ships (the compact
    CPU FocalNet trained by hparams/focalnet_cpu.yaml on folds 1-3; fold 4 held out)
    interpreted by the map of hparams/interpret_focalnet.yaml: at every quantile the
    masked-in input keeps the predicted class for more of the 80 fold-4 clips than
    random masks of the same area, per bin and on 16 x 16 cells (interpret_random*.yaml).
    (Measured: FID-I 0.900 at q = 0.9 against 0.263 and 0.237. Until session 11 this
    test trained the model for 20 epochs itself: 3 to 15 minutes of CI; the training
    recipe is tested on the real clips by test_recipe.py.)"""
    from hyperpyyaml import load_hyperpyyaml

    from focalnet_lobes.inference.classifiers import AudioClassifier
    from focalnet_lobes.interpretation.interpret import quantile_mask
    from focalnet_lobes.interpretation.metrics import input_fidelity

    with open(esc50_dev / "meta" / "esc50.csv", newline="") as fin:
        rows = [row for row in csv.DictReader(fin) if row["fold"] == "4" and row["esc10"] == "True"]
    assert len(rows) == 80
    classifier = AudioClassifier.from_hparams()
    model = classifier.mods.model.eval()
    clips = classifier._clips(torch.stack([classifier.load_audio(esc50_dev / "audio" / row["filename"])
                                           for row in rows]))
    ((_, wavs, _),) = list(classifier._batches(clips))
    fid_i = {}
    for method in ("focalnet", "random", "random_cells"):
        with open(REPO / "hparams" / f"interpret_{method}.yaml") as fin:
            interpreter = load_hyperpyyaml(fin, {"classifier_folder": "unused"})["interpreter"]
        fid_i[method] = {q: [] for q in QUANTILES}
        with torch.no_grad():
            for batch in wavs.split(16):
                features = classifier.compute_features(batch)
                logits, maps = interpreter(model, features)
                for q in QUANTILES:  # FID-I alone: one forward pass of the masked-in input
                    logits_in = model(quantile_mask(maps, float(q)) * features)
                    fid_i[method][q].extend(input_fidelity(logits, logits_in).tolist())
    mean = {method: {q: sum(v) / len(v) for q, v in values.items()} for method, values in fid_i.items()}
    for q in QUANTILES:  # (0.5: 0.975 against 0.275 and 0.700; 0.9: 0.900 against 0.263 and 0.237)
        assert mean["focalnet"][q] > max(mean["random"][q], mean["random_cells"][q]) + 0.1, (q, mean)
    assert mean["focalnet"]["0.9"] > max(mean["random"]["0.9"], mean["random_cells"]["0.9"]) + 0.3, mean
    card = json.loads((REPO / "benchmarks" / "results" / "shipped_model_fold4.json").read_text())
    assert card["quantile"] == 0.9 and abs(mean["focalnet"]["0.9"] - card["fid_i"]) <= 0.0125, mean  # one clip
