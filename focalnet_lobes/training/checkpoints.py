"""A SpeechBrain ``Checkpointer`` whose checkpoints appear only once complete.

SpeechBrain writes a checkpoint's meta file first and its parameter files after;
a run killed in between leaves a ``CKPT+...`` folder that looks valid but cannot be
loaded, so the next run crashes instead of resuming. :class:`AtomicCheckpointer`
writes every checkpoint into a staging folder and renames it into place at the
end, so an interrupted save leaves only an ignored, later removed, staging folder.

Under ``torchrun`` every process calls ``save_checkpoint`` (SpeechBrain's
convention: the main process picks the folder and writes the files, the others
take part in the collective calls); only the main process removes stale staging
folders and renames, and all processes leave ``save_checkpoint`` together
(a barrier after the rename), so a process that arrives late can neither remove
a folder being written nor read a checkpoint that is not in place yet.

A run resumed in an output folder whose checkpoint was written with other settings
(another model size, number of mel bands, feature compression...) cannot load it:
:func:`check_resumable` names what differs before the run writes anything, and
:meth:`AtomicCheckpointer.load_checkpoint` turns any other failure to load into a
one-line :class:`CheckpointMismatchError` naming the checkpoint.

:func:`keep_random_state` checkpoints the random-number generators with the run, so
that a resumed run draws the same augmentations as an uninterrupted one.
"""

import logging
import pickle
import shutil

import torch
import yaml
from speechbrain.utils.checkpoints import (
    Checkpoint, Checkpointer, mark_as_loader, mark_as_saver, register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process

from focalnet_lobes.models.convert import state_dict_differences

STAGING_PREFIX = ".staging-"
SHOWN_DIFFERENCES = 3  # names quoted per module in a message; the rest are counted
logger = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """A checkpoint this run cannot resume from (written with other settings, or damaged)."""


# What loading a checkpoint file that does not fit or is damaged raises (torch, pickle).
LOAD_ERRORS = (RuntimeError, ValueError, KeyError, EOFError, OSError, pickle.UnpicklingError)


def _first_line(error):
    """The first line of an exception's message (its type's name if it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(":")


def _value_change(key, saved, current):
    """``"pcen.alpha (checkpoint 0.98, run 0.9)"`` when each side holds one value
    (repeated, as PCEN's per-band constants), the name alone otherwise."""
    saved, current = saved.detach().float().flatten(), current.detach().float().flatten().cpu()
    if saved.numel() == 0 or not (torch.all(saved == saved[0]) and torch.all(current == current[0])):
        return key
    return f"{key} (checkpoint {saved[0].item():.4g}, run {current[0].item():.4g})"


def _listed(items, limit=SHOWN_DIFFERENCES):
    """``"a, b, c and 4 more"``: the first ``limit`` items, the rest counted."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _settings(module, keys):
    """The YAML keys that set a module's listed parameters, from its ``parameter_settings``
    (a dict: parameter name prefix -> key), e.g. ``" (YAML: log1p_scale)"``; ``""`` if none."""
    named = getattr(module, "parameter_settings", None) or {}
    found = sorted({setting for key in keys for prefix, setting in named.items()
                    if key.startswith(prefix)})
    return f" (YAML: {'; '.join(found)})" if found else ""


def checkpoint_differences(checkpoint, modules, values=True):
    """What keeps a checkpoint's module states from loading into this run's modules.

    Each ``torch.nn.Module`` in ``modules`` that has a parameter file in the checkpoint
    is compared by name and shape of its tensors
    (:func:`focalnet_lobes.models.convert.state_dict_differences`); the parameters of a
    module whose parameters are all frozen (a fixed front end such as PCEN, whose values
    come from the YAML) are compared by value too, since loading would silently replace
    the run's settings with the checkpoint's. Other objects (counters, optimisers),
    non-tensor state and modules without a file are not compared. The YAML keys named
    by a module's ``parameter_settings`` (a dict: parameter name prefix -> the key that
    sets it, as :class:`focalnet_lobes.data.features.SpectrogramFrontend`'s) for the
    parameters listed are quoted after its phrase, ``"(YAML: log1p_scale)"``, so that a
    user knows which setting to restore. Call it before objects that change without
    training (a weight average) are added to the recoverables.

    Arguments
    ---------
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
        The checkpoint (its ``paramfiles``, read with ``torch.load(weights_only=True)``).
    modules : dict
        Name -> object, as a checkpointer's ``recoverables``.
    values : bool
        Compare the frozen modules' values (``False``: names and shapes only).

    Returns
    -------
    list of str
        One phrase per module that differs, e.g. ``"model: shapes differ (checkpoint
        vs run) for head.fc.weight (10, 256) vs (10, 192)"``; empty when every module
        would load.

    Raises
    ------
    CheckpointMismatchError
        When a parameter file cannot be read (damaged or not a state dict).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     checkpointer = AtomicCheckpointer(folder, recoverables={"model": torch.nn.Linear(4, 2)})
    ...     checkpoint = checkpointer.save_checkpoint(verbosity=logging.DEBUG)
    ...     same = checkpoint_differences(checkpoint, {"model": torch.nn.Linear(4, 2)})
    ...     other = checkpoint_differences(checkpoint, {"model": torch.nn.Linear(3, 2)})
    >>> same
    []
    >>> other
    ['model: shapes differ (checkpoint vs run) for weight (2, 4) vs (2, 3)']
    """
    phrases = []
    for name, module in modules.items():
        path = checkpoint.paramfiles.get(name)
        if not isinstance(module, torch.nn.Module) or path is None:
            continue
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except (*LOAD_ERRORS, AttributeError) as error:
            raise CheckpointMismatchError(
                f"{path}: cannot read this checkpoint file ({_first_line(error)})"
            ) from None
        if not isinstance(saved, dict):
            raise CheckpointMismatchError(f"{path}: not a state dict ({type(saved).__name__})")
        saved = {key: value for key, value in saved.items() if torch.is_tensor(value)}
        current = {key: value for key, value in module.state_dict().items() if torch.is_tensor(value)}
        missing, unexpected, mismatched = state_dict_differences(saved, current)
        found = []
        if missing:
            found.append(f"only the run has {_listed(missing)}")
        if unexpected:
            found.append(f"only the checkpoint has {_listed(unexpected)}")
        if mismatched:
            found.append(f"shapes differ (checkpoint vs run) for {_listed(mismatched)}")
        fixed = [key for key, p in module.named_parameters() if not p.requires_grad]
        changed = []
        if values and fixed and len(fixed) == len(list(module.parameters())):
            changed = [
                _value_change(key, saved[key], current[key]) for key in sorted(fixed)
                if key in saved and key in current and saved[key].shape == current[key].shape
                and not torch.equal(saved[key].to(current[key].dtype), current[key].cpu())
            ]
            if changed:
                found.append(f"fixed values differ for {_listed(changed)}")
        if found:
            keys = [*missing, *unexpected, *mismatched, *changed]
            phrases.append(f"{name}: " + "; ".join(found) + _settings(module, keys))
    return phrases


def check_resumable(checkpointer, modules=None):
    """Raise a one-line error if this run cannot resume from the checkpointer's latest checkpoint.

    Called before a run writes anything to its output folder, so that a run started
    with other settings in the folder of an earlier run stops with what differs,
    not a traceback from ``load_state_dict`` after it has overwritten the folder's
    ``hyperparams.yaml``. A :class:`RandomState` recoverable's file is read and checked
    too (:meth:`RandomState.read`). Does nothing when the folder holds no checkpoint.

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
    modules : dict, optional
        The objects to compare (default: the checkpointer's ``recoverables``).

    Raises
    ------
    CheckpointMismatchError
        ``"<checkpoint folder>: this run's settings differ from the checkpoint's
        (...): resume with the settings it was written with, or choose another
        output_folder"``; a damaged random state as :meth:`RandomState.read`.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = AtomicCheckpointer(folder, recoverables={"model": torch.nn.Linear(4, 2)}
    ...                            ).save_checkpoint(verbosity=logging.DEBUG)
    ...     check_resumable(AtomicCheckpointer(folder, recoverables={"model": torch.nn.Linear(4, 2)}))
    ...     try:
    ...         check_resumable(AtomicCheckpointer(folder, recoverables={"model": torch.nn.Linear(4, 3)}))
    ...     except CheckpointMismatchError as error:
    ...         print(str(error).split(": ", 1)[1])
    this run's settings differ from the checkpoint's (model: shapes differ (checkpoint vs run) for bias (2,) vs (3,), weight (2, 4) vs (3, 4)): resume with the settings it was written with, or choose another output_folder
    """
    try:
        checkpoint = checkpointer.find_checkpoint()
    except (yaml.YAMLError, TypeError, KeyError, ValueError, OSError) as error:
        raise CheckpointMismatchError(
            f"{checkpointer.checkpoints_dir}: a checkpoint's CKPT.yaml cannot be read "
            f"({_first_line(error)}): remove the damaged CKPT+ folder, or choose another output_folder"
        ) from None
    if checkpoint is None:
        return
    modules = checkpointer.recoverables if modules is None else modules
    for name, recoverable in modules.items():  # a damaged random state: one line, now
        if isinstance(recoverable, RandomState) and name in checkpoint.paramfiles:
            RandomState.read(checkpoint.paramfiles[name])
    differences = checkpoint_differences(checkpoint, modules)
    if differences:
        raise CheckpointMismatchError(
            f"{checkpoint.path}: this run's settings differ from the checkpoint's "
            f"({'; '.join(differences)}): resume with the settings it was written with, "
            "or choose another output_folder"
        )


@register_checkpoint_hooks
class RandomState:
    """The state of torch's random-number generators, as a checkpoint recoverable.

    Saves the CPU generator's state and, when CUDA is in use in this process, the
    current CUDA device's; loads them back. Modelled on SpeechBrain's
    ``speechbrain.utils.repro.SaveableGenerator``, with three differences: only the
    current CUDA device is saved (under ``torchrun`` every process draws its device's
    numbers in step with the others, from the same seed, so the main process's state
    is every process's), a CPU run on a machine with a GPU never initialises CUDA,
    and the file is read with ``torch.load(weights_only=True)`` and checked, so a
    damaged file is one line naming it.

    Example
    -------
    >>> import tempfile, os
    >>> state = RandomState()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "random_state.ckpt")
    ...     _ = torch.manual_seed(3)
    ...     state.save(path)
    ...     first = torch.rand(2)
    ...     state.load(path, end_of_epoch=True)
    ...     torch.equal(torch.rand(2), first)
    True
    """

    REMEDY = "remove this file to resume from the startup seed's state"

    @mark_as_saver
    def save(self, path):
        """Write ``{"cpu": ByteTensor[, "cuda": ByteTensor]}`` to ``path`` (``torch.save``)."""
        states = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state()
        torch.save(states, path)

    @staticmethod
    def read(path):
        """The states in ``path``, checked, without setting them.

        Returns
        -------
        dict
            ``{"cpu": ByteTensor[, "cuda": ByteTensor]}``.

        Raises
        ------
        CheckpointMismatchError
            ``"<path>: cannot read this random-number state (...)"`` or ``"<path>: not a
            random-number state (...)"``, ending ``"remove this file to resume from the
            startup seed's state"``: a damaged or foreign file.
        """
        try:
            states = torch.load(path, map_location="cpu", weights_only=True)
        except (*LOAD_ERRORS, AttributeError, TypeError) as error:
            raise CheckpointMismatchError(
                f"{path}: cannot read this random-number state (a damaged file: "
                f"{type(error).__name__}): {RandomState.REMEDY}"
            ) from None
        if not (isinstance(states, dict) and "cpu" in states and set(states) <= {"cpu", "cuda"}
                and all(torch.is_tensor(v) and v.dtype == torch.uint8 for v in states.values())):
            if isinstance(states, dict):
                found = ", ".join(f"{key!r}: {type(value).__name__}"
                                  + (f" of {value.dtype}" if torch.is_tensor(value) else "")
                                  for key, value in list(states.items())[:3])
                found = f"{{{found}{', ...' if len(states) > 3 else ''}}}"
            else:
                found = type(states).__name__
            raise CheckpointMismatchError(
                f"{path}: not a random-number state (expected {{'cpu': ByteTensor[, 'cuda': "
                f"ByteTensor]}}, found {found}): {RandomState.REMEDY}"
            )
        return states

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        """Set the generators to the states in ``path`` (:meth:`read`).

        The CUDA state is set on the current device when the file has one and CUDA is
        in use here (a CPU run resuming a GPU run's checkpoint keeps its CUDA unused).

        Raises
        ------
        CheckpointMismatchError
            As :meth:`read`, or a state the generator rejects (another size).
        """
        del end_of_epoch
        states = self.read(path)
        try:
            torch.set_rng_state(states["cpu"])
            if "cuda" in states and torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.set_rng_state(states["cuda"])
        except RuntimeError as error:
            raise CheckpointMismatchError(
                f"{path}: not a random-number state ({_first_line(error)}): {self.REMEDY}"
            ) from None


def keep_random_state(checkpointer, name="random_state"):
    """Checkpoint torch's random-number generators with the run (``<name>.ckpt``).

    Training draws its augmentations (SpecAugment stripes, Mixup weights and
    partners, the faithfulness terms' quantile) and dropout from torch's default
    generators; the data order comes from samplers seeded with seed + epoch
    (SpeechBrain's ``ReproducibleRandomSampler``, ``DistributedSampler`` under
    ``torchrun``). Without the generators' state in the checkpoint, a run resumed
    after an interruption continues from the state the startup seed gives, not the
    one the interrupted run had reached, so its later epochs differ from an
    uninterrupted run's. With it (:class:`RandomState`), a run resumed from an
    end-of-epoch checkpoint on the CPU continues exactly: the same weights, bit for
    bit, on the same machine and thread count. (On a GPU, non-deterministic kernels
    keep even two uninterrupted runs apart; a resume from an intra-epoch checkpoint,
    ``--ckpt_interval_minutes``, draws the data loader's base seed once more.)

    The state is optional when loading: a checkpoint written without it (before this
    was added) still resumes, from the startup seed's state as before, with
    SpeechBrain's warning "missing a load path for random_state".

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        Gets the recoverable ``name``.
    name : str
        The recoverable's name (its file in a checkpoint folder: ``<name>.ckpt``).

    Returns
    -------
    RandomState
        The recoverable added.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     checkpointer = AtomicCheckpointer(folder, recoverables={"model": torch.nn.Linear(2, 2)})
    ...     _ = keep_random_state(checkpointer)
    ...     _ = torch.manual_seed(0)
    ...     _ = checkpointer.save_checkpoint(verbosity=logging.DEBUG)
    ...     first = torch.rand(3)
    ...     _ = torch.manual_seed(1)  # a restarted process seeds again
    ...     _ = checkpointer.recover_if_possible()
    ...     again = torch.rand(3)
    >>> torch.equal(first, again)
    True
    """
    state = RandomState()
    checkpointer.add_recoverable(name, state, optional_load=True)
    return state


class AtomicCheckpointer(Checkpointer):
    """``speechbrain.utils.checkpoints.Checkpointer`` with all-or-nothing saves.

    Takes the same arguments as SpeechBrain's ``Checkpointer``.

    Example
    -------
    >>> import tempfile, torch
    >>> model = torch.nn.Linear(2, 2)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     checkpointer = AtomicCheckpointer(folder, recoverables={"model": model})
    ...     checkpoint = checkpointer.save_checkpoint(meta={"error": 0.5})
    ...     names = sorted(p.name for p in checkpoint.path.iterdir())
    ...     recovered = checkpointer.recover_if_possible()
    >>> names
    ['CKPT.yaml', 'model.ckpt']
    >>> recovered.meta["error"]
    0.5
    """

    _staging_path = None

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Save a checkpoint into a staging folder, then move it into place.

        Same arguments and return value as SpeechBrain's
        ``Checkpointer.save_checkpoint`` (``None`` on processes other than the main
        one). Every process of a distributed run must call it.
        """
        if if_main_process():
            for stale in self.checkpoints_dir.glob(STAGING_PREFIX + "*"):
                shutil.rmtree(stale, ignore_errors=True)
        if name is None:
            final_path = super()._new_checkpoint_dirpath()
        else:
            final_path = super()._custom_checkpoint_dirpath(name)
        self._staging_path = self.checkpoints_dir / (STAGING_PREFIX + final_path.name)
        try:
            # SpeechBrain's message would name the staging folder: say it once moved.
            staged = super().save_checkpoint(meta, end_of_epoch, name, logging.DEBUG)
        finally:
            staging_path, self._staging_path = self._staging_path, None
        if staged is None:  # not the main process: wait until the checkpoint is in place
            ddp_barrier()
            return None
        try:
            staging_path.rename(final_path)
        finally:
            ddp_barrier()
        kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
        logger.log(verbosity, f"Saved an {kind} checkpoint in {final_path}")
        paramfiles = {key: final_path / path.name for key, path in staged.paramfiles.items()}
        return Checkpoint(final_path, staged.meta, paramfiles)

    def load_checkpoint(self, checkpoint):
        """Load a checkpoint; any failure is one :class:`CheckpointMismatchError` line.

        SpeechBrain's loaders raise ``RuntimeError`` (a state dict that does not fit),
        ``ValueError`` (an optimiser state for other parameters), ``KeyError``, or
        pickle / I/O errors (a damaged file) with long messages; the error here names
        the checkpoint folder and what differs (:func:`checkpoint_differences`), or the
        first line of the cause. A CUDA out-of-memory error is raised as it is. :func:`check_resumable` names the differing settings beforehand
        where it can.

        Raises
        ------
        CheckpointMismatchError
        """
        try:
            super().load_checkpoint(checkpoint)
        except (torch.cuda.OutOfMemoryError, CheckpointMismatchError):
            raise  # a CheckpointMismatchError already names its file (RandomState)
        except LOAD_ERRORS as error:
            # names and shapes only: a weight average's frozen copy changes as it trains
            differences = checkpoint_differences(checkpoint, self.recoverables, values=False)
            cause = "; ".join(differences) if differences else _first_line(error)
            raise CheckpointMismatchError(
                f"{checkpoint.path}: cannot load this checkpoint ({cause}): resume with the "
                "settings it was written with, or choose another output_folder"
            ) from None

    def _new_checkpoint_dirpath(self):
        if self._staging_path is not None:
            return self._staging_path
        return super()._new_checkpoint_dirpath()

    def _custom_checkpoint_dirpath(self, name):
        if self._staging_path is not None:
            return self._staging_path
        return super()._custom_checkpoint_dirpath(name)
