"""Shared test fixtures: the real ESC-10 data when present, and generated audio."""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))

ESC50_DEV = Path(os.environ.get("ESC50_DEV", REPO.parent / "shared" / "ESC-50-dev"))

#: pytest-xdist workers running the suite (pytest.ini: ``-n 2``); 1 without xdist.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
#: The cores this process may run on (a CPU-pinned container counts its own).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
#: Threads for each worker's torch and its recipe subprocesses: cores / workers, at least 1
#: and at most 2 (as before xdist), so that two workers on 2 cores do not oversubscribe them.
THREADS = max(1, min(2, CORES // WORKERS))


def pytest_configure(config):
    """Each xdist worker's own torch computations use its share of the cores."""
    if WORKERS > 1:
        import torch

        torch.set_num_threads(THREADS)


def recipe_env(**extra):
    """The environment of a recipe subprocess: this checkout first on the path, the worker's
    threads; ``extra`` variables are added or replace those."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(THREADS), **extra}


@pytest.fixture(scope="session")
def esc50_dev():
    """The real ESC-10 folder (ESC-50 layout); skips the test when it is absent."""
    if not (ESC50_DEV / "meta" / "esc50.csv").is_file():
        pytest.skip(f"real data not found at {ESC50_DEV}")
    return ESC50_DEV


def built_once(tmp_path_factory, name, build):
    """The folder ``name`` built by ``build(folder)`` once per test session, shared by the
    pytest-xdist workers (a file lock: the first worker to ask builds it, the others wait
    for it and reuse it).

    Every build writes into a folder of its own, ``built_once/<name>-<random>``, and the
    marker ``built_once/<name>.done`` (written atomically) names the one that finished; a
    marker naming no folder is built again. A failed build is
    removed; a crashed one (its worker killed) is left where it is, so that a recipe it
    started and that outlives it writes there, never into the build of the next worker to
    ask, which builds the folder again under a new name.

    Arguments
    ---------
    tmp_path_factory : pytest.TempPathFactory
        The session's; with xdist, the shared folder is in the parent of the worker's base
        temporary folder (the session's, common to the workers).
    name : str
        The folder's name (before the random suffix).
    build : callable
        ``build(folder)`` writes the folder (``folder`` does not exist yet).

    Returns
    -------
    pathlib.Path
        The built folder. Callers must not write in it: another worker may be reading it.
    """
    import tempfile

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    shared = root / "built_once"
    shared.mkdir(parents=True, exist_ok=True)
    done = shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        built = done.read_text(encoding="utf-8").strip() if done.is_file() else ""
        if built and (shared / built).is_dir():
            return shared / built
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=shared))
        folder.rmdir()  # a unique name; build() creates the folder
        try:
            build(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        staged = done.with_name(f"{done.name}.{folder.name}")
        staged.write_text(folder.name, encoding="utf-8")
        os.replace(staged, done)  # the marker appears whole or not at all
    return folder


@pytest.fixture(scope="session")
def fake_esc10(tmp_path_factory):
    """Generated ESC-10 classes in the ESC-50 layout: 2 clips per class and fold, 44.1 kHz
    stereo, 1 s; generated once for all workers (read-only: no recipe writes in a data folder)."""
    from helpers_data import make_fake_esc50

    def build(folder):
        make_fake_esc50(folder, n_per_class=2, sample_rate=44100, channels=2, duration_s=1.0)

    return built_once(tmp_path_factory, "fake_esc50", build)


def training_command(hparams, data_folder, output_folder, *extra, epochs=2):
    """The README's training command with small-data overrides (1 s clips, batch 8)."""
    import sys

    return [
        sys.executable,
        str(REPO / "recipes" / "train.py"),
        str(REPO / "hparams" / hparams),
        "--data_folder", str(data_folder),
        "--output_folder", str(output_folder),
        "--esc10", "True",
        "--clip_seconds", "1.0",
        "--batch_size", "8",
        "--number_of_epochs", str(epochs),
        "--device", "cpu",
        *extra,
    ]


def real_training_command(hparams, data_folder, output_folder, *extra, epochs):
    """The README's training command on the real ESC-10 clips (full 5 s clips, YAML batch)."""
    import sys

    return [
        sys.executable,
        str(REPO / "recipes" / "train.py"),
        str(REPO / "hparams" / hparams),
        "--data_folder", str(data_folder),
        "--output_folder", str(output_folder),
        "--esc10", "True",
        "--number_of_epochs", str(epochs),
        "--device", "cpu",
        *extra,
    ]


def run_recipe(command, **kwargs):
    """Run a recipe command from the repository root; returns the CompletedProcess."""
    import subprocess

    return subprocess.run(
        command, cwd=REPO, env=recipe_env(), capture_output=True, text=True, **kwargs
    )


def kill_after_first_checkpoint(command, output_folder, timeout=300):
    """Start a training ``command`` and SIGKILL its process group once ``output_folder/save``
    holds a checkpoint (they appear atomically: epoch 2 is then running).

    Fails the calling test if the run ends before it could be interrupted.
    """
    import signal
    import subprocess
    import time

    process = subprocess.Popen(
        command, cwd=REPO, env=recipe_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + timeout
    checkpointed = False
    while time.time() < deadline and process.poll() is None:
        checkpointed = bool(list((Path(output_folder) / "save").glob("CKPT+*")))
        if checkpointed:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpointed, f"no checkpoint in {output_folder}/save within {timeout} s"


def kept_checkpoints(save_folder):
    """The recipe's checkpoints in ``save_folder``, most recent first, checking the keep rule.

    ``save_and_keep_only(min_keys=["error"])`` keeps the checkpoint of lowest validation
    error and the most recent one (SpeechBrain's ``keep_recent``): one checkpoint when the
    last epoch is the best, two otherwise (or on a tie). Each is a complete, distinct epoch.

    Returns
    -------
    list of (Path, dict)
        Each checkpoint folder with its ``CKPT.yaml`` metadata, newest first.
    """
    import yaml

    kept = [(path, yaml.safe_load((path / "CKPT.yaml").read_text()))
            for path in Path(save_folder).glob("CKPT+*")]
    kept.sort(key=lambda item: item[1]["unixtime"], reverse=True)
    assert 1 <= len(kept) <= 2, [path.name for path, _ in kept]
    assert all((path / "model.ckpt").is_file() for path, _ in kept)
    lowest = min(meta["error"] for _, meta in kept)
    assert all(meta["error"] == lowest for _, meta in kept[1:]), kept  # older one: the best
    if len(kept) == 2:
        assert kept[0][1]["unixtime"] > kept[1][1]["unixtime"]
    return kept


@pytest.fixture(scope="session")
def trained_runs(fake_esc10, tmp_path_factory):
    """Output folders of 2-epoch training runs on the generated data, trained once per session.

    ``trained_runs("focalnet_cpu.yaml")`` returns the output folder, training on first use.
    Each run is trained once for all the pytest-xdist workers (:func:`built_once`); each
    worker gets its own copy (tests write in it, e.g. ``interpretation/``), whose
    ``hyperparams.yaml`` still names the trained folder (the recipes read ``<folder>/save``).
    """
    folders = {}

    def get(hparams):
        if hparams not in folders:
            name = hparams.replace(".yaml", "")

            def train(folder):
                result = run_recipe(training_command(hparams, fake_esc10, folder))
                assert result.returncode == 0, result.stderr[-4000:]

            trained = built_once(tmp_path_factory, name, train)
            output = tmp_path_factory.mktemp(name) / "out"
            shutil.copytree(trained, output, symlinks=True)
            folders[hparams] = output
        return folders[hparams]

    return get


def load_script(path):
    """Import a script of this checkout (``benchmarks/<name>.py``, ``recipes/<name>.py``: not
    packages) as a fresh module, under the name ``<name>_under_test``."""
    path = REPO / path
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name):
    """Import benchmarks/<name>.py (the benchmarks folder is not a package)."""
    return load_script(f"benchmarks/{name}.py")
