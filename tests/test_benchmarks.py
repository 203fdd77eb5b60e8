"""benchmarks/cpu_costs.py: a tiny end-to-end run on the two CPU YAMLs, and the log parser it uses (focalnet_lobes.training.logs)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from focalnet_lobes.training.logs import parse_training_log

REPO = Path(__file__).resolve().parents[1]


def load_cpu_costs():
    """Import benchmarks/cpu_costs.py (the benchmarks folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "cpu_costs_under_test", REPO / "benchmarks" / "cpu_costs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cpu_costs = load_cpu_costs()

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
        cpu_costs.summarize_training_folder(tmp_path)
    run = tmp_path / "focalnet_cpu" / "1986"
    run.mkdir(parents=True)
    (run / "log.txt").write_text(RESUMED_LOG)
    (run / "hyperparams.yaml").write_text("experiment_name: focalnet_cpu\nnumber_of_epochs: 3\n")
    (run / "piq_training.json").write_text(json.dumps({"seconds": 42.0, "epochs": 2}))
    summary = cpu_costs.summarize_training_folder(run)
    assert summary["name"] == "focalnet_cpu/1986"
    assert summary["experiment_name"] == "focalnet_cpu"
    assert summary["planned_epochs"] == 3 and summary["complete"] is True
    assert summary["piq_training"]["seconds"] == 42.0
    assert summary["wall_seconds"] == pytest.approx(2000.1)


MODEL_KEYS = {
    "name",
    "source",
    "kind",
    "parameters",
    "training_throughput",
    "inference_latency",
    "peak_memory",
    "interpretation_latency",
}
TOP_KEYS = {
    "benchmark",
    "command",
    "settings",
    "environment",
    "models",
    "summary",
    "ratios",
    "piq",
    "training_runs",
    "training_run_ratios",
    "tables",
}
SUMMARY_KEYS = {
    "parameters",
    "train_fp32_clips_per_s",
    "train_bf16_clips_per_s",
    "train_bf16_speedup",
    "inference_fp32_ms",
    "inference_bf16_ms",
    "inference_bf16_speedup",
    "memory_train_fp32_mib",
    "memory_train_bf16_mib",
    "memory_inference_fp32_mib",
    "memory_inference_bf16_mib",
    "interpretation_forward_ms",
    "interpretation_by_design_ms",
    "interpretation_saliency_ms",
    "interpretation_piq_ms",
    "interpretation_saliency_over_by_design",
    "interpretation_by_design_over_forward",
    "interpretation_by_design_overhead_ms",
    "interpretation_piq_over_by_design",
}


def test_cpu_costs_runs_on_the_two_yamls(tmp_path, capsys):
    run = tmp_path / "runs" / "vit_cpu"
    run.mkdir(parents=True)
    (run / "log.txt").write_text(RESUMED_LOG)
    out = tmp_path / "cpu_costs.json"
    threads = torch.get_num_threads()
    try:
        report = cpu_costs.main(
            [
                "--threads", "1",
                "--repeats", "2",
                "--warmup", "0",
                "--batch_size", "2",
                "--clip_seconds", "1",
                "--training_folder", str(run),
                "--out", str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    assert set(written) == TOP_KEYS
    assert written["settings"]["num_samples"] == 16000
    assert written["settings"]["latency_rounds"] == 6
    names = [model["name"] for model in written["models"]]
    assert names == ["focalnet_cpu", "vit_cpu"]
    assert [model["kind"] for model in written["models"]] == ["focalnet", "vit"]
    for model in written["models"]:
        assert set(model) == MODEL_KEYS
        assert model["parameters"]["total"] > 1_000_000
        for precision in ("fp32", "bf16"):
            throughput = model["training_throughput"][precision]
            assert len(throughput["step_ms"]) == 2 and throughput["clips_per_s"] > 0
            assert throughput["clips_per_s"] == pytest.approx(
                2000.0 / throughput["step_ms_median"]
            )
            assert len(model["inference_latency"][precision]["ms"]) == 6
        assert set(model["peak_memory"]) == {
            "train_fp32", "train_bf16", "inference_fp32", "inference_bf16"
        }
        for probe in model["peak_memory"].values():
            assert probe["peak_mib"] >= probe["baseline_mib"] > 100  # torch alone is more
            assert probe["delta_mib"] == pytest.approx(probe["peak_mib"] - probe["baseline_mib"])
            if probe["peak_reset"]:  # Linux: the step's own allocations are seen
                assert probe["delta_mib"] > 0
        interpretation = model["interpretation_latency"]
        assert interpretation["piq_ms"] is None
        assert interpretation["saliency_over_by_design"] == pytest.approx(
            interpretation["saliency_ms"] / interpretation["by_design_ms"]
        )
        assert interpretation["by_design_overhead_ms"] == pytest.approx(
            interpretation["by_design_ms"] - interpretation["forward_ms"]
        )
    methods = [m["interpretation_latency"]["by_design_method"] for m in written["models"]]
    assert methods == ["modulation", "attention"]
    for name in names:
        assert set(written["summary"][name]) == SUMMARY_KEYS
    ratios = written["ratios"]["vit_cpu / focalnet_cpu"]
    summary = written["summary"]
    assert ratios["parameters"] == pytest.approx(
        summary["vit_cpu"]["parameters"] / summary["focalnet_cpu"]["parameters"]
    )
    assert ratios["train_bf16_clips_per_s"] == pytest.approx(
        summary["vit_cpu"]["train_bf16_clips_per_s"]
        / summary["focalnet_cpu"]["train_bf16_clips_per_s"]
    )
    (training_run,) = written["training_runs"]
    assert training_run["wall_seconds"] == pytest.approx(2000.1)
    assert training_run["epochs"] == 3
    assert set(written["tables"]) == {
        "parameters",
        "training_throughput",
        "inference_latency",
        "peak_memory",
        "interpretation_latency",
        "training_runs",
    }
    for table in written["tables"].values():
        assert table in printed
    assert "vit_cpu / focalnet_cpu" in written["tables"]["training_throughput"]
    assert report["summary"] == written["summary"]


def test_cpu_costs_rejects_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cpu_costs.main(["--hparams", str(tmp_path / "missing.yaml")])
    assert "missing.yaml does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cpu_costs.main(["--repeats", "0"])
    with pytest.raises(SystemExit):
        cpu_costs.main(["--training_folder", str(tmp_path / "nowhere")])
    assert "is not a folder" in capsys.readouterr().err
