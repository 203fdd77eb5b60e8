"""benchmarks/fold_comparison.py: single runs and cross-validations paired on one fold's clips,
hand-computed on small files, its errors, and the figures benchmarks/README.md records for the
paper's full-size configs (benchmarks/results/paper_configs_gpu_s28)."""

import json
from pathlib import Path

import pytest

from conftest import load_benchmark
from focalnet_lobes.interpretation.evaluation import write_per_clip
from focalnet_lobes.training.cross_validation import write_per_clip_archive

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
fold_comparison = load_benchmark("fold_comparison")

# Six clips, three in fold 1 and three in fold 2; labels 0 and 1.
IDS = ["1-100-A-0", "1-100-B-0", "1-200-A-10", "2-300-A-0", "2-400-A-10", "2-500-A-10"]
LABELS = [0, 0, 1, 0, 1, 1]


def per_clip(ids, predicted, ff=None, labels=None):
    """A per_clip.json payload; ``ff`` (one value per clip) at q = 0.9 when given."""
    labels = [LABELS[IDS.index(clip)] for clip in ids] if labels is None else labels
    quantiles = {"0.9": {"ff": list(ff)}} if ff is not None else {}
    return {"ids": list(ids), "labels": labels, "predicted": list(predicted), "quantiles": quantiles}


def run(folder, name, ids, predicted, ff=None, labels=None):
    """An interpretation folder (a single run) holding per_clip.json."""
    return str(write_per_clip(folder / name, per_clip(ids, predicted, ff, labels))["json"].parent)


def archive(folder, name, predicted, ff):
    """A two-fold cross-validation archive over IDS (method "focalnet")."""
    records = []
    for fold in (1, 2):
        keep = [i for i, clip in enumerate(IDS) if clip.startswith(f"{fold}-")]
        payload = per_clip([IDS[i] for i in keep], [predicted[i] for i in keep], [ff[i] for i in keep])
        method_folder = write_per_clip(folder / name / f"fold_{fold}" / "focalnet", payload)["json"].parent
        records.append({"test_fold": fold, "train_folds": [3 - fold], "methods": {"focalnet": str(method_folder)},
                        "model_folder": str(folder / name / f"fold_{fold}" / "model")})
    return str(write_per_clip_archive(folder / f"{name}_cv_results_per_clip.json.gz", records))


def test_a_run_against_two_seeds_of_a_cross_validation_on_the_run_s_fold(tmp_path, capsys):
    fold2 = IDS[3:]
    # The run (fold 2 only): right on clips 3 and 4, wrong on 5.
    single = run(tmp_path, "single", fold2, [0, 1, 0], ff=[0.5, 0.5, 0.5])
    # Seed a: right on every fold-2 clip; seed b: wrong on clip 3. Fold 1 must be ignored.
    seed_a = archive(tmp_path, "a", [1, 1, 0, 0, 1, 1], ff=[9, 9, 9, 0.2, 0.2, 0.2])
    seed_b = archive(tmp_path, "b", [1, 1, 0, 1, 1, 1], ff=[9, 9, 9, 0.4, 0.4, 0.4])
    out = tmp_path / "report.json"
    report = fold_comparison.main([f"R={single}", f"CV={seed_a},{seed_b}", "--bootstrap_resamples", "500",
                                   "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["command"].startswith("python benchmarks/fold_comparison.py R=")
    assert report["clips"] == 3
    run_summary, cv_summary = report["sources"]
    assert (run_summary["kind"], run_summary["accuracy_per_seed"]) == ("run", [pytest.approx(200 / 3, abs=1e-3)])
    assert cv_summary["kind"] == "cv" and cv_summary["seeds"] == 2
    assert cv_summary["accuracy_per_seed"] == [100.0, pytest.approx(200 / 3, abs=1e-3)]
    assert cv_summary["accuracy"] == pytest.approx(250 / 3, abs=1e-3)  # clip 3 right in half the seeds
    pair = report["pairs"][0]
    # per clip: (1 - 0.5) + (1 - 1) + (0 - 1) over 3 clips = -1/6
    assert pair["accuracy_difference"]["mean"] == pytest.approx(-100 / 6, abs=1e-3)
    assert [(m["first_only"], m["second_only"]) for m in pair["mcnemar"]] == [(0, 1), (1, 1)]
    # FF at q = 0.9: the run's 0.5 minus the seed mean 0.3 on each fold-2 clip
    assert pair["metrics"]["ff"]["mean"] == pytest.approx(0.2)
    # the same difference on every clip: a zero-width CI, which excludes 0
    assert (pair["metrics"]["ff"]["low"], pair["metrics"]["ff"]["high"]) == (pytest.approx(0.2), pytest.approx(0.2))
    assert pair["metrics"]["ff"]["significant"] is True
    assert set(pair["metrics"]) == {"ff"}
    printed = capsys.readouterr().out
    assert "| R | run | 1 | 66.7 | 66.7%" in printed
    assert "| R − CV | −16.7 [" in printed and "0 / 1, p = 1; 1 / 1, p = 1" in printed


def test_the_first_source_s_clips_must_be_in_every_other_with_the_same_labels(tmp_path):
    single = run(tmp_path, "single", IDS[3:], [0, 1, 1])
    other_fold = run(tmp_path, "other", IDS[:3], [0, 0, 1])
    relabelled = run(tmp_path, "relabelled", IDS[3:], [0, 1, 1], labels=[1, 1, 1])
    with pytest.raises(SystemExit) as missing:
        fold_comparison.main([f"R={single}", f"S={other_fold}"])
    assert missing.value.code == 2
    with pytest.raises(SystemExit):
        fold_comparison.main([f"R={single}", f"S={relabelled}"])
    with pytest.raises(ValueError, match=r"S \(.*\): no clip '2-300-A-0' \(it has 3 clips\)"):
        fold_comparison.read_sources([("R", [single]), ("S", [other_fold])])
    with pytest.raises(ValueError, match=r"clip '2-300-A-0' has label 1, the first source 0"):
        fold_comparison.read_sources([("R", [single]), ("S", [relabelled])])


def test_method_reads_another_method_of_a_cross_validation(tmp_path, capsys):
    single = run(tmp_path, "single", IDS, [0, 0, 1, 0, 1, 1], ff=[0.5] * 6)
    records = []
    for fold in (1, 2):
        keep = [i for i, clip in enumerate(IDS) if clip.startswith(f"{fold}-")]
        methods = {}
        for method, ff in (("focalnet", 0.1), ("energy", 0.4)):
            payload = per_clip([IDS[i] for i in keep], [LABELS[i] for i in keep], [ff] * len(keep))
            methods[method] = str(write_per_clip(tmp_path / "cv" / f"fold_{fold}" / method, payload)["json"].parent)
        records.append({"test_fold": fold, "train_folds": [3 - fold], "methods": methods,
                        "model_folder": str(tmp_path / "cv" / f"fold_{fold}" / "model")})
    cv = str(write_per_clip_archive(tmp_path / "cv_cv_results_per_clip.json.gz", records))
    first = fold_comparison.main([f"R={single}", f"CV={cv}", "--bootstrap_resamples", "50"])
    energy = fold_comparison.main([f"R={single}", f"CV={cv}", "--method", "CV=energy", "--bootstrap_resamples", "50"])
    assert first["pairs"][0]["metrics"]["ff"]["mean"] == pytest.approx(0.4)     # 0.5 - focalnet's 0.1
    assert energy["pairs"][0]["metrics"]["ff"]["mean"] == pytest.approx(0.1)    # 0.5 - energy's 0.4
    assert (first["sources"][1]["method"], energy["sources"][1]["method"]) == (None, "energy")
    assert "| CV | cv (energy) | 1 |" in capsys.readouterr().out
    for argv, message in [
        (["--method", "CV=saliency"], "no method 'saliency' (it has focalnet, energy)"),
        (["--method", "R=energy"], "a single run has one method; --method is for cross-validations"),
        (["--method", "X=energy"], "--method names no source: X (sources: R, CV)"),
        (["--method", "CV"], "--method 'CV': expected NAME=METHOD"),
    ]:
        with pytest.raises(SystemExit) as stop:
            fold_comparison.main([f"R={single}", f"CV={cv}", *argv])
        assert stop.value.code == 2
        error = capsys.readouterr().err.strip()
        assert message in error and len(error.splitlines()) == 1, error


def test_a_source_mixing_runs_and_cross_validations_is_refused(tmp_path, capsys):
    single = run(tmp_path, "single", IDS[3:], [0, 1, 1])
    seed = archive(tmp_path, "a", [0, 0, 1, 0, 1, 1], ff=[0.1] * 6)
    assert fold_comparison.main([f"R={single}", f"CV={seed}", "--bootstrap_resamples", "100"])["sources"][1]["kind"] == "cv"
    with pytest.raises(SystemExit) as stop:
        fold_comparison.main([f"R={single}", f"CV={seed},{single}"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == ("fold_comparison.py: error: CV: mixes single runs and cross-validations; "
                     "a source's seeds must all be one kind")


@pytest.mark.parametrize("argv, message", [
    (["R=x"], "give at least two sources"),
    (["R=/nonexistent/a", "S=/nonexistent/b"], "/nonexistent/a: no such file or folder"),
    (["plain_path", "S=x"], "'plain_path': expected NAME=PATH"),
    (["R=a", "R=b"], "source names must differ"),
])
def test_bad_command_lines_stop_with_one_line(argv, message, capsys, tmp_path):
    if argv == ["R=a", "R=b"]:
        path = run(tmp_path, "a", IDS, [0] * 6)
        argv = [f"R={path}", f"R={path}"]
    with pytest.raises(SystemExit) as stop:
        fold_comparison.main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_an_out_below_a_file_is_named_in_one_line(tmp_path, capsys):
    single = run(tmp_path, "single", IDS, [0] * 6)
    blocker = tmp_path / "a_file"
    blocker.write_text("keep")
    with pytest.raises(SystemExit) as stop:
        fold_comparison.main([f"R={single}", f"S={single}", "--bootstrap_resamples", "50",
                              "--out", str(blocker / "report.json")])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"fold_comparison.py: error: {blocker / 'report.json'}: cannot write the report "
                     "(a folder above it is a file)")
    assert blocker.read_text() == "keep"


def test_not_a_per_clip_file_is_named(tmp_path, capsys):
    broken = tmp_path / "broken" / "per_clip.json"
    broken.parent.mkdir()
    broken.write_text("{}")
    with pytest.raises(SystemExit):
        fold_comparison.main([f"R={broken}", f"S={broken}"])
    error = capsys.readouterr().err
    assert str(broken) in error and "lacks" in error


def test_recorded_paper_config_figures_are_reproduced_from_their_archives():
    """benchmarks/README.md "Session 28": the paper's FocalNet-B and ViT-B (one GPU run each,
    fold 4) against each other and against the CPU recipes' fold-4 models of five seeds."""
    recorded = json.loads((RESULTS / "paper_configs_gpu_s28" / "fold4_comparison.json").read_text())
    argv = recorded["command"].split()[2:]
    assert argv[-2:] == ["--out", "benchmarks/results/paper_configs_gpu_s28/fold4_comparison.json"]
    sources = [fold_comparison.parse_source(text) for text in argv[:-4]]
    ids, read = fold_comparison.read_sources(
        [(name, [str(REPO / path) for path in paths]) for name, paths in sources]
    )
    assert len(ids) == 80 and {clip.split("-")[0] for clip in ids} == {"4"}
    result = fold_comparison.analyse(ids, read, 0.9, n_resamples=10000)
    assert [s["accuracy_per_seed"] for s in result["sources"]] == [s["accuracy_per_seed"] for s in recorded["sources"]]
    assert result["pairs"] == recorded["pairs"]
    assert fold_comparison.tables(result) == recorded["tables"]
    first = result["pairs"][0]
    assert (first["first"], first["second"]) == ("FocalNet-B", "ViT-B")
    assert result["sources"][0]["accuracy"] == 90.0 and result["sources"][1]["accuracy"] == 80.0
    assert (first["mcnemar"][0]["first_only"], first["mcnemar"][0]["second_only"]) == (12, 4)
    assert first["mcnemar"][0]["p_value"] == pytest.approx(0.0768, abs=1e-4)
    assert first["metrics"]["fid_i"]["mean"] == pytest.approx(0.2125)
