"""The cross-validation loop with stand-in recipes: post-hoc methods trained per fold,
methods added to a finished cross-validation, and two cross-validations compared.

The stand-ins record their command lines and write what the real recipes write
(``hyperparams.yaml``, ``per_clip.json``), so these tests check the orchestration
in seconds; ``test_cross_validate.py`` runs the real recipes end to end.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_recipe
from focalnet_lobes.training.cross_validation import (
    CrossValidationError,
    compare_cross_validations,
    run_cross_validation,
)

FOLDS = [1, 2, 3, 4]

FAKE_TRAIN = '''
import json, sys
from pathlib import Path
args = sys.argv[2:]
value = lambda key: args[args.index(key) + 1]
out = Path(value("--output_folder")); out.mkdir(parents=True, exist_ok=True)
log = Path(__file__).with_name("calls.jsonl")
log.open("a").write(json.dumps({"recipe": Path(__file__).name, "args": sys.argv[1:]}) + "\\n")
kind = Path(__file__).with_name("kind.txt").read_text().strip()
(out / "hyperparams.yaml").write_text(
    "model: !new:types.SimpleNamespace\\n    kind: %s\\n" % kind)
(out / "test_fold.txt").write_text(json.loads(value("--test_folds"))[0].__str__())
(out / "train_log.txt").write_text("epoch: 1, lr: 1e-3 - train loss: 1.0\\n")
'''

FAKE_POSTHOC = '''
import json, sys
from pathlib import Path
args = sys.argv[2:]
out = Path(args[args.index("--output_folder") + 1]); out.mkdir(parents=True, exist_ok=True)
log = Path(__file__).with_name("calls.jsonl")
log.open("a").write(json.dumps({"recipe": Path(__file__).name, "args": sys.argv[1:]}) + "\\n")
(out / "train_log.txt").write_text("epoch: 1 - train loss: 1.0\\n")
'''

FAKE_INTERPRET = '''
import json, sys
from pathlib import Path
args = sys.argv[2:]
value = lambda key: args[args.index(key) + 1]
log = Path(__file__).with_name("calls.jsonl")
log.open("a").write(json.dumps({"recipe": Path(__file__).name, "args": sys.argv[1:]}) + "\\n")
fold = int((Path(value("--classifier_folder")) / "test_fold.txt").read_text())
if value("--split") == "valid":
    fold = 100 + fold
method = Path(sys.argv[1]).stem.replace("interpret_", "")
score = {"focalnet": 0.8, "vit": 0.6, "energy": 0.5, "lmac": 0.7}[method]
kind = Path(__file__).with_name("kind.txt").read_text().strip()
right = [1, 1, 1, 0] if kind == "focalnet" else [1, 0, 1, 0]
out = Path(value("--output_folder")); out.mkdir(parents=True, exist_ok=True)
(out / "per_clip.json").write_text(json.dumps({
    "ids": [f"{fold}-{i}" for i in range(4)], "labels": [0] * 4,
    "predicted": [1 - r for r in right],
    "quantiles": {"0.9": {"fid_i": [score + 0.01 * i for i in range(4)]}},
}))
'''


def fake_recipes(folder, kind):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kind.txt").write_text(kind)
    (folder / "train.py").write_text(FAKE_TRAIN)
    for name in ("train_lmac.py", "train_piq.py"):
        (folder / name).write_text(FAKE_POSTHOC)
    (folder / "interpret.py").write_text(FAKE_INTERPRET)
    return folder


def calls(recipes):
    path = recipes / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def data_folder(root):
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    rows += [f"{f}-1-A-0.wav,{f},0,dog,True,1,A" for f in FOLDS]
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def cross_validate(root, recipes, cv_folder, methods, split="test", validation="next_fold", epochs=1):
    return run_cross_validation(
        REPO / "hparams" / "focalnet_cpu.yaml",
        root,
        cv_folder,
        methods,
        train_overrides=["--number_of_epochs", str(epochs)],
        recipes_dir=recipes,
        posthoc_hparams={"lmac": {"focalnet": "lmac_focalnet_cpu.yaml", "vit": "lmac_vit_cpu.yaml"}},
        posthoc_overrides=["--number_of_epochs", "2"],
        n_resamples=99,
        split=split,
        validation=validation,
    )


def test_posthoc_methods_train_per_fold_on_that_folds_classifier(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    results = cross_validate(root, recipes, tmp_path / "cv", ["by_design", "lmac"])
    assert results["methods"] == ["focalnet", "lmac"]
    posthoc = [c for c in calls(recipes) if c["recipe"] == "train_lmac.py"]
    assert len(posthoc) == len(FOLDS)
    for call, fold in zip(posthoc, FOLDS):
        args = call["args"]
        assert Path(args[0]).name == "lmac_focalnet_cpu.yaml"
        model = Path(args[args.index("--classifier_folder") + 1])
        assert model == tmp_path / "cv" / f"fold_{fold}" / "model"
        assert args[-2:] == ["--number_of_epochs", "2"]
    # next_fold: each classifier keeps its best epoch on the next fold, whatever its YAML says
    for args in [c["args"] for c in calls(recipes) if c["recipe"] == "train.py"]:
        assert args[args.index("--checkpoint_selection") + 1] == "valid_error"
        assert len(json.loads(args[args.index("--valid_folds") + 1])) == 1
    interprets = [c["args"] for c in calls(recipes) if c["recipe"] == "interpret.py"]
    lmac = [a for a in interprets if Path(a[0]).name == "interpret_lmac.yaml"]
    assert len(lmac) == len(FOLDS)
    assert all(a[a.index("--lmac_folder") + 1].endswith("posthoc/lmac") for a in lmac)
    assert all(a[a.index("--split") + 1] == "test" for a in lmac)
    (difference,) = results["paired_differences"]
    assert difference["label"] == "lmac"
    assert difference["quantiles"]["0.9"]["fid_i"]["mean"] == pytest.approx(0.7 - 0.8)


def test_more_methods_on_a_finished_cross_validation_train_nothing_again(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "vit")
    cv_folder = tmp_path / "cv"
    cross_validate(root, recipes, cv_folder, ["by_design", "interpret_energy.yaml"])
    first = calls(recipes)
    assert sum(c["recipe"] == "train.py" for c in first) == len(FOLDS)
    assert sum(c["recipe"] == "interpret.py" for c in first) == 2 * len(FOLDS)

    results = cross_validate(root, recipes, cv_folder, ["by_design", "interpret_energy.yaml", "lmac"])
    new = calls(recipes)[len(first):]
    assert {c["recipe"] for c in new} == {"train_lmac.py", "interpret.py"}
    assert [Path(c["args"][0]).name for c in new if c["recipe"] == "interpret.py"] == [
        "interpret_lmac.yaml"
    ] * len(FOLDS)
    assert results["methods"] == ["vit", "energy", "lmac"]

    # the same command once more: nothing runs; a subset of the methods pools only those
    results = cross_validate(root, recipes, cv_folder, ["by_design", "lmac"])
    assert len(calls(recipes)) == len(first) + len(new)
    assert results["methods"] == ["vit", "lmac"]


def test_interrupted_fold_keeps_its_classifier_and_finished_methods(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    cv_folder = tmp_path / "cv"
    (recipes / "interpret_broken.yaml").write_text("x: 1\n")
    (recipes / "interpret.py").write_text(
        FAKE_INTERPRET.replace("method = ", "assert 'broken' not in sys.argv[1], 'stop'\nmethod = ")
    )
    with pytest.raises(CrossValidationError):
        cross_validate(
            root, recipes, cv_folder,
            ["by_design", "interpret_energy.yaml", str(recipes / "interpret_broken.yaml")],
        )
    progress = json.loads((cv_folder / "fold_1" / "fold_progress.json").read_text())
    assert sorted(progress["methods"]) == ["energy", "focalnet"]
    assert not (cv_folder / "fold_1" / "fold_done.json").exists()
    before = calls(recipes)
    cross_validate(root, recipes, cv_folder, ["by_design", "interpret_energy.yaml"])
    after = calls(recipes)[len(before):]
    # fold 1: no training, no interpretation again; folds 2-4 run in full
    assert sum(c["recipe"] == "train.py" for c in after) == len(FOLDS) - 1
    assert sum(c["recipe"] == "interpret.py" for c in after) == 2 * (len(FOLDS) - 1)


def focalnet_and_vit_cross_validations(tmp_path):
    """Fake FocalNet and ViT cross-validations of the same folds in tmp_path/a and tmp_path/b."""
    root = data_folder(tmp_path / "data")
    for name, kind in (("a", "focalnet"), ("b", "vit")):
        cross_validate(root, fake_recipes(tmp_path / f"r{kind}", kind), tmp_path / name,
                       ["by_design", "interpret_energy.yaml"])


def test_two_cross_validations_compared_clip_by_clip(tmp_path):
    focalnet_and_vit_cross_validations(tmp_path)
    result = compare_cross_validations(tmp_path / "a", tmp_path / "b", n_resamples=99)
    assert result["clips"] == 4 * len(FOLDS)
    assert result["accuracy"]["first"] == pytest.approx(0.75)
    assert result["accuracy"]["second"] == pytest.approx(0.5)
    assert result["accuracy"]["mcnemar"]["first_only"] == len(FOLDS)
    assert result["accuracy"]["mcnemar"]["second_only"] == 0
    labels = [pair["label"] for pair in result["pairs"]]
    assert labels == ["focalnet − vit", "energy"]
    assert result["pairs"][0]["quantiles"]["0.9"]["fid_i"]["mean"] == pytest.approx(0.2)
    assert result["pairs"][0]["quantiles"]["0.9"]["fid_i"]["significant"]
    assert result["probabilities"] is None  # the fake interpretations record no p_full / p_in / p_out

    out = tmp_path / "cmp"
    command = [sys.executable, str(REPO / "recipes" / "compare_cv.py"), str(tmp_path / "a"),
               str(tmp_path / "b"), "--output_folder", str(out), "--bootstrap_resamples", "99"]
    finished = run_recipe(command)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "| focalnet − vit | **+0.200" in finished.stdout
    assert json.loads((out / "cv_comparison.json").read_text())["clips"] == 16
    assert "- bootstrap: 99 resamples of the clips, seed 0\n" in (out / "cv_comparison.md").read_text()
    assert "confidence" not in (out / "cv_comparison.md").read_text()
    broken = run_recipe(command[:2] + [str(tmp_path / "a"), str(tmp_path / "nothing"),
                                       "--output_folder", str(out)])
    assert broken.returncode != 0 and "nothing: no such folder or file" in broken.stderr
    assert "Traceback" not in broken.stderr
    missing = run_recipe(command[:2] + [str(tmp_path / "a"), str(tmp_path / "b_cv_results_per_clip.json.gz"),
                                        "--output_folder", str(out)])
    assert missing.returncode != 0 and "b_cv_results_per_clip.json.gz: no such folder or file" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_recipe(command[:2] + [str(tmp_path / "a"), str(tmp_path / "empty"),
                                      "--output_folder", str(out)])
    assert empty.returncode != 0 and "empty: no finished fold" in empty.stderr
    # another method paired first: the energy control of b against a's map
    chosen = compare_cross_validations(tmp_path / "a", tmp_path / "b", n_resamples=99,
                                       second_method="energy")
    assert [pair["label"] for pair in chosen["pairs"]] == ["focalnet − energy"]
    assert chosen["accuracy"] == result["accuracy"]  # the classifiers' predictions, not the map's
    missing = run_recipe(command + ["--second_method", "vit_x_input"])
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "has no method 'vit_x_input' (it ran vit, energy)" in missing.stderr.strip().splitlines()[-1]


def test_seeds_of_each_recipe_averaged_clip_by_clip(tmp_path):
    """Several cross-validations per side (seeds): per-clip means, McNemar per seed pair."""
    focalnet_and_vit_cross_validations(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    single = compare_cross_validations(a, b, n_resamples=99)
    twice = compare_cross_validations([a, a], [b, b, b], n_resamples=99)
    assert twice["seeds"] == [2, 3] and twice["first"] == [str(a)] * 2
    # the same seed twice is that seed: the same per-clip values, the same intervals
    assert twice["accuracy"]["difference"] == single["accuracy"]["difference"]
    assert twice["accuracy"]["mcnemar"] is None
    assert [p["mcnemar"] for p in twice["accuracy"]["per_seed"]] == [single["accuracy"]["mcnemar"]] * 3
    assert [p["label"] for p in twice["pairs"]] == ["focalnet − vit", "energy"]
    for left, right in zip(twice["pairs"], single["pairs"]):
        assert left["quantiles"] == right["quantiles"] and "accuracy" not in left
    # a side of two different runs: each clip's value is their mean (focalnet's map
    # has FID-I 0.2 above the ViT's attention on every clip, energy the same on both)
    mixed = compare_cross_validations([a, b], b, n_resamples=99, first_method="energy",
                                      second_method="energy")
    assert mixed["accuracy"]["first"] == pytest.approx((0.75 + 0.5) / 2)
    assert mixed["accuracy"]["difference"]["mean"] == pytest.approx(0.125)
    assert [p["first"] for p in mixed["accuracy"]["per_seed"]] == pytest.approx([0.75, 0.5])
    # the command line: commas separate the seeds
    out = tmp_path / "cmp"
    command = [sys.executable, str(REPO / "recipes" / "compare_cv.py"), f"{a},{a}", f"{b},{b},{b}",
               "--output_folder", str(out), "--bootstrap_resamples", "99"]
    finished = run_recipe(command)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "- seeds: 2 / 3;" in finished.stdout and "  - seed pair 3:" in finished.stdout
    assert json.loads((out / "cv_comparison.json").read_text())["seeds"] == [2, 3]
    assert [p["difference"]["mean"] for p in mixed["accuracy"]["per_seed"]] == pytest.approx([0.25, 0.0])
    # seeds are aligned by clip id, not by position: a's clips in another order are a
    import gzip
    import random

    archive = json.loads(gzip.decompress((a / "cv_results_per_clip.json.gz").read_bytes()))
    order = list(range(len(archive["per_clip"]["focalnet"]["ids"])))
    random.Random(0).shuffle(order)
    shuffled = json.loads(json.dumps(archive))
    for method, per_clip in shuffled["per_clip"].items():
        for key in ("ids", "labels", "predicted"):
            per_clip[key] = [per_clip[key][i] for i in order]
        for columns in per_clip["quantiles"].values():
            for name in columns:
                columns[name] = [columns[name][i] for i in order]
    assert shuffled["per_clip"]["focalnet"]["ids"] != archive["per_clip"]["focalnet"]["ids"]
    moved = tmp_path / "shuffled.json.gz"
    moved.write_bytes(gzip.compress(json.dumps(shuffled).encode()))
    again = compare_cross_validations([a, moved], b, n_resamples=99)
    assert again["accuracy"]["difference"] == single["accuracy"]["difference"]
    assert again["pairs"][0]["quantiles"] == single["pairs"][0]["quantiles"]
    # a seed that held out other clips is refused, naming it
    for per_clip in archive["per_clip"].values():
        per_clip["ids"] = [f"x{clip}" for clip in per_clip["ids"]]
    other = tmp_path / "other.json.gz"
    other.write_bytes(gzip.compress(json.dumps(archive).encode()))
    with pytest.raises(CrossValidationError, match=f"{a} and {other} held out different clips"):
        compare_cross_validations([a, other], b, n_resamples=99)
    # seeds whose first methods differ: one line asking which to pair
    with pytest.raises(CrossValidationError, match="the seeds' first methods differ .*--first_method"):
        compare_cross_validations([a, b], b, n_resamples=99)
    broken = run_recipe(command[:2] + [f"{a},{b}", str(b), "--output_folder", str(out)])
    assert broken.returncode != 0 and "Traceback" not in broken.stderr
    assert "first methods differ (focalnet, vit)" in broken.stderr.strip().splitlines()[-1]


def test_comparison_reports_the_explained_class_probabilities(tmp_path):
    """compare_cv.py reports what FA, FF, AD and AG are read off: the explained class's mean
    p_c(X) of each side with the paired CI, and p_in / p_out at each quantile. On LS0 against
    L (committed archives, "Session 30") the unsmoothed model is more confident, +0.072."""
    archives = REPO / "benchmarks" / "results" / "cv_esc10_dev"
    lever, default = ([str(archives / f"focalnet_cpu_{run}_seed{seed}_cv_results_per_clip.json.gz")
                       for seed in (1987, 1990)] for run in ("ls0", "epochs52"))
    out = tmp_path / "cmp"
    finished = run_recipe([sys.executable, str(REPO / "recipes" / "compare_cv.py"), ",".join(lever),
                           ",".join(default), "--output_folder", str(out), "--bootstrap_resamples", "999"])
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = (out / "cv_comparison.md").read_text()
    assert ("- confidence (focalnet): the explained class's mean probability on the full input "
            "p_c(X) 0.774 vs 0.702, difference **+0.072 [") in report
    assert "so they differ with the confidence as well as with the map" in report
    assert report.count("focalnet: the explained class's mean probability masked-in p_c(M * X) ") == 6
    at_q = report.split("## q = 0.9:")[1].split("## q = 0.95:")[0]
    assert "masked-in p_c(M * X) 0.684 vs 0.635 (**+0.049 [" in at_q
    assert "masked-out p_c((1 - M) * X) 0.271 vs 0.242 (**+0.029 [" in at_q
    saved = json.loads((out / "cv_comparison.json").read_text())["probabilities"]
    assert sorted(saved["quantiles"]) == ["0.5", "0.6", "0.7", "0.8", "0.9", "0.95"]
    assert saved["p_full"]["first"] == pytest.approx(0.774, abs=5e-4)


def assert_close_nested(actual, expected, rel=1e-5):
    """Equal structure and labels; floats equal to ``rel``."""
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected)
        for key in expected:
            assert_close_nested(actual[key], expected[key], rel)
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_close_nested(a, e, rel)
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=rel, abs=1e-9)
    else:
        assert actual == expected


def test_comparison_from_the_per_clip_archives_after_the_folds_are_gone(tmp_path):
    focalnet_and_vit_cross_validations(tmp_path)
    before = compare_cross_validations(tmp_path / "a", tmp_path / "b", n_resamples=99)
    archives = {}
    for name in ("a", "b"):
        archive = tmp_path / name / "cv_results_per_clip.json.gz"
        assert archive.is_file()
        archives[name] = shutil.copy(archive, tmp_path / f"{name}.json.gz")
    # deterministic bytes: the same results give the same archive
    assert archives["a"].read_bytes() == (tmp_path / "a" / "cv_results_per_clip.json.gz").read_bytes()
    for name in ("a", "b"):
        for fold in (tmp_path / name).glob("fold_*"):
            shutil.rmtree(fold / "interpretation")
    # the folders (records pointing at deleted files) fall back to their archives,
    # and the bare archive files compare the same
    for first, second in ((tmp_path / "a", tmp_path / "b"), (archives["a"], archives["b"])):
        after = compare_cross_validations(first, second, n_resamples=99)
        assert after["accuracy"] == before["accuracy"]
        assert_close_nested(after["pairs"], before["pairs"])  # archived to 6 digits
    # the right format tag over damaged contents: one line naming the damage, no KeyError
    import gzip

    from focalnet_lobes.training.cross_validation import PER_CLIP_FORMAT, load_pooled_per_clip

    good = json.loads(gzip.decompress(archives["a"].read_bytes()))
    method = good["methods"][0]
    damaged = {
        "no_methods": ({k: v for k, v in good.items() if k != "methods"}, "'methods' is not a list"),
        "no_labels": ({**good, "per_clip": {**good["per_clip"], method: {
            k: v for k, v in good["per_clip"][method].items() if k != "labels"}}},
            f"method '{method}' lacks equal-length ids"),
        "short_metric": ({**good, "per_clip": {**good["per_clip"], method: {
            **good["per_clip"][method], "quantiles": {"0.9": {"fid_i": [0.5]}}}}},
            f"method '{method}' at q = 0.9: a metric is not one value per clip"),
        "null_per_clip": ({**good, "per_clip": None}, "'per_clip' does not hold"),
    }
    for name, (data, message) in damaged.items():
        path = tmp_path / f"{name}.json.gz"
        path.write_bytes(gzip.compress(json.dumps(data).encode()))
        with pytest.raises(CrossValidationError, match="damaged per-clip archive: " + message.replace("(", r"\(")):
            load_pooled_per_clip(path)
    assert good["format"] == PER_CLIP_FORMAT
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    command = [sys.executable, str(REPO / "recipes" / "compare_cv.py"), str(archives["a"]),
               str(tmp_path / "bad.json.gz"), "--output_folder", str(tmp_path / "cmp")]
    broken = run_recipe(command)
    assert broken.returncode != 0 and "bad.json.gz: not a gzipped per-clip archive" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_validation_split_for_selection_reuses_the_classifiers(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    cv_folder = tmp_path / "cv"
    cross_validate(root, recipes, cv_folder, ["by_design"])
    before = calls(recipes)
    selection = cross_validate(root, recipes, cv_folder, ["by_design", "interpret_energy.yaml"],
                               split="valid")
    new = calls(recipes)[len(before):]
    assert {c["recipe"] for c in new} == {"interpret.py"}  # no training
    assert all(c["args"][c["args"].index("--split") + 1] == "valid" for c in new)
    assert len(new) == 2 * len(FOLDS)
    assert selection["split"] == "valid" and selection["methods"] == ["focalnet", "energy"]
    assert (cv_folder / "cv_selection.md").read_text().startswith("# Cross-validation")
    assert "Selection data" in (cv_folder / "cv_selection.md").read_text()
    assert "validation clips, each evaluated by the model it selected" in (cv_folder / "cv_selection.md").read_text()
    assert "held-out clips" not in (cv_folder / "cv_selection.md").read_text()
    assert (cv_folder / "fold_1" / "interpretation_valid" / "energy" / "per_clip.json").is_file()
    # the test-split results are untouched
    assert "Selection data" not in (cv_folder / "cv_results.md").read_text()
    assert json.loads((cv_folder / "cv_results.json").read_text())["methods"] == ["focalnet"]


def test_bad_method_lists_stop_before_any_training(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    with pytest.raises(CrossValidationError, match="interpret_enrgy.yaml"):
        cross_validate(root, recipes, tmp_path / "cv", ["by_design", "interpret_enrgy.yaml"])
    with pytest.raises(CrossValidationError, match="must be a list"):
        cross_validate(root, recipes, tmp_path / "cv", "by_design")
    assert calls(recipes) == []


def test_a_finished_interpretation_made_by_another_interpreter_is_not_relabelled(tmp_path):
    """interpret_focalnet.yaml changed its map (session 9: the class-specific map times the
    input): reusing an old folder under its name stops."""
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    cv_folder = tmp_path / "cv"
    cross_validate(root, recipes, cv_folder, ["by_design"])
    runs = len(calls(recipes))
    folders = [cv_folder / f"fold_{fold}" / "interpretation" / "focalnet" for fold in FOLDS]
    for folder in folders:  # what recipes/interpret.py records
        (folder / "metrics.json").write_text(json.dumps({"interpreter": "InputWeightedInterpreter"}))
    assert cross_validate(root, recipes, cv_folder, ["by_design"])["methods"] == ["focalnet"]
    assert len(calls(recipes)) == runs  # the same interpreter: reused
    (folders[2] / "metrics.json").write_text(json.dumps({"interpreter": "ModulationContributionInterpreter"}))
    with pytest.raises(CrossValidationError, match=(
        "fold_3/interpretation/focalnet was made by ModulationContributionInterpreter, but "
        "interpret_focalnet.yaml now gives InputWeightedInterpreter"
    )):
        cross_validate(root, recipes, cv_folder, ["by_design"])
    assert len(calls(recipes)) == runs


def test_a_rerun_with_other_training_options_stops_instead_of_mixing_models(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "vit")
    cv_folder = tmp_path / "cv"
    cross_validate(root, recipes, cv_folder, ["by_design"])
    runs = len(calls(recipes))
    record = json.loads((cv_folder / "fold_2" / "fold_done.json").read_text())
    assert record["training"]["train_hparams"] == "focalnet_cpu.yaml"
    assert record["training"]["train_overrides"] == ["--number_of_epochs", "1"]
    with pytest.raises(CrossValidationError, match=(
        r"fold_1 was trained by focalnet_cpu.yaml --number_of_epochs 1 on .* with validation "
        r"next_fold; this command asks for focalnet_cpu.yaml --number_of_epochs 40 on .* with "
        r"validation next_fold: use another --cv_folder"
    )):
        cross_validate(root, recipes, cv_folder, ["by_design"], epochs=40)
    assert len(calls(recipes)) == runs


def test_a_half_trained_fold_rerun_with_other_training_options_stops_before_training(tmp_path):
    """A fold interrupted in training has no record yet: the options it was started with
    (fold_started.json) stop a rerun that asks for others, naming --cv_folder, before
    train.py runs; the same options resume it."""
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    cv_folder = tmp_path / "cv"
    working = (recipes / "train.py").read_text()
    (recipes / "train.py").write_text(working + "\nif value('--test_folds') == '[1]': sys.exit('interrupted')\n")
    with pytest.raises(CrossValidationError, match="train.py failed .*interrupted"):
        cross_validate(root, recipes, cv_folder, ["by_design"])
    started = json.loads((cv_folder / "fold_1" / "fold_started.json").read_text())
    assert started["training"]["train_overrides"] == ["--number_of_epochs", "1"]
    assert not (cv_folder / "fold_1" / "fold_done.json").exists()
    (recipes / "train.py").write_text(working)
    runs = len(calls(recipes))
    with pytest.raises(CrossValidationError, match=(
        r"fold_1 was started by focalnet_cpu.yaml --number_of_epochs 1 on .*; this command asks "
        r"for focalnet_cpu.yaml --number_of_epochs 40 on .*: rerun it as it was started, or use "
        r"another --cv_folder"
    )):
        cross_validate(root, recipes, cv_folder, ["by_design"], epochs=40)
    assert len(calls(recipes)) == runs  # stopped before train.py
    (cv_folder / "fold_1" / "fold_started.json").write_text("{not json")
    with pytest.raises(CrossValidationError, match=r"fold_1/fold_started.json is damaged"):
        cross_validate(root, recipes, cv_folder, ["by_design"])
    (cv_folder / "fold_1" / "fold_started.json").write_text(json.dumps(started))
    results = cross_validate(root, recipes, cv_folder, ["by_design"])  # as started: resumes
    assert results["methods"] == ["focalnet"]
    trained = [json.loads(c["args"][c["args"].index("--test_folds") + 1])
               for c in calls(recipes)[runs:] if c["recipe"] == "train.py"]
    assert trained == [[1], [2], [3], [4]]


def test_fixed_schedule_trains_on_every_other_fold_and_keeps_the_last_epoch(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    results = cross_validate(root, recipes, tmp_path / "cv", ["by_design"], validation="none")
    trainings = [c["args"] for c in calls(recipes) if c["recipe"] == "train.py"]
    assert len(trainings) == 4
    for args in trainings:
        value = lambda key: json.loads(args[args.index(key) + 1])
        held_out = value("--test_folds")
        assert value("--valid_folds") == []
        assert sorted(value("--train_folds") + held_out) == FOLDS
        assert args[args.index("--checkpoint_selection") + 1] == "last_epoch"
    assert results["validation"] == "none"
    assert [f["valid_fold"] for f in results["folds"]] == [None] * 4
    report = (tmp_path / "cv" / "cv_results.md").read_text()
    assert "selection: none, a fixed schedule" in report
    assert "| 1 | none | [2, 3, 4] | 4 |" in report
    # the same folder asked for with validation: a different training, refused
    with pytest.raises(CrossValidationError, match="with validation none; this command asks "
                       "for .* with validation next_fold"):
        cross_validate(root, recipes, tmp_path / "cv", ["by_design"])


def test_fixed_schedule_trains_posthoc_interpreters_on_the_fold_classifier(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    results = cross_validate(root, recipes, tmp_path / "cv", ["by_design", "lmac"], validation="none")
    assert results["methods"] == ["focalnet", "lmac"]
    posthoc = [c["args"] for c in calls(recipes) if c["recipe"] == "train_lmac.py"]
    assert [Path(a[a.index("--classifier_folder") + 1]) for a in posthoc] == [
        tmp_path / "cv" / f"fold_{fold}" / "model" for fold in FOLDS
    ]
    for args in [c["args"] for c in calls(recipes) if c["recipe"] == "train.py"]:
        assert args[args.index("--valid_folds") + 1] == "[]"


def test_fixed_schedule_refuses_what_needs_a_validation_fold(tmp_path):
    root = data_folder(tmp_path / "data")
    recipes = fake_recipes(tmp_path / "recipes", "focalnet")
    with pytest.raises(CrossValidationError, match="split valid needs a validation fold"):
        cross_validate(root, recipes, tmp_path / "cv", ["by_design"], split="valid", validation="none")
    with pytest.raises(CrossValidationError, match="validation must be one of next_fold, none"):
        cross_validate(root, recipes, tmp_path / "cv", ["by_design"], validation="fold_4")
    assert calls(recipes) == []


@pytest.mark.parametrize("name", ["s20_b8_vs_l2", "s20_l60_vs_l2", "s20_lr2_vs_l2", "s23_f128_vs_l5",
                                  "s24_c1000_vs_l", "s25_fl3_vs_l", "s25_fw3_vs_l", "s27_d4_vs_l",
                                  "s29_wd5_vs_l", "s29_e160_vs_l", "s30_ls0_vs_l", "s31_lin_vs_l",
                                  "s31_lin_vs_l_seed1987", "s31_lin_vs_l_seed1990"])
def test_recorded_lever_comparisons_are_reproduced_from_their_archives(name):
    """The lever tests on the default L that benchmarks/README.md quotes (sessions 20-31: B8,
    L60, LR2, F128 on five seeds, C1000, FL3, FW3, D4, WD5, E160, LS0 and LIN, and LIN's per
    seed; e.g. "Session 30" LS0: -1.9 [-4.1, +0.2]) come out of the committed per-clip archives
    again, to the resample, and the map's differences at q = 0.9 and the explained class's
    probabilities ("Session 31") with them."""
    from focalnet_lobes.training.cross_validation import compare_cross_validations

    recorded = json.loads((REPO / "benchmarks" / "results" / "cv_esc10_dev"
                           / f"cv_comparison_{name}.json").read_text())
    bootstrap = recorded["bootstrap"]
    def sources(side):  # a list of seeds, or one seed's archive
        return [REPO / path for path in side] if isinstance(side, list) else REPO / side

    again = compare_cross_validations(sources(recorded["first"]), sources(recorded["second"]),
                                      n_resamples=bootstrap["n_resamples"], seed=bootstrap["seed"])
    assert again["accuracy"]["difference"] == recorded["accuracy"]["difference"]
    if "_seed" in name:  # one seed a side: its McNemar test too
        assert again["accuracy"]["mcnemar"] == recorded["accuracy"]["mcnemar"]
    map_again, map_recorded = (run["pairs"][0]["quantiles"]["0.9"] for run in (again, recorded))
    assert sorted(map_again) == sorted(map_recorded)
    for metric, figures in map_recorded.items():
        assert map_again[metric] == pytest.approx(figures), metric
    quoted = {"s20_b8_vs_l2": (-0.6, -3.0, 1.7), "s20_l60_vs_l2": (0.0, -2.3, 2.3),
              "s20_lr2_vs_l2": (-0.8, -2.7, 0.9), "s23_f128_vs_l5": (1.7, -0.6, 4.2),
              "s24_c1000_vs_l": (-1.4, -4.1, 1.1), "s25_fl3_vs_l": (-0.2, -2.3, 2.0),
              "s25_fw3_vs_l": (0.2, -1.9, 2.3), "s27_d4_vs_l": (-1.1, -3.3, 0.9), "s29_wd5_vs_l": (-0.8, -2.7, 1.2),
              "s29_e160_vs_l": (-1.1, -3.4, 0.9), "s30_ls0_vs_l": (-1.9, -4.1, 0.2),
              "s31_lin_vs_l": (-3.0, -5.9, 0.0), "s31_lin_vs_l_seed1987": (-3.4, -7.5, 0.3),
              "s31_lin_vs_l_seed1990": (-2.5, -6.6, 1.2)}[name]
    difference = again["accuracy"]["difference"]
    assert tuple(round(100 * difference[key], 1) for key in ("mean", "low", "high")) == quoted
    # The explained class's mean p_c(X) (lever, L) and whether the paired CI excludes 0: LS0's
    # confidence, +0.072, is what moved its FF and FA ("Session 30"); E160's is a tie.
    confidence = {"s20_b8_vs_l2": (0.696, 0.702, False), "s20_l60_vs_l2": (0.711, 0.702, False),
                  "s20_lr2_vs_l2": (0.684, 0.702, True), "s23_f128_vs_l5": (0.745, 0.707, True),
                  "s24_c1000_vs_l": (0.657, 0.702, True), "s25_fl3_vs_l": (0.707, 0.702, False),
                  "s25_fw3_vs_l": (0.719, 0.702, True), "s27_d4_vs_l": (0.715, 0.702, True),
                  "s29_wd5_vs_l": (0.696, 0.702, False), "s29_e160_vs_l": (0.711, 0.702, False),
                  "s30_ls0_vs_l": (0.774, 0.702, True), "s31_lin_vs_l": (0.714, 0.702, False),
                  "s31_lin_vs_l_seed1987": (0.713, 0.704, False), "s31_lin_vs_l_seed1990": (0.716, 0.700, False)}[name]
    assert_close_nested(again["probabilities"], recorded["probabilities"])
    full = again["probabilities"]["p_full"]
    assert (round(full["first"], 3), round(full["second"], 3), full["significant"]) == confidence
    at_q = again["probabilities"]["quantiles"]["0.9"]  # FF = p_full - p_out, FA = p_full - p_in (archives: 6 digits)
    assert at_q["p_out"]["mean"] == pytest.approx(full["mean"] - map_again["ff"]["mean"], abs=1e-6)
    assert at_q["p_in"]["mean"] == pytest.approx(full["mean"] - map_again["fa"]["mean"], abs=1e-6)
