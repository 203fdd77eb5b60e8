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


class Frontend(torch.nn.Module):
    """A module of fixed values only (as a PCEN front end): compared by value."""

    def __init__(self, alpha=0.98, bands=3):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.full((bands,), alpha), requires_grad=False)
        self.ramp = torch.nn.Parameter(torch.arange(bands) * alpha, requires_grad=False)


def saved_checkpoint(folder, **recoverables):
    return AtomicCheckpointer(folder, recoverables=recoverables).save_checkpoint()


def test_checkpoint_differences_names_missing_unexpected_shapes_and_fixed_values(tmp_path):
    from focalnet_lobes.training.checkpoints import checkpoint_differences

    checkpoint = saved_checkpoint(
        tmp_path, model=torch.nn.Sequential(torch.nn.Linear(4, 2)), frontend=Frontend(),
        counter=torch.nn.Identity(),
    )
    same = {"model": torch.nn.Sequential(torch.nn.Linear(4, 2)), "frontend": Frontend()}
    # trained values may differ (a resumed model is trained further); fixed ones may not
    assert checkpoint_differences(checkpoint, same) == []
    other = {
        "model": torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1)),
        "frontend": Frontend(alpha=0.5),
        "optimizer": object(),  # not a module: not compared
        "absent": torch.nn.Linear(1, 1),  # no file in the checkpoint: not compared
    }
    assert checkpoint_differences(checkpoint, other) == [
        "model: only the run has 1.bias, 1.weight; shapes differ (checkpoint "
        "vs run) for 0.bias (2,) vs (3,), 0.weight (2, 4) vs (3, 4)",
        "frontend: fixed values differ for alpha (checkpoint 0.98, run 0.5), ramp",
    ]
    # names and shapes only
    assert checkpoint_differences(checkpoint, {"frontend": Frontend(alpha=0.5)}, values=False) == []
    many = {"model": torch.nn.Sequential(*[torch.nn.Linear(4, 2) for _ in range(3)])}
    assert checkpoint_differences(checkpoint, many) == [
        "model: only the run has 1.bias, 1.weight, 2.bias and 1 more"
    ]


def test_check_resumable_without_checkpoint_does_nothing_and_names_the_folder(tmp_path):
    from focalnet_lobes.training.checkpoints import CheckpointMismatchError, check_resumable

    empty = AtomicCheckpointer(tmp_path / "empty", recoverables={"model": torch.nn.Linear(4, 2)})
    assert check_resumable(empty) is None
    checkpoint = saved_checkpoint(tmp_path / "run", frontend=Frontend())
    other = AtomicCheckpointer(tmp_path / "run", recoverables={"frontend": Frontend(0.5)})
    with pytest.raises(CheckpointMismatchError) as error:
        check_resumable(other)
    assert str(error.value) == (
        f"{checkpoint.path}: this run's settings differ from the checkpoint's (frontend: fixed "
        "values differ for alpha (checkpoint 0.98, run 0.5), ramp): resume with the settings it was written with, or choose "
        "another output_folder"
    )
    # the objects to compare can be given (e.g. ones a run adds later)
    assert check_resumable(other, modules={"frontend": Frontend()}) is None


def test_a_checkpoint_that_cannot_load_is_one_line_naming_it(tmp_path):
    from focalnet_lobes.training.checkpoints import CheckpointMismatchError, check_resumable

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    checkpoint = saved_checkpoint(tmp_path, model=model, optimizer=optimizer)
    # an optimiser over other parameters: torch's ValueError becomes one line
    more = torch.nn.Linear(4, 2)
    resumed = AtomicCheckpointer(tmp_path, recoverables={
        "model": model, "optimizer": torch.optim.AdamW([*model.parameters(), *more.parameters()]),
    })
    with pytest.raises(CheckpointMismatchError) as error:
        resumed.recover_if_possible()
    message = str(error.value)
    assert message.startswith(f"{checkpoint.path}: cannot load this checkpoint (loaded "
                              "state dict contains a parameter group")
    assert "\n" not in message and message.endswith("choose another output_folder")
    # a damaged parameter file: named by check_resumable, one line from the loader
    (checkpoint.path / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match=r"model\.ckpt: cannot read this checkpoint file"):
        check_resumable(AtomicCheckpointer(tmp_path, recoverables={"model": model}))
    with pytest.raises(CheckpointMismatchError) as error:
        AtomicCheckpointer(tmp_path, recoverables={"model": model}).recover_if_possible()
    assert "\n" not in str(error.value) and str(error.value).startswith(str(checkpoint.path))


def test_a_state_dict_that_does_not_fit_names_the_differences_when_loaded(tmp_path):
    from focalnet_lobes.training.checkpoints import CheckpointMismatchError

    checkpoint = saved_checkpoint(tmp_path, model=torch.nn.Linear(4, 2))
    with pytest.raises(CheckpointMismatchError) as error:
        AtomicCheckpointer(tmp_path, recoverables={"model": torch.nn.Linear(4, 3)}).recover_if_possible()
    assert str(error.value) == (
        f"{checkpoint.path}: cannot load this checkpoint (model: shapes differ (checkpoint vs "
        "run) for bias (2,) vs (3,), weight (2, 4) vs (3, 4)): resume with the settings it was "
        "written with, or choose another output_folder"
    )


def test_a_damaged_checkpoint_yaml_is_one_line(tmp_path):
    from focalnet_lobes.training.checkpoints import CheckpointMismatchError, check_resumable

    checkpoint = saved_checkpoint(tmp_path, model=torch.nn.Linear(4, 2))
    for text in ("end-of-epoch: [unclosed", ""):
        (checkpoint.path / "CKPT.yaml").write_text(text)
        with pytest.raises(CheckpointMismatchError) as error:
            check_resumable(AtomicCheckpointer(tmp_path, recoverables={"model": torch.nn.Linear(4, 2)}))
        message = str(error.value)
        assert message.startswith(f"{tmp_path}: a checkpoint's CKPT.yaml cannot be read (")
        assert "\n" not in message and message.endswith("choose another output_folder")


class ExtraState(torch.nn.Module):
    """A module with non-tensor state (``get_extra_state``): not compared."""

    def __init__(self, note="a"):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.note = note

    def get_extra_state(self):
        return {"note": self.note}

    def set_extra_state(self, state):
        self.note = state["note"]


def test_non_tensor_state_is_not_compared(tmp_path):
    from focalnet_lobes.training.checkpoints import checkpoint_differences

    checkpoint = saved_checkpoint(tmp_path, module=ExtraState("a"))
    assert checkpoint_differences(checkpoint, {"module": ExtraState("b")}) == []


def test_random_state_is_restored_and_optional_for_older_checkpoints(tmp_path):
    """keep_random_state: a recovered run draws what the saved run drew next; a
    checkpoint written without the state (before it was saved) still loads the model
    and leaves the generator as the startup seed set it."""
    from focalnet_lobes.training.checkpoints import keep_random_state

    model = torch.nn.Linear(2, 2)
    checkpointer = AtomicCheckpointer(tmp_path / "new", recoverables={"model": model})
    keep_random_state(checkpointer)
    torch.manual_seed(5)
    torch.rand(7)  # the state moves on before the save
    checkpointer.save_checkpoint()
    following = torch.rand(4)
    torch.manual_seed(0)  # a restarted process seeds again
    assert not torch.equal(torch.rand(4), following)
    checkpointer.recover_if_possible()
    assert torch.equal(torch.rand(4), following)

    old = AtomicCheckpointer(tmp_path / "old", recoverables={"model": model})
    old.save_checkpoint()
    resumed_model = torch.nn.Linear(2, 2)
    resumed = AtomicCheckpointer(tmp_path / "old", recoverables={"model": resumed_model})
    keep_random_state(resumed)
    torch.manual_seed(0)
    startup = torch.rand(4)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="missing a load path for random_state"):
        assert resumed.recover_if_possible() is not None
    assert torch.equal(torch.rand(4), startup)
    assert torch.equal(resumed_model.weight, model.weight)


@pytest.mark.parametrize("damage, expected", [
    (lambda path: path.write_bytes(b"not a torch file" * 4),
     "cannot read this random-number state (a damaged file: "),
    (lambda path: torch.save(torch.zeros(3), path),
     "not a random-number state (expected {'cpu': ByteTensor[, 'cuda': ByteTensor]}, found Tensor)"),
    (lambda path: torch.save({"cpu": torch.zeros(3)}, path),
     "expected {'cpu': ByteTensor[, 'cuda': ByteTensor]}, found {'cpu': Tensor of torch.float32})"),
    (lambda path: torch.save({"cpu": torch.zeros(10, dtype=torch.uint8)}, path),
     "not a random-number state (Expected a CPUGeneratorImplState of size"),
])
def test_a_damaged_random_state_is_one_line_naming_the_file(tmp_path, damage, expected):
    """check_resumable (before the run writes anything) reads the state; a state that reads but
    that the generator rejects fails when loaded; both name the file and say to remove it."""
    from focalnet_lobes.training.checkpoints import CheckpointMismatchError, check_resumable, keep_random_state

    def checkpointer():
        made = AtomicCheckpointer(tmp_path, recoverables={"model": torch.nn.Linear(2, 2)})
        keep_random_state(made)
        return made

    path = checkpointer().save_checkpoint().path / "random_state.ckpt"
    damage(path)
    with pytest.raises(CheckpointMismatchError) as error:
        check_resumable(checkpointer())
        checkpointer().recover_if_possible()
    message = str(error.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert message.endswith("remove this file to resume from the startup seed's state")
    assert "\n" not in message
    path.unlink()
    with pytest.warns(UserWarning, match="missing a load path for random_state"):
        assert checkpointer().recover_if_possible() is not None
