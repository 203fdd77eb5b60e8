"""The CPU benchmark scripts (benchmarks/cpu_speed.py, cpu_memory.py, training_runs.py and
their benchmarks/common.py): tiny end-to-end runs on the two CPU YAMLs, and the log
parser they use (focalnet_lobes.training.logs)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_benchmark
from focalnet_lobes.training.logs import parse_training_log

REPO = Path(__file__).resolve().parents[1]

common = load_benchmark("common")
cpu_speed = load_benchmark("cpu_speed")
cpu_memory = load_benchmark("cpu_memory")
training_runs = load_benchmark("training_runs")

STAMP = "2024-05-01"

# A resumed run: session 1 finishes epoch 1 and is killed during epoch 2; session 2
# redoes epoch 2, runs epoch 3 and the test; session 3 only re-tests the finished run.
RESUMED_LOG = f"""\
{STAMP} 10:00:00,000 - speechbrain.core - INFO - Beginning experiment!
{STAMP} 09:59:59,000 - speechbrain.utils.superpowers - DEBUG - numpy==2.4.6
torch==2.11.0
{STAMP} 10:00:00,000 - speechbrain.utils.epoch_loop - INFO - Going into epoch 1
{STAMP} 10:01:30,000 - speechbrain.utils.train_logger - INFO - epoch: 1, lr: 1e-3 - train loss: 2.2
{STAMP} 10:01:30,500 - speechbrain.checkpoints - INFO - Saved an end-of-epoch checkpoint in s/A
{STAMP} 10:01:30,600 - speechbrain.utils.epoch_loop - INFO - Going into epoch 2
{STAMP} 10:30:00,000 - speechbrain.core - INFO - Beginning experiment!
{STAMP} 10:30:01,000 - speechbrain.utils.checkpoints - INFO - Loading a checkpoint from s/A
{STAMP} 10:30:05,000 - speechbrain.utils.epoch_loop - INFO - Going into epoch 2
{STAMP} 10:31:45,000 - speechbrain.checkpoints - INFO - Saved an end-of-epoch checkpoint in s/B
{STAMP} 10:31:45,100 - speechbrain.utils.epoch_loop - INFO - Going into epoch 3
{STAMP} 10:33:15,100 - speechbrain.checkpoints - INFO - Saved an end-of-epoch checkpoint in s/C
{STAMP} 10:33:20,100 - __main__ - INFO - Test accuracy: 91.25%
{STAMP} 11:00:00,000 - speechbrain.core - INFO - Beginning experiment!
{STAMP} 11:00:09,000 - __main__ - INFO - Test accuracy: 91.25%
"""


def test_parse_training_log_resumed_run_hand_computed():
    summary = parse_training_log(RESUMED_LOG)
    # 10:00:00.000 -> 10:33:20.100 (the test of the training session, not the re-test)
    assert summary["wall_seconds"] == pytest.approx(2000.1)
    assert summary["training_seconds"] == pytest.approx(1995.1)  # -> 10:33:15.100
    assert summary["test_seconds"] == pytest.approx(5.0)
    # epoch 2 counts once, its complete run of session 2
    assert summary["epochs"] == 3
    assert summary["epoch_seconds"] == pytest.approx({"1": 90.5, "2": 100.0, "3": 90.0})
    assert summary["epoch_seconds_median"] == pytest.approx(90.5)
    assert summary["sessions"] == 2
    # 90.5 s in session 1 (to its checkpoint) + 10:30:05 -> 10:33:20.100 in session 2
    assert summary["active_seconds"] == pytest.approx(90.5 + 195.1)
    assert summary["test_accuracy"] == pytest.approx(91.25)
    assert summary["start"] == "2024-05-01T10:00:00"
    assert summary["end"] == "2024-05-01T10:33:20.100000"


def test_parse_training_log_restart_from_scratch_counts_the_last_run():
    log = "\n".join(
        [
            f"{STAMP} 08:00:00,000 - sb - INFO - Going into epoch 1",
            f"{STAMP} 08:00:50,000 - sb - INFO - Saved an end-of-epoch checkpoint in a",
            f"{STAMP} 09:00:00,000 - sb - INFO - Beginning experiment!",
            f"{STAMP} 09:00:02,000 - sb - INFO - Going into epoch 1",
            f"{STAMP} 09:00:42,000 - sb - INFO - Saved an end-of-epoch checkpoint in b",
        ]
    )
    summary = parse_training_log(log)
    assert summary["wall_seconds"] == pytest.approx(40.0)
    assert summary["epochs"] == 1 and summary["test_accuracy"] is None
    assert summary["test_seconds"] is None


def test_parse_training_log_errors():
    with pytest.raises(ValueError, match="Going into epoch"):
        parse_training_log(f"{STAMP} 10:00:00,000 - sb - INFO - Beginning experiment!")
    with pytest.raises(ValueError, match="end-of-epoch checkpoint"):
        parse_training_log(f"{STAMP} 10:00:00,000 - sb - INFO - Going into epoch 1")


def test_summarize_training_folder(tmp_path):
    with pytest.raises(ValueError, match="log.txt is missing"):
        training_runs.summarize_training_folder(tmp_path)
    run = tmp_path / "focalnet_cpu" / "1986"
    run.mkdir(parents=True)
    (run / "log.txt").write_text(RESUMED_LOG)
    (run / "hyperparams.yaml").write_text("experiment_name: focalnet_cpu\nnumber_of_epochs: 3\n")
    (run / "piq_training.json").write_text(json.dumps({"seconds": 42.0, "epochs": 2}))
    summary = training_runs.summarize_training_folder(run)
    assert summary["name"] == "focalnet_cpu/1986"
    assert summary["experiment_name"] == "focalnet_cpu"
    assert summary["planned_epochs"] == 3 and summary["complete"] is True
    assert summary["piq_training"]["seconds"] == 42.0 and summary["lmac_training"] is None
    assert summary["wall_seconds"] == pytest.approx(2000.1)
    (run / "lmac_training.json").write_text("{not json")
    with pytest.raises(ValueError, match="lmac_training.json is not valid JSON"):
        training_runs.summarize_training_folder(run)


def test_training_runs_end_to_end(tmp_path, capsys):
    first = tmp_path / "focalnet_cpu"
    second = tmp_path / "lmac_vit_cpu"
    for folder in (first, second):
        folder.mkdir()
    (first / "log.txt").write_text(RESUMED_LOG)
    # L-MAC run: epochs of 60 s and 80 s, no test
    (second / "log.txt").write_text(
        f"{STAMP} 12:00:00,000 - sb - INFO - Going into epoch 1\n"
        f"{STAMP} 12:01:00,000 - sb - INFO - Saved an end-of-epoch checkpoint in a\n"
        f"{STAMP} 12:01:00,000 - sb - INFO - Going into epoch 2\n"
        f"{STAMP} 12:02:20,000 - sb - INFO - Saved an end-of-epoch checkpoint in b\n"
    )
    (second / "lmac_training.json").write_text(json.dumps({"seconds": 140.5}))
    out = tmp_path / "runs.json"
    report = training_runs.main([str(first), str(second), "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == report
    assert written["command"].startswith("python benchmarks/training_runs.py ")
    assert [run["name"] for run in written["runs"]] == ["focalnet_cpu", "lmac_vit_cpu"]
    assert written["runs"][1]["wall_seconds"] == pytest.approx(140.0)
    ratios = written["ratios"]["lmac_vit_cpu / focalnet_cpu"]
    assert ratios["wall_seconds"] == pytest.approx(140.0 / 2000.1)
    assert ratios["epoch_seconds_median"] == pytest.approx(70.0 / 90.5)
    table = written["tables"]["training_runs"]
    assert table in capsys.readouterr().out
    assert "| wall time (min) | 33.3 | 2.3 | 0.07 |" in table
    assert "| L-MAC training (s) | - | 140.5 | - |" in table
    assert "| epoch IQR (s) | 5.0 | 10.0 | 2.00 |" in table  # 90, 90.5, 100: 95.25 - 90.25
    with pytest.raises(SystemExit):
        training_runs.main([str(tmp_path / "nowhere")])
    assert "is not a folder" in capsys.readouterr().err


def test_training_runs_writes_no_file_without_out(tmp_path, monkeypatch, capsys):
    """Folders are the user's: without --out the table is printed and no JSON written
    (it used to replace the recorded benchmarks/results/training_runs.json)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.txt").write_text(RESUMED_LOG)
    recorded = REPO / "benchmarks" / "results" / "training_runs.json"
    before = recorded.read_bytes()
    monkeypatch.chdir(tmp_path)
    report = training_runs.main([str(run)])
    assert report["runs"][0]["name"] == "run"
    assert recorded.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    output = capsys.readouterr().out
    assert report["tables"]["training_runs"] in output and "no JSON written" in output


def test_training_runs_of_a_cross_validation_are_named_by_their_folds(tmp_path):
    """cross_validate.py's fold_<k>/model folders: every one was named "model", and the ratios,
    keyed by name, kept only the last fold's."""
    folders = []
    for fold in (2, 3, 4):
        folder = tmp_path / "cv" / f"fold_{fold}" / "model"
        folder.mkdir(parents=True)
        (folder / "log.txt").write_text(RESUMED_LOG)
        folders.append(str(folder))
    report = training_runs.main([*folders, folders[0]])
    assert [run["name"] for run in report["runs"]] == ["fold_2/model (1)", "fold_3/model", "fold_4/model",
                                                       "fold_2/model (4)"]
    assert list(report["ratios"]) == ["fold_3/model / fold_2/model (1)", "fold_4/model / fold_2/model (1)",
                                      "fold_2/model (4) / fold_2/model (1)"]
    assert "| epochs | 3 | 3 | 3 | 3 |" in report["tables"]["training_runs"].replace("| 1.00 ", "")


def test_an_unwritable_out_still_shows_the_table_and_ends_with_one_line(tmp_path, capsys):
    """training_runs.py (as every benchmark that writes through common.write_report_or_exit): the
    measurement is printed before the one-line error, not lost in a traceback."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.txt").write_text(RESUMED_LOG)
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "runs.json"
    with pytest.raises(SystemExit) as raised:
        training_runs.main([str(run), "--out", str(out)])
    assert raised.value.code == 2
    printed = capsys.readouterr()
    assert "| wall time (min) | 33.3 |" in printed.out and "wrote" not in printed.out
    assert printed.err == f"training_runs.py: error: {out}: cannot write the report (a folder above it is a file)\n"


def test_time_rounds_measures_a_known_duration():
    result = common.time_rounds(
        {"sleep": lambda: time.sleep(0.02), "none": lambda: None},
        threads=1, rounds=3, min_run_time=0.05,
    )
    sleep = result["sleep"]
    assert len(sleep["times_ms"]) >= 3  # at least one block per round
    assert 20.0 <= sleep["median_ms"] < 60.0
    assert 0.0 <= sleep["iqr_ms"] < 40.0
    assert result["none"]["median_ms"] < 1.0


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cpu_speed_runs_on_the_two_yamls(tmp_path, capsys, one_thread):
    out = tmp_path / "cpu_speed.json"
    report = cpu_speed.main([
        "--threads", "1", "--repeats", "2", "--min_run_time", "0", "--batch_size", "2",
        "--clip_seconds", "1", "--out", str(out),
    ])
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(report))
    assert set(written) == {
        "benchmark", "command", "settings", "environment", "models", "piq", "tables"
    }
    assert written["command"].startswith("python benchmarks/cpu_speed.py --threads 1")
    assert written["settings"]["num_samples"] == 16000 and written["piq"] == []
    models = written["models"]
    assert [m["name"] for m in models] == ["focalnet_cpu", "vit_cpu"]
    assert [m["kind"] for m in models] == ["focalnet", "vit"]
    for model in models:
        assert model["parameters"]["total"] > 1_000_000
        timings = [model["training_throughput"][p] for p in ("fp32", "bf16")]
        timings += [model["inference_latency"][p] for p in ("fp32", "bf16")]
        interpretation = model["interpretation_latency"]
        timings += [interpretation[m] for m in ("forward", "by_design", "saliency")]
        timings += [interpretation["by_design_map"]]  # the map without the mask
        timings += [interpretation["by_design_after_forward"]]  # its own operations alone
        for timing in timings:
            assert len(timing["times_ms"]) >= 2  # one block per round at least
            assert timing["median_ms"] > 0 and timing["iqr_ms"] >= 0
            assert min(timing["times_ms"]) <= timing["median_ms"] <= max(timing["times_ms"])
        for precision in ("fp32", "bf16"):
            throughput = model["training_throughput"][precision]
            assert throughput["clips_per_s"] == pytest.approx(2000.0 / throughput["median_ms"])
        assert "piq" not in model["interpretation_latency"]
    methods = [m["interpretation_latency"]["by_design_method"] for m in models]
    assert methods == ["modulation_contribution_x_input", "attention"]  # interpret_<kind>.yaml's
    assert {"modulation_map", "contribution"} <= set(models[0]["interpretation_latency"])
    assert not {"modulation_map", "contribution"} & set(models[1]["interpretation_latency"])
    assert set(written["tables"]) == {
        "parameters", "training_throughput", "inference_latency", "interpretation_latency"
    }
    assert "| map + mask's own operations / forward |" in written["tables"]["interpretation_latency"]
    for table in written["tables"].values():
        assert table in printed
        assert "| vit_cpu / focalnet_cpu |" in table.splitlines()[1]
    focalnet, vit = models
    row = next(
        line for line in written["tables"]["parameters"].splitlines()
        if line.startswith("| parameters (M)")
    )
    assert row.endswith(f"| {vit['parameters']['total'] / focalnet['parameters']['total']:.2f} |")


def test_cpu_speed_map_after_the_forward_pass_is_the_by_design_mask(one_thread):
    """The map's own operations (the forward pass done once, ForwardDone) give the same mask."""
    common = cpu_speed.common
    bundles, sample_rate = common.build_models(common.model_sources(None, []))
    assert [b.kind for b in bundles] == ["focalnet", "vit"]
    for bundle in bundles:
        bundle.model.eval()
        with torch.no_grad():
            features = bundle.frontend.eval()(common.random_clips(1, sample_rate, seed=3))
        methods = cpu_speed.interpretation_methods(bundle, features, 0.9)
        full, after = methods["by_design"](), methods["by_design_after_forward"]()
        assert full.shape == features.shape and 0.05 < full.float().mean() < 0.2
        assert torch.equal(full, after), bundle.name


def test_cpu_speed_rejects_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cpu_speed.main(["--hparams", str(tmp_path / "missing.yaml")])
    assert "missing.yaml does not exist" in capsys.readouterr().err
    for bad in (["--repeats", "0"], ["--quantile", "2"], ["--clip_seconds", "0"]):
        with pytest.raises(SystemExit):
            cpu_speed.main(bad)
    with pytest.raises(SystemExit):
        cpu_speed.main(["--piq_folder", str(tmp_path / "nowhere")])
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_cpu_memory_runs_on_the_two_yamls(tmp_path, capsys):
    out = tmp_path / "cpu_memory.json"
    report = cpu_memory.main([
        "--threads", "1", "--batch_size", "2", "--clip_seconds", "1", "--out", str(out),
    ])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(report))
    assert written["command"].startswith("python benchmarks/cpu_memory.py --threads 1")
    assert [m["name"] for m in written["models"]] == ["focalnet_cpu", "vit_cpu"]
    for model in written["models"]:
        probes = model["peak_memory"]
        assert set(probes) == {"train_fp32", "train_bf16", "inference_fp32", "inference_bf16"}
        for key, probe in probes.items():
            assert probe["mode"] == key.split("_")[0] and probe["num_samples"] == 16000
            assert probe["peak_mib"] >= probe["baseline_mib"] > 100  # torch alone is more
            assert probe["delta_mib"] == pytest.approx(probe["peak_mib"] - probe["baseline_mib"])
            if probe["peak_reset"]:  # Linux: the steps' own allocations are seen
                assert probe["delta_mib"] > 0
    assert written["tables"]["peak_memory"] in capsys.readouterr().out


@pytest.mark.slow
def test_cpu_memory_names_a_failed_probe(tmp_path):
    source = {"type": "hparams", "path": str(tmp_path / "gone.yaml")}
    with pytest.raises(RuntimeError, match="memory probe train_fp32 of gone failed"):
        cpu_memory.measure_peak_memory({"gone": source}, 2, 16000, threads=1, jobs=1)


def test_cpu_memory_rejects_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cpu_memory.main(["--jobs", "0"])
    with pytest.raises(SystemExit):
        cpu_memory.main(["--classifier_folder", str(tmp_path / "nowhere")])
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown memory mode 'bogus'"):
        cpu_memory.memory_probe({"mode": "bogus", "precision": "fp32"})


def test_ship_pretrained_on_a_fixed_schedule_run(trained_runs, fake_esc10, tmp_path, capsys):
    """benchmarks/ship_pretrained.py on a last_epoch run: float16 copy, held-out figures,
    a card that says the last epoch was kept (no validation-error claims) and quotes the CV;
    the figures go to --results, never to the committed file."""
    ship = load_benchmark("ship_pretrained")
    run = trained_runs("focalnet_cpu.yaml")  # 2 epochs, folds 1-3, checkpoint_selection last_epoch
    cv = {
        "methods": ["focalnet", "energy"], "folds": [{}, {}, {}, {}],
        "accuracy": {"mean": 0.9, "std": 0.05, "pooled": {"mean": 0.9, "low": 0.86, "high": 0.93, "n": 320}},
        "metrics": {"focalnet": {"0.9": {"fid_i": {"mean": 0.8, "low": 0.75, "high": 0.85},
                                         "ff": {"mean": 0.4, "low": 0.38, "high": 0.42}}}},
    }
    (tmp_path / "cv_results.json").write_text(json.dumps(cv))
    committed = (REPO / "benchmarks" / "results" / "shipped_model_fold4.json").read_bytes()
    output, results = tmp_path / "shipped", tmp_path / "figures.json"
    assert ship.main(["--classifier_folder", str(run), "--data_folder", str(fake_esc10),
                      "--output_folder", str(output), "--results", str(results),
                      "--cv_results", str(tmp_path / "cv_results.json")]) == 0
    assert (REPO / "benchmarks" / "results" / "shipped_model_fold4.json").read_bytes() == committed
    summary = json.loads(results.read_text())
    assert summary["checkpoint_selection"] == "last_epoch" and summary["number_of_epochs"] == 2
    assert summary["train_folds"] == [1, 2, 3] and summary["eval_folds"] == [4]
    assert summary["clips"] == 20 and summary["train_clips"] == 60  # 2 clips x 10 classes a fold
    assert summary["best_epoch"] is None and summary["run_best_valid_error"] is None
    assert summary["accuracy_float16"] == summary["correct_float16"] / 20
    assert summary["max_logit_difference"] < 0.05 and summary["agreement"] >= 19
    state = torch.load(output / "model.ckpt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    card = (output / "README.md").read_text()
    assert "a fixed schedule of 2 epochs, the last epoch kept" in card
    assert "lowest validation error" not in card and "optimistic**" not in card
    flat = " ".join(card.split())
    assert "accuracy 90.0 ± 5.0% (mean ± std over folds; pooled 95% CI 86.0-93.0%)" in flat
    assert "(`focalnet` in that file) at q = 0.9: FID-I 0.800 [0.750, 0.850], FF 0.400 [0.380, 0.420]" in flat
    assert "nothing was chosen on fold 4" in flat and "Fold 4 was held out" in flat
    assert "(its validation loss was logged during training, nothing more)" in flat  # valid_folds [4]
    # 0.7 x 2 epochs -> epoch 2; today's focalnet_cpu.yaml masks with the map times the input
    assert "with faithfulness terms on its own map times the input in epoch 2 (" in flat
    assert summary["terms_epochs"] == [2, 2] and summary["valid_folds"] == [4]
    assert summary["terms_input_weighted"] is True
    assert summary["stem_strided_blocks"] == 1  # today's focalnet_cpu.yaml
    assert "three-block conv stem (the first a single stride-2 convolution)," in flat
    assert f"({results})" in flat.replace("`", "")  # the figures file the card names is --results
    # figures measured on a training fold would not be held out: refused
    with pytest.raises(SystemExit):
        ship.main(["--classifier_folder", str(run), "--data_folder", str(fake_esc10),
                   "--output_folder", str(tmp_path / "other"), "--results", str(tmp_path / "other.json"),
                   "--eval_folds", "1"])
    assert "was trained on fold(s) [1]: --eval_folds must be folds it was not trained on" in capsys.readouterr().err
    assert not (tmp_path / "other.json").exists()


def test_ship_pretrained_card_of_a_selected_checkpoint():
    """A valid_error run's card says the evaluated folds chose the checkpoint (optimistic)."""
    ship = load_benchmark("ship_pretrained")
    summary = {
        "accuracy_float16": 0.95, "accuracy_ci95": [0.88, 0.98], "correct_float16": 76, "clips": 80,
        "fid_i": 0.5, "fid_i_ci95": [0.4, 0.6], "fa": 0.3, "fa_ci95": [0.25, 0.35], "quantile": 0.9,
        "eval_folds": [4], "train_folds": [1, 2, 3], "train_clips": 240, "classes": ["dog", "rain"],
        "checkpoint_selection": "valid_error", "number_of_epochs": 80, "best_epoch": 52,
        "run_best_valid_error": 0.0125, "agreement": 80, "max_logit_difference": 0.003,
    }
    card = ship.model_card(summary, "python recipes/train.py ...")
    assert "Validation and checkpoint selection: fold 4" in card and "**optimistic**" in card
    assert "first reached at epoch 52) was 1.25%" in card and "fixed schedule" not in card
    assert "cross-validated" not in card  # no --cv_results
    assert "faithfulness terms" not in card  # no terms_epochs: a run without them
    assert "three-block conv stem, focal" in card  # no stem_strided_blocks: the VGG stem


def test_tta_rolls_the_time_axis_and_averages_every_shift():
    """benchmarks/tta_and_ensembles.py: shift k is the features rolled by k * T // shifts frames
    along time (dim 2), and the TTA prediction is the mean of all shifts' probabilities."""
    levers = load_benchmark("tta_and_ensembles")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 3, 4)).eval()
    features = torch.randn(2, 1, 8, 3)
    probs = levers.shifted_probabilities(model, features, shifts=4)
    assert levers.shift_offsets(8, 4) == [0, 2, 4, 6]
    for k, offset in enumerate([0, 2, 4, 6]):
        expected = torch.softmax(model(torch.roll(features, offset, dims=2)), dim=-1)
        assert torch.allclose(probs[k], expected, atol=1e-6)
    assert not torch.allclose(probs[1], probs[0])  # not shift-invariant: the rolls differ
    # the mean of the shifts decides, not the first or the last one
    shifted = np.array([[[0.6, 0.4]], [[0.0, 1.0]], [[0.6, 0.4]], [[0.6, 0.4]]])  # (4, 1, 2)
    run = {"ids": ["a"], "labels": np.array([1]), "probabilities": shifted}
    correct = levers.lever_correctness([run])
    assert correct["single"].tolist() == [[False]] and correct["tta"].tolist() == [[True]]
    other = dict(run, labels=np.array([0]))
    assert levers.lever_correctness([other])["tta"].tolist() == [[False]]
    with pytest.raises(ValueError, match="shifts must be in \\[1, 8\\]"):
        levers.shift_offsets(8, 9)
    with pytest.raises(ValueError, match="the same clips"):
        levers.lever_correctness([run, dict(run, ids=["b"])])
