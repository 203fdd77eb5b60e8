"""Training-plan arithmetic shared by the training recipes: steps, schedules, checks.

The per-step learning-rate schedule (``OneCycleLR`` in the YAML files) must be
built for the number of optimiser steps the run really takes, which depends on
the number of processes (``torchrun``), ``drop_last``, the batch size and
SpeechBrain's ``--grad_accumulation_factor``; a configuration that cannot take a
single step must stop before any work with a one-line message; and a run that
is continued with more epochs (or another batch size or number of processes)
must get a schedule for its new length instead of stepping past the old one.

The functions are small and, but for the YAML loading and the clean-up of the empty
folders a stopped run's load created (``folders_to_create``, ``remove_empty_folders``,
``no_empty_folders_left_on``), pure, so that the recipes stay thin and the arithmetic is
tested directly.
"""

import contextlib
import gc
import math
import os
import warnings

import torch

ESC50_FOLDS = (1, 2, 3, 4, 5)


class TrainingPlanError(ValueError):
    """A configuration that cannot train; the message is one line saying what to change."""


def world_size():
    """Number of training processes: the initialised process group, else ``WORLD_SIZE``, else 1.

    Example
    -------
    >>> world_size() >= 1
    True
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def process_group_closed_at_exit():
    """Run a recipe's ``main``, then close the ``torch.distributed`` process group it opened.

    Under ``torchrun`` with gloo, a finished run could abort while the interpreter
    shut down ("terminate called without an active exception", SIGABRT): the
    process group, kept alive by reference cycles (the Brain and its
    ``DistributedDataParallel`` modules) until the interpreter's last garbage
    collection, still had worker threads, and one that released a finished
    collective's tensors had to take the GIL during finalisation (a core dump
    shows ``ProcessGroupGloo::AsyncWork::~AsyncWork`` -> ``take_gil`` ->
    ``pthread_exit``; pytorch/pytorch#179291 describes the same). So on the way
    out the group is destroyed and the garbage is collected while the
    interpreter is alive, which frees the group and joins its threads. After a
    normal end the processes first wait for each other (a barrier), so that no
    process closes its connections while another still exchanges data; after an
    error there is no barrier (the other processes may never reach one). Does
    nothing but collect garbage when no process group was initialised.

    Example
    -------
    >>> with process_group_closed_at_exit():
    ...     world_size()
    1
    """
    def initialised():
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    try:
        yield
        if initialised():  # reached after a normal end only
            torch.distributed.barrier()
    finally:
        if initialised():
            torch.distributed.destroy_process_group()
        gc.collect()


def clips_per_process(num_clips, num_processes=1, drop_last=False):
    """Clips one process sees per epoch under ``torch.utils.data.DistributedSampler``.

    SpeechBrain's ``Brain.make_dataloader`` gives the training loader's
    ``drop_last`` to the ``DistributedSampler`` it builds under ``torchrun``: with
    it the sampler drops the tail (``floor(N / W)`` clips each), without it the
    sampler pads by repeating clips (``ceil(N / W)`` each). One process: ``N``.

    Arguments
    ---------
    num_clips : int
        Clips in the training split, N >= 0.
    num_processes : int
        World size W >= 1.
    drop_last : bool
        The training loader's ``drop_last``.

    Returns
    -------
    int

    Example
    -------
    >>> clips_per_process(241, 2, drop_last=True), clips_per_process(241, 2, drop_last=False)
    (120, 121)
    >>> clips_per_process(241)
    241
    """
    if num_processes <= 1:
        return int(num_clips)
    if drop_last:
        return num_clips // num_processes
    return math.ceil(num_clips / num_processes)


def optimizer_steps_per_epoch(
    num_clips, batch_size, drop_last=False, num_processes=1, grad_accumulation_factor=1
):
    """Optimiser steps each process takes in one epoch.

    A process iterates ``floor(n / B)`` (``drop_last``) or ``ceil(n / B)`` batches
    of its ``n`` = :func:`clips_per_process` clips, and SpeechBrain's
    ``Brain.fit_batch`` steps the optimiser on every ``grad_accumulation_factor``-th
    batch (``step % factor == 0``; the remainder of an epoch is not stepped), so
    an epoch has ``floor(batches / factor)`` optimiser steps.

    Arguments
    ---------
    num_clips : int
        Clips in the training split.
    batch_size : int
        Clips per batch (per process), >= 1.
    drop_last : bool
        The training loader's ``drop_last``.
    num_processes : int
        World size (1 without ``torchrun``).
    grad_accumulation_factor : int
        Batches per optimiser step, >= 1.

    Returns
    -------
    int
        Steps per epoch, 0 when the configuration cannot take one.

    Example
    -------
    >>> optimizer_steps_per_epoch(240, 16, drop_last=True)
    15
    >>> optimizer_steps_per_epoch(240, 16, drop_last=True, num_processes=2, grad_accumulation_factor=2)
    3
    >>> optimizer_steps_per_epoch(40, 128, drop_last=True)
    0
    """
    clips = clips_per_process(num_clips, num_processes, drop_last)
    batches = clips // batch_size if drop_last else math.ceil(clips / batch_size)
    return batches // grad_accumulation_factor


def check_folds(train_folds, valid_folds, test_folds, valid_folds_required=True):
    """Stop at once on fold settings that cannot train (before any data is read).

    Arguments
    ---------
    train_folds, valid_folds, test_folds : int or sequence of int
        ESC-50 folds (1..5) of each split.
    valid_folds_required : bool
        The validation split selects the checkpoint, so it must not be empty
        (False for a fixed schedule that keeps the last epoch).

    Raises
    ------
    TrainingPlanError
        Empty training (or validation) folds, a fold outside 1..5, or splits
        that share a fold.

    Example
    -------
    >>> check_folds([1, 2, 3], [4], [5])
    >>> check_folds([1, 2], [2], [5])
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: train_folds [1, 2] and valid_folds [2] share fold 2: a clip must be in one split only
    """
    splits = {}
    for name, folds in (("train_folds", train_folds), ("valid_folds", valid_folds),
                        ("test_folds", test_folds)):
        if isinstance(folds, (int, str)):
            folds = [folds]
        try:
            folds = [int(fold) for fold in folds]
        except (TypeError, ValueError):
            raise TrainingPlanError(
                f"{name} must be a list of fold numbers in 1..5, got {folds!r}"
            ) from None
        bad = [fold for fold in folds if fold not in ESC50_FOLDS]
        if bad:
            raise TrainingPlanError(f"{name} must be fold numbers in 1..5, got {bad}")
        splits[name] = folds
    if not splits["train_folds"]:
        raise TrainingPlanError("train_folds is empty: give at least one fold, e.g. --train_folds \"[1, 2, 3]\"")
    if valid_folds_required and not splits["valid_folds"]:
        raise TrainingPlanError(
            "valid_folds is empty: the validation fold selects the checkpoint, "
            "give one, e.g. --valid_folds \"[4]\" (or train a fixed schedule: "
            "--checkpoint_selection last_epoch)"
        )
    shared = shared_folds(splits)
    if shared:
        first, second, common = shared
        raise TrainingPlanError(
            f"{first} {splits[first]} and {second} {splits[second]} share fold "
            f"{', '.join(map(str, common))}: a clip must be in one split only"
        )


def shared_folds(folds_by_split):
    """The first two splits (in order) that share a fold, with the folds they share.

    Used by :func:`check_folds` and :func:`focalnet_lobes.data.manifests.disjoint_folds`.

    Arguments
    ---------
    folds_by_split : dict
        Split name -> sequence of fold numbers.

    Returns
    -------
    tuple or None
        ``(first name, second name, sorted shared folds)``; None when the
        splits are disjoint.

    Example
    -------
    >>> shared_folds({"train": [1, 2, 3], "valid": [4], "test": [3, 4]})
    ('train', 'test', [3])
    >>> shared_folds({"train": [1], "valid": [2]}) is None
    True
    """
    names = list(folds_by_split)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            common = sorted(set(folds_by_split[first]) & set(folds_by_split[second]))
            if common:
                return first, second, common
    return None


def last_epoch_before(start_epoch):
    """The epoch (1-based) after which something that starts at ``start_epoch`` runs.

    ``start_epoch`` is usually ``fraction * number_of_epochs``: floored, with a 1e-6
    tolerance, since ``90 * 0.7 = 62.99999...`` means epoch 63. The faithfulness terms
    (:class:`~focalnet_lobes.training.losses.MaskedInFidelityLoss`) and the weight average
    (:class:`~focalnet_lobes.training.averaging.WeightAverage`) both use it, so one
    fraction starts both after the same epoch.

    Example
    -------
    >>> last_epoch_before(90 * 0.7), last_epoch_before(20.5), last_epoch_before(0)
    (63, 20, 0)
    """
    return int(math.floor(float(start_epoch) + 1e-6))


def check_training_numbers(number_of_epochs, batch_size, grad_accumulation_factor=1):
    """Stop at once on non-positive epochs, batch size or accumulation factor.

    Raises
    ------
    TrainingPlanError
        One of the three is not a positive integer.

    Example
    -------
    >>> check_training_numbers(80, 16, 1)
    >>> check_training_numbers(80, 0)
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: batch_size must be a positive integer, got 0
    """
    for name, value in (("number_of_epochs", number_of_epochs), ("batch_size", batch_size),
                        ("grad_accumulation_factor", grad_accumulation_factor)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingPlanError(f"{name} must be a positive integer, got {value!r}")


def check_steps(num_clips, batch_size, drop_last, num_processes, grad_accumulation_factor, where=""):
    """Optimiser steps per epoch, or a one-line error when the split is too small for one.

    Arguments
    ---------
    num_clips, batch_size, drop_last, num_processes, grad_accumulation_factor
        As for :func:`optimizer_steps_per_epoch`.
    where : str
        Names the split in the message (e.g. ``"train_folds [1]"``).

    Returns
    -------
    int
        Steps per epoch, >= 1.

    Raises
    ------
    TrainingPlanError
        Not one optimiser step per epoch; the message gives the numbers and what
        to change.

    Example
    -------
    >>> check_steps(240, 16, True, 1, 1)
    15
    >>> check_steps(40, 128, True, 1, 1, where="train_folds [1]")
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: train_folds [1]: 40 training clips (40 per process over 1) make no full batch of batch_size 128 with drop_last and grad_accumulation_factor 1: use --batch_size 40 or less, or more training folds
    """
    steps = optimizer_steps_per_epoch(
        num_clips, batch_size, drop_last, num_processes, grad_accumulation_factor
    )
    if steps >= 1:
        return steps
    per_process = clips_per_process(num_clips, num_processes, drop_last)
    largest = per_process // grad_accumulation_factor
    advice = (
        f"use --batch_size {largest} or less, or more training folds"
        if largest >= 1 else "use more training folds or fewer processes"
    )
    prefix = f"{where}: " if where else ""
    raise TrainingPlanError(
        f"{prefix}{num_clips} training clips ({per_process} per process over {num_processes}) "
        f"make no full batch of batch_size {batch_size}"
        f"{' with drop_last' if drop_last else ''} and grad_accumulation_factor "
        f"{grad_accumulation_factor}: {advice}"
    )


def advance_scheduler(scheduler, position):
    """Put a freshly built per-step scheduler at optimiser step ``position``.

    The optimiser's learning rate becomes the schedule's value at ``position``
    (``last_epoch = position``), as if ``scheduler.step()`` had been called that
    many times.

    Arguments
    ---------
    scheduler : torch.optim.lr_scheduler.LRScheduler
        Built with ``last_epoch=-1`` (so at step 0).
    position : int
        Optimiser steps already taken, >= 0.

    Returns
    -------
    scheduler

    Example
    -------
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
    >>> _ = advance_scheduler(scheduler, 9)
    >>> scheduler.last_epoch, optimizer.param_groups[0]["lr"] == 1.0 / 25 / 1e4
    (9, True)
    """
    if position <= 0:
        return scheduler
    scheduler.last_epoch = position - 1
    with warnings.catch_warnings():
        # "lr_scheduler.step() before optimizer.step()": no optimiser step is meant here.
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
    return scheduler


def build_step_schedule(factory, optimizer, total_steps, position=0):
    """Build ``factory(optimizer, total_steps=total_steps)`` and advance it to ``position``.

    The schedule is a function of (optimiser step, total steps): a run continued
    with another total (more epochs, another batch size or number of processes)
    gets the schedule of its new total, evaluated at the steps already taken, so
    it continues where the new curve is at that point (for a one-cycle schedule
    extended after it finished, the learning rate rises back to the new cosine's
    value and decays again to its end over the added epochs).

    Arguments
    ---------
    factory : callable
        ``factory(optimizer, total_steps=...)`` -> scheduler (the YAML's
        ``lr_scheduler: !name:torch.optim.lr_scheduler.OneCycleLR``).
    optimizer : torch.optim.Optimizer
    total_steps : int
        Optimiser steps of the whole run, >= 1.
    position : int
        Optimiser steps already taken; clipped to ``total_steps - 1``, the
        schedule's last value.

    Returns
    -------
    torch.optim.lr_scheduler.LRScheduler

    Example
    -------
    >>> import functools
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.0)
    >>> scheduler = build_step_schedule(factory, optimizer, 30, position=15)
    >>> scheduler.total_steps, scheduler.last_epoch
    (30, 15)
    """
    scheduler = factory(optimizer, total_steps=total_steps)
    return advance_scheduler(scheduler, min(position, total_steps - 1))


def step_schedule(scheduler, total_steps):
    """Step a per-step schedule after an optimiser step, stopping at its last value.

    ``OneCycleLR`` (and every schedule of ``total_steps`` values) gives the
    learning rate of optimiser steps 0 .. total_steps - 1; stepping after the last
    one would leave the optimiser at a value past the end of the curve (or raise).
    So the learning rate after the run is the schedule's end value.

    Arguments
    ---------
    scheduler : torch.optim.lr_scheduler.LRScheduler or None
    total_steps : int

    Example
    -------
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=4)
    >>> for _ in range(4):
    ...     optimizer.step()
    ...     step_schedule(scheduler, 4)
    >>> scheduler.last_epoch, optimizer.param_groups[0]["lr"] == 1.0 / 25 / 1e4
    (3, True)
    """
    if scheduler is not None and scheduler.last_epoch < total_steps - 1:
        scheduler.step()


def wrap_distributed(brain):
    """Wrap ``brain.modules`` in ``DistributedDataParallel`` as SpeechBrain does, on CPU too.

    SpeechBrain 1.1.2's ``Brain._wrap_distributed`` converts every BatchNorm to
    ``SyncBatchNorm``, which only runs on GPUs, so a model with a BatchNorm (the
    convolutional stem) cannot train under ``torchrun --distributed_backend gloo``
    on CPU. Here the conversion is kept on GPUs and skipped on CPU, where each
    process normalises with its own batch's statistics and DDP keeps the running
    statistics of the main process (``broadcast_buffers``). Modules without
    trainable parameters are left as they are. Does nothing unless
    ``brain.distributed_launch``.

    Arguments
    ---------
    brain : speechbrain.Brain

    Example
    -------
    >>> class Plain:
    ...     distributed_launch = False
    >>> wrap_distributed(Plain())
    """
    if not brain.distributed_launch:
        return
    on_gpu = torch.device(brain.device).type == "cuda"
    for name, module in brain.modules.items():
        if not any(p.requires_grad for p in module.parameters()):
            continue
        if on_gpu:
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        brain.modules[name] = torch.nn.parallel.DistributedDataParallel(
            module,
            device_ids=[brain.device] if on_gpu else None,
            find_unused_parameters=brain.find_unused_parameters,
        )


def check_schedule(factory, total_steps):
    """Build the schedule once on a dummy optimiser; a one-line error if it cannot be built.

    ``OneCycleLR`` divides by the length of each phase, so it fails (``ZeroDivisionError``)
    when ``pct_start * total_steps`` is exactly 1 and rejects ``total_steps < 1``; this
    is found here, before any data is read or model trained.

    Arguments
    ---------
    factory : callable or None
        ``factory(optimizer, total_steps=...)`` -> scheduler; ``None`` does nothing.
    total_steps : int
        Optimiser steps of the whole run.

    Raises
    ------
    TrainingPlanError

    Example
    -------
    >>> import functools
    >>> factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.0, pct_start=0.1)
    >>> check_schedule(factory, 14)
    >>> check_schedule(factory, 10)
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: the learning-rate schedule cannot be built for 10 optimiser steps (ZeroDivisionError: float division by zero): with OneCycleLR pct_start * total steps must not be 1; change --number_of_epochs, --batch_size or pct_start
    """
    if factory is None:
        return
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        build_step_schedule(factory, optimizer, total_steps, position=total_steps - 1)
    except (ZeroDivisionError, ValueError) as error:
        raise TrainingPlanError(
            f"the learning-rate schedule cannot be built for {total_steps} optimiser steps "
            f"({type(error).__name__}: {str(error).splitlines()[0]}): with OneCycleLR "
            "pct_start * total steps must not be 1; change --number_of_epochs, --batch_size "
            "or pct_start"
        ) from None


def batch_features(frontend, ids, wavs, wav_lens=None, wav_augment=None, cache=None):
    """Features (B, 1, T, F) of a batch, waveform-augmented, from ``cache`` when that is exact.

    Without a cache, or with a waveform augmentation other than
    :class:`~focalnet_lobes.data.augment.RandomGain`, this is
    ``frontend(wav_augment(wavs, wav_lens))``. With a
    :class:`~focalnet_lobes.data.features.FeatureCache` and a random gain (or no
    augmentation) the gains are drawn from the augmentation and applied to the
    cached projected magnitudes, which is the same up to float rounding (see
    :class:`~focalnet_lobes.data.features.FeatureCache`).

    Arguments
    ---------
    frontend : focalnet_lobes.data.features.SpectrogramFrontend
        The front end (the cache's own when a cache is given).
    ids : sequence of str
        Clip ids of the rows (cache keys).
    wavs : torch.Tensor
        Waveforms (B, samples).
    wav_lens : torch.Tensor or None
        Relative lengths (B,), passed to the augmentation.
    wav_augment : torch.nn.Module or None
        Waveform augmentation, taking ``(wavs, wav_lens)`` and returning waveforms
        or ``(wavs, lens)`` (SpeechBrain's convention); None when evaluating.
    cache : focalnet_lobes.data.features.FeatureCache or None

    Returns
    -------
    torch.Tensor
        Features (B, 1, T, F).

    Example
    -------
    >>> from focalnet_lobes.data.augment import RandomGain
    >>> from focalnet_lobes.data.features import FeatureCache, SpectrogramFrontend
    >>> frontend = SpectrogramFrontend(n_mels=16)
    >>> cache = FeatureCache(frontend)
    >>> wavs = torch.randn(2, 4000)
    >>> _ = torch.manual_seed(0)
    >>> cached = batch_features(frontend, ["a", "b"], wavs, None, RandomGain(), cache)
    >>> _ = torch.manual_seed(0)
    >>> direct = batch_features(frontend, ["a", "b"], wavs, None, RandomGain(), None)
    >>> torch.allclose(cached, direct, atol=1e-5), len(cache)
    (True, 2)
    """
    from focalnet_lobes.data.augment import RandomGain

    exact = wav_augment is None or (isinstance(wav_augment, RandomGain) and wav_augment.training)
    if cache is None or not exact:
        if wav_augment is not None:
            augmented = wav_augment(wavs, wav_lens)
            wavs = augmented[0] if isinstance(augmented, tuple) else augmented
        return frontend(wavs)
    gains = None if wav_augment is None else wav_augment.sample_gains(wavs.shape[0], wavs.device)
    return cache(ids, wavs, gains)


def load_recipe_hparams(hparams_file, overrides=None):
    """Load a recipe's HyperPyYAML file with its command-line overrides, or say what is wrong.

    ``hyperpyyaml.load_hyperpyyaml`` raises a ``KeyError`` listing every key of
    the file when an override names no key (a misspelled option); a recipe would
    print that as a traceback. Here it is one line naming the file, the option
    and the closest key (``difflib``).

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The YAML file.
    overrides : str or dict or None
        As from ``speechbrain.parse_arguments``.

    Returns
    -------
    dict
        The loaded hyperparameters.

    Raises
    ------
    TrainingPlanError
        The file is missing, an override names no key of it, or an object the file
        builds rejects its value (the object's ``ValueError``, e.g.
        ``--stem_strided_blocks 5``: the message names the file).

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.yaml"
    >>> _ = path.write_text("number_of_epochs: 80\\nbatch_size: 16\\n")
    >>> load_recipe_hparams(path, {"batch_size": 8})["batch_size"]
    8
    >>> load_recipe_hparams(path, {"numbr_of_epochs": 8})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: ...demo.yaml has no option --numbr_of_epochs (did you mean --number_of_epochs?)
    >>> _ = path.write_text("blocks: 1\\nstem: !new:focalnet_lobes.models.stems.ConvStem\\n"
    ...                     "    strided_blocks: !ref <blocks>\\n")
    >>> load_recipe_hparams(path, {"blocks": 5})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.plan.TrainingPlanError: ...demo.yaml: strided_blocks (YAML: stem_strided_blocks) must be an int in [0, 2] (the number of stem blocks), got 5
    """
    import difflib
    import re

    from hyperpyyaml import load_hyperpyyaml

    try:
        with open(hparams_file, encoding="utf-8") as fin:
            return load_hyperpyyaml(fin, overrides)
    except FileNotFoundError:
        raise TrainingPlanError(f"{hparams_file}: no such YAML file") from None
    except ValueError as error:  # a value an object of the file rejects
        raise TrainingPlanError(f"{hparams_file}: {error}") from None
    except KeyError as error:
        found = re.match(r"Override '(.+?)' not found in: \[(.*)\]$", str(error.args[0]))
        if found is None:
            raise
        name = found.group(1)
        keys = re.findall(r"'([^']+)'", found.group(2))
        close = difflib.get_close_matches(name, keys, n=1)
        hint = f" (did you mean --{close[0]}?)" if close else ""
        raise TrainingPlanError(f"{hparams_file} has no option --{name}{hint}") from None


def folders_to_create(hparams_file, overrides=None, keys=("output_folder", "save_folder")):
    """The folders a recipe's YAML names that do not exist yet, deepest first.

    Read before the YAML is loaded (loading builds SpeechBrain's ``Checkpointer``, which
    creates ``<output_folder>/save`` at once), so that a run stopped by a bad setting
    before any work can remove what the load created (:func:`remove_empty_folders`)
    and leave no empty output folder behind. The keys' values are resolved with
    ``hyperpyyaml.resolve_references`` (``!ref`` and overrides; no object is built).

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The recipe's YAML file.
    overrides : str or dict or None
        As from ``speechbrain.parse_arguments``.
    keys : tuple of str
        Top-level keys whose values are folders.

    Returns
    -------
    list of str
        The missing folders and their missing parents up to the first existing one,
        deepest first; empty when the file cannot be read or resolved (the load then
        reports the problem).

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> path = root / "demo.yaml"
    >>> _ = path.write_text("seed: 1\\noutput_folder: !ref <root>/runs/<seed>\\n"
    ...                     "save_folder: !ref <output_folder>/save\\nroot: !PLACEHOLDER\\n")
    >>> [pathlib.Path(f).relative_to(root).as_posix() for f in folders_to_create(path, {"root": str(root)})]
    ['runs/1/save', 'runs/1', 'runs']
    """
    from hyperpyyaml import resolve_references
    from ruamel.yaml import YAML

    try:
        with open(hparams_file, encoding="utf-8") as fin:
            resolved = YAML(typ="rt").load(resolve_references(fin, overrides))
        named = [resolved.get(key) for key in keys]
    except Exception:  # noqa: BLE001 - any problem is the load's to report
        return []
    missing = set()
    for folder in named:
        if not isinstance(folder, str) or not folder:
            continue
        folder = os.path.abspath(folder)
        while not os.path.exists(folder):
            missing.add(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return sorted(missing, key=lambda folder: (-folder.count(os.sep), folder))


def remove_empty_folders(folders):
    """Remove each of ``folders`` that is an empty folder (in the order given).

    Arguments
    ---------
    folders : list of str
        Deepest first, as :func:`folders_to_create` returns them; a folder that holds
        anything, or does not exist, is left as it is.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a" / "save").mkdir(parents=True)
    >>> (root / "b").mkdir(); _ = (root / "b" / "kept.txt").write_text("x")
    >>> remove_empty_folders([str(root / "a" / "save"), str(root / "a"), str(root / "b")])
    >>> sorted(p.name for p in root.iterdir())
    ['b']
    """
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # not empty, not there, or not a folder
            pass


@contextlib.contextmanager
def no_empty_folders_left_on(errors, hparams_file, overrides=None):
    """Run a recipe's configuration steps; on one of ``errors``, remove the empty folders they made.

    Loading a recipe's YAML builds SpeechBrain's ``Checkpointer``, which creates
    ``<output_folder>/save`` at once; a check after the load that stops the run
    (an object of the YAML rejecting its value, a resume with other settings) would
    leave that empty folder behind. The folders are listed before the block runs
    (:func:`folders_to_create`) and only those that are still empty are removed
    (:func:`remove_empty_folders`); a folder that existed before is never touched.
    The error is raised again.

    Arguments
    ---------
    errors : type or tuple of type
        The exceptions that mean "stopped before any work".
    hparams_file : str or pathlib.Path
        The recipe's YAML file.
    overrides : str or dict or None
        As from ``speechbrain.parse_arguments``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> path = root / "demo.yaml"
    >>> _ = path.write_text("output_folder: !ref <root>/run\\nsave_folder: !ref <output_folder>/save\\n"
    ...                     "root: !PLACEHOLDER\\n")
    >>> try:
    ...     with no_empty_folders_left_on(TrainingPlanError, path, {"root": str(root)}):
    ...         (root / "run" / "save").mkdir(parents=True)
    ...         raise TrainingPlanError("demo.yaml: a bad value")
    ... except TrainingPlanError as error:
    ...     print(error)
    demo.yaml: a bad value
    >>> sorted(p.name for p in root.iterdir())
    ['demo.yaml']
    """
    new_folders = folders_to_create(hparams_file, overrides)
    try:
        yield
    except errors:
        remove_empty_folders(new_folders)
        raise
