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
"""

import logging
import shutil

from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process

STAGING_PREFIX = ".staging-"
logger = logging.getLogger(__name__)


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

    def _new_checkpoint_dirpath(self):
        if self._staging_path is not None:
            return self._staging_path
        return super()._new_checkpoint_dirpath()

    def _custom_checkpoint_dirpath(self, name):
        if self._staging_path is not None:
            return self._staging_path
        return super()._custom_checkpoint_dirpath(name)
