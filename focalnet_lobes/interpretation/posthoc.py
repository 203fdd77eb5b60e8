"""What the training recipes of post-hoc interpreters share (``recipes/train_lmac.py``).

A post-hoc interpreter (L-MAC, PIQ) is trained on a frozen classifier from the
output folder of ``recipes/train.py``, on that classifier's own manifests and
clip length: the command line names the classifier folder, the interpreter's
sizes are filled in from the classifier, the training time is carried across
resumed runs in the checkpoints' meta.
"""

import functools
import logging
import json
import os
import pathlib
import time

import speechbrain as sb
import torch

from focalnet_lobes.training.plan import TrainingPlanError, wrap_distributed

logger = logging.getLogger(__name__)

FILLED_FROM_CLASSIFIER = ("n_classes", "representation_dim")


def _yaml_mapping(text):
    """Top-level mapping of a YAML text without instantiating tags ({} if empty)."""
    from ruamel.yaml import YAML

    data = YAML(typ="rt").load(text) if text and text.strip() else None
    return dict(data) if data else {}


def classifier_folder_from(hparams_file, overrides, method="The interpreter"):
    """The ``classifier_folder`` of the command-line overrides, else of the YAML file.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The recipe's YAML.
    overrides : str
        The command-line overrides (YAML text, as ``sb.parse_arguments`` gives them).
    method : str
        Named in the error.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        When neither gives a folder.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mktemp(suffix=".yaml")
    >>> _ = open(path, "w").write("classifier_folder: !PLACEHOLDER\\n")
    >>> classifier_folder_from(path, "classifier_folder: results/focalnet_cpu/1986")
    'results/focalnet_cpu/1986'
    >>> classifier_folder_from(path, "", "L-MAC")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: L-MAC needs a trained classifier: pass --classifier_folder ...
    """
    folder = _yaml_mapping(overrides).get("classifier_folder")
    if folder is None:
        with open(hparams_file, encoding="utf-8") as fin:
            folder = _yaml_mapping(fin.read()).get("classifier_folder")
    if not isinstance(folder, str) or not folder:
        raise ValueError(
            f"{method} needs a trained classifier: pass --classifier_folder <output folder "
            "of recipes/train.py> (e.g. results/focalnet_cpu/1986)"
        )
    return folder


def overrides_with_classifier(overrides, n_classes, representation_dim):
    """Add the classifier's ``n_classes`` and ``representation_dim`` to the overrides.

    Values given on the command line must match the classifier.

    Arguments
    ---------
    overrides : str
        Command-line overrides (YAML text).
    n_classes, representation_dim : int
        From the classifier.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        When a given value does not match the classifier.

    Example
    -------
    >>> print(overrides_with_classifier("lr: 0.01", n_classes=10, representation_dim=256))
    lr: 0.01
    n_classes: 10
    representation_dim: 256
    >>> overrides_with_classifier("n_classes: 50", 10, 256)
    Traceback (most recent call last):
    ...
    ValueError: --n_classes 50 does not match the classifier (10)
    """
    given = _yaml_mapping(overrides)
    lines = [overrides] if overrides and overrides.strip() else []
    for key, value in zip(FILLED_FROM_CLASSIFIER, (n_classes, representation_dim)):
        if key in given:
            if int(given[key]) != value:
                raise ValueError(f"--{key} {given[key]} does not match the classifier ({value})")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def load_posthoc_hparams(hparams_file, overrides):
    """Load a post-hoc recipe's YAML, its checkpointer ready to train or resume in its folder.

    The YAML with its overrides (:func:`~focalnet_lobes.training.plan.load_recipe_hparams`),
    the checkpointer keeping the random state so that a resumed run draws what an
    uninterrupted one would (:func:`~focalnet_lobes.training.checkpoints.keep_random_state`),
    and a checkpoint already in the folder checked against this run's settings
    (:func:`~focalnet_lobes.training.checkpoints.check_resumable`: one line, nothing written).
    A stop here removes the empty folders the load created (SpeechBrain's ``Checkpointer``
    makes ``<output_folder>/save`` at once;
    :func:`~focalnet_lobes.training.plan.no_empty_folders_left_on`).

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The recipe's YAML (``hparams/lmac_*.yaml``, ``hparams/piq_*.yaml``).
    overrides : str or dict or None
        As from :func:`overrides_with_classifier`.

    Returns
    -------
    dict
        The loaded hyperparameters.

    Raises
    ------
    TrainingPlanError
        The file is missing, an override names no key of it, or an object rejects its value.
    focalnet_lobes.training.checkpoints.CheckpointMismatchError
        The folder holds a checkpoint written with other settings.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> path = root / "demo.yaml"
    >>> _ = path.write_text(
    ...     "output_folder: !PLACEHOLDER\\nsave_folder: !ref <output_folder>/save\\nepochs: 2\\n"
    ...     "counter: !new:speechbrain.utils.epoch_loop.EpochCounter\\n    limit: !ref <epochs>\\n"
    ...     "checkpointer: !new:focalnet_lobes.training.checkpoints.AtomicCheckpointer\\n"
    ...     "    checkpoints_dir: !ref <save_folder>\\n    recoverables:\\n        counter: !ref <counter>\\n"
    ...     "late: !new:focalnet_lobes.models.stems.ConvStem\\n    strided_blocks: 1\\n")
    >>> hparams = load_posthoc_hparams(path, {"output_folder": str(root / "run")})
    >>> (root / "run" / "save").is_dir(), hparams["counter"].limit
    (True, 2)
    >>> _ = path.write_text(path.read_text().replace("strided_blocks: 1", "strided_blocks: 5"))
    >>> load_posthoc_hparams(path, {"output_folder": str(root / "stopped")})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: ...demo.yaml: ...
    >>> (root / "stopped").exists()
    False
    """
    from focalnet_lobes.training.checkpoints import (
        CheckpointMismatchError, check_resumable, keep_random_state,
    )
    from focalnet_lobes.training.plan import load_recipe_hparams, no_empty_folders_left_on

    with no_empty_folders_left_on((TrainingPlanError, CheckpointMismatchError), hparams_file, overrides):
        hparams = load_recipe_hparams(hparams_file, overrides)
        keep_random_state(hparams["checkpointer"])
        check_resumable(hparams["checkpointer"])
    return hparams


def classifier_datasets(save_folder, sample_rate, clip_seconds, audio_cache_size=0):
    """The classifier's train/valid/test datasets, clips as the classifier was trained on.

    Reads the manifests ``save_folder/{train,valid,test}.json`` written by the
    preparation of ``recipes/train.py``; items ``id``, ``sig`` (the clip read by
    :func:`focalnet_lobes.data.audio.load_audio` at ``sample_rate``, cut or padded to
    ``clip_seconds``) and ``label``. An empty manifest gives ``None``.

    Arguments
    ---------
    save_folder : str or pathlib.Path
        The classifier's ``save/`` folder.
    sample_rate : int
        Hz.
    clip_seconds : float
        Clip length in seconds.
    audio_cache_size : int
        Decoded clips kept in memory (0: none).

    Returns
    -------
    dict
        ``{"train", "valid", "test"}`` -> ``DynamicItemDataset`` or ``None``.

    Example
    -------
    >>> import tempfile, soundfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> soundfile.write(folder / "a.wav", torch.zeros(800).numpy(), 8000)
    >>> for split in ("train", "valid"):
    ...     _ = (folder / f"{split}.json").write_text(
    ...         json.dumps({"a": {"wav": str(folder / "a.wav"), "label": 3}})
    ...     )
    >>> _ = (folder / "test.json").write_text("{}")
    >>> data = classifier_datasets(folder, 16000, 0.5)
    >>> data["train"][0]["sig"].shape, int(data["train"][0]["label"]), data["test"]
    (torch.Size([8000]), 3, None)
    """
    import speechbrain as sb

    from focalnet_lobes.data.audio import fix_length, load_audio

    num_samples = int(sample_rate * clip_seconds)

    @functools.lru_cache(maxsize=int(audio_cache_size))
    def read_clip(path):
        return fix_length(load_audio(path, sample_rate), num_samples)

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return read_clip(wav)

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(label):
        return torch.tensor(int(label))

    datasets = {}
    for split in ("train", "valid", "test"):
        path = os.path.join(save_folder, f"{split}.json")
        with open(path, encoding="utf-8") as fin:
            manifest = json.load(fin)
        datasets[split] = (
            sb.dataio.dataset.DynamicItemDataset(
                manifest,
                dynamic_items=[audio_pipeline, label_pipeline],
                output_keys=["id", "sig", "label"],
            )
            if manifest
            else None
        )
    return datasets


def recorded_train_seconds(checkpointer):
    """Training seconds recorded in the latest end-of-epoch checkpoint (0 if none).

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer

    Returns
    -------
    float

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     checkpointer = Checkpointer(folder)
    ...     before = recorded_train_seconds(checkpointer)
    ...     _ = checkpointer.save_checkpoint(meta={"loss": 1.0, "train_seconds": 12.5})
    ...     after = recorded_train_seconds(checkpointer)
    >>> before, after
    (0.0, 12.5)
    """
    latest = checkpointer.find_checkpoint(ckpt_predicate=lambda c: "train_seconds" in c.meta)
    return float(latest.meta["train_seconds"]) if latest is not None else 0.0


def count_parameters(module):
    """Number of trainable parameters of a module.

    Example
    -------
    >>> count_parameters(torch.nn.Linear(2, 3))
    9
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class InterpreterForward(torch.nn.Module):
    """An interpreter's training forward (``piq_forward``, ``lmac_forward``) as ``forward``.

    ``DistributedDataParallel`` synchronises gradients only of computations run
    through its own ``forward``; the post-hoc interpreters train through a method
    of their own, which this module exposes as ``forward`` so that DDP can wrap it.

    Example
    -------
    >>> class Interpreter(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = torch.nn.Parameter(torch.ones(1))
    ...     def lmac_forward(self, classifier, features):
    ...         return self.scale * classifier(features)
    >>> module = InterpreterForward(Interpreter(), "lmac_forward")
    >>> module(torch.nn.Identity(), torch.ones(2)).tolist(), sorted(module.state_dict())
    ([1.0, 1.0], ['interpreter.scale'])
    """

    def __init__(self, interpreter, method):
        super().__init__()
        self.interpreter = interpreter
        self.method = method

    def forward(self, classifier, features):
        """``getattr(self.interpreter, self.method)(classifier, features)``."""
        return getattr(self.interpreter, self.method)(classifier, features)


class PostHocBrain(sb.Brain):
    """The epoch bookkeeping that the post-hoc interpreters' Brains share.

    Subclasses (``LMACBrain`` in ``recipes/train_lmac.py``, ``PIQBrain`` in
    ``recipes/train_piq.py``) define ``compute_forward`` and
    ``compute_objectives``, adding each term's per-clip sum to
    ``self.stage_sums[name]`` and the batch size to ``self.stage_count``. This
    class resets them per stage, logs their per-clip means every epoch (train
    and valid), keeps the checkpoint with the lowest validation loss (meta:
    ``loss`` and the cumulated training ``train_seconds``, carried across resumed
    runs by :func:`recorded_train_seconds`) and logs the test stage
    (``self.test_stats``). Without validation clips (``validates`` False: a
    classifier trained without validation folds, as each fold's model of the default
    cross-validation; watched validation folds still count) every epoch is logged and
    checkpointed when its training ends and only the last epoch's checkpoint is
    kept (meta without ``loss``): a fixed schedule, nothing selected on data.

    Example
    -------
    >>> brain = PostHocBrain(modules={"m": torch.nn.Linear(1, 1)}, run_opts={"device": "cpu"})
    >>> brain.on_stage_start(sb.Stage.VALID)
    >>> brain.stage_sums, brain.stage_count = {"fidelity": 3.0}, 4
    >>> brain._stage_stats(0.5)
    {'fidelity': 0.75, 'loss': 0.5}
    """

    #: The interpreter's training forward, ``(classifier, features) -> outputs``.
    forward_method = "forward"
    #: Whether a validation split is evaluated every epoch (set by :func:`train_posthoc`).
    validates = True

    def interpreter_forward(self, features):
        """The interpreter's training forward on ``features``, through DDP under ``torchrun``."""
        interpreter = self.modules.interpreter
        if isinstance(interpreter, torch.nn.parallel.DistributedDataParallel):
            return interpreter(self.classifier, features)
        return getattr(interpreter, self.forward_method)(self.classifier, features)

    def _wrap_distributed(self):
        """Under ``torchrun``, DDP-wrap the interpreter's training forward (CPU too)."""
        if self.distributed_launch:
            self.modules["interpreter"] = InterpreterForward(
                self.modules["interpreter"], self.forward_method
            )
            wrap_distributed(self)
        else:
            super()._wrap_distributed()

    def on_fit_start(self):
        """Recover (as every Brain) and the training time spent before this run."""
        super().on_fit_start()
        self.train_seconds = recorded_train_seconds(self.checkpointer)

    def on_stage_start(self, stage, epoch=None):
        """Reset the per-stage sums; start the epoch clock."""
        self.stage_sums = {}
        self.stage_count = 0
        if stage == sb.Stage.TRAIN:
            self.epoch_start = time.perf_counter()

    def _stage_stats(self, stage_loss):
        count = max(self.stage_count, 1)
        stats = {name: total / count for name, total in self.stage_sums.items()}
        stats["loss"] = stage_loss
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log every epoch, checkpoint the best by validation loss (or the last), log the test stage."""
        stats = self._stage_stats(stage_loss)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            if not self.validates:  # a fixed schedule: the epoch ends with its training
                self._end_epoch(epoch)
        elif stage == sb.Stage.VALID:
            self._end_epoch(epoch, stats)
        elif stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            self.test_stats = stats

    def _end_epoch(self, epoch, valid_stats=None):
        """Log the epoch and checkpoint it: keep the lowest validation loss, or the last."""
        self.train_seconds += time.perf_counter() - self.epoch_start
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]},
            train_stats=self.train_stats,
            **({"valid_stats": valid_stats} if valid_stats is not None else {}),
        )
        if valid_stats is None:
            # Saved from the training stage: SpeechBrain resets its step count and running
            # loss only after on_stage_end, so do it first, or the checkpoint carries them
            # into the test loss and into the next epoch of a resumed run (as in train.py).
            self.step, self.avg_train_loss = 0, 0.0
            self.checkpointer.save_and_keep_only(
                meta={"train_seconds": self.train_seconds}, num_to_keep=1
            )
        else:
            self.checkpointer.save_and_keep_only(
                meta={"loss": valid_stats["loss"], "train_seconds": self.train_seconds},
                min_keys=["loss"],
            )


def train_posthoc(brain_class, hparams, run_opts, trained, datasets, method, cost_file):
    """Train a post-hoc interpreter on a frozen classifier, record its cost, test it.

    The shared body of ``recipes/train_lmac.py`` and ``recipes/train_piq.py``: the
    Brain (``brain_class``, a :class:`PostHocBrain`) gets the YAML's
    ``interpreter`` as its only module and the frozen classifier and front end as
    plain attributes; it trains on ``datasets["train"]``, keeps the best
    checkpoint by validation loss (or, when ``datasets["valid"]`` is None, as for
    a classifier trained without validation folds, the last epoch's: the YAML's
    number of epochs, nothing selected on data), then the main process writes
    ``cost_file`` in ``output_folder`` (``method``, ``classifier_folder``,
    ``seconds`` of training summed over resumed runs, ``epochs``,
    ``seconds_per_epoch``, ``params``, ``best_valid_loss`` (None without
    validation), ``checkpoint_selection`` (``"valid_loss"`` or
    ``"last_epoch"``), ``device``), and the test split (when not empty) is
    evaluated with the kept checkpoint.

    Arguments
    ---------
    brain_class : type
        A :class:`PostHocBrain` subclass.
    hparams : dict
        The loaded YAML (``interpreter``, ``opt_class``, ``checkpointer``,
        ``epoch_counter``, ``output_folder``, ``train_dataloader_opts``,
        ``valid_dataloader_opts``).
    run_opts : dict
        SpeechBrain's run options.
    trained : object
        The trained classifier (:mod:`focalnet_lobes.inference.trained`): ``model``,
        ``frontend``, ``folder``, ``to(device)``.
    datasets : dict
        :func:`classifier_datasets` of that classifier.
    method : str
        Name written in the cost file (``"lmac"``, ``"piq"``).
    cost_file : str
        File name of the training cost in ``output_folder``.

    Returns
    -------
    PostHocBrain
        The trained Brain.

    Raises
    ------
    focalnet_lobes.training.plan.TrainingPlanError
        When the classifier has no training clips (one line, before any work).
    """
    from speechbrain.utils.distributed import if_main_process

    if datasets["train"] is None:
        raise TrainingPlanError(
            f"The classifier in {trained.folder} has no training clips "
            f"in its manifests ({trained.manifest('train')})"
        )
    brain = brain_class(
        modules={"interpreter": hparams["interpreter"]},
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    trained.to(brain.device)
    brain.classifier = trained.model.eval().requires_grad_(False)
    brain.frontend = trained.frontend.eval()
    brain.validates = datasets["valid"] is not None
    if not brain.validates:
        epochs = hparams["epoch_counter"].limit
        logger.info("The classifier has no validation clips: %s trains a fixed schedule of %d "
                    "epoch%s and keeps the last", method, epochs, "" if epochs == 1 else "s")
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )

    epochs = int(hparams["epoch_counter"].current)
    min_key = "loss" if brain.validates else None
    best = hparams["checkpointer"].find_checkpoint(min_key=min_key)
    seconds = recorded_train_seconds(hparams["checkpointer"])
    cost = {
        "method": method,
        "classifier_folder": str(pathlib.Path(trained.folder).resolve()),
        "seconds": seconds,
        "epochs": epochs,
        "seconds_per_epoch": seconds / epochs if epochs else None,
        "params": count_parameters(hparams["interpreter"]),
        "best_valid_loss": best.meta["loss"] if best is not None and min_key else None,
        "checkpoint_selection": "valid_loss" if min_key else "last_epoch",
        "device": str(brain.device),
    }
    if if_main_process():  # one writer
        with open(os.path.join(hparams["output_folder"], cost_file), "w") as fout:
            json.dump(cost, fout, indent=2)
        logger.info("%s trained %d epochs in %.1f s (%d parameters)",
                    method, epochs, seconds, cost["params"])

    if datasets["test"] is None:
        logger.warning("The test manifest is empty: skipping the test stage")
        return brain
    brain.evaluate(
        datasets["test"], min_key=min_key, test_loader_kwargs=hparams["valid_dataloader_opts"]
    )
    return brain


def load_best_interpreter(interpreter, checkpoints_dir, folder, classifier_folder=None,
                          trained_on=None, method="The interpreter", error=FileNotFoundError,
                          device="cpu"):
    """Load the checkpoint with the lowest validation loss (or the only one) into a post-hoc interpreter.

    Shared by :func:`focalnet_lobes.interpretation.lmac.load_lmac_interpreter` and
    :func:`focalnet_lobes.interpretation.piq.load_piq_interpreter` (through
    :func:`load_trained_interpreter`). The weights are read with ``weights_only=True``.

    Arguments
    ---------
    interpreter : torch.nn.Module
        The interpreter built from the run's YAML.
    checkpoints_dir : str or pathlib.Path
        The run's checkpoint folder (``save/``).
    folder : str or pathlib.Path
        The run's output folder (named in the warning).
    classifier_folder : str or pathlib.Path or None
        The classifier it is about to interpret; a warning is logged when it is
        not ``trained_on`` (the classifier the run was trained on).
    trained_on : str or None
        ``classifier_folder`` of the run's YAML.
    method : str
        Named in the messages (``"L-MAC"``, ``"PIQ"``).
    error : type
        Exception raised when there is no checkpoint.
    device : str or torch.device
        Where the interpreter goes.

    Returns
    -------
    torch.nn.Module
        ``interpreter`` with the best weights, in evaluation mode.

    Raises
    ------
    error
        When ``checkpoints_dir`` holds no checkpoint.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> trained = torch.nn.Linear(2, 2)
    >>> _ = Checkpointer(folder, {"interpreter": trained}).save_checkpoint(meta={"loss": 0.1})
    >>> loaded = load_best_interpreter(torch.nn.Linear(2, 2), folder, folder)
    >>> torch.equal(loaded.weight, trained.weight), loaded.training
    (True, False)
    """
    from speechbrain.utils.checkpoints import Checkpointer

    checkpointer = Checkpointer(checkpoints_dir)
    # The lowest validation loss; a fixed-schedule run (no loss recorded) keeps its last epoch.
    checkpoint = checkpointer.find_checkpoint(min_key="loss") or checkpointer.find_checkpoint()
    if checkpoint is None:
        raise error(
            f"No checkpoint in {checkpoints_dir}: has the {method} training run finished at "
            "least one epoch?"
        )
    if classifier_folder is not None and trained_on is not None:
        if pathlib.Path(classifier_folder).resolve() != pathlib.Path(trained_on).resolve():
            logger.warning(
                "%s in %s was trained on the classifier in %s, not %s",
                method, folder, trained_on, classifier_folder,
            )
    state = torch.load(
        checkpoint.paramfiles["interpreter"], map_location="cpu", weights_only=True
    )
    interpreter.load_state_dict(state)
    return interpreter.eval().to(device)


def load_training_cost_file(folder, filename, recipe, error=FileNotFoundError):
    """The training-cost JSON a post-hoc training run wrote (``piq_training.json``, ``lmac_training.json``).

    Shared by :func:`focalnet_lobes.interpretation.piq.load_training_cost` and
    :func:`focalnet_lobes.interpretation.lmac.load_training_cost`.

    Arguments
    ---------
    folder : str or pathlib.Path
        The run's output folder.
    filename : str
        The file written by :func:`train_posthoc`.
    recipe : str
        The training recipe, named in the error (``"recipes/train_piq.py"``).
    error : type
        Exception raised when the file is missing.

    Returns
    -------
    dict
        ``seconds``, ``epochs``, ``seconds_per_epoch``, ``params``,
        ``best_valid_loss``, ``device``, ``classifier_folder``, ``method``.

    Example
    -------
    >>> import tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "cost.json").write_text('{"seconds": 12.5}')
    >>> load_training_cost_file(folder, "cost.json", "recipes/train_x.py")
    {'seconds': 12.5}
    """
    path = pathlib.Path(folder) / filename
    if not path.is_file():
        raise error(f"{path} is missing: has {recipe} finished in {folder}?")
    return json.loads(path.read_text(encoding="utf-8"))


def load_trained_interpreter(folder, interpreter_type, method, recipe, error=FileNotFoundError,
                             classifier_folder=None, device="cpu", article="a"):
    """The trained post-hoc interpreter of an output folder, with its best weights.

    Rebuilds the interpreter from the folder's ``hyperparams.yaml`` (with
    ``output_folder`` and ``save_folder`` pointed at this folder, which may have
    been moved) and loads the checkpoint of ``save/`` with the lowest validation
    loss, or its only one after a fixed schedule (:func:`load_best_interpreter`,
    ``weights_only=True``). Shared by
    :func:`focalnet_lobes.interpretation.piq.load_piq_interpreter` and
    :func:`focalnet_lobes.interpretation.lmac.load_lmac_interpreter`.

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of the training recipe.
    interpreter_type : type
        What the YAML's ``interpreter`` must be.
    method, recipe, article : str
        Named in the messages: ``"an" "L-MAC"`` run of ``"recipes/train_lmac.py"``.
    error : type
        Exception raised for a folder that is not a finished run.
    classifier_folder : str or pathlib.Path or None
        The classifier it will interpret; a warning is logged when the
        interpreter was trained on another one.
    device : str
        Where to put the interpreter.

    Returns
    -------
    torch.nn.Module
        In evaluation mode.

    Raises
    ------
    error
        No ``hyperparams.yaml``, no interpreter of ``interpreter_type`` in it, or
        no checkpoint.

    Example
    -------
    >>> load_trained_interpreter("/nonexistent", torch.nn.Module, "PIQ", "recipes/train_piq.py")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent is not a PIQ training output folder: /nonexistent/hyperparams.yaml is missing (expected the output_folder of recipes/train_piq.py)
    """
    from hyperpyyaml import load_hyperpyyaml

    folder = pathlib.Path(folder)
    hparams_file = folder / "hyperparams.yaml"
    if not hparams_file.is_file():
        raise error(
            f"{folder} is not {article} {method} training output folder: {hparams_file} is missing "
            f"(expected the output_folder of {recipe})"
        )
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(
            fin, {"output_folder": str(folder), "save_folder": str(folder / "save")}
        )
    interpreter = hparams.get("interpreter")
    if not isinstance(interpreter, interpreter_type):
        raise error(f"{hparams_file} does not define {article} {method} interpreter")
    return load_best_interpreter(
        interpreter, folder / "save", folder, classifier_folder,
        hparams.get("classifier_folder"), method, error, device,
    )
