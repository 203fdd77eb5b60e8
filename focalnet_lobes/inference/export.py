"""Turn a training run's output folder into a hub-ready model folder.

The library side of ``recipes/export.py``:

> python recipes/export.py --classifier_folder results/focalnet_cpu/1986 \\
>     --output_folder hub/focalnet-cpu-esc10 [--hub_id owner/focalnet-cpu-esc10]

The output folder holds what ``AudioClassifier.from_hparams`` loads and what the
Hugging Face hub shows:

* ``hyperparams.yaml``: the inference YAML (``hparams/inference/template.yaml``)
  with the run's own front end and classifier definition (the blocks of the run's
  ``hyperparams.yaml`` that ``compute_features`` and ``model`` are built from),
  the interpreter that fits the backbone (modulation maps for FocalNet, class-token
  attention for ViT) and the mask quantile;
* ``model.ckpt``: the classifier's kept checkpoint (the run's ``checkpoint_selection``:
  the last epoch's, or the one of lowest validation error);
* ``label_encoder.txt``: the class names in label order (SpeechBrain
  ``CategoricalEncoder``);
* ``README.md``: a model card with the run's test metrics
  (``<classifier_folder>/test_results.json``) and interpretation metrics
  (``<classifier_folder>/interpretation/*/metrics.json``) when present.

After writing, the folder is loaded back and its logits are checked against the
trained classifier's on a test waveform (``--no_verify`` skips this).

Authors
 * focalnet-audio contributors
"""

import json
import math
import pathlib
import re

import torch

from focalnet_lobes.data.features import PCEN_MASKING_CAVEAT
from focalnet_lobes.inference.trained import load_trained_classifier

#: The repository's inference template (source checkout; ``template=`` to use another).
TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "hparams" / "inference" / "template.yaml"
# Keys of the training YAML that the inference YAML is built from.
ROOT_KEYS = ("sample_rate", "compute_features", "model")
OPTIONAL_ROOT_KEYS = ("n_classes",)
# Keys the template defines itself: a model definition must not redefine them.
TEMPLATE_KEYS = (
    "pretrained_path",
    "waveform_normalization",
    "pad_to_seconds",
    "quantile",
    "interpreter",
    "label_encoder",
    "modules",
    "pretrainer",
)
# The interpretation YAML whose ``interpreter`` the exported model uses, by backbone
# kind: the same map as ``recipes/interpret.py`` with that file (hparams/).
INTERPRETATION_YAMLS = {
    "focalnet": "interpret_focalnet.yaml",  # class-specific by-design map times the input
    "vit": "interpret_vit.yaml",  # last layer's class-token attention
    "other": "interpret_saliency.yaml",  # gradient saliency, any model
}
HPARAMS = pathlib.Path(__file__).resolve().parents[2] / "hparams"

_KEY_LINE = re.compile(r"^([A-Za-z_][\w\-]*)\s*:")
_ANCHOR = re.compile(r"&([A-Za-z0-9_\-]+)")
_ALIAS = re.compile(r"\*([A-Za-z0-9_\-]+)")
_REFERENCE = re.compile(r"<([A-Za-z_][\w\-]*)")


class ExportError(ValueError):
    """The run cannot be exported (with the reason)."""


def split_top_level_blocks(yaml_text):
    """Split a YAML document into its top-level entries, as text.

    Each block is the key's line, the lines under it, and the column-0 comment
    lines right above it.

    Arguments
    ---------
    yaml_text : str
        A HyperPyYAML document.

    Returns
    -------
    list of (str, str)
        (key, text) in document order.

    Example
    -------
    >>> text = "a: 1\\n# about b\\nb: !new:torch.nn.Linear\\n    in_features: 2\\n\\nc: [1]\\n"
    >>> [(key, block.count("\\n")) for key, block in split_top_level_blocks(text)]
    [('a', 1), ('b', 3), ('c', 1)]
    """
    lines = yaml_text.splitlines(keepends=True)
    starts = [
        (i, _KEY_LINE.match(line).group(1)) for i, line in enumerate(lines) if _KEY_LINE.match(line)
    ]
    blocks = []
    for position, (start, key) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        # Leading comments belong to this block: walk back over column-0 comments.
        first = start
        while first > 0 and lines[first - 1].startswith("#"):
            first -= 1
        # Trailing comments/blank lines belong to the next block (or are dropped).
        last = end
        while last > start + 1 and (lines[last - 1].startswith("#") or not lines[last - 1].strip()):
            last -= 1
        blocks.append((key, "".join(lines[first:last])))
    return blocks


def interpreter_definition(kind, hparams_folder=HPARAMS):
    """The ``interpreter`` of the kind's interpretation YAML, as text for the template.

    The exported model interprets with the map that ``recipes/interpret.py``
    computes with :data:`INTERPRETATION_YAMLS` ``[kind]`` (``interpret_focalnet.yaml``
    for a FocalNet), so the recipe, the export and the command line agree.

    Arguments
    ---------
    kind : str
        ``"focalnet"``, ``"vit"`` or anything else (gradient saliency).
    hparams_folder : str or pathlib.Path
        Where the interpretation YAMLs are.

    Returns
    -------
    str
        The value of the ``interpreter`` key (its tag and indented arguments).

    Raises
    ------
    ExportError
        The YAML is missing, has no ``interpreter``, or its interpreter refers to
        other keys (``!ref``), which the inference YAML does not have.

    Example
    -------
    >>> print(interpreter_definition("vit").splitlines()[0])
    !new:focalnet_lobes.interpretation.interpret.AttentionInterpreter
    """
    path = pathlib.Path(hparams_folder) / INTERPRETATION_YAMLS.get(kind, INTERPRETATION_YAMLS["other"])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ExportError(f"{path}: cannot read the interpretation YAML ({error.strerror})") from None
    blocks = dict(split_top_level_blocks(text))
    if "interpreter" not in blocks:
        raise ExportError(f"{path}: no top-level 'interpreter' key")
    lines = blocks["interpreter"].splitlines()
    while lines and not lines[0].startswith("interpreter:"):
        lines.pop(0)  # the comment lines above the key
    value = "\n".join([lines[0][len("interpreter:"):].strip()] + lines[1:]).rstrip()
    if "!ref" in value:
        raise ExportError(f"{path}: the interpreter refers to other keys; an exported model cannot")
    return value


def extract_definitions(yaml_text, roots, optional_roots=()):
    """The top-level blocks that define ``roots`` and everything they refer to.

    References are YAML aliases (``*id005`` -> the block holding ``&id005``, as in
    the resolved ``hyperparams.yaml`` a SpeechBrain run saves) and HyperPyYAML
    references (``!ref <name>``, ``!copy <name>``).

    Arguments
    ---------
    yaml_text : str
        The training run's ``hyperparams.yaml``.
    roots : sequence of str
        Keys that must be defined.
    optional_roots : sequence of str
        Keys included when present.

    Returns
    -------
    str
        The blocks, in document order.

    Example
    -------
    >>> text = ("seed: 1\\nlr: 0.1\\nwidth: &id001 [4]\\n"
    ...         "model: !new:torch.nn.Sequential\\n    - *id001\\nopt: !ref <lr>\\n")
    >>> print(extract_definitions(text, ["model"]), end="")
    width: &id001 [4]
    model: !new:torch.nn.Sequential
        - *id001
    """
    blocks = split_top_level_blocks(yaml_text)
    by_key = {key: text for key, text in blocks}
    anchors = {}
    for key, text in blocks:
        for anchor in _ANCHOR.findall(text):
            anchors[anchor] = key
    missing = [root for root in roots if root not in by_key]
    if missing:
        raise ExportError(f"the training hyperparams.yaml does not define {missing}")
    needed = set()
    pending = list(roots) + [root for root in optional_roots if root in by_key]
    while pending:
        key = pending.pop()
        if key in needed:
            continue
        needed.add(key)
        text = by_key[key]
        body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
        body = body.split(":", 1)[1]
        for alias in _ALIAS.findall(body):
            if alias in anchors and anchors[alias] != key:
                pending.append(anchors[alias])
        for line in body.splitlines():
            if "!ref" in line or "!copy" in line:
                for name in _REFERENCE.findall(line):
                    if name not in by_key:
                        raise ExportError(f"'{key}' refers to <{name}>, which is not defined")
                    pending.append(name)
    kept = []
    for key, text in blocks:
        if key in needed:
            text = text if text.endswith("\n") else text + "\n"
            # A commented block starts a new paragraph, as in the source.
            kept.append("\n" + text if kept and text.startswith("#") else text)
    return "".join(kept)


def drop_pretrained_initialisation(text):
    """Neutralise ImageNet initialisation in a model definition.

    ``focalnet_lobes.models.pretrained_init.load_pretrained_backbone`` reads its ``path``
    when the YAML is loaded; the exported ``model.ckpt`` already holds the trained
    weights, so the exported YAML sets ``path: null``.

    Example
    -------
    >>> text = ("backbone: !apply:focalnet_lobes.models.pretrained_init.load_pretrained_backbone\\n"
    ...         "    model: !new:torch.nn.Linear [2, 2]\\n    path: /data/imagenet.pth\\n"
    ...         "    source: timm\\n")
    >>> print(drop_pretrained_initialisation(text), end="")
    backbone: !apply:focalnet_lobes.models.pretrained_init.load_pretrained_backbone
        model: !new:torch.nn.Linear [2, 2]
        path: null  # trained weights are in model.ckpt
        source: timm
    """
    if "load_pretrained_backbone" not in text:
        return text
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if "load_pretrained_backbone" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        for inner in range(index + 1, len(lines)):
            current = lines[inner]
            if current.strip() and len(current) - len(current.lstrip()) <= indent:
                break
            match = re.match(r"^(\s+)path\s*:", current)
            if match and len(match.group(1)) > indent:
                lines[inner] = f"{match.group(1)}path: null  # trained weights are in model.ckpt\n"
    return "".join(lines)


def render_inference_yaml(
    train_yaml_text, kind, quantile=0.9, pad_to_seconds=None, pretrained_path=None, template=TEMPLATE
):
    """The inference ``hyperparams.yaml`` for a training run.

    Arguments
    ---------
    train_yaml_text : str
        The run's ``hyperparams.yaml``.
    kind : str
        ``"focalnet"``, ``"vit"`` or ``"other"`` (``SpectrogramClassifier.kind``):
        picks the interpreter.
    quantile : float
        Default mask quantile.
    pad_to_seconds : float or None
        Minimum clip length (the run's ``clip_seconds``).
    pretrained_path : str or None
        Default location of the checkpoints (a hub id), written in the YAML.
    template : str or pathlib.Path
        The inference template (``hparams/inference/template.yaml``) with its
        ``@@...@@`` markers.

    Returns
    -------
    str

    Raises
    ------
    ExportError
        The definition redefines a template key, the quantile is outside
        [0, 1), or the template lacks a marker.
    """
    definitions = drop_pretrained_initialisation(
        extract_definitions(train_yaml_text, ROOT_KEYS, OPTIONAL_ROOT_KEYS)
    )
    clashes = [key for key, _ in split_top_level_blocks(definitions) if key in TEMPLATE_KEYS]
    if clashes:
        raise ExportError(f"the model definition uses keys the inference YAML defines: {clashes}")
    if not 0.0 <= quantile < 1.0:
        raise ExportError(f"quantile must be in [0, 1), got {quantile}")
    replacements = {
        "@@PRETRAINED_PATH@@": pretrained_path if pretrained_path else "null",
        "@@PAD_TO_SECONDS@@": "null" if not pad_to_seconds else repr(float(pad_to_seconds)),
        "@@QUANTILE@@": repr(float(quantile)),
        "@@INTERPRETER@@": interpreter_definition(kind),
        "@@MODEL_DEFINITION@@": definitions.rstrip("\n") + "\n",
    }
    text = pathlib.Path(template).read_text(encoding="utf-8")
    for marker, value in replacements.items():
        if marker not in text:
            raise ExportError(f"{template} lacks the marker {marker}")
        text = text.replace(marker, value)
    return text


def write_label_encoder(class_names, path):
    """Write ``label_encoder.txt`` (SpeechBrain ``CategoricalEncoder``), index i = class i.

    Example
    -------
    >>> import tempfile, os
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> path = os.path.join(tempfile.mkdtemp(), "label_encoder.txt")
    >>> write_label_encoder(["dog", "rain"], path)
    >>> CategoricalEncoder.from_saved(path).ind2lab
    {0: 'dog', 1: 'rain'}
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    if len(set(class_names)) != len(class_names):
        raise ExportError(f"class names are not unique: {class_names}")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(list(class_names))
    encoder.save(str(path))


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read {path}: {error}") from error


def read_run_metrics(folder):
    """Test results and interpretation metrics found in a run's output folder.

    Returns
    -------
    dict
        ``{"test": dict or None, "interpretation": {method: data}}`` from
        ``test_results.json`` and ``interpretation/<method>/metrics.json``.
    """
    folder = pathlib.Path(folder)
    test_file = folder / "test_results.json"
    interpretation = {}
    for metrics_file in sorted((folder / "interpretation").glob("*/metrics.json")):
        interpretation[metrics_file.parent.name] = _read_json(metrics_file)
    return {
        "test": _read_json(test_file) if test_file.is_file() else None,
        "interpretation": interpretation,
    }


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _format(value):
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def metrics_table(data):
    """A markdown table of numeric metrics from a metrics JSON of any usual shape.

    Handles ``{metric: value}``, ``{row: {metric: value}}`` (e.g. one row per
    quantile) and ``[{metric: value, ...}, ...]``.

    Example
    -------
    >>> print(metrics_table({"0.9": {"fid_i": 0.8, "fa": 0.1}, "0.5": {"fid_i": 0.9, "fa": 0.05}}))
    |  | fid_i | fa |
    |---|---|---|
    | 0.9 | 0.8 | 0.1 |
    | 0.5 | 0.9 | 0.05 |
    """
    rows = []
    if isinstance(data, dict) and data and all(_number(v) is not None for v in data.values()):
        rows = [("", data)]
    elif isinstance(data, dict):
        rows = [(str(k), v) for k, v in data.items() if isinstance(v, dict)]
    elif isinstance(data, list):
        rows = [("", v) for v in data if isinstance(v, dict)]
    columns = []
    for _, values in rows:
        for key, value in values.items():
            if _number(value) is not None and key not in columns:
                columns.append(key)
    if not rows or not columns:
        return "(no numeric metrics)"
    lines = ["|  | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for name, values in rows:
        cells = [_format(values[c]) if _number(values.get(c)) is not None else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


INTERPRETATION_COLUMNS = (
    "fid_i", "fa", "ff", "ai", "ad", "ag", "sparsity", "complexity", "mask_area",
)


def interpretation_summary(data):
    """Markdown lines for one ``interpretation/<method>/metrics.json``.

    The schema of ``recipes/interpret.py`` (``method``, ``split``, ``num_clips``,
    ``accuracy``, ``quantiles: {q: {metric: value}}``, ``overlap``) gives a header
    line and one table row per quantile; any other JSON falls back to
    :func:`metrics_table`.

    Example
    -------
    >>> data = {"method": "focalnet", "split": "test", "num_clips": 4, "accuracy": 0.75,
    ...         "quantiles": {"0.9": {"fid_i": 0.5, "fa": 0.1, "clips": 4}}}
    >>> print("\\n".join(interpretation_summary(data)))
    method `focalnet`, test split, 4 clips, classifier accuracy 75.00%
    <BLANKLINE>
    | q | fid_i | fa |
    |---|---|---|
    | 0.9 | 0.5 | 0.1 |
    """
    quantiles = data.get("quantiles") if isinstance(data, dict) else None
    if not isinstance(quantiles, dict) or not quantiles:
        return [metrics_table(data)]
    header = [f"method `{data.get('method', '?')}`", f"{data.get('split', '?')} split"]
    if _number(data.get("num_clips")) is not None:
        header.append(f"{data['num_clips']} clips")
    if _number(data.get("accuracy")) is not None:
        header.append(f"classifier accuracy {100 * data['accuracy']:.2f}%")
    columns = [
        c for c in INTERPRETATION_COLUMNS
        if any(_number((row or {}).get(c)) is not None for row in quantiles.values())
    ]
    lines = [", ".join(header), "", "| q | " + " | ".join(columns) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for quantile, row in quantiles.items():
        cells = [_format(row[c]) if _number(row.get(c)) is not None else "" for c in columns]
        lines.append(f"| {quantile} | " + " | ".join(cells) + " |")
    overlap = data.get("overlap")
    if isinstance(overlap, dict) and _number(overlap.get("keeps_s1_rate")) is not None:
        lines += [
            "",
            "Overlap test (0.8 s1 + 0.2 s2): the mask keeps the louder source in "
            f"{100 * overlap['keeps_s1_rate']:.1f}% of {overlap.get('pairs', '?')} pairs.",
        ]
    return lines


def model_card(trained, metrics, repo_name, hub_id=None, quantile=0.9):
    """The ``README.md`` of the exported folder (Hugging Face model card)."""
    hparams = trained.hparams
    kind = trained.model.kind
    backbone = type(trained.model.backbone).__name__
    num_params = sum(p.numel() for p in trained.model.parameters())
    dataset = "ESC-10" if hparams.get("esc10") else "ESC-50"
    source = hub_id or f"path/to/{repo_name}"
    lines = [
        "---",
        "language: en",
        "license: cc-by-nc-3.0",  # weights derived from ESC-50's CC BY-NC 3.0 clips
        "library_name: speechbrain",
        "pipeline_tag: audio-classification",
        "tags:",
        "- audio-classification",
        "- sound-classification",
        "- interpretability",
        f"- {kind}",
        "datasets:",
        "- ESC50",
        "metrics:",
        "- accuracy",
        "---",
        "",
        f"# {repo_name}: interpretable {backbone} sound classifier ({dataset})",
        "",
        f"A {backbone} ({num_params / 1e6:.2f} M parameters) trained with the focalnet-audio "
        f"recipe `recipes/train.py` (experiment `{hparams.get('experiment_name', '?')}`, seed "
        f"{hparams.get('seed', '?')}) on {dataset} ({len(trained.class_names)} classes), "
        f"16 kHz mono clips of {hparams.get('clip_seconds', '?')} s. "
        "Its decisions are interpretable by design: "
        + (
            "each last-stage position's exact share of the predicted class's logit (the "
            "modulation map weighted by the class evidence), times the input spectrogram "
            "bin by bin (`interpret_focalnet.yaml`), thresholded at a quantile, gives a "
            "mask on the spectrogram that can be listened to."
            if kind == "focalnet"
            else "the class-token attention of the last layer, thresholded at a quantile, "
            "gives a mask on the spectrogram that can be listened to."
            if kind == "vit"
            else "input-gradient saliency gives a mask on the spectrogram."
        )
        + (
            " Its features are PCEN (per-channel energy normalization) of the spectrogram: "
            f"{PCEN_MASKING_CAVEAT}."
            if getattr(trained.frontend, "compression", "log1p") == "pcen"
            else f" Its features are log(1 + C E) of the spectrogram E, C = {trained.frontend.log1p_scale:g}."
            if getattr(trained.frontend, "log1p_scale", 1.0) != 1.0
            else ""
        )
        + (
            f" Its {trained.frontend.num_bins} frequency bands are equally spaced in Hz "
            "(`freq_scale: linear`), not on the mel scale."
            if getattr(trained.frontend, "freq_scale", "mel") == "linear"
            else ""
        ),
        "",
        "The ESC-50 clips (K. J. Piczak, ACM MM 2015; freesound.org) are licensed under "
        "Creative Commons Attribution-NonCommercial 3.0; these weights are derived from "
        "them: **non-commercial use only**, with attribution to ESC-50 and its authors.",
        "",
        "## Results",
        "",
    ]
    test = metrics["test"]
    if test is not None and _number(test.get("accuracy")) is not None:
        lines += [
            "| split | clips | accuracy |",
            "|---|---|---|",
            f"| test (folds {hparams.get('test_folds', '?')}) | {test.get('num_clips', '?')} | "
            f"{100 * test['accuracy']:.2f}% |",
            "",
        ]
        per_class = test.get("per_class_accuracy") or {}
        if per_class:
            lines += ["| class | test accuracy |", "|---|---|"]
            lines += [f"| {name} | {100 * value:.1f}% |" for name, value in per_class.items()
                      if _number(value) is not None]
            lines.append("")
    else:
        lines += ["No test results were found in the run folder (`test_results.json`).", ""]
    if metrics["interpretation"]:
        lines += [
            "## Interpretation metrics",
            "",
            "From `recipes/interpret.py` (per quantile q of the mask; FID-I: the masked-in "
            "input keeps the predicted class; FA: drop of its probability when only the "
            "masked-in part is kept, the paper's faithfulness; FF: the same with the "
            "masked-out part; AI/AD/AG in %; sparsity: Gini of the map; complexity: entropy).",
            "",
        ]
        for method, data in metrics["interpretation"].items():
            lines += [f"### {method}", ""] + interpretation_summary(data) + [""]
    lines += [
        "## Usage",
        "",
        "```python",
        "from focalnet_lobes.inference.classifiers import AudioClassifier",
        "",
        "classifier = AudioClassifier.from_hparams(",
        f'    source="{source}", savedir="pretrained/{repo_name}"',
        ")",
        'probabilities, score, index, labels = classifier.classify_file("clip.wav")',
        'result = classifier.interpret_file("clip.wav", out_dir="interpretation/")',
        "# result.mask: (1, 1, T, F) binary mask; result.listenable: (1, samples) waveform",
        "```",
        "",
        "Command line:",
        "",
        "```bash",
        f"focalnet-audio classify clip.wav --source {source}",
        f"focalnet-audio interpret clip.wav --source {source} --out interpretation/ "
        f"--quantile {quantile}",
        "```",
        "",
        "Any sample rate and channel count is accepted (converted to 16 kHz mono, "
        "peak-normalised).",
        "",
        "## Files",
        "",
        "- `hyperparams.yaml`: front end, classifier, interpreter and label encoder",
        "- `model.ckpt`: weights of the training run's kept checkpoint (its "
        "`checkpoint_selection`: the last epoch, or the lowest validation error)",
        "- `label_encoder.txt`: class names in label order",
        "",
        "## Classes",
        "",
        ", ".join(trained.class_names),
        "",
    ]
    return "\n".join(lines)


def verify_export(trained, output_folder, tolerance=1e-5):
    """Load the exported folder and compare its logits with the trained classifier's.

    Returns
    -------
    float
        The largest absolute logit difference on a test waveform.
    """
    from focalnet_lobes.inference.classifiers import AudioClassifier

    loaded = AudioClassifier.from_hparams(source=str(output_folder), run_opts={"device": "cpu"})
    sample_rate = int(trained.hparams["sample_rate"])
    seconds = float(trained.hparams.get("clip_seconds", 1.0))
    generator = torch.Generator().manual_seed(0)
    wav = torch.randn(1, int(sample_rate * seconds), generator=generator)
    wav = wav / wav.abs().max()
    with torch.no_grad():
        reference = trained.model(trained.frontend(wav))
    difference = float((loaded(wav) - reference).abs().max())
    if not difference <= tolerance:
        raise ExportError(
            f"the exported model's logits differ from the trained classifier's by {difference:.3g}"
        )
    return difference


def export_classifier(
    classifier_folder, output_folder, hub_id=None, quantile=0.9, verify=True, template=TEMPLATE
):
    """Export a training run (see the module docstring); returns a summary dict.

    ``template`` is the inference template (:func:`render_inference_yaml`).
    Raises :class:`ExportError` (bad settings, logits that differ after
    reloading) or :class:`~focalnet_lobes.inference.trained.TrainedClassifierError` (not a
    finished training run).
    """
    classifier_folder = pathlib.Path(classifier_folder)
    output_folder = pathlib.Path(output_folder)
    if output_folder.resolve() == classifier_folder.resolve():
        raise ExportError("output_folder must differ from classifier_folder")
    trained = load_trained_classifier(classifier_folder, device="cpu")
    train_yaml = (classifier_folder / "hyperparams.yaml").read_text(encoding="utf-8")
    yaml_text = render_inference_yaml(
        train_yaml,
        trained.model.kind,
        quantile=quantile,
        pad_to_seconds=trained.hparams.get("clip_seconds"),
        pretrained_path=hub_id,
        template=template,
    )
    output_folder.mkdir(parents=True, exist_ok=True)
    (output_folder / "hyperparams.yaml").write_text(yaml_text, encoding="utf-8")
    torch.save(trained.model.state_dict(), output_folder / "model.ckpt")
    write_label_encoder(trained.class_names, output_folder / "label_encoder.txt")
    metrics = read_run_metrics(classifier_folder)
    card = model_card(trained, metrics, output_folder.name, hub_id=hub_id, quantile=quantile)
    (output_folder / "README.md").write_text(card, encoding="utf-8")
    summary = {
        "output_folder": str(output_folder),
        "checkpoint": str(trained.checkpoint),
        "kind": trained.model.kind,
        "classes": len(trained.class_names),
        "test_accuracy": (metrics["test"] or {}).get("accuracy"),
    }
    if verify:
        summary["max_logit_difference"] = verify_export(trained, output_folder)
    return summary
