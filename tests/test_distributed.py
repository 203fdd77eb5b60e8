"""Training under torchrun (issue 14) and training plans that cannot run or change (issue 15, items 2-3).

Unit tests of the step arithmetic and of the distributed pieces (GlobalFeatureNorm's
all-reduce, AtomicCheckpointer with ranks arriving at different times) run 2 gloo
processes with ``torch.multiprocessing``; the recipe tests run
``python -m torch.distributed.run`` (torchrun) on generated ESC-50-layout data.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import REPO, kept_checkpoints, recipe_env, run_recipe, training_command
from focalnet_lobes.training.plan import (
    TrainingPlanError,
    build_step_schedule,
    check_folds,
    check_steps,
    optimizer_steps_per_epoch,
    step_schedule,
)

LR = 0.001
END_LR = LR / 25.0 / 1000.0  # OneCycleLR's last value in the CPU YAMLs (div 25, final_div 1000)


# ----------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    "clips, batch, drop_last, world, accumulation, expected",
    [
        (240, 16, True, 1, 1, 15),     # the CPU recipe: folds 1-3 of ESC-10
        (240, 16, True, 2, 1, 7),      # 120 clips per process
        (241, 16, False, 2, 1, 8),     # the sampler pads to 121 per process, last batch partial
        (240, 16, True, 1, 2, 7),      # 15 batches, the 15th does not complete a step
        (240, 16, True, 2, 2, 3),
        (40, 128, True, 1, 1, 0),      # issue 15 item 3: fewer clips than a batch
    ],
)
def test_optimizer_steps_per_epoch(clips, batch, drop_last, world, accumulation, expected):
    assert optimizer_steps_per_epoch(clips, batch, drop_last, world, accumulation) == expected


def test_too_few_clips_for_a_step_is_a_one_line_error():
    with pytest.raises(TrainingPlanError) as error:
        check_steps(40, 128, True, 1, 1, where="train_folds [1]")
    message = str(error.value)
    assert "\n" not in message
    assert "batch_size 40 or less" in message and "train_folds [1]" in message
    # Accumulation and processes count too: 40 clips over 2 processes, 4 batches of 8 per step.
    with pytest.raises(TrainingPlanError, match="batch_size 5 or less"):
        check_steps(40, 8, True, 2, 4)


@pytest.mark.parametrize(
    "folds, match",
    [
        (([], [4], [5]), "train_folds is empty"),
        (([1, 2], [], [5]), "valid_folds is empty"),
        (([1, 2], [2], [5]), "share fold 2"),
        (([1, 2, 3], [4], [3, 5]), "share fold 3"),
        (([1, 6], [4], [5]), "fold numbers in 1..5"),
        ((["a"], [4], [5]), "fold numbers in 1..5"),
    ],
)
def test_folds_that_cannot_train(folds, match):
    with pytest.raises(TrainingPlanError, match=match):
        check_folds(*folds)


def one_cycle(optimizer):
    return lambda opt, total_steps: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, total_steps=total_steps, pct_start=0.1, div_factor=25.0,
        final_div_factor=1000.0,
    )


# The reference schedule below is stepped without its optimizer (only its lr curve is read).
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`:UserWarning")
def test_schedule_ends_at_its_end_value_and_extends():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=LR)
    factory = one_cycle(optimizer)
    scheduler = build_step_schedule(factory, optimizer, 15)
    used = []
    for _ in range(15):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        step_schedule(scheduler, 15)
    assert used[-1] == pytest.approx(END_LR)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(END_LR)
    # Extended to 45 steps after the 15 taken: the new curve at step 15, then its end.
    scheduler = build_step_schedule(factory, optimizer, 45, position=15)
    reference = build_step_schedule(factory, torch.optim.AdamW([parameter], lr=LR), 45)
    for _ in range(15):
        reference.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(reference.get_last_lr()[0])
    for _ in range(30):
        optimizer.step()
        step_schedule(scheduler, 45)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(END_LR)


# ------------------------------------------------------------- two gloo processes in-process


def _init(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)


def _norm_worker(rank, world, port, batches, folder):
    from focalnet_lobes.models.classifier import GlobalFeatureNorm

    _init(rank, world, port)
    torch.set_num_threads(1)
    norm = GlobalFeatureNorm(4).train()
    for batch in batches:
        norm(batch[rank::world])  # each process sees its share of every batch
    torch.save({"mean": norm.mean, "var": norm.var}, Path(folder) / f"norm{rank}.pt")
    torch.distributed.destroy_process_group()


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_global_feature_norm_statistics_are_those_of_all_processes(tmp_path):
    from focalnet_lobes.models.classifier import GlobalFeatureNorm

    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(6, 1, 5, 4, generator=generator) * (i + 1) + i for i in range(3)]
    mp.spawn(_norm_worker, args=(2, _free_port(), batches, str(tmp_path)), nprocs=2)
    single = GlobalFeatureNorm(4).train()
    for batch in batches:
        # One process on the whole batch (in the order the shares concatenate).
        single(torch.cat([batch[0::2], batch[1::2]]))
    for rank in range(2):
        stats = torch.load(tmp_path / f"norm{rank}.pt", weights_only=True)
        torch.testing.assert_close(stats["mean"], single.mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stats["var"], single.var, rtol=1e-5, atol=1e-5)


def _checkpoint_worker(rank, world, port, folder):
    import random

    from focalnet_lobes.training.checkpoints import AtomicCheckpointer

    _init(rank, world, port)
    model = torch.nn.Linear(2, 2)
    checkpointer = AtomicCheckpointer(folder, recoverables={"model": model})
    rng = random.Random(rank)
    for epoch in range(4):
        # The ranks reach the checkpoint at different times.
        time.sleep(rng.uniform(0, 0.2) * (rank + 1))
        checkpointer.save_and_keep_only(meta={"error": 1.0 / (epoch + 1)}, min_keys=["error"])
        # Right after saving every rank finds the checkpoint complete.
        latest = checkpointer.find_checkpoint(min_key="error")
        assert latest.meta["error"] == 1.0 / (epoch + 1)
        assert (latest.path / "model.ckpt").is_file()
    torch.distributed.destroy_process_group()


def test_atomic_checkpointer_with_ranks_arriving_at_different_times(tmp_path):
    mp.spawn(_checkpoint_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) == 1 and names[0].startswith("CKPT+"), names  # one writer, no staging left
    assert sorted(p.name for p in (tmp_path / names[0]).iterdir()) == ["CKPT.yaml", "model.ckpt"]


def _gloo_threads():
    """Threads of this process that a gloo process group runs (named by PyTorch)."""
    tasks = Path("/proc/self/task")
    return sum((task / "comm").read_text().strip() == "pt_gloo_runloop" for task in tasks.iterdir())


def _closing_worker(rank, world, port, second_port, folder):
    from focalnet_lobes.training.plan import process_group_closed_at_exit

    record = {}
    _init(rank, world, port)
    with process_group_closed_at_exit():
        # As in a recipe's Brain: the group held inside a reference cycle.
        brain = {"group": torch.distributed.group.WORLD}
        brain["self"] = brain
        del brain
        total = torch.tensor([rank + 1.0])
        torch.distributed.all_reduce(total)
        record["threads_during"] = _gloo_threads()
        time.sleep(0.5 * rank)  # rank 1 ends its work late
        record["work_done"] = time.time()
    record["left"] = time.time()
    record["closed"] = not torch.distributed.is_initialized()
    record["threads_after"] = _gloo_threads()  # the group was freed, its threads joined
    record["total"] = float(total)
    # After an error the group is closed too, without waiting for the other process.
    _init(rank, world, second_port)
    try:
        with process_group_closed_at_exit():
            raise RuntimeError("failed")
    except RuntimeError:
        record["closed_after_error"] = not torch.distributed.is_initialized()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(record))
    # Rank 0 hosts the TCP store: leaving before rank 1 has closed its group broke
    # rank 1's connection under load ("Failed to recv"; a test flake, not the recipes').
    deadline = time.time() + 120
    while rank == 0 and not Path(folder, "rank1.json").exists() and time.time() < deadline:
        time.sleep(0.05)


def test_recipes_close_their_process_group_after_the_slowest_process(tmp_path):
    """An open gloo group aborted finished torchrun processes at exit (SIGABRT)."""
    mp.spawn(_closing_worker, args=(2, _free_port(), _free_port(), str(tmp_path)), nprocs=2)
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert all(r["closed"] and r["closed_after_error"] for r in records)
    assert [r["total"] for r in records] == [3.0, 3.0]
    assert records[0]["left"] >= records[1]["work_done"]  # the barrier waited for rank 1
    for record in records:
        assert record["threads_during"] > 0 and record["threads_after"] == 0, record


class _InputMap(torch.nn.Module):
    """A stand-in interpreter: the logits and the input itself as the map."""

    def forward(self, model, features):
        return model(features), features.squeeze(1)


def _fidelity_model_and_term():
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    term = MaskedInFidelityLoss(
        _InputMap(), torch.nn.functional.cross_entropy, weight=1.0, quantiles=(0.5,), out_weight=1.0
    )
    return model, term


def _fidelity_batch(rank):
    generator = torch.Generator().manual_seed(rank + 1)
    return torch.randn(4, 1, 3, 4, generator=generator), torch.tensor([0, 1, 2, rank])


def _training_forward_worker(rank, world, port, folder):
    from focalnet_lobes.training.losses import TrainingForward

    _init(rank, world, port)
    torch.set_num_threads(1)
    model, term = _fidelity_model_and_term()
    wrapped = torch.nn.parallel.DistributedDataParallel(TrainingForward(model, term))
    features, targets = _fidelity_batch(rank)
    logits, extra = wrapped(features, targets)
    (torch.nn.functional.cross_entropy(logits, targets) + extra).backward()
    torch.save([p.grad for p in model.parameters()], Path(folder) / f"grads{rank}.pt")
    torch.distributed.destroy_process_group()


def test_masked_passes_are_synchronised_under_ddp(tmp_path):
    """Issue 13 under torchrun: the faithfulness term's gradients are averaged like the plain pass's."""
    mp.spawn(_training_forward_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    expected = []
    for rank in range(2):  # each process's gradient alone, without DDP
        model, term = _fidelity_model_and_term()
        features, targets = _fidelity_batch(rank)
        logits, extra = term(model, features, targets)
        (torch.nn.functional.cross_entropy(logits, targets) + extra).backward()
        expected.append([p.grad for p in model.parameters()])
    assert extra.item() > 0  # both masked terms contribute
    for rank in range(2):
        grads = torch.load(tmp_path / f"grads{rank}.pt", weights_only=True)
        for grad, first, second in zip(grads, *expected):
            torch.testing.assert_close(grad, (first + second) / 2)


# ------------------------------------------------------------------ the recipe, end to end


def torchrun_command(data, output, *extra, epochs=2, nproc=2):
    """The README's torchrun command on the generated data (1 s clips, batch 8, gloo)."""
    command = training_command("focalnet_cpu.yaml", data, output, *extra, epochs=epochs)
    command = [c for c in command[2:] if c not in ("--device", "cpu")]  # torchrun picks the device
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            "--master_port", str(_free_port()), str(REPO / "recipes" / "train.py"),
            *command, "--distributed_backend", "gloo"]


def with_options(command, *pairs):
    """``command`` with each ``--name value`` pair replacing the one it has, or appended."""
    command = list(command)
    for name, value in zip(pairs[::2], pairs[1::2]):
        if name in command:
            command[command.index(name) + 1] = value
        else:
            command += [name, value]
    return command


def run_torchrun(command):
    env = recipe_env(OMP_NUM_THREADS="1")
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)


def logged(train_log, key):
    lines = Path(train_log).read_text().splitlines()
    return [line.split(f"{key}: ")[1].split(",")[0].split(" ")[0]
            for line in lines if line.startswith("epoch: ")]


@pytest.mark.slow
def test_two_process_gloo_training_matches_its_checkpoint_in_one_process(fake_esc10, tmp_path):
    """Issue 14 must-show 1 and 3 on generated data: one writer, whole-split metrics."""
    output = tmp_path / "ddp"
    result = run_torchrun(torchrun_command(fake_esc10, output))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert logged(output / "train_log.txt", "epoch") == ["1", "2"]
    # 60 training clips: 30 per process, 3 batches of 8 (drop_last): 6 steps in all.
    assert float(logged(output / "train_log.txt", "lr")[-1]) == pytest.approx(END_LR, rel=0.01)
    # One writer: the best and the most recent epoch at most, no partial or duplicate one.
    kept_checkpoints(output / "save")
    assert not list((output / "save").glob(".staging-*"))
    assert (output / "log.txt").read_text().count("Test accuracy") == 1
    summary = json.loads((output / "test_results.json").read_text())
    assert summary["num_clips"] == 20  # the whole test split, no sampler padding

    # The same folder evaluated by one process (a finished run is only tested again).
    single = tmp_path / "single"
    subprocess.run(["cp", "-r", str(output), str(single)], check=True)
    (single / "test_results.json").unlink()
    result = run_recipe(training_command("focalnet_cpu.yaml", fake_esc10, single))
    assert result.returncode == 0, result.stderr[-4000:]
    assert logged(single / "train_log.txt", "epoch") == ["1", "2"]  # not retrained
    again = json.loads((single / "test_results.json").read_text())
    assert again["confusion_matrix"] == summary["confusion_matrix"]
    assert again["accuracy"] == summary["accuracy"]


@pytest.mark.slow
def test_torchrun_trains_with_the_faithfulness_terms(fake_esc10, tmp_path):
    """Issue 13's terms under torchrun: the model and the terms are DDP-wrapped together."""
    output = tmp_path / "ddp"
    command = torchrun_command(fake_esc10, output, "--masked_in_weight", "1.0",
                               "--masked_out_weight", "1.0", epochs=1)
    result = run_torchrun(command)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert logged(output / "train_log.txt", "epoch") == ["1"]
    assert json.loads((output / "test_results.json").read_text())["num_clips"] == 20


@pytest.mark.slow
@pytest.mark.parametrize("terms", ["0.0", "1.0"])  # DDP(model) / DDP(TrainingForward)
def test_torchrun_keeps_the_weight_average(fake_esc10, tmp_path, terms):
    """Under torchrun the average copies the model's own module (not its DDP wrapper) and
    replaces it after the last epoch; the one checkpoint holds the same weights."""
    output = tmp_path / "ddp"
    command = torchrun_command(fake_esc10, output, "--weight_average_decay", "0.5",
                               "--weight_average_start_epoch", "0", "--masked_in_weight", terms,
                               "--masked_out_weight", terms)
    result = run_torchrun(command)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (folder,) = (output / "save").glob("CKPT+*")  # last_epoch: the last epoch's only
    model = torch.load(folder / "model.ckpt", weights_only=True)
    average = torch.load(folder / "weight_average.ckpt", weights_only=True)
    assert int(average["average.n_averaged"]) == 6  # 2 epochs x 3 steps (30 clips per process)
    for key, value in model.items():
        assert torch.equal(value, average[f"average.module.{key}"]), key
    assert "weights (decay 0.5; 6 optimiser steps averaged)" in (output / "log.txt").read_text()


@pytest.mark.slow
def test_torchrun_resumes_after_kill_during_epoch_two(fake_esc10, tmp_path):
    """Issue 14 must-show 2."""
    output = tmp_path / "out"
    command = torchrun_command(fake_esc10, output, epochs=3)
    env = recipe_env(OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if list((output / "save").glob("CKPT+*")):  # atomic: epoch 1 is saved, epoch 2 runs
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert logged(output / "train_log.txt", "epoch") == ["1"]

    result = run_torchrun(command)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert logged(output / "train_log.txt", "epoch") == ["1", "2", "3"]
    assert (output / "test_results.json").is_file()


@pytest.mark.slow
def test_final_lr_with_gradient_accumulation_is_the_schedules_end(fake_esc10, tmp_path):
    """Issue 14 must-show 4: 60 clips, batch 8, accumulation 2 -> 3 steps per epoch."""
    output = tmp_path / "out"
    command = training_command("focalnet_cpu.yaml", fake_esc10, output,
                               "--grad_accumulation_factor", "2", "--test_folds", "[]")
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert float(logged(output / "train_log.txt", "lr")[-1]) == pytest.approx(END_LR, rel=0.01)
    checkpoint = kept_checkpoints(output / "save")[0][0]  # the last epoch's
    optimizer = torch.load(checkpoint / "optimizer.ckpt", weights_only=True)
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(END_LR)
    assert optimizer["state"][0]["step"] == 2 * math.floor(7 / 2)  # optimiser steps taken


@pytest.mark.slow
def test_training_longer_or_with_another_batch_size_continues(fake_esc10, tmp_path):
    """Issue 15 item 2: 1 epoch, then 3 epochs in the same folder, then another batch size."""
    output = tmp_path / "out"
    first = training_command("focalnet_cpu.yaml", fake_esc10, output, "--test_folds", "[]", epochs=1)
    assert run_recipe(first).returncode == 0
    result = run_recipe(with_options(first, "--number_of_epochs", "3"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "schedule of the new length" in result.stderr + result.stdout
    assert logged(output / "train_log.txt", "epoch") == ["1", "2", "3"]
    lrs = [float(lr) for lr in logged(output / "train_log.txt", "lr")]
    assert lrs[1] > 10 * END_LR and lrs[2] == pytest.approx(END_LR, rel=0.01)
    result = run_recipe(with_options(
        training_command("focalnet_cpu.yaml", fake_esc10, output, "--test_folds", "[]", epochs=4),
        "--batch_size", "4",
    ))
    assert result.returncode == 0, result.stderr[-4000:]
    assert logged(output / "train_log.txt", "epoch") == ["1", "2", "3", "4"]
    assert float(logged(output / "train_log.txt", "lr")[-1]) == pytest.approx(END_LR, rel=0.01)


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--train_folds", "[1]", "--batch_size", "128"), "make no full batch of batch_size 128"),
        (("--train_folds", "[1, 2]", "--valid_folds", "[2]"), "share fold 2"),
        (("--train_folds", "[]"), "train_folds is empty"),
        (("--number_of_epochs", "0"), "number_of_epochs must be a positive integer"),
        (("--grad_accumulation_factor", "0"), "grad_accumulation_factor must be a positive"),
        (("--numbr_of_epochs", "3"), "has no option --numbr_of_epochs (did you mean --number_of_epochs?)"),
        # a value the model rejects: the file and the model's one-line reason
        (("--stem_strided_blocks", "5"),
         "focalnet_cpu.yaml: strided_blocks (YAML: stem_strided_blocks) must be an int in [0, 3] (the number of stem blocks), got 5"),
        (("--global_pool", "max"), "focalnet_cpu.yaml: global_pool must be 'avg' or 'modulation'"),
        # 60 clips, batch 12: 5 steps per epoch, 10 in all; OneCycleLR's warm-up is 1 step.
        (("--batch_size", "12"), "pct_start * total steps must not be 1"),
    ],
)
def test_configurations_that_cannot_train_stop_with_one_line(fake_esc10, tmp_path, extra, message):
    """Issue 15 item 3: a one-line message, no traceback, no training started."""
    output = tmp_path / "out"
    result = run_recipe(with_options(training_command("focalnet_cpu.yaml", fake_esc10, output), *extra))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not list((output / "save").glob("CKPT+*")) and not (output / "train_log.txt").exists()


@pytest.mark.slow
def test_a_missing_imagenet_file_stops_with_one_line(fake_esc10, tmp_path):
    """hparams/focalnet.yaml with --pretrained_backbone naming no file: no traceback, no training."""
    output = tmp_path / "out"
    command = training_command("focalnet.yaml", fake_esc10, output, "--pretrained_backbone",
                               str(tmp_path / "missing.pth"))
    result = run_recipe(command)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pretrained_backbone:") and "missing.pth" in last
    assert not list((output / "save").glob("CKPT+*")) and not (output / "train_log.txt").exists()
    assert not list((output / "save").glob("*.json"))  # stopped before preparing the data


@pytest.mark.slow
@pytest.mark.parametrize("method", ["piq", "lmac"])
def test_posthoc_interpreter_trains_under_torchrun(trained_runs, tmp_path, method):
    """recipes/train_{piq,lmac}.py with 2 gloo processes: DDP through the interpreter's
    training forward (posthoc.InterpreterForward), one writer."""
    classifier = trained_runs("focalnet_cpu.yaml")
    output = tmp_path / method
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_port", str(_free_port()), str(REPO / "recipes" / f"train_{method}.py"),
               str(REPO / "hparams" / f"{method}_focalnet_cpu.yaml"),
               "--classifier_folder", str(classifier), "--output_folder", str(output),
               "--number_of_epochs", "1", "--batch_size", "8", "--distributed_backend", "gloo"]
    result = run_torchrun(command)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert logged(output / "train_log.txt", "epoch") == ["1"]
    assert json.loads((output / f"{method}_training.json").read_text())["epochs"] == 1
    assert len(list((output / "save").glob("CKPT+*"))) == 1
