"""An interrupted checkpoint save never leaves a checkpoint that cannot be loaded."""

import pytest
import torch

from focalnet_lobes.training.checkpoints import STAGING_PREFIX, AtomicCheckpointer


class FailingSave(torch.nn.Module):
    """A recoverable whose save fails, as a run killed in the middle of a save."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.fail = False

    def state_dict(self, *args, **kwargs):
        if self.fail:
            raise KeyboardInterrupt("killed while saving")
        return super().state_dict(*args, **kwargs)


def test_interrupted_save_leaves_previous_checkpoint_recoverable(tmp_path):
    model = torch.nn.Linear(2, 2)
    failing = FailingSave()
    checkpointer = AtomicCheckpointer(tmp_path, recoverables={"model": model, "late": failing})
    checkpointer.save_checkpoint(meta={"epoch": 1})
    failing.fail = True
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save_checkpoint(meta={"epoch": 2})
    assert [p.name.startswith(STAGING_PREFIX) for p in tmp_path.iterdir()].count(True) == 1
    failing.fail = False
    fresh = AtomicCheckpointer(tmp_path, recoverables={"model": model, "late": failing})
    assert fresh.recover_if_possible().meta["epoch"] == 1
    # The next save removes the stale staging folder.
    fresh.save_checkpoint(meta={"epoch": 2})
    assert not list(tmp_path.glob(STAGING_PREFIX + "*"))
    assert sorted(c.meta["epoch"] for c in fresh.list_checkpoints()) == [1, 2]
