#!/usr/bin/env python3
"""Make the model shipped with the package from a finished training run.

> python benchmarks/ship_pretrained.py --classifier_folder RUN --data_folder ESC-50-dev \\
>     [--output_folder focalnet_lobes/pretrained/focalnet-cpu-esc10]

1. :func:`focalnet_lobes.inference.export.export_classifier` (``recipes/export.py``'s
   library) exports the run's kept checkpoint (its ``checkpoint_selection``: the
   last epoch of a fixed schedule, or the lowest validation error) to a temporary
   folder and checks the exported logits against the trained classifier's;
2. the weights are stored in float16 (half the size; loading casts them back to
   float32) in the output folder, with the export's ``hyperparams.yaml`` and
   ``label_encoder.txt``;
3. both the float32 export and the float16 copy classify ``--eval_folds`` (default
   fold 4: held out by a fixed-schedule run trained on folds 1-3; the fold that
   selected the checkpoint of a ``valid_error`` run) with ``AudioClassifier.classify_file``:
   accuracy with a Wilson 95% CI, agreement between the two, largest logit
   difference; the interpretation metrics at the model's quantile (FID-I with a
   Wilson CI, FA with a bootstrap CI) on the same clips;
4. the model card ``README.md`` is written (with the recipe's cross-validated
   accuracy and map metrics when ``--cv_results`` names its ``cv_results.json``),
   and the figures to ``benchmarks/results/shipped_model_fold4.json``.
"""

import argparse
import csv
import json
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the library of this checkout (never recipes/)

DEFAULT_OUTPUT = REPO / "focalnet_lobes" / "pretrained" / "focalnet-cpu-esc10"
RESULTS = REPO / "benchmarks" / "results" / "shipped_model_fold4.json"


def wilson(successes, total, confidence=0.95):
    """Wilson score interval of a binomial proportion (scipy)."""
    from scipy.stats import binomtest

    interval = binomtest(int(successes), int(total)).proportion_ci(confidence, method="wilson")
    return [float(interval.low), float(interval.high)]


def bootstrap_mean(values, confidence=0.95, seed=0):
    """Percentile bootstrap interval of a mean (scipy, 10000 resamples)."""
    from scipy.stats import bootstrap

    result = bootstrap((np.asarray(values, dtype=np.float64),), np.mean, confidence_level=confidence,
                       n_resamples=10000, method="percentile", random_state=seed)
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def to_float16(source, target):
    """Copy a state dict with its floating-point tensors in float16."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    half = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    torch.save(half, target)


def fold_clips(data_folder, folds, esc10=True):
    with open(pathlib.Path(data_folder) / "meta" / "esc50.csv", newline="") as fin:
        rows = [row for row in csv.DictReader(fin) if int(row["fold"]) in folds
                and (not esc10 or row["esc10"] == "True")]
    return [(pathlib.Path(data_folder) / "audio" / row["filename"], row["category"]) for row in rows]


def evaluate(classifier, clips, quantile):
    """Logits, predictions and interpretation metrics per clip."""
    from focalnet_lobes.interpretation.metrics import interpretation_metrics
    from focalnet_lobes.interpretation.interpret import quantile_mask

    logits, fid_i, fa = [], [], []
    for path, _ in clips:
        wav = classifier.load_audio(path)
        (clip,) = classifier._clips(wav[None])
        (_, batch, _), = list(classifier._batches([clip]))
        with torch.no_grad():
            features = classifier.compute_features(batch)
            clip_logits, maps = classifier.mods.interpreter(classifier.mods.model, features)
            masks = quantile_mask(maps, quantile)
            metrics = interpretation_metrics(classifier.mods.model, features, masks, maps=maps,
                                             logits=clip_logits)
        logits.append(clip_logits[0].float())
        fid_i.append(float(metrics["fid_i"][0]))
        fa.append(float(metrics["fa"][0]))
    return torch.stack(logits), np.array(fid_i), np.array(fa)


def best_valid_error(train_log):
    """(epoch, valid error) of the lowest validation error in a train_log.txt (first if tied)."""
    from focalnet_lobes.training.logs import best_epoch, read_train_log

    return best_epoch(read_train_log(train_log), "valid error")


def run_settings(classifier_folder):
    """``checkpoint_selection``, ``number_of_epochs``, the folds and the faithfulness terms of a run.

    ``terms_epochs``: ``[first, last]`` epochs of the faithfulness terms
    (``masked_in_loss`` of the FocalNet YAMLs), ``None`` when the run had none;
    ``terms_input_weighted``: whether they masked with the map times the input.
    ``stem_strided_blocks``: how many of the conv stem's first blocks are one stride-2
    convolution (0 when the run's YAML has no such key: the VGG stem).
    """
    from focalnet_lobes.inference.trained import load_trained_classifier

    hparams = load_trained_classifier(classifier_folder, device="cpu").hparams
    epochs = int(hparams["number_of_epochs"])
    term = hparams.get("masked_in_loss")
    with_terms = term.epochs_run(epochs) if term is not None else range(0)
    terms = [with_terms[0], with_terms[-1]] if with_terms else None
    return {
        "checkpoint_selection": hparams.get("checkpoint_selection", "valid_error"),
        "number_of_epochs": epochs,
        "train_folds": [int(f) for f in hparams["train_folds"]],
        "valid_folds": [int(f) for f in hparams.get("valid_folds") or []],
        "terms_epochs": terms,
        "terms_input_weighted": bool(getattr(term, "input_weighted", False)) if terms else None,
        "stem_strided_blocks": int(hparams.get("stem_strided_blocks", 0) or 0),
    }


def cv_summary(path, quantile):
    """Accuracy and the by-design map's FID-I / FF at ``quantile`` from a ``cv_results.json``."""
    results = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    method = results["methods"][0]
    metrics = results["metrics"][method][f"{quantile:g}"]
    return {
        "path": str(path),
        "folds": len(results["folds"]),
        "clips": results["accuracy"]["pooled"]["n"],
        "accuracy_mean": results["accuracy"]["mean"],
        "accuracy_std": results["accuracy"]["std"],
        "accuracy_pooled_ci95": [results["accuracy"]["pooled"]["low"], results["accuracy"]["pooled"]["high"]],
        "map": method,
        "fid_i": [metrics["fid_i"][k] for k in ("mean", "low", "high")],
        "ff": [metrics["ff"][k] for k in ("mean", "low", "high")],
        "train_overrides": results.get("train_overrides"),
    }


def model_card(summary, command):
    accuracy, ci = summary["accuracy_float16"], summary["accuracy_ci95"]
    fid, fid_ci = summary["fid_i"], summary["fid_i_ci95"]
    fa, fa_ci = summary["fa"], summary["fa_ci95"]
    q = summary["quantile"]
    folds = ", ".join(str(f) for f in summary["eval_folds"])
    fold_word = "Fold" if len(summary["eval_folds"]) == 1 else "Folds"
    train = ", ".join(str(f) for f in summary["train_folds"])
    epochs = summary["number_of_epochs"]
    epochs_text = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    watched = set(summary["eval_folds"]) <= set(summary.get("valid_folds") or [])
    if summary["checkpoint_selection"] == "last_epoch":
        data = (f"- Training: ESC-10 folds {train} ({summary['train_clips']} clips), a fixed schedule of "
                f"{epochs_text}, the last epoch kept: nothing was chosen on "
                f"{fold_word.lower()} {folds}, which {'gives' if fold_word == 'Fold' else 'give'} the figures "
                "below" + (" (its validation loss was logged during training, nothing more)" if watched else "")
                + ". The recipe itself was chosen by the development copy's cross-validation, in which these "
                "clips are one held-out fold of four (so the figures are a slightly optimistic held-out "
                "estimate). Fold 5 was not available.")
        caveat = (f"{fold_word} {folds} {'was' if fold_word == 'Fold' else 'were'} held out of this model's "
                  "training and chose nothing for it (the last epoch is kept).")
        selection = (f"`recipes/export.py` kept the last epoch ({summary['number_of_epochs']}) of the fixed "
                     "schedule.")
    else:
        data = (f"- Training: ESC-10 folds {train} ({summary['train_clips']} clips). Validation and checkpoint "
                f"selection: {fold_word.lower()} {folds}. Fold 5 was not available: **there is no held-out test set**.")
        caveat = ("These folds selected the checkpoint (the epoch with the lowest validation error), so "
                  "these figures are **optimistic**: they are not a test-set estimate.")
        selection = (f"The training run's lowest validation error (`train_log.txt`, first reached at epoch "
                     f"{summary['best_epoch']}) was {100 * summary['run_best_valid_error']:.2f}%; "
                     "`recipes/export.py` keeps the checkpoint with the lowest validation error.")
    strided = summary.get("stem_strided_blocks", 0)
    stem_text = "three-block conv stem" + (
        f" (the first {strided} a single stride-2 convolution)" if strided > 1
        else " (the first a single stride-2 convolution)" if strided == 1 else ""
    )
    terms_text = ""
    if summary.get("terms_epochs"):
        first, last = summary["terms_epochs"]
        span = f"epoch {first}" if first == last else f"epochs {first}-{last}"
        own_map = "its own map times the input" if summary.get("terms_input_weighted") else "its own map"
        terms_text = (f", with faithfulness terms on {own_map} in {span} (the masked-in "
                      "input must still be classified, the masked-out input must carry no evidence)")
    cv = summary.get("cross_validation")
    cv_text = ""
    if cv:
        cv_text = f"""
## The recipe, cross-validated ({cv["folds"]} folds, {cv["clips"]} clips)

Every fold of the development copy held out once, a model trained on the others with this
recipe (`recipes/cross_validate.py`, `{cv["path"]}`): accuracy
{100 * cv["accuracy_mean"]:.1f} ± {100 * cv["accuracy_std"]:.1f}% (mean ± std over folds; pooled
95% CI {100 * cv["accuracy_pooled_ci95"][0]:.1f}-{100 * cv["accuracy_pooled_ci95"][1]:.1f}%); the
by-design map (`{cv["map"]}` in that file) at q = {q}: FID-I {cv["fid_i"][0]:.3f} [{cv["fid_i"][1]:.3f}, {cv["fid_i"][2]:.3f}],
FF {cv["ff"][0]:.3f} [{cv["ff"][1]:.3f}, {cv["ff"][2]:.3f}] (bootstrap over clips).
"""
    cv_option = f" --cv_results {cv['path']}" if cv else ""
    return f"""---
license: cc-by-nc-3.0
library_name: speechbrain
pipeline_tag: audio-classification
tags:
- audio-classification
- interpretability
- focalnet
datasets:
- ESC-10 (ESC-50 subset)
---

# focalnet-cpu-esc10: an interpretable sound classifier that ships with focalnet-audio

A compact Focal Modulation Network (2.4 M parameters, `hparams/focalnet_cpu.yaml`:
64 log1p-mel bands, {stem_text}, focal stages 128-256, modulation pooling)
trained from scratch on **ESC-10** (10 classes: {", ".join(summary["classes"])}),
16 kHz mono clips of 5 s{terms_text}. Its decisions are interpretable by design: each last-stage
position's exact share of the predicted class's logit (the modulation map weighted by the
class evidence), times the input spectrogram bin by bin (`interpret_focalnet.yaml`),
thresholded at the {q} quantile, is a mask on the spectrogram that can be listened to.

## Use

```bash
focalnet-audio interpret some.wav --out out/     # WAV + PNG + JSON per file
focalnet-audio classify recordings/ --out out/   # folders, globs, long files (sliding windows)
```

```python
from focalnet_lobes.inference.classifiers import AudioClassifier
classifier = AudioClassifier.from_hparams()      # this model (focalnet_lobes.inference.classifiers.default_source())
probabilities, score, index, labels = classifier.classify_file("clip.wav")
```

It knows only the 10 ESC-10 classes: every sound is classified as one of them.

## Data and license

{data}
- The clips of ESC-50 (K. J. Piczak, ESC: Dataset for Environmental Sound
  Classification, ACM MM 2015) come from freesound.org and are licensed under
  **Creative Commons Attribution-NonCommercial 3.0** (CC BY-NC 3.0). These weights
  are derived from them and are shared **for non-commercial use only**, with
  attribution to ESC-50 and its freesound.org authors.

## Accuracy and interpretation ({fold_word.lower()} {folds}, {summary["clips"]} clips)

{caveat}

| metric | value | 95% CI |
|---|---|---|
| accuracy (this float16 model, `classify_file`) | {100 * accuracy:.1f}% ({summary["correct_float16"]}/{summary["clips"]}) | {100 * ci[0]:.1f}-{100 * ci[1]:.1f}% (Wilson) |
| FID-I at q = {q} (masked-in input keeps the prediction; higher is better) | {fid:.3f} | {fid_ci[0]:.3f}-{fid_ci[1]:.3f} (Wilson) |
| FA at q = {q} (drop of the predicted probability when only the mask is kept; lower is better) | {fa:.3f} | {fa_ci[0]:.3f}-{fa_ci[1]:.3f} (bootstrap) |

{selection} The float32 export and this float16 copy agree on {summary["agreement"]}/{summary["clips"]}
clips (largest logit difference {summary["max_logit_difference"]:.2g}).
{cv_text}
## How it was made

```bash
{command}
python benchmarks/ship_pretrained.py --classifier_folder RUN --data_folder ESC-50-dev{cv_option}
```

`benchmarks/ship_pretrained.py` exports the run with `recipes/export.py` (its kept
checkpoint), stores the weights in float16 and measures the figures above
(`{summary.get("results_file", "benchmarks/results/shipped_model_fold4.json")}`).

## Files

- `hyperparams.yaml`: front end, classifier, interpreter, label encoder (from `recipes/export.py`)
- `model.ckpt`: float16 weights (cast to float32 when loaded)
- `label_encoder.txt`: class names in label order
"""


def _shown_path(path):
    """``path`` relative to the repository when inside it, else as given."""
    try:
        return str(pathlib.Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--classifier_folder", required=True,
                        help="output folder of recipes/train.py (its kept checkpoint is shipped)")
    parser.add_argument("--data_folder", required=True, help="ESC-50-layout folder with the eval folds")
    parser.add_argument("--output_folder", default=str(DEFAULT_OUTPUT),
                        help="the model folder written (default: REPLACES the shipped model)")
    parser.add_argument("--eval_folds", "--valid_folds", type=int, nargs="+", default=[4],
                        help="folds the figures are measured on; must not be training folds of the run")
    parser.add_argument("--cv_results", default=None,
                        help="cv_results.json of the recipe's cross-validation, quoted in the card")
    parser.add_argument("--results", default=str(RESULTS),
                        help="where the figures go (JSON; default: REPLACES the committed figures)")
    parser.add_argument("--command", default=(
        "python recipes/train.py hparams/focalnet_cpu.yaml --data_folder ESC-50-dev --esc10 True "
        '--valid_folds "[]" --test_folds "[4]"  # seed 1986, folds 1-3'),
                        help="the training command the card names (say how RUN was made)")
    args = parser.parse_args(argv)

    from focalnet_lobes.inference.export import export_classifier

    from focalnet_lobes.inference.classifiers import AudioClassifier

    settings = run_settings(args.classifier_folder)
    overlap = sorted(set(args.eval_folds) & set(settings["train_folds"]))
    if overlap:
        parser.error(f"{args.classifier_folder} was trained on fold(s) {overlap}: "
                     "--eval_folds must be folds it was not trained on")
    output = pathlib.Path(args.output_folder)
    with tempfile.TemporaryDirectory() as tmp:
        exported = pathlib.Path(tmp) / "focalnet-cpu-esc10"
        export_summary = export_classifier(args.classifier_folder, exported, verify=True)
        output.mkdir(parents=True, exist_ok=True)
        for name in ("hyperparams.yaml", "label_encoder.txt"):
            shutil.copyfile(exported / name, output / name)
        to_float16(exported / "model.ckpt", output / "model.ckpt")
        full = AudioClassifier.from_hparams(source=str(exported))
        half = AudioClassifier.from_hparams(source=str(output))
        clips = fold_clips(args.data_folder, args.eval_folds)
        quantile = float(half.hparams.quantile)
        logits32, _, _ = evaluate(full, clips, quantile)
        logits16, fid_i, fa = evaluate(half, clips, quantile)
    targets = torch.tensor([half.class_names.index(category) for _, category in clips])
    correct32 = int((logits32.argmax(1) == targets).sum())
    correct16 = int((logits16.argmax(1) == targets).sum())
    epoch, valid_error = None, None
    if settings["checkpoint_selection"] != "last_epoch":
        epoch, valid_error = best_valid_error(pathlib.Path(args.classifier_folder) / "train_log.txt")
    summary = {
        "classifier_folder": str(args.classifier_folder),
        "checkpoint": export_summary["checkpoint"],
        "export_max_logit_difference": export_summary.get("max_logit_difference"),
        **settings,
        "train_clips": len(fold_clips(args.data_folder, settings["train_folds"])),
        "eval_folds": list(args.eval_folds),
        "best_epoch": epoch,
        "run_best_valid_error": valid_error,
        "clips": len(clips),
        "classes": half.class_names,
        "correct_float32": correct32,
        "correct_float16": correct16,
        "accuracy_float32": correct32 / len(clips),
        "accuracy_float16": correct16 / len(clips),
        "accuracy_ci95": wilson(correct16, len(clips)),
        "agreement": int((logits32.argmax(1) == logits16.argmax(1)).sum()),
        "max_logit_difference": float((logits32 - logits16).abs().max()),
        "quantile": quantile,
        "fid_i": float(fid_i.mean()),
        "fid_i_ci95": wilson(int(fid_i.sum()), len(fid_i)),
        "fa": float(fa.mean()),
        "fa_ci95": bootstrap_mean(fa),
        "model_bytes": (output / "model.ckpt").stat().st_size,
        "command": args.command,
        "results_file": _shown_path(args.results),
    }
    if args.cv_results:
        summary["cross_validation"] = cv_summary(args.cv_results, quantile)
    (output / "README.md").write_text(model_card(summary, args.command), encoding="utf-8")
    results = pathlib.Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
