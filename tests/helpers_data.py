"""Generated data for the tests: a small synthetic dataset in the exact ESC-50 layout.

:func:`make_fake_esc50` writes ``audio/<fold>-<src>-<take>-<target>.wav`` and
``meta/esc50.csv`` (the official columns) so that the preparation and the recipes
read it as they read the real ESC-50. Each class is a tone with harmonics at its
own frequency plus a little noise, so even a tiny model separates the classes.
:func:`make_esc50_zip` packs such a folder as the GitHub archive
(``ESC-50-master/audio/...``, ``ESC-50-master/meta/esc50.csv``).
"""

import csv
import zipfile
from pathlib import Path

import numpy as np
import soundfile

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")

# The 50 ESC-50 classes by target.
ESC50_CLASSES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops",
    "wind", "pouring_water", "toilet_flush", "thunderstorm", "crying_baby", "sneezing",
    "clapping", "breathing", "coughing", "footsteps", "laughing", "brushing_teeth",
    "snoring", "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing",
    "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm",
    "clock_tick", "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn",
    "engine", "train", "church_bells", "airplane", "fireworks", "hand_saw",
)
# The ESC-10 subset (targets), as in the official metadata.
ESC10_TARGETS = (0, 1, 10, 11, 12, 20, 21, 38, 40, 41)


def class_frequency(index, num_classes):
    """Tone frequency (Hz) of the ``index``-th of ``num_classes`` generated classes.

    Log-spaced between 250 Hz and 3.5 kHz, well below the 8 kHz Nyquist frequency of
    the 16 kHz recipes, so every class keeps its own frequency band after resampling.
    """
    if num_classes == 1:
        return 1000.0
    return float(250.0 * (3500.0 / 250.0) ** (index / (num_classes - 1)))


def make_clip(index, num_classes, sample_rate, duration_s, channels, rng):
    """One generated clip of class ``index``: ``(time, channels)`` float array in [-1, 1]."""
    num_samples = int(round(duration_s * sample_rate))
    time = np.arange(num_samples) / sample_rate
    # Jitter the frequency by at most a quarter of the gap to the neighbouring classes.
    spacing = (3500.0 / 250.0) ** (1.0 / max(num_classes - 1, 1)) - 1.0
    jitter = min(0.03, spacing / 4)
    frequency = class_frequency(index, num_classes) * rng.uniform(1.0 - jitter, 1.0 + jitter)
    phase = rng.uniform(0, 2 * np.pi)
    tone = np.sin(2 * np.pi * frequency * time + phase) + 0.4 * np.sin(4 * np.pi * frequency * time + phase)
    # A slow amplitude envelope whose rate depends on the class, and a random onset.
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * (1.0 + index % 4) * time + rng.uniform(0, 2 * np.pi))
    onset = rng.integers(0, max(1, num_samples // 10))
    envelope[:onset] = 0.0
    signal = tone * envelope + 0.05 * rng.standard_normal(num_samples)
    signal = 0.8 * signal / max(np.abs(signal).max(), 1e-8) * rng.uniform(0.3, 1.0)
    gains = [1.0] if channels == 1 else np.linspace(1.0, 0.6, channels)
    return np.stack([signal * gain for gain in gains], axis=1)


def make_fake_esc50(
    root,
    n_per_class=2,
    classes=ESC10_TARGETS,
    folds=(1, 2, 3, 4, 5),
    sample_rate=44100,
    channels=1,
    duration_s=1.0,
    seed=0,
):
    """Write a synthetic dataset in the ESC-50 layout under ``root``.

    Arguments
    ---------
    root : str or pathlib.Path
        Folder to create ``audio/`` and ``meta/esc50.csv`` in.
    n_per_class : int
        Clips per class in each fold.
    classes : sequence of int
        ESC-50 targets (0..49) of the classes to generate; their names and the
        ``esc10`` column follow the official metadata. Default: the ESC-10 classes.
    folds : sequence of int
        Folds to generate.
    sample_rate : int
        Sample rate of the files (the official files are 44.1 kHz).
    channels : int
        1 (mono) or more (e.g. 2 for stereo).
    duration_s : float
        Length of every clip in seconds (the official clips are 5 s).
    seed : int
        Seed of the random generator (frequencies jitter, phases, noise).

    Returns
    -------
    list of dict
        The CSV rows written (values as strings, as in the file).

    Example
    -------
    >>> import tempfile
    >>> rows = make_fake_esc50(tempfile.mkdtemp(), n_per_class=1, classes=(0, 41), folds=(1, 2),
    ...                        sample_rate=8000, duration_s=0.1)
    >>> for row in rows:
    ...     print(row["filename"], row["fold"], row["category"], row["esc10"])
    1-100000-A-0.wav 1 dog True
    1-100001-A-41.wav 1 chainsaw True
    2-100002-A-0.wav 2 dog True
    2-100003-A-41.wav 2 chainsaw True
    """
    root = Path(root)
    targets = [int(target) for target in classes]
    if not targets or any(not 0 <= target < len(ESC50_CLASSES) for target in targets):
        raise ValueError(f"classes must be ESC-50 targets in 0..49, got {classes}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"classes must be distinct, got {classes}")
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    source_id = 100000
    for fold in folds:
        for _ in range(n_per_class):
            for index, target in enumerate(targets):
                filename = f"{fold}-{source_id}-A-{target}.wav"
                clip = make_clip(index, len(targets), sample_rate, duration_s, channels, rng)
                soundfile.write(str(root / "audio" / filename), clip, sample_rate, subtype="PCM_16")
                rows.append(
                    {
                        "filename": filename,
                        "fold": str(fold),
                        "target": str(target),
                        "category": ESC50_CLASSES[target],
                        "esc10": str(target in ESC10_TARGETS),
                        "src_file": str(source_id),
                        "take": "A",
                    }
                )
                source_id += 1
    rows.sort(key=lambda row: (int(row["fold"]), int(row["src_file"])))
    write_esc50_csv(root / "meta" / "esc50.csv", rows)
    return rows


def write_esc50_csv(path, rows, columns=ESC50_COLUMNS):
    """Write ESC-50 metadata rows to ``path`` with the given columns."""
    with open(path, "w", newline="", encoding="utf-8") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def make_esc50_zip(zip_path, dataset_root, top_folder="ESC-50-master", extra_members=()):
    """Pack a dataset folder as the GitHub archive of ESC-50.

    Arguments
    ---------
    zip_path : str or pathlib.Path
        The archive to write.
    dataset_root : str or pathlib.Path
        Folder holding ``audio/`` and ``meta/``.
    top_folder : str
        Folder every member lives in, as in GitHub's archive (``""`` for none).
    extra_members : sequence of (str, bytes)
        More members written verbatim (e.g. a path-traversal name).

    Returns
    -------
    pathlib.Path
        ``zip_path``.
    """
    zip_path, dataset_root = Path(zip_path), Path(dataset_root)
    prefix = f"{top_folder}/" if top_folder else ""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}README.md", "# ESC-50 (generated)\n")
        for path in sorted(dataset_root.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(dataset_root).as_posix())
        for name, data in extra_members:
            archive.writestr(name, data)
    return zip_path
