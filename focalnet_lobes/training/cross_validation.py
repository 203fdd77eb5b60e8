"""Cross-validation over the ESC-50 folds: one model per held-out fold, pooled per-clip results.

The ESC-50 protocol (Piczak, ACM MM 2015): with folds F_1..F_n, the model for
held-out fold k is trained on the other folds and tested on k; accuracies are
reported as mean +- standard deviation over folds. Here, for held-out fold k
(in sorted order), either every other fold trains with a fixed schedule whose last
epoch is kept (``validation="none"``, the default of ``hparams/cross_validation.yaml``),
or validation (checkpoint selection) uses the *next* fold in cyclic order and the
remaining n - 2 folds train (``"next_fold"``; post-hoc interpreters then keep their
best epoch by validation loss, otherwise their last):
nothing is ever selected on the held-out fold. Each held-out fold is then interpreted with every configured
method (``recipes/interpret.py`` on the test split, i.e. the held-out fold), and
the per-clip results (``per_clip.json``) of all folds are pooled, so every clip
is evaluated exactly once, by the model that never saw it.

:func:`run_cross_validation` runs the trainings and interpretations as
subprocesses of ``recipes/train.py`` and ``recipes/interpret.py`` (the same
commands a user would type), showing the fold and the epoch as they progress,
and skips finished folds when rerun (a fold is finished when
``fold_<k>/fold_done.json`` exists; a half-trained fold resumes from its last
checkpoint, which ``train.py`` does by itself, if the rerun asks for the training
options it was started with, ``fold_<k>/fold_started.json``). :func:`pool_folds` and
:func:`write_cv_results` build ``cv_results.{json,md,png}``, and
:func:`write_per_clip_archive` ``cv_results_per_clip.json.gz`` (every clip's results,
self-contained, for later paired comparisons by :func:`compare_cross_validations`):

* accuracy as mean +- standard deviation over folds (sample standard deviation,
  ddof = 1) and pooled over all clips with its 95% bootstrap CI;
* every interpretation metric at every quantile, pooled over all clips, with its
  95% bootstrap CI (:func:`focalnet_lobes.interpretation.stats.bootstrap_ci`);
* paired differences of every method against the first (the by-design map), clip
  by clip, with their CIs (:func:`focalnet_lobes.interpretation.evaluation.paired_comparison`).

Authors
 * focalnet-audio contributors
"""

import csv
import gzip
import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path

from focalnet_lobes.interpretation.evaluation import (
    TABLE_KEYS,
    InterpretationError,
    configured_interpreter,
    difference_cell,
    format_value,
    load_per_clip,
    markdown_table_header,
    paired_comparison,
)
from focalnet_lobes.interpretation.stats import N_RESAMPLES, SEED, bootstrap_ci, mcnemar_exact, paired_difference

logger = logging.getLogger(__name__)

#: The marker of a finished fold (training and every interpretation done).
DONE_MARKER = "fold_done.json"
#: A fold whose classifier is trained, with the methods interpreted so far.
PROGRESS_FILE = "fold_progress.json"
#: Written before a fold's classifier starts training: what it is trained with, so
#: that a rerun of a half-trained fold with other options stops with the
#: cross-validation's own message instead of ``train.py``'s.
STARTED_FILE = "fold_started.json"
#: Per split interpreted: (finished marker, progress file, interpretation folder,
#: results name). "valid" interprets each fold's validation split: data to choose
#: on (a map, a quantile), never to report.
SPLIT_FILES = {
    "test": (DONE_MARKER, PROGRESS_FILE, "interpretation", "cv_results"),
    "valid": ("fold_done_valid.json", "fold_progress_valid.json", "interpretation_valid",
              "cv_selection"),
}
#: The pooled per-clip results of a cross-validation, written beside
#: ``<name>.json`` as ``<name>``+this suffix: self-contained (nothing in the fold
#: folders is read again), so that :func:`compare_cross_validations` can pair two
#: cross-validations after their fold folders are gone.
PER_CLIP_SUFFIX = "_per_clip.json.gz"
#: Format tag of that archive.
PER_CLIP_FORMAT = "focalnet-audio cross-validation per-clip v1"
#: Placeholder in the list of interpretation YAMLs for the backbone's own map.
BY_DESIGN = "by_design"
#: The by-design interpretation YAML of each backbone kind.
BY_DESIGN_YAMLS = {"focalnet": "interpret_focalnet.yaml", "vit": "interpret_vit.yaml"}
#: Post-hoc methods trained per fold: training recipe, interpretation YAML, the
#: interpretation's option naming the trained interpreter's folder.
POSTHOC_RECIPES = {
    "lmac": ("train_lmac.py", "interpret_lmac.yaml", "--lmac_folder"),
    "piq": ("train_piq.py", "interpret_piq.yaml", "--piq_folder"),
}


class CrossValidationError(ValueError):
    """The cross-validation cannot run: bad folds, a failed training or interpretation."""


def data_folds(data_folder, esc10=False):
    """The fold numbers present in an ESC-50-layout folder (``meta/esc50.csv``), sorted.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Holds ``meta/esc50.csv``.
    esc10 : bool
        Only the rows of the ESC-10 subset (``esc10`` column ``True``).

    Returns
    -------
    list of int

    Raises
    ------
    CrossValidationError
        No metadata file, or fewer than 3 folds (training, validation and
        held-out folds must differ).

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "meta").mkdir()
    >>> rows = ["filename,fold,target,category,esc10,src_file,take"]
    >>> rows += [f"{f}-a.wav,{f},0,dog,{f != 2},a,A" for f in (3, 1, 2, 4)]
    >>> _ = (root / "meta" / "esc50.csv").write_text("\\n".join(rows))
    >>> data_folds(root), data_folds(root, esc10=True)
    ([1, 2, 3, 4], [1, 3, 4])
    """
    meta = Path(data_folder) / "meta" / "esc50.csv"
    if not meta.is_file():
        raise CrossValidationError(f"no {meta}: not an ESC-50-layout folder")
    with open(meta, newline="", encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    try:
        folds = sorted(
            {
                int(row["fold"])
                for row in rows
                if not esc10 or str(row.get("esc10", "")).strip().lower() == "true"
            }
        )
    except (KeyError, ValueError) as error:
        raise CrossValidationError(f"{meta} has no valid 'fold' column: {error}") from error
    if len(folds) < 3:
        raise CrossValidationError(
            f"{meta} has folds {folds}: cross-validation needs at least 3 "
            "(train, validation and held-out folds differ)"
        )
    return folds


#: ``validation`` values of :func:`fold_plan`: checkpoint selection on the next
#: fold, or a fixed schedule (the last epoch) trained on every other fold.
VALIDATIONS = ("next_fold", "none")


def fold_plan(folds, validation="next_fold"):
    """For each held-out fold: the validation fold (the next, cyclically) and the training folds.

    Arguments
    ---------
    folds : sequence of int
        At least 3 distinct folds.
    validation : str
        ``"next_fold"``: validate (select the checkpoint) on the next fold,
        cyclically, and train on the others. ``"none"``: no validation fold
        (``valid_fold`` None); train on every fold but the held-out one, with a
        fixed schedule whose last epoch is kept (``train.py
        --checkpoint_selection last_epoch``).

    Returns
    -------
    list of dict
        ``{"test_fold", "valid_fold", "train_folds"}`` per held-out fold, in order.

    Raises
    ------
    CrossValidationError
        Fewer than 3 folds, or an unknown ``validation``.

    Example
    -------
    >>> [(p["test_fold"], p["valid_fold"], p["train_folds"]) for p in fold_plan([1, 2, 3, 4])]
    [(1, 2, [3, 4]), (2, 3, [1, 4]), (3, 4, [1, 2]), (4, 1, [2, 3])]
    >>> [(p["valid_fold"], p["train_folds"]) for p in fold_plan([1, 2, 3], "none")]
    [(None, [2, 3]), (None, [1, 3]), (None, [1, 2])]
    """
    if validation not in VALIDATIONS:
        raise CrossValidationError(
            f"validation must be one of {', '.join(VALIDATIONS)}, got {validation!r}"
        )
    folds = sorted({int(f) for f in folds})
    if len(folds) < 3:
        raise CrossValidationError(f"cross-validation needs at least 3 folds, got {folds}")
    plan = []
    for index, test_fold in enumerate(folds):
        valid_fold = folds[(index + 1) % len(folds)] if validation == "next_fold" else None
        train = [f for f in folds if f not in (test_fold, valid_fold)]
        plan.append({"test_fold": test_fold, "valid_fold": valid_fold, "train_folds": train})
    return plan


def classifier_kind(run_folder):
    """``"focalnet"``, ``"vit"`` or ``"other"``: the backbone of a training run's classifier.

    Read from the ``hyperparams.yaml`` ``recipes/train.py`` saved (the model is
    built, not loaded: a few hundred milliseconds).

    Example
    -------
    >>> classifier_kind("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.cross_validation.CrossValidationError: no hyperparams.yaml in /nonexistent...
    """
    from hyperpyyaml import load_hyperpyyaml

    path = Path(run_folder) / "hyperparams.yaml"
    if not path.is_file():
        raise CrossValidationError(f"no hyperparams.yaml in {run_folder}: training did not start")
    with open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin)
    model = hparams.get("model")
    return getattr(model, "kind", "other")


def _stream_log(path, position, prefix):
    """Print the lines appended to ``path`` since ``position``; return the new position."""
    if not path.is_file():
        return position
    with open(path, encoding="utf-8", errors="replace") as fin:
        fin.seek(position)
        text = fin.read()
    complete = text[: text.rfind("\n") + 1]
    for line in complete.splitlines():
        if line.strip():
            print(f"{prefix} {line}", flush=True)
    return position + len(complete.encode("utf-8"))


def run_command(command, log_file, progress_file=None, prefix="", poll_s=1.0):
    """Run a recipe as a subprocess, its output in ``log_file``, echoing ``progress_file``.

    Arguments
    ---------
    command : list of str
        The command.
    log_file : pathlib.Path
        Receives the subprocess's stdout and stderr.
    progress_file : pathlib.Path or None
        A file the subprocess appends to (``train_log.txt``: one line per epoch);
        its new lines are printed with ``prefix`` while the command runs.
    prefix : str
        E.g. ``"[fold 2/5]"``.
    poll_s : float
        Seconds between two looks at ``progress_file``.

    Raises
    ------
    CrossValidationError
        Non-zero exit status, with the last line of the output and the log file.

    Example
    -------
    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "log.txt"
    >>> run_command([sys.executable, "-c", "print('hello')"], log)
    >>> log.read_text()
    'hello\\n'
    """
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    position = progress_file.stat().st_size if progress_file and progress_file.is_file() else 0
    with open(log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    process.wait(timeout=poll_s)  # returns as soon as the command ends
                    break
                except subprocess.TimeoutExpired:
                    pass
                if progress_file is not None:
                    position = _stream_log(progress_file, position, prefix)
        except BaseException:
            process.kill()
            process.wait()
            raise
    if progress_file is not None:
        _stream_log(progress_file, position, prefix)
    if process.returncode != 0:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        raise CrossValidationError(
            f"{Path(command[1]).name if len(command) > 1 else command[0]} failed "
            f"(exit {process.returncode}): {lines[-1] if lines else ''} (full output: {log_file})"
        )


def _method_name(name, kind):
    """The method name of an ``interpret_hparams`` entry for a ``kind`` classifier.

    ``by_design`` is named after its YAML (``focalnet``, ``vit``), the others
    after theirs (``interpret_energy.yaml`` -> ``energy``) or are the post-hoc
    method's name (``lmac``).
    """
    if name == BY_DESIGN:
        if kind not in BY_DESIGN_YAMLS:
            raise CrossValidationError(f"no by-design interpretation for a '{kind}' model")
        name = BY_DESIGN_YAMLS[kind]
    return Path(str(name)).stem.replace("interpret_", "", 1)


def _check_reused_interpretations(interpret_hparams, kind, done, hparams_dir, posthoc=()):
    """Stop if a finished interpretation was made by another interpreter than its YAML's now.

    A method is reused by name (``fold_<k>/interpretation/<method>``); when a YAML's
    ``interpreter`` changed since (e.g. ``interpret_focalnet.yaml`` became the
    class-specific map), reusing the old folder would label old maps with the new
    name. ``metrics.json`` records the interpreter's class, the YAML names it.

    Raises
    ------
    CrossValidationError
        Naming the folder, the recorded and the configured interpreter.
    """
    for name in interpret_hparams:
        if name in posthoc:
            continue
        method = _method_name(name, kind)
        if method not in done:
            continue
        yaml_name = BY_DESIGN_YAMLS[kind] if name == BY_DESIGN else name
        try:
            text = _resolve_yaml(yaml_name, hparams_dir).read_text(encoding="utf-8")
        except CrossValidationError:
            continue  # reported where the YAML is needed
        configured = configured_interpreter(text)
        metrics = Path(done[method]) / "metrics.json"
        if configured is None or not metrics.is_file():
            continue
        recorded = json.loads(metrics.read_text(encoding="utf-8")).get("interpreter")
        if recorded and recorded != configured:
            raise CrossValidationError(
                f"{Path(done[method])} was made by {recorded}, but {yaml_name} now gives "
                f"{configured}: remove that folder (or use another --cv_folder) to redo it"
            )


def _read_started(fold_folder):
    """The training options of ``fold_folder/fold_started.json``, or None without one.

    Raises
    ------
    CrossValidationError
        The file is not the JSON this module writes (one line naming it).
    """
    path = Path(fold_folder) / STARTED_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["training"]
    except (ValueError, KeyError, TypeError) as error:
        raise CrossValidationError(
            f"{path} is damaged ({type(error).__name__}: {error}): remove it to resume the fold "
            "as this command asks, or use another --cv_folder"
        ) from None


def _describe_training(training):
    """``focalnet_cpu.yaml --number_of_epochs 40 on /data/ESC-50 with validation next_fold``."""
    return " ".join(
        [training.get("train_hparams", "?"), *training.get("train_overrides", []),
         "on", training.get("data_folder", "?"),
         "with validation", training.get("validation", "next_fold")]
    )


def _resolve_yaml(name, hparams_dir, what="interpretation"):
    path = Path(name) if Path(name).is_file() else Path(hparams_dir) / name
    if not path.is_file():
        raise CrossValidationError(f"no {what} YAML {name} (nor {path})")
    return path


def _interpret_fold(
    prefix, fold_folder, model_folder, interpret_hparams, methods, progress, record,
    recipes_dir, hparams_dir, python, device, interpret_overrides,
    posthoc_hparams, posthoc_overrides, split="test",
):
    """Interpret one fold's held-out clips with every method not in ``methods`` yet.

    ``methods`` (method name -> interpretation folder) is updated in place and
    ``progress`` (the fold's :data:`PROGRESS_FILE`) rewritten after each method,
    so an interruption loses at most the method in progress.
    """
    kind = record["kind"]
    posthoc_hparams = posthoc_hparams or {}
    for name in interpret_hparams:
        method = _method_name(name, kind)
        folder = fold_folder / SPLIT_FILES[split][2] / method
        if method in methods and (Path(methods[method]) / "per_clip.json").is_file():
            continue
        extra = []
        if name == BY_DESIGN:
            path = _resolve_yaml(BY_DESIGN_YAMLS[kind], hparams_dir)
        elif name in posthoc_hparams:
            if name not in POSTHOC_RECIPES:
                raise CrossValidationError(
                    f"unknown post-hoc method '{name}' (known: {sorted(POSTHOC_RECIPES)})"
                )
            recipe, interpret_yaml, option = POSTHOC_RECIPES[name]
            training = posthoc_hparams[name]
            if kind not in training:
                raise CrossValidationError(f"no {name} training YAML for a '{kind}' classifier")
            posthoc_folder = fold_folder / "posthoc" / name
            print(f"{prefix} training {name} on the fold's classifier", flush=True)
            command = [
                python, str(Path(recipes_dir) / recipe),
                str(_resolve_yaml(training[kind], hparams_dir, "post-hoc training")),
                "--classifier_folder", str(model_folder),
                "--output_folder", str(posthoc_folder),
                "--device", device,
                *[str(a) for a in posthoc_overrides],
            ]  # fmt: skip
            run_command(
                command, fold_folder / f"{name}_train_output.txt",
                posthoc_folder / "train_log.txt", prefix,
            )
            path = _resolve_yaml(interpret_yaml, hparams_dir)
            extra = [option, str(posthoc_folder)]
        else:
            path = _resolve_yaml(name, hparams_dir)
        what = "the held-out fold" if split == "test" else "the validation fold"
        print(f"{prefix} interpreting {what} with {path.name} ({method})", flush=True)
        command = [
            python, str(Path(recipes_dir) / "interpret.py"), str(path),
            "--classifier_folder", str(model_folder),
            "--output_folder", str(folder),
            "--split", split,
            "--device", device,
            *extra,
        ]  # fmt: skip
        for key, value in (interpret_overrides or {}).items():
            command += [f"--{key}", _yaml_value(value)]
        run_command(command, folder.parent / f"{method}_output.txt", prefix=prefix)
        methods[method] = str(folder)
        progress.write_text(
            json.dumps({**record, "methods": methods}, indent=2) + "\n", encoding="utf-8"
        )


def _yaml_value(value):
    return value if isinstance(value, str) else json.dumps(value)


def run_cross_validation(
    train_hparams,
    data_folder,
    output_folder,
    interpret_hparams,
    train_overrides=(),
    interpret_overrides=None,
    folds=None,
    esc10=False,
    recipes_dir=None,
    hparams_dir=None,
    python=sys.executable,
    device="cpu",
    n_resamples=N_RESAMPLES,
    seed=SEED,
    posthoc_hparams=None,
    posthoc_overrides=(),
    split="test",
    validation="next_fold",
):
    """Train and interpret one model per held-out fold, then pool and write ``cv_results``.

    Arguments
    ---------
    train_hparams : str or pathlib.Path
        The training YAML (``hparams/focalnet_cpu.yaml``, ...).
    data_folder : str or pathlib.Path
        ESC-50-layout folder.
    output_folder : str or pathlib.Path
        Gets ``fold_<k>/model`` (the training run), ``fold_<k>/interpretation/<method>``,
        ``fold_<k>/fold_done.json`` and ``cv_results.{json,md,png}``.
    interpret_hparams : sequence of str
        Interpretation YAMLs (paths, or names in ``hparams_dir``); ``"by_design"``
        stands for ``interpret_focalnet.yaml`` or ``interpret_vit.yaml`` as the
        trained backbone requires; a key of ``posthoc_hparams`` (``"lmac"``,
        ``"piq"``) is a post-hoc interpreter trained on the fold's classifier
        (its training folds; best checkpoint on its validation fold) and then
        interpreted with ``interpret_<name>.yaml``. The first is the reference
        of the paired differences.
    train_overrides : sequence of str
        Command-line overrides for ``train.py`` (``["--number_of_epochs", "10"]``);
        the folds and the output folder are set here and may not be overridden.
    interpret_overrides : dict or None
        Overrides for every interpretation (``{"num_examples": 0}``).
    folds : sequence of int or None
        Folds to use (default: all of the data, :func:`data_folds`).
    esc10 : bool
        ESC-10 subset (for :func:`data_folds`; pass ``--esc10 True`` to train.py
        in ``train_overrides`` as well).
    recipes_dir, hparams_dir : str or pathlib.Path or None
        Where ``train.py`` / ``interpret.py`` and the interpretation YAMLs are
        (default: the repository's).
    python : str
        Interpreter running the recipes.
    device : str
        Passed to both recipes.
    n_resamples, seed :
        Of the bootstrap.
    posthoc_hparams : dict or None
        ``{method: {classifier kind: training YAML}}`` for the post-hoc methods
        (:data:`POSTHOC_RECIPES`), e.g. ``{"lmac": {"focalnet":
        "lmac_focalnet_cpu.yaml", "vit": "lmac_vit_cpu.yaml"}}``; the trained
        interpreter goes to ``fold_<k>/posthoc/<method>``.
    posthoc_overrides : sequence of str
        Command-line overrides for every post-hoc training recipe.
    split : str
        ``"test"``: interpret each held-out fold (``cv_results``, the figures to
        report). ``"valid"``: interpret each fold's validation split instead
        (``fold_<k>/interpretation_valid``, ``cv_selection.{json,md,png}``):
        where to choose between maps or quantiles without touching the
        held-out folds. The classifiers are shared.
    validation : str
        ``"next_fold"`` (checkpoint selected on the next fold) or ``"none"``
        (a fixed schedule on every other fold, the last epoch kept, post-hoc
        interpreters too; no ``split="valid"``, which needs a validation fold);
        see :func:`fold_plan`.

    Returns
    -------
    dict
        The ``cv_results.json`` content. A rerun with more methods trains no
        classifier again and interprets only what is missing.

    Raises
    ------
    CrossValidationError
        Bad folds or overrides, a failed training or interpretation (the finished
        folds are kept; a rerun continues).
    """
    root = Path(__file__).resolve().parents[2]
    recipes_dir = Path(recipes_dir or root / "recipes")
    hparams_dir = Path(hparams_dir or root / "hparams")
    output_folder = Path(output_folder)
    train_overrides = [str(a) for a in train_overrides]
    reserved = {
        "--output_folder", "--train_folds", "--valid_folds", "--test_folds", "--data_folder",
        "--checkpoint_selection",
    }
    clash = sorted(reserved & {a.split("=")[0] for a in train_overrides})
    if clash:
        raise CrossValidationError(
            f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} set by the "
            "cross-validation, not overridable"
        )
    if not interpret_hparams:
        raise CrossValidationError("no interpretation YAML configured (interpret_hparams is empty)")
    if isinstance(interpret_hparams, str):
        raise CrossValidationError(
            f"interpret_hparams must be a list, got the string '{interpret_hparams}' "
            f'(write --interpret "[{interpret_hparams}]")'
        )
    for name in interpret_hparams:  # typos stop here, before any training
        if name != BY_DESIGN and name not in (posthoc_hparams or {}):
            _resolve_yaml(name, hparams_dir)
    folds = list(folds) if folds else data_folds(data_folder, esc10)
    plan = fold_plan(folds, validation)
    if validation == "none" and split != "test":
        raise CrossValidationError(
            f"split {split} needs a validation fold: not available with validation none "
            "(add --validation next_fold)"
        )
    output_folder.mkdir(parents=True, exist_ok=True)
    # What a fold's classifier is trained with: a rerun must ask for the same.
    training = {
        "train_hparams": Path(train_hparams).name,
        "train_overrides": train_overrides,
        "data_folder": str(Path(data_folder).resolve()),
    }
    if validation != "next_fold":  # records of earlier versions have no key: next_fold
        training["validation"] = validation
    fold_results = []
    for number, fold in enumerate(plan, start=1):
        prefix = f"[fold {number}/{len(plan)}, held out {fold['test_fold']}]"
        fold_folder = output_folder / f"fold_{fold['test_fold']}"
        marker, progress = (fold_folder / name for name in SPLIT_FILES[split][:2])
        previous = next(
            (json.loads(p.read_text(encoding="utf-8")) for p in (marker, progress) if p.is_file()),
            None,
        )
        if previous is None and split != "test":
            # the classifier trained for the held-out fold serves every split
            trained = [fold_folder / DONE_MARKER, fold_folder / PROGRESS_FILE]
            previous = next(
                (json.loads(p.read_text(encoding="utf-8")) | {"methods": {}}
                 for p in trained if p.is_file()),
                None,
            )
        model_folder = fold_folder / "model"
        done = dict(previous["methods"]) if previous else {}
        if previous and previous.get("training", training) != training:
            raise CrossValidationError(
                f"{fold_folder} was trained by {_describe_training(previous['training'])}; this "
                f"command asks for {_describe_training(training)}: use another --cv_folder"
            )
        started = _read_started(fold_folder) if previous is None else None
        if started is not None and started != training:
            raise CrossValidationError(
                f"{fold_folder} was started by {_describe_training(started)}; this command asks "
                f"for {_describe_training(training)}: rerun it as it was started, or use another "
                "--cv_folder"
            )
        if previous:
            wanted = [_method_name(name, previous["kind"]) for name in interpret_hparams]
            _check_reused_interpretations(
                interpret_hparams, previous["kind"], done, hparams_dir, posthoc_hparams or {}
            )
        if previous and all(
            name in done and (Path(done[name]) / "per_clip.json").is_file() for name in wanted
        ):
            print(f"{prefix} finished earlier ({marker}): skipped", flush=True)
            fold_results.append({**previous, "methods": {name: done[name] for name in wanted}})
            continue
        if previous:
            print(f"{prefix} classifier trained earlier: interpreting what is missing", flush=True)
            _interpret_fold(
                prefix, fold_folder, model_folder, interpret_hparams, done, progress, previous,
                recipes_dir, hparams_dir, python, device, interpret_overrides,
                posthoc_hparams, posthoc_overrides, split,
            )
            marker.write_text(
                json.dumps({**previous, "methods": done}, indent=2) + "\n", encoding="utf-8"
            )
            print(f"{prefix} done", flush=True)
            fold_results.append({**previous, "methods": {name: done[name] for name in wanted}})
            continue
        valid_folds = [] if fold["valid_fold"] is None else [fold["valid_fold"]]
        print(
            f"{prefix} training on folds {fold['train_folds']}, "
            + (f"validating on {valid_folds[0]}" if valid_folds
               else "a fixed schedule (no validation, last epoch kept)"),
            flush=True,
        )
        selection = ["--checkpoint_selection", "valid_error" if valid_folds else "last_epoch"]
        # fmt: off
        command = [
            python, str(recipes_dir / "train.py"), str(train_hparams),
            "--data_folder", str(data_folder),
            "--output_folder", str(model_folder),
            "--train_folds", json.dumps(fold["train_folds"]),
            "--valid_folds", json.dumps(valid_folds),
            "--test_folds", json.dumps([fold["test_fold"]]),
            "--device", device,
            *selection,
            *train_overrides,
        ]
        # fmt: on
        fold_folder.mkdir(parents=True, exist_ok=True)
        (fold_folder / STARTED_FILE).write_text(
            json.dumps({"training": training}, indent=2) + "\n", encoding="utf-8"
        )
        run_command(
            command, fold_folder / "train_output.txt", model_folder / "train_log.txt", prefix
        )
        record = {
            **fold, "model_folder": str(model_folder), "kind": classifier_kind(model_folder),
            "training": training,
        }
        wanted = [_method_name(name, record["kind"]) for name in interpret_hparams]
        methods = {}
        progress.write_text(json.dumps({**record, "methods": methods}, indent=2) + "\n", encoding="utf-8")
        _interpret_fold(
            prefix, fold_folder, model_folder, interpret_hparams, methods, progress, record,
            recipes_dir, hparams_dir, python, device, interpret_overrides,
            posthoc_hparams, posthoc_overrides, split,
        )
        marker.write_text(json.dumps({**record, "methods": methods}, indent=2) + "\n", encoding="utf-8")
        print(f"{prefix} done", flush=True)
        fold_results.append({**record, "methods": {name: methods[name] for name in wanted}})
    name = SPLIT_FILES[split][3]
    results = pool_folds(
        fold_results, n_resamples=n_resamples, seed=seed,
        archive=output_folder / f"{name}{PER_CLIP_SUFFIX}",
    )
    results["train_hparams"] = str(train_hparams)
    results["train_overrides"] = train_overrides
    results["data_folder"] = str(data_folder)
    results["split"] = split
    results["validation"] = validation
    write_cv_results(output_folder, results, name)
    return results


def pool_folds(fold_results, n_resamples=N_RESAMPLES, seed=SEED, archive=None):
    """Pool the per-clip results of every fold: accuracy, metrics with CIs, paired differences.

    Arguments
    ---------
    fold_results : list of dict
        ``{"test_fold", "methods": {method: interpretation folder}}`` per fold
        (the ``fold_done.json`` records); every fold must have the same methods.
    n_resamples, seed :
        Of the bootstrap.
    archive : str or pathlib.Path or None
        Where to also write the pooled per-clip results
        (:func:`write_per_clip_archive`, from the same pooling); None: nowhere.

    Returns
    -------
    dict
        ``folds`` (per fold: test/valid/train folds, clips, accuracy),
        ``accuracy`` (``mean``, ``std`` over folds, ``pooled`` CI dict),
        ``methods`` (names, the first is the reference), ``metrics``
        (``{method: {q: {metric: CI dict}}}``), ``paired_differences``
        (``[{"label", "reference", "clips", "quantiles", "accuracy"}]``),
        ``bootstrap`` (settings).

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.interpretation.evaluation import write_per_clip
    >>> root, folds = Path(tempfile.mkdtemp()), []
    >>> for fold in (1, 2, 3):
    ...     methods = {}
    ...     for method, value in (("focalnet", 0.9), ("random", 0.5)):
    ...         per_clip = {"ids": [f"{fold}-{i}" for i in range(4)], "labels": [0, 1, 0, 1],
    ...                     "predicted": [0, 1, 0, fold % 2],
    ...                     "quantiles": {"0.9": {"fid_i": [value] * 4}}}
    ...         _ = write_per_clip(root / str(fold) / method, per_clip)
    ...         methods[method] = str(root / str(fold) / method)
    ...     folds.append({"test_fold": fold, "methods": methods})
    >>> pooled = pool_folds(folds, n_resamples=99)
    >>> [f["accuracy"] for f in pooled["folds"]], round(pooled["accuracy"]["mean"], 3)
    ([1.0, 0.75, 1.0], 0.917)
    >>> pooled["metrics"]["focalnet"]["0.9"]["fid_i"]["n"]
    12
    >>> round(pooled["paired_differences"][0]["quantiles"]["0.9"]["fid_i"]["mean"], 6)
    -0.4
    """
    pooled, folds, methods = _pool_per_clip(fold_results)
    if archive is not None:
        _write_archive(archive, pooled, folds, methods)
    reference = pooled[methods[0]]
    right = [int(p == y) for p, y in zip(reference["predicted"], reference["labels"])]
    accuracies = [fold["accuracy"] for fold in folds]
    metrics = {
        method: {
            q: {
                name: bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
                for name, values in columns.items()
                if name in TABLE_KEYS
            }
            for q, columns in sorted(data["quantiles"].items(), key=lambda item: float(item[0]))
        }
        for method, data in pooled.items()
    }
    differences = []
    for method in methods[1:]:
        difference = paired_comparison(
            pooled[method], reference, n_resamples=n_resamples, seed=seed
        )
        differences.append({"label": method, "reference": methods[0], **difference})
    return {
        "folds": folds,
        "accuracy": {
            "mean": statistics.fmean(accuracies),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "pooled": bootstrap_ci(right, n_resamples=n_resamples, seed=seed),
        },
        "methods": methods,
        "metrics": metrics,
        "paired_differences": differences,
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
    }


def _pool_per_clip(fold_results):
    """Concatenate the per-clip results of every fold, method by method.

    Returns ``(pooled, folds, methods)``: ``{method: per-clip dict}``, one
    summary per fold (from the first method's predictions) and the method names.
    """
    if not fold_results:
        raise CrossValidationError("no fold to pool")
    methods = list(fold_results[0]["methods"])
    for record in fold_results:
        if list(record["methods"]) != methods:
            raise CrossValidationError(
                f"fold {record['test_fold']} has methods {list(record['methods'])}, "
                f"fold {fold_results[0]['test_fold']} has {methods}: rerun with one configuration"
            )
    pooled = {}
    folds = []
    for record in fold_results:
        for method, folder in record["methods"].items():
            try:
                per_clip = load_per_clip(folder)
            except InterpretationError as error:
                raise CrossValidationError(str(error)) from error
            target = pooled.setdefault(
                method, {"ids": [], "labels": [], "predicted": [], "quantiles": {}}
            )
            offset = len(target["ids"])
            for key in ("ids", "labels", "predicted"):
                target[key] += per_clip[key]
            for q, columns in per_clip["quantiles"].items():
                row = target["quantiles"].setdefault(q, {})
                for name, values in columns.items():
                    if len(row.get(name, [])) != offset:
                        raise CrossValidationError(f"{folder}: metric {name} at q = {q} is missing")
                    row[name] = row.get(name, []) + list(values)
            if method == methods[0]:
                right = [p == y for p, y in zip(per_clip["predicted"], per_clip["labels"])]
                folds.append(
                    {
                        key: record.get(key)
                        for key in ("test_fold", "valid_fold", "train_folds", "model_folder")
                    }
                    | {"clips": len(right), "accuracy": sum(right) / len(right)}
                )
    reference = pooled[methods[0]]
    if len(set(reference["ids"])) != len(reference["ids"]):
        raise CrossValidationError("a clip id appears in two folds: the folds overlap")
    return pooled, folds, methods


def write_per_clip_archive(path, fold_results):
    """Write the pooled per-clip results of every fold to one gzipped JSON file.

    The archive holds what :func:`compare_cross_validations` needs (clip ids,
    labels, predictions and every metric of every method at every quantile, in
    pooling order; the fold summaries name the fold folders, but nothing in them
    is read again), so a comparison can be redone from it alone, e.g. from
    ``benchmarks/results`` after the training runs are deleted. Values are kept
    to 6 significant digits (far below the bootstrap CIs' width; a third of the
    size) and written deterministically (gzip ``mtime`` 0).
    :func:`run_cross_validation` writes it through :func:`pool_folds`.

    Arguments
    ---------
    path : str or pathlib.Path
        Output file (``cv_results_per_clip.json.gz``).
    fold_results : list of dict
        The ``fold_done.json`` records, as for :func:`pool_folds`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    CrossValidationError
        As :func:`pool_folds` (missing per-clip files, overlapping folds).

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.interpretation.evaluation import write_per_clip
    >>> root = Path(tempfile.mkdtemp())
    >>> per_clip = {"ids": ["1-a", "1-b"], "labels": [0, 1], "predicted": [0, 0],
    ...             "quantiles": {"0.9": {"fid_i": [1.0, 0.0]}}}
    >>> folder = write_per_clip(root / "energy", per_clip)["json"].parent
    >>> archive = write_per_clip_archive(root / "cv_results_per_clip.json.gz",
    ...                                  [{"test_fold": 1, "methods": {"energy": str(folder)}}])
    >>> pooled, folds, methods = load_pooled_per_clip(archive)
    >>> methods, folds[0]["accuracy"], pooled["energy"]["quantiles"]["0.9"]["fid_i"]
    (['energy'], 0.5, [1.0, 0.0])
    """
    return _write_archive(path, *_pool_per_clip(fold_results))


def _write_archive(path, pooled, folds, methods):
    """Write :func:`_pool_per_clip`'s ``(pooled, folds, methods)`` as a per-clip archive."""
    data = {"format": PER_CLIP_FORMAT, "methods": methods, "folds": folds,
            "per_clip": _significant(pooled)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as stream:
        stream.write(json.dumps(data, separators=(",", ":")).encode("utf-8"))
    return path


def _significant(value, digits=6):
    """``value`` with every float rounded to ``digits`` significant digits (lists, dicts walked)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, list):
        return [_significant(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _significant(v, digits) for k, v in value.items()}
    return value


def load_pooled_per_clip(source):
    """The pooled per-clip results of a cross-validation: ``(pooled, folds, methods)``.

    Arguments
    ---------
    source : str or pathlib.Path
        A cross-validation folder (its ``fold_<k>/fold_done.json`` records and the
        per-clip files they name; where those are gone, the folder's
        ``cv_results_per_clip.json.gz``), or such an archive file
        (:func:`write_per_clip_archive`).

    Returns
    -------
    tuple
        ``({method: {"ids", "labels", "predicted", "quantiles"}}, [fold summary], [method])``,
        as pooled by :func:`pool_folds`.

    Raises
    ------
    CrossValidationError
        No such folder or file, no finished fold and no archive, or a file that
        is not such an archive (one line naming it).

    Example
    -------
    >>> load_pooled_per_clip("/nonexistent")
    Traceback (most recent call last):
    ...
    focalnet_lobes.training.cross_validation.CrossValidationError: /nonexistent: no such folder or file
    """
    source = Path(source)
    if source.is_file():
        return _read_per_clip_archive(source)
    if not source.exists():
        raise CrossValidationError(f"{source}: no such folder or file")
    archive = source / f"{SPLIT_FILES['test'][3]}{PER_CLIP_SUFFIX}"
    if source.is_dir() and archive.is_file():
        try:
            return _pool_per_clip(load_fold_records(source))
        except CrossValidationError:
            return _read_per_clip_archive(archive)
    return _pool_per_clip(load_fold_records(source))


def _read_per_clip_archive(path):
    """``(pooled, folds, methods)`` of a :func:`write_per_clip_archive` file."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CrossValidationError(f"{path}: not a gzipped per-clip archive ({error})") from None
    if not isinstance(data, dict) or data.get("format") != PER_CLIP_FORMAT:
        raise CrossValidationError(f"{path}: not a per-clip archive ({PER_CLIP_FORMAT!r} expected)")
    pooled, folds, methods = data.get("per_clip"), data.get("folds"), data.get("methods")
    problem = _archive_problem(pooled, folds, methods)
    if problem:
        raise CrossValidationError(f"{path}: damaged per-clip archive: {problem}")
    return pooled, folds, methods


def _archive_problem(pooled, folds, methods):
    """What is wrong with an archive's contents (one phrase), or None."""
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        return "'methods' is not a list of method names"
    if not isinstance(folds, list) or not all(isinstance(f, dict) for f in folds):
        return "'folds' is not a list of fold summaries"
    if not isinstance(pooled, dict) or set(pooled) != set(methods):
        return "'per_clip' does not hold exactly the listed methods"
    keys = ("ids", "labels", "predicted")
    for method in methods:
        clips = pooled[method]
        if (not isinstance(clips, dict) or not all(isinstance(clips.get(k), list) for k in keys)
                or not isinstance(clips.get("quantiles"), dict)
                or len({len(clips[k]) for k in keys}) != 1):
            return f"method {method!r} lacks equal-length ids, labels, predicted and quantiles"
        for q, columns in clips["quantiles"].items():
            if not isinstance(columns, dict) or any(
                not isinstance(v, list) or len(v) != len(clips["ids"]) for v in columns.values()
            ):
                return f"method {method!r} at q = {q}: a metric is not one value per clip"
    return None


def load_fold_records(cv_folder):
    """The ``fold_done.json`` records of a cross-validation folder, in fold order.

    Raises
    ------
    CrossValidationError
        No finished fold in ``cv_folder``.
    """
    markers = sorted(
        Path(cv_folder).glob(f"fold_*/{DONE_MARKER}"),
        key=lambda path: int(path.parent.name.split("_", 1)[1]),
    )
    if not Path(cv_folder).is_dir():
        raise CrossValidationError(f"{cv_folder}: no such folder")
    if not markers:
        raise CrossValidationError(f"{cv_folder}: no finished fold (no fold_*/{DONE_MARKER})")
    return [json.loads(path.read_text(encoding="utf-8")) for path in markers]


def compare_cross_validations(first, second, n_resamples=N_RESAMPLES, seed=SEED,
                              first_method=None, second_method=None):
    """Paired comparison of two cross-validations on the same clips (e.g. FocalNet vs ViT).

    Every clip was held out once in each cross-validation, so the two pooled
    results are paired clip by clip: accuracy by the exact McNemar test and the
    bootstrap CI of the difference in accuracy, and every interpretation metric
    of the by-design maps (the first method of each) and of each method that
    both ran (energy, saliency, L-MAC, ...) as a paired difference with its CI
    (:func:`focalnet_lobes.interpretation.evaluation.paired_comparison`).

    Either side may be several cross-validations of one recipe (seeds) on the same
    folds: each clip's correctness and metrics are then averaged over that side's
    seeds before the paired difference (one value per clip; the bootstrap resamples
    clips, so the interval is for *these* seeds: it does not account for how much
    another draw of seeds would move the means). Each seed pair (the i-th seed of
    each side, the last one repeated when a side has fewer; the pairing itself is
    arbitrary, so these are descriptive) gets its accuracy difference with its CI
    and the exact McNemar test, which needs one prediction per clip
    (``accuracy["per_seed"]``).

    Arguments
    ---------
    first, second : str, pathlib.Path or list of them
        Cross-validation folders (``fold_<k>/fold_done.json``) or their per-clip
        archives (``cv_results_per_clip.json.gz``, :func:`load_pooled_per_clip`);
        a list: the seeds of one recipe. Differences are ``first - second``.
    n_resamples, seed :
        Of the bootstrap.
    first_method, second_method : str or None
        The methods paired first (e.g. ``"focalnet"`` against ``"vit_x_input"``);
        None: each cross-validation's first method, its by-design map.

    Returns
    -------
    dict
        ``{"first", "second", "clips", "seeds": [first, second], "accuracy":
        {"first", "second", "difference" (CI dict), "mcnemar" (None with several
        seeds), "per_seed": [{"first", "second", "difference", "mcnemar"}]},
        "pairs": [{"label", "quantiles"}], "probabilities"}``; ``probabilities`` is the
        first pair's :func:`explained_class_probabilities` (None for archives without
        the per-clip probabilities).

    Raises
    ------
    CrossValidationError
        A folder without finished folds, clips that differ between the
        cross-validations, or a ``first_method`` / ``second_method`` one of them did
        not run.

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.interpretation.evaluation import write_per_clip
    >>> root = Path(tempfile.mkdtemp())
    >>> for name, right, value in (("a", [1, 1, 1, 1], 0.8), ("b", [1, 0, 0, 1], 0.5)):
    ...     for fold in (1, 2):
    ...         folder = root / name / f"fold_{fold}"
    ...         methods = {}
    ...         for method in ("by_design", "energy"):
    ...             per_clip = {"ids": [f"{fold}-{i}" for i in range(4)], "labels": [0] * 4,
    ...                         "predicted": [1 - r for r in right],
    ...                         "quantiles": {"0.9": {"fid_i": [value] * 4}}}
    ...             methods[method] = str(write_per_clip(folder / method, per_clip)["json"].parent)
    ...         _ = (folder / DONE_MARKER).write_text(json.dumps(
    ...             {"test_fold": fold, "methods": methods}))
    >>> result = compare_cross_validations(root / "a", root / "b", n_resamples=99)
    >>> result["clips"], result["accuracy"]["first"], result["accuracy"]["second"]
    (8, 1.0, 0.5)
    >>> [p["label"] for p in result["pairs"]]
    ['by_design', 'energy']
    >>> round(result["pairs"][0]["quantiles"]["0.9"]["fid_i"]["mean"], 6)
    0.3
    >>> chosen = compare_cross_validations(root / "a", root / "b", n_resamples=99,
    ...                                    first_method="by_design", second_method="energy")
    >>> [p["label"] for p in chosen["pairs"]]
    ['by_design − energy']
    >>> seeds = compare_cross_validations([root / "a", root / "b"], root / "b", n_resamples=99)
    >>> seeds["seeds"], seeds["accuracy"]["first"], seeds["accuracy"]["mcnemar"]
    ([2, 1], 0.75, None)
    >>> [s["mcnemar"]["first_only"] for s in seeds["accuracy"]["per_seed"]]
    [4, 0]
    >>> round(seeds["pairs"][0]["quantiles"]["0.9"]["fid_i"]["mean"], 6)  # (0.8 + 0.5) / 2 - 0.5
    0.15
    """
    sides = [_seed_sources(first), _seed_sources(second)]
    loaded = [[load_pooled_per_clip(source) for source in side] for side in sides]
    methods = []
    for side, runs, method in zip(sides, loaded, (first_method, second_method)):
        common = [m for m in runs[0][2] if all(m in run[2] for run in runs)]
        for source, run in zip(side, runs):
            if method is not None and method not in run[2]:
                raise CrossValidationError(
                    f"{source} has no method {method!r} (it ran {', '.join(run[2])})"
                )
        if method is None and (not common or common[0] != runs[0][2][0]):
            raise CrossValidationError(
                f"{', '.join(str(s) for s in side)}: the seeds' first methods differ "
                f"({', '.join(run[2][0] for run in runs)}): name the one to pair with "
                "--first_method / --second_method"
            )
        methods.append(common)
    reference_ids = sorted(loaded[0][0][0][loaded[0][0][2][0]]["ids"])
    for side, runs in zip(sides, loaded):
        for source, (pooled, _, run_methods) in zip(side, runs):
            if sorted(pooled[run_methods[0]]["ids"]) != reference_ids:
                raise CrossValidationError(
                    f"{sides[0][0]} and {source} held out different clips: "
                    "not comparable clip by clip"
                )
    lead = [first_method or methods[0][0], second_method or methods[1][0]]
    pairs = [tuple(lead)]
    pairs += [(m, m) for m in methods[0] if m in methods[1] and m not in lead]
    several = any(len(side) > 1 for side in sides)
    compared, probabilities = [], None
    for left, right in pairs:
        averaged = (_seed_average([run[0][left] for run in loaded[0]], reference_ids),
                    _seed_average([run[0][right] for run in loaded[1]], reference_ids))
        difference = paired_comparison(*averaged, n_resamples=n_resamples, seed=seed)
        if probabilities is None:  # the lead pair: the by-design maps (or the methods named)
            probabilities = explained_class_probabilities(*averaged, n_resamples=n_resamples, seed=seed)
        if several:  # a McNemar test of the first seeds only would read as the whole
            difference.pop("accuracy", None)
        # "focalnet − vit" across two kinds of model; one name when both CVs have it
        compared.append({"label": left if left == right else f"{left} − {right}", **difference})
    correct = [[_correct(run[0][run[2][0]], reference_ids) for run in runs] for runs in loaded]
    per_seed = []
    for i in range(max(len(side) for side in sides)):
        one, two = correct[0][min(i, len(correct[0]) - 1)], correct[1][min(i, len(correct[1]) - 1)]
        per_seed.append({"first": statistics.fmean(one), "second": statistics.fmean(two),
                         "difference": paired_difference(one, two, n_resamples=n_resamples,
                                                         seed=seed),
                         "mcnemar": mcnemar_exact(one, two)})
    mean_first = [statistics.fmean(values) for values in zip(*correct[0])]
    mean_second = [statistics.fmean(values) for values in zip(*correct[1])]
    difference = (  # one seed a side: the seed pair's difference is the difference
        paired_difference(mean_first, mean_second, n_resamples=n_resamples, seed=seed)
        if several else per_seed[0]["difference"]
    )
    return {
        "first": str(sides[0][0]) if len(sides[0]) == 1 else [str(s) for s in sides[0]],
        "second": str(sides[1][0]) if len(sides[1]) == 1 else [str(s) for s in sides[1]],
        "clips": len(reference_ids),
        "seeds": [len(side) for side in sides],
        "accuracy": {
            "first": statistics.fmean(mean_first),
            "second": statistics.fmean(mean_second),
            "difference": difference,
            "mcnemar": None if several else per_seed[0]["mcnemar"],
            "per_seed": per_seed,
        },
        "pairs": compared,
        "probabilities": probabilities,
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
    }


#: The per-clip probabilities of the explained class (:func:`focalnet_lobes.interpretation.metrics.interpretation_metrics`).
PROBABILITY_FIELDS = ("p_full", "p_in", "p_out")


def explained_class_probabilities(first, second, n_resamples=N_RESAMPLES, seed=SEED):
    """The explained class's mean probabilities of two per-clip results, and their paired differences.

    FA = p_full - p_in, FF = p_full - p_out, AD and AG are read off the probability
    p_c of the class c predicted on the full input X, so two models that differ in
    confidence (calibration: label smoothing, temperature) differ in them even with
    equally faithful maps. This gives what those metrics are made of: p_full =
    p_c(X) (the same at every quantile), and at each quantile p_in = p_c(M * X) and
    p_out = p_c((1 - M) * X), each side's mean over the clips and the paired
    difference ``first - second`` with its bootstrap CI
    (:func:`focalnet_lobes.interpretation.stats.paired_difference`). A lever whose FF
    and FA rise together with p_full has sharpened the probabilities, not the map
    (benchmarks/README.md, "Session 30", LS0).

    Arguments
    ---------
    first, second : dict
        Per-clip results on the same clips in the same order (``ids``; a side's
        seeds averaged clip by clip), with ``p_full``, ``p_in`` and ``p_out`` among
        their per-quantile columns (archives written since the probabilities were
        recorded).
    n_resamples, seed :
        Of the bootstrap.

    Returns
    -------
    dict or None
        ``{"p_full": row, "quantiles": {q: {"p_in": row, "p_out": row}}}``, each row
        the paired difference's ``mean``, ``low``, ``high``, ``significant`` plus
        ``first`` and ``second`` (each side's mean); None when either result has
        no probabilities.

    Example
    -------
    >>> a = {"ids": ["x", "y"], "quantiles": {"0.9": {"p_full": [0.9, 0.7], "p_in": [0.8, 0.6],
    ...                                                 "p_out": [0.3, 0.2]}}}
    >>> b = {"ids": ["x", "y"], "quantiles": {"0.9": {"p_full": [0.6, 0.6], "p_in": [0.5, 0.5],
    ...                                                 "p_out": [0.1, 0.2]}}}
    >>> result = explained_class_probabilities(a, b, n_resamples=99)
    >>> [round(result["p_full"][k], 3) for k in ("first", "second", "mean")]
    [0.8, 0.6, 0.2]
    >>> round(result["quantiles"]["0.9"]["p_out"]["mean"], 3)
    0.1
    >>> explained_class_probabilities(a, {"ids": ["x", "y"], "quantiles": {"0.9": {}}}) is None
    True
    """
    if first["ids"] != second["ids"]:
        raise ValueError("the two per-clip results must hold the same clips in the same order")

    def row(name, q):
        one, two = first["quantiles"][q][name], second["quantiles"][q][name]
        return {"first": statistics.fmean(one), "second": statistics.fmean(two),
                **paired_difference(one, two, n_resamples=n_resamples, seed=seed)}

    quantiles = sorted(
        (q for q in first["quantiles"] if q in second["quantiles"]
         and all(n in first["quantiles"][q] and n in second["quantiles"][q] for n in PROBABILITY_FIELDS)),
        key=float,
    )
    if not quantiles:
        return None
    return {"p_full": row("p_full", quantiles[0]),
            "quantiles": {q: {n: row(n, q) for n in ("p_in", "p_out")} for q in quantiles}}


def _seed_sources(value):
    """One source or a list of them (the seeds of one recipe) as a non-empty list."""
    sources = list(value) if isinstance(value, (list, tuple)) else [value]
    if not sources:
        raise CrossValidationError("no cross-validation given")
    return sources


def _correct(per_clip, ids):
    """Per-clip correctness (0/1) of a pooled per-clip result, in the order of ``ids``."""
    index = {clip: i for i, clip in enumerate(per_clip["ids"])}
    return [int(per_clip["predicted"][index[c]] == per_clip["labels"][index[c]]) for c in ids]


def _seed_average(results, ids):
    """The per-clip results of several seeds as one: metrics averaged clip by clip.

    ``ids`` orders the clips; ``predicted`` is the first seed's (a single seed is
    returned as it is, reordered). Only the metrics every seed holds are kept.
    """
    index = [{clip: i for i, clip in enumerate(r["ids"])} for r in results]
    first = results[0]
    averaged = {"ids": list(ids),
                "labels": [first["labels"][index[0][c]] for c in ids],
                "predicted": [first["predicted"][index[0][c]] for c in ids],
                "quantiles": {}}
    for q, columns in first["quantiles"].items():
        names = [n for n in columns if all(n in r["quantiles"].get(q, {}) for r in results)]
        averaged["quantiles"][q] = {
            n: [statistics.fmean(r["quantiles"][q][n][k[c]] for r, k in zip(results, index))
                for c in ids]
            for n in names
        }
    return averaged


def _difference_cells(row, names):
    """The table cells of one row of paired differences: :func:`difference_cell` or ``-``.

    Arguments
    ---------
    row : dict
        Metric key -> paired difference (``mean``, ``low``, ``high``,
        ``significant``) at one quantile; a key may be missing.
    names : sequence of str
        The metric keys of the table's columns.

    Returns
    -------
    list of str
        One cell per name, ``"-"`` where the row has no difference.

    Example
    -------
    >>> d = {"mean": 0.1, "low": 0.05, "high": 0.2, "significant": True}
    >>> _difference_cells({"fa": d}, ["fid_i", "fa"])
    ['-', '**+0.100 [+0.050, +0.200]**']
    """
    return [difference_cell(row[n]) if n in row else "-" for n in names]


def markdown_comparison(result):
    """The markdown report of :func:`compare_cross_validations`.

    Example
    -------
    >>> d = {"mean": 0.1, "low": 0.05, "high": 0.2, "significant": True}
    >>> result = {"first": "A", "second": "B", "clips": 8,
    ...           "accuracy": {"first": 0.9, "second": 0.8, "difference": d,
    ...                        "mcnemar": {"p_value": 0.03, "first_only": 3, "second_only": 0}},
    ...           "pairs": [{"label": "x − y", "quantiles": {"0.9": {"fid_i": d}}}]}
    >>> print(markdown_comparison(result).splitlines()[-1])
    | x − y | **+0.100 [+0.050, +0.200]** |
    >>> test = {"p_value": 0.5, "first_only": 2, "second_only": 1}
    >>> seeds = dict(result, first=["A1", "A2"], seeds=[2, 1], accuracy=dict(
    ...     result["accuracy"], mcnemar=None,
    ...     per_seed=[{"first": 0.9, "second": 0.8, "mcnemar": test}] * 2))
    >>> print("\\n".join(markdown_comparison(seeds).splitlines()[2:7]))
    - first: `A1`, `A2`; second: `B`; 8 clips, each held out once in every one
    - seeds: 2 / 1; each clip's correctness and metrics are averaged over a side's seeds before the paired difference (the CI is for these seeds)
    - accuracy: 90.0% vs 80.0%, difference +10.0 points [+5.0, +20.0] (95% bootstrap CI, excludes 0)
      - seed pair 1: 90.0% vs 80.0%, exact McNemar p = 0.5 (2 clips right only in the first, 1 only in the second)
      - seed pair 2: 90.0% vs 80.0%, exact McNemar p = 0.5 (2 clips right only in the first, 1 only in the second)
    >>> boot = dict(result, bootstrap={"n_resamples": 10000, "seed": 0})
    >>> print(markdown_comparison(boot).splitlines()[4])
    - bootstrap: 10000 resamples of the clips, seed 0
    """
    accuracy = result["accuracy"]
    d = accuracy["difference"]
    mcnemar = accuracy["mcnemar"]
    seeds = result.get("seeds", [1, 1])

    def sources(side):
        return ", ".join(f"`{s}`" for s in side) if isinstance(side, list) else f"`{side}`"

    def discordant(test):
        return (f"exact McNemar p = {test['p_value']:.3g} ({test.get('first_only', '?')} clips "
                f"right only in the first, {test.get('second_only', '?')} only in the second)")

    lines = [
        "# Two cross-validations, clip by clip",
        "",
        f"- first: {sources(result['first'])}; second: {sources(result['second'])}; "
        f"{result['clips']} clips, each held out once in "
        + ("both" if max(seeds) == 1 else "every one"),
    ]
    if max(seeds) > 1:
        lines.append(f"- seeds: {seeds[0]} / {seeds[1]}; each clip's correctness and metrics "
                     "are averaged over a side's seeds before the paired difference (the CI is "
                     "for these seeds)")
    lines.append(
        f"- accuracy: {100 * accuracy['first']:.1f}% vs {100 * accuracy['second']:.1f}%, "
        f"difference {100 * d['mean']:+.1f} points [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] "
        f"(95% bootstrap CI{', excludes 0' if d['significant'] else ', includes 0'})"
        + (f"; {discordant(mcnemar)}" if mcnemar is not None else "")
    )
    if mcnemar is None:
        for i, pair in enumerate(accuracy.get("per_seed", []), 1):
            gap = pair.get("difference")
            gap = ("" if gap is None else f" ({100 * gap['mean']:+.1f} [{100 * gap['low']:+.1f}, "
                   f"{100 * gap['high']:+.1f}])")
            lines.append(f"  - seed pair {i}: {100 * pair['first']:.1f}% vs "
                         f"{100 * pair['second']:.1f}%{gap}, {discordant(pair['mcnemar'])}")
    boot = result.get("bootstrap")
    if boot:
        lines.append(f"- bootstrap: {boot.get('n_resamples', '?')} resamples of the clips, "
                     f"seed {boot.get('seed', '?')}")
    probabilities = result.get("probabilities")
    if probabilities:
        full = probabilities["p_full"]
        lines.append(
            f"- confidence ({result['pairs'][0]['label']}): the explained class's mean probability "
            f"on the full input p_c(X) {full['first']:.3f} vs {full['second']:.3f}, difference "
            f"{difference_cell(full)}"
            + ("; FA, FF, AD and AG are read off these probabilities, so they differ with the "
               "confidence as well as with the map (p_in and p_out below)" if full["significant"] else "")
        )
    quantiles = sorted({q for pair in result["pairs"] for q in pair["quantiles"]}, key=float)
    for q in quantiles:
        names = [n for n in TABLE_KEYS if any(n in p["quantiles"].get(q, {}) for p in result["pairs"])]
        lines += [
            "",
            f"## q = {q}: paired differences (first − second; **bold**: the 95% CI excludes 0 "
            "and |mean| >= 0.0005)",
            "",
            *markdown_table_header(["Pair"], names),
        ]
        for pair in result["pairs"]:
            cells = _difference_cells(pair["quantiles"].get(q, {}), names)
            lines.append(f"| {pair['label']} | " + " | ".join(cells) + " |")
        at_q = (probabilities or {}).get("quantiles", {}).get(q)
        if at_q:
            lines += ["", f"{result['pairs'][0]['label']}: the explained class's mean probability "
                      + "; ".join(f"{title} {at_q[n]['first']:.3f} vs {at_q[n]['second']:.3f} "
                                  f"({difference_cell(at_q[n])})"
                                  for n, title in (("p_in", "masked-in p_c(M * X)"),
                                                   ("p_out", "masked-out p_c((1 - M) * X)")))]
    return "\n".join(lines) + "\n"


def markdown_cv(results):
    """The markdown report of :func:`pool_folds` (plus what :func:`run_cross_validation` adds).

    Example
    -------
    >>> ci = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 8}
    >>> results = {"folds": [{"test_fold": 1, "valid_fold": 2, "train_folds": [3],
    ...                       "clips": 8, "accuracy": 0.5}],
    ...            "accuracy": {"mean": 0.5, "std": 0.0, "pooled": ci},
    ...            "methods": ["focalnet"], "metrics": {"focalnet": {"0.9": {"fid_i": ci}}},
    ...            "paired_differences": [], "bootstrap": {"n_resamples": 99, "seed": 0}}
    >>> "| focalnet | 0.500 [0.400, 0.600] |" in markdown_cv(results)
    True
    """
    accuracy = results["accuracy"]
    pooled = accuracy["pooled"]
    lines = ["# Cross-validation", ""]
    if results.get("split") == "valid":
        lines += [
            "**Selection data**: each fold's *validation* split (the clips that chose its "
            "checkpoint), interpreted by that fold's model (named by the fold it holds out); "
            "accuracy and metrics are on those validation clips. Choose here, report "
            "`cv_results.md`.",
            "",
        ]
    lines += [
        f"- training: `{results.get('train_hparams', '?')}` "
        f"{' '.join(results.get('train_overrides', []))}",
        *([
            "- selection: none, a fixed schedule on every other fold (the last epoch kept)"
        ] if results.get("validation") == "none" else []),
        f"- data: `{results.get('data_folder', '?')}`, {len(results['folds'])} folds, "
        + (f"{pooled['n']} validation clips, each evaluated by the model it selected"
           if results.get("split") == "valid" else
           f"{pooled['n']} held-out clips, each evaluated once by the model that did not see it"),
        f"- accuracy: **{100 * accuracy['mean']:.1f} ± {100 * accuracy['std']:.1f}%** "
        f"(mean ± std over folds); pooled {100 * pooled['mean']:.1f}% "
        f"[{100 * pooled['low']:.1f}, {100 * pooled['high']:.1f}] (95% bootstrap CI)",
        "",
        "| held-out fold | validation fold | training folds | clips | accuracy (%) |",
        "|---|---|---|---|---|",
    ]
    for fold in results["folds"]:
        lines.append(
            f"| {fold['test_fold']} | "
            f"{'none' if fold.get('valid_fold') is None else fold['valid_fold']} | "
            f"{fold.get('train_folds', '-')} | {fold['clips']} | {100 * fold['accuracy']:.1f} |"
        )
    quantiles = sorted(
        {q for method in results["metrics"].values() for q in method}, key=float
    )
    for q in quantiles:
        names = [
            n for n in TABLE_KEYS if any(n in m.get(q, {}) for m in results["metrics"].values())
        ]
        lines += [
            "",
            f"## q = {q} (pooled over folds, mean [95% CI])",
            "",
            *markdown_table_header(["Method"], names),
        ]
        for method in results["methods"]:
            row = results["metrics"][method].get(q, {})
            cells = [
                f"{format_value(row[n]['mean'])} [{format_value(row[n]['low'])}, "
                f"{format_value(row[n]['high'])}]"
                if n in row
                else "-"
                for n in names
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        if results["paired_differences"]:
            lines += [
                "",
                f"Paired differences at q = {q} (method − {results['methods'][0]}, same clips; "
                "**bold**: the 95% CI excludes 0 and |mean| >= 0.0005):",
                "",
                *markdown_table_header(["Pair"], names),
            ]
            for difference in results["paired_differences"]:
                cells = _difference_cells(difference["quantiles"].get(q, {}), names)
                lines.append(
                    f"| {difference['label']} − {difference['reference']} | "
                    + " | ".join(cells)
                    + " |"
                )
    boot = results.get("bootstrap", {})
    lines += [
        "",
        f"CIs: bootstrap over the pooled clips (scipy.stats.bootstrap, BCa, "
        f"{boot.get('n_resamples', '?')} resamples, seed {boot.get('seed', '?')}).",
    ]
    return "\n".join(lines) + "\n"


def plot_cv(path, results):
    """Save ``cv_results.png``: accuracy per fold, and FID-I against q with 95% CI bands.

    Example
    -------
    >>> import tempfile
    >>> ci = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 8}
    >>> results = {"folds": [{"test_fold": 1, "accuracy": 0.5}], "accuracy": {"mean": 0.5},
    ...            "methods": ["focalnet"], "metrics": {"focalnet": {"0.9": {"fid_i": ci}}}}
    >>> path = Path(tempfile.mkdtemp()) / "cv.png"
    >>> plot_cv(path, results)
    >>> path.stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    folds = results["folds"]
    left.bar([str(f["test_fold"]) for f in folds], [100 * f["accuracy"] for f in folds])
    left.axhline(100 * results["accuracy"]["mean"], color="k", linestyle="--", label="mean")
    selection = results.get("split") == "valid"
    left.set_xlabel("held-out fold (the model)")
    left.set_ylabel("accuracy (%)")
    left.set_title("Validation accuracy (selection data)" if selection else "Accuracy per held-out fold")
    left.legend()
    for method in results["methods"]:
        rows = results["metrics"][method]
        quantiles = sorted((q for q in rows if "fid_i" in rows[q]), key=float)
        if not quantiles:
            continue
        x = [float(q) for q in quantiles]
        line = right.plot(x, [rows[q]["fid_i"]["mean"] for q in quantiles], marker="o", label=method)
        right.fill_between(
            x,
            [rows[q]["fid_i"]["low"] for q in quantiles],
            [rows[q]["fid_i"]["high"] for q in quantiles],
            color=line[0].get_color(),
            alpha=0.2,
        )
    right.set_xlabel("mask quantile q")
    right.set_ylabel("FID-I (pooled, 95% CI)")
    right.set_title("FID-I over all validation clips (selection data)" if selection
                    else "FID-I over all held-out clips")
    right.set_ylim(-0.02, 1.02)
    right.grid(alpha=0.3)
    right.legend()
    figure.savefig(str(path), dpi=90)
    plt.close(figure)


def write_cv_results(folder, results, name="cv_results"):
    """Write ``<name>.json``, ``<name>.md`` and ``<name>.png``; return their paths.

    Example
    -------
    >>> import tempfile
    >>> ci = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 8}
    >>> results = {"folds": [{"test_fold": 1, "clips": 8, "accuracy": 0.5}],
    ...            "accuracy": {"mean": 0.5, "std": 0.0, "pooled": ci}, "methods": ["energy"],
    ...            "metrics": {"energy": {"0.9": {"fid_i": ci}}}, "paired_differences": []}
    >>> sorted(p.name for p in write_cv_results(tempfile.mkdtemp(), results).values())
    ['cv_results.json', 'cv_results.md', 'cv_results.png']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / f"{name}.json",
        "markdown": folder / f"{name}.md",
        "plot": folder / f"{name}.png",
    }
    paths["json"].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_cv(results), encoding="utf-8")
    plot_cv(paths["plot"], results)
    return paths
