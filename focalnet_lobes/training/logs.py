"""Parsers of the logs a SpeechBrain training run writes: one for every script that reads them.

A run of ``recipes/train.py`` (or of the post-hoc training recipes) leaves:

- ``train_log.txt`` (SpeechBrain's ``FileTrainLogger``): one line per epoch,
  ``epoch: 3, lr: 3.41e-04 - train loss: 1.75 - valid loss: 1.26, valid error: 3.12e-01``;
  :func:`read_train_log` turns it into one dict per epoch, :func:`best_epoch`
  finds the epoch with the lowest value of a statistic;
- ``log.txt`` (the ``logging`` file of the run): timestamped lines;
  :func:`parse_training_log` derives the wall time, the epochs and their
  durations, and the test accuracy from it.

Used by the benchmarks (``training_runs.py``, ``accuracy_ablation.py``,
``ship_pretrained.py``).

Authors
 * focalnet-audio contributors
"""

import datetime
import re
import statistics
from pathlib import Path

# The log lines of a SpeechBrain run that delimit the training (recipes/train.py).
LOG_LINE = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) - .+? - "
    r"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) - (.*)$"
)
EPOCH_START = re.compile(r"Going into epoch (\d+)")
EPOCH_END = "Saved an end-of-epoch checkpoint"
TEST_ACCURACY = re.compile(r"Test accuracy: ([0-9.]+)%")
SESSION_START = "Beginning experiment!"
#: One statistic of a train_log.txt line: "name: value".
TRAIN_LOG_STAT = re.compile(r"([A-Za-z_][\w ]*?):\s*([-+0-9.eE]+|nan|inf)")


def parse_train_log_line(line):
    """The statistics of one ``train_log.txt`` line, or None for another line.

    Arguments
    ---------
    line : str
        ``"epoch: 3, lr: 3.41e-04 - train loss: 1.75 - valid loss: 1.26, valid error: 3.12e-01"``.

    Returns
    -------
    dict or None
        ``{"epoch": 3, "lr": 0.000341, "train loss": 1.75, ...}`` (``epoch`` an
        int, the rest floats); None when the line does not start with ``epoch:``.

    Example
    -------
    >>> parse_train_log_line("epoch: 3, lr: 3.41e-04 - train loss: 1.75 - valid error: 3.12e-01")
    {'epoch': 3, 'lr': 0.000341, 'train loss': 1.75, 'valid error': 0.312}
    >>> parse_train_log_line("Test accuracy: 90%") is None
    True
    """
    if not line.startswith("epoch:"):
        return None
    stats = {}
    for name, value in TRAIN_LOG_STAT.findall(line):
        stats[name.strip()] = float(value)
    if "epoch" not in stats:
        return None
    stats["epoch"] = int(stats["epoch"])
    return stats


def read_train_log(path):
    """Every epoch line of a ``train_log.txt`` (:func:`parse_train_log_line`), in file order.

    Arguments
    ---------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    list of dict

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "train_log.txt"
    >>> _ = path.write_text("epoch: 1, lr: 1e-3 - train loss: 2.2 - valid loss: 2.4, valid error: 9.00e-01\\n"
    ...                     "epoch: 2, lr: 1e-3 - train loss: 1.9 - valid loss: 1.8, valid error: 7.13e-01\\n")
    >>> [(row["epoch"], row["valid error"]) for row in read_train_log(path)]
    [(1, 0.9), (2, 0.713)]
    """
    rows = (parse_train_log_line(line) for line in Path(path).read_text().splitlines())
    return [row for row in rows if row is not None]


def best_epoch(rows, key="valid error"):
    """``(epoch, value)`` with the lowest ``key`` (the first if tied); None when no row has it.

    Example
    -------
    >>> best_epoch([{"epoch": 1, "valid error": 0.5}, {"epoch": 2, "valid error": 0.3},
    ...             {"epoch": 3, "valid error": 0.3}])
    (2, 0.3)
    """
    best = None
    for row in rows:
        if key in row and (best is None or row[key] < best[1]):
            best = (row["epoch"], row[key])
    return best


def parse_training_log(text):
    """Wall time, epochs and epoch durations of a training run from its SpeechBrain ``log.txt``.

    Lines look like ``2024-01-01 10:00:00,123 - logger - INFO - message``; lines
    without a timestamp (multi-line messages) are skipped. The run starts at the
    "Going into epoch 1" line (the last one before the last end-of-epoch
    checkpoint, should the log hold a restart from scratch; the first "Going into
    epoch" when the log has no epoch 1) and ends at the last "Saved an
    end-of-epoch checkpoint", or at the "Test accuracy" line that follows it in
    the same session (later sessions that only re-test a finished run do not
    count). An epoch lasts from its "Going into epoch N" to the next end-of-epoch
    checkpoint (epochs cut short by an interruption are not counted; a resumed
    epoch counts once, its last complete run). A resumed run spans several
    sessions ("Beginning experiment!" lines); ``active_seconds`` leaves out the
    time between them.

    Arguments
    ---------
    text : str
        Content of ``log.txt``.

    Returns
    -------
    dict
        ``wall_seconds`` (start to end), ``training_seconds`` (start to the last
        end-of-epoch checkpoint), ``test_seconds`` (last checkpoint to the test
        accuracy, ``None`` without test), ``active_seconds``, ``sessions`` (with
        epochs of this run),
        ``epochs`` (completed epochs), ``first_epoch``, ``last_epoch``,
        ``epoch_seconds`` ({epoch: seconds}), ``epoch_seconds_median``,
        ``test_accuracy`` (percent or ``None``), ``start``, ``end`` (ISO times).

    Example
    -------
    >>> log = '''2024-05-01 10:00:00,000 - speechbrain.core - INFO - Beginning experiment!
    ... 2024-05-01 10:00:05,000 - speechbrain.utils.epoch_loop - INFO - Going into epoch 1
    ... 2024-05-01 10:00:35,000 - sb - INFO - Saved an end-of-epoch checkpoint in x
    ... 2024-05-01 10:00:35,500 - speechbrain.utils.epoch_loop - INFO - Going into epoch 2
    ... 2024-05-01 10:01:15,500 - sb - INFO - Saved an end-of-epoch checkpoint in y
    ... 2024-05-01 10:01:20,000 - train - INFO - Test accuracy: 87.50%'''
    >>> summary = parse_training_log(log)
    >>> summary["wall_seconds"], summary["epochs"], summary["epoch_seconds_median"]
    (75.0, 2, 35.0)
    >>> summary["test_accuracy"], summary["test_seconds"]
    (87.5, 4.5)
    """
    events = []
    for line in text.splitlines():
        match = LOG_LINE.match(line.strip())
        if match:
            stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
            stamp += datetime.timedelta(milliseconds=int(match.group(2)))
            events.append((stamp, match.group(3)))
    epoch_starts = [
        (index, stamp, int(m.group(1)))
        for index, (stamp, message) in enumerate(events)
        if (m := EPOCH_START.search(message))
    ]
    if not epoch_starts:
        raise ValueError("no 'Going into epoch N' line in the log: not a SpeechBrain training log")
    session_starts = [i for i, (_, message) in enumerate(events) if SESSION_START in message]
    epoch_ends = [i for i, (_, message) in enumerate(events) if EPOCH_END in message]
    tests = [
        (i, float(m.group(1)))
        for i, (_, message) in enumerate(events)
        if (m := TEST_ACCURACY.search(message))
    ]
    if not epoch_ends:
        raise ValueError("no end-of-epoch checkpoint in the log: no epoch finished")

    last_end = epoch_ends[-1]
    # The run: the last "Going into epoch 1" before the last end-of-epoch checkpoint
    # (a run restarted from scratch in the same folder counts from its restart).
    candidates = [start for start in epoch_starts if start[0] < last_end]
    if not candidates:
        raise ValueError("no epoch start before the last end-of-epoch checkpoint")
    ones = [start for start in candidates if start[2] == 1]
    start_index, start, first_epoch = ones[-1] if ones else candidates[0]

    def session_of(index):
        return sum(1 for s in session_starts if s <= index)

    # The test of the run: the first "Test accuracy" after the last checkpoint, in
    # the same session (later sessions that only re-test are not training time).
    test = next(
        (
            (i, accuracy)
            for i, accuracy in tests
            if i > last_end and session_of(i) == session_of(last_end)
        ),
        None,
    )
    end_index = test[0] if test else last_end
    end = events[end_index][0]
    last_checkpoint = events[last_end][0]

    run_starts = [x for x in epoch_starts if start_index <= x[0] <= end_index]
    boundaries = sorted({i for i, _, _ in epoch_starts} | set(session_starts))
    epoch_seconds = {}
    for index, stamp, epoch in run_starts:
        limit = next((b for b in boundaries if b > index), len(events))
        ends = [i for i in epoch_ends if index < i < limit]
        if ends:
            epoch_seconds[epoch] = (events[ends[0]][0] - stamp).total_seconds()

    # Active time: per session, from its first epoch start to its last end line.
    active_seconds = 0.0
    sessions = sorted({session_of(i) for i, _, _ in run_starts})
    for session in sessions:
        starts = [i for i, _, _ in run_starts if session_of(i) == session]
        ends = [i for i in epoch_ends + [end_index] if i <= end_index and session_of(i) == session]
        if ends and max(ends) > starts[0]:
            active_seconds += (events[max(ends)][0] - events[starts[0]][0]).total_seconds()

    durations = list(epoch_seconds.values())
    return {
        "wall_seconds": (end - start).total_seconds(),
        "training_seconds": (last_checkpoint - start).total_seconds(),
        "test_seconds": (end - last_checkpoint).total_seconds() if test else None,
        "active_seconds": active_seconds,
        "sessions": len(sessions),
        "epochs": len(epoch_seconds),
        "first_epoch": first_epoch,
        "last_epoch": max(epoch_seconds) if epoch_seconds else None,
        "epoch_seconds": {str(k): v for k, v in sorted(epoch_seconds.items())},
        "epoch_seconds_median": statistics.median(durations) if durations else None,
        "test_accuracy": test[1] if test else None,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
