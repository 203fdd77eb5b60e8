"""Long recordings: sliding-window classification and interpretation, streamed.

A field recording of minutes or hours is not squeezed into one prediction: it is
cut into windows of the model's clip length (``pad_to_seconds`` of its YAML, the
5 s of ESC-50; :data:`DEFAULT_WINDOW_SECONDS` when the model does not say) moved
by a hop (half a window by default, :data:`DEFAULT_HOP_FRACTION`). Windows start
at ``0, hop, 2 hop, ...`` while they fit in the file; when the last of them does
not reach the end, one more window is aligned to the end of the file, so every
sample is covered by a full window. A file no longer than a window is one window
(padded as the model pads short clips).

Each window is handled like a clip by :class:`~focalnet_lobes.inference.classifiers.AudioClassifier`
(its own peak normalisation, the model's padding), giving per-window class
probabilities and top-k. The **aggregate prediction** of the file is the mean of
the window probabilities (every window counted once), its top-k ranked by that
mean. For interpretation, each window's mask is made listenable at the window's
own level (the listenable clip is scaled back by the peak the window was
normalised by) and the windows are joined by weighted overlap-add: sample ``n``
of the output is ``sum_i g_i(n) y_i(n) / sum_i g_i(n)`` over the windows ``i``
covering it, with ``g`` a Hann window floored at :data:`TAPER_FLOOR` (so a sample
covered by one window is that window's sample exactly, and windows that overlap
cross-fade smoothly). The result is one WAV at the model's sample rate, as long as
the input (its duration, resampled), written incrementally.

Memory is bounded by the window, not the file: the file is read in blocks with
``soundfile.SoundFile.blocks``, resampled block by block with
``soxr.ResampleStream`` (the channels averaged first), and only the samples of the
current window, one block and the overlap-add tail are held; the per-window
results (a few numbers per window) are the only thing that grows with the length.
Formats that libsndfile cannot stream fall back to
:func:`focalnet_lobes.data.audio.load_audio` (the whole file in memory).

Functions
---------
:func:`classify_long_file`, :func:`interpret_long_file` (the Python API, taking an
``AudioClassifier``), :func:`stream_mono` (the streaming reader),
:class:`OverlapAddWriter`, :func:`plot_timeline`, :func:`window_settings`.
"""

import csv
import dataclasses
import json
import math
import os
import pathlib

import numpy as np
import soundfile
import torch

from focalnet_lobes.data.audio import AudioError

DEFAULT_WINDOW_SECONDS = 5.0
"""Window length (s) when the model's YAML has no ``pad_to_seconds`` (ESC-50's clip)."""

DEFAULT_HOP_FRACTION = 0.5
"""Default hop, as a fraction of the window."""

TAPER_FLOOR = 1e-3
"""Smallest overlap-add weight (keeps samples covered by one window's edge exact)."""

BLOCK_FRAMES = 65536
"""Frames read from the file per block (about 1.5 s at 44.1 kHz)."""


def model_clip_seconds(classifier):
    """The model's clip length in seconds: its ``pad_to_seconds``, else the default.

    Arguments
    ---------
    classifier : focalnet_lobes.inference.classifiers.AudioClassifier
        The model.

    Returns
    -------
    float
        ``classifier.pad_to_samples / sample_rate`` when the model pads clips
        (the training clip length), else :data:`DEFAULT_WINDOW_SECONDS`.

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.inference.classifiers import AudioClassifier, write_demo_model
    >>> classifier = AudioClassifier.from_hparams(source=write_demo_model(tempfile.mkdtemp()))
    >>> model_clip_seconds(classifier)  # the demo model does not pad
    5.0
    """
    if getattr(classifier, "pad_to_samples", 0):
        return classifier.pad_to_samples / classifier.sample_rate
    return DEFAULT_WINDOW_SECONDS


def window_settings(sample_rate, window_seconds, hop_seconds=None):
    """Window and hop in samples, checked.

    Arguments
    ---------
    sample_rate : int
        Sample rate (Hz) of the windows.
    window_seconds : float
        Window length (s), positive.
    hop_seconds : float or None
        Hop (s), in ``(0, window_seconds]``; ``None``: ``DEFAULT_HOP_FRACTION``
        of the window.

    Returns
    -------
    (int, int)
        Window and hop in samples (at least 1 each).

    Raises
    ------
    ValueError
        A window that is not positive, or a hop outside ``(0, window]``.

    Example
    -------
    >>> window_settings(16000, 5.0)
    (80000, 40000)
    >>> window_settings(16000, 5.0, 1.0)
    (80000, 16000)
    >>> window_settings(16000, 5.0, 6.0)
    Traceback (most recent call last):
    ...
    ValueError: --hop must be in (0, window] = (0, 5.0] s, got 6.0
    """
    window_seconds = float(window_seconds)
    if not math.isfinite(window_seconds) or window_seconds <= 0:
        raise ValueError(f"--window must be a positive number of seconds, got {window_seconds}")
    if hop_seconds is None:
        hop_seconds = DEFAULT_HOP_FRACTION * window_seconds
    hop_seconds = float(hop_seconds)
    if not math.isfinite(hop_seconds) or not 0 < hop_seconds <= window_seconds:
        raise ValueError(
            f"--hop must be in (0, window] = (0, {window_seconds}] s, got {hop_seconds}"
        )
    window = max(1, int(round(window_seconds * sample_rate)))
    hop = min(window, max(1, int(round(hop_seconds * sample_rate))))
    return window, hop


def audio_duration(path):
    """Duration (s) of an audio file from its header, or ``None`` if libsndfile cannot read it.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, np.zeros(22050, dtype=np.float32), 44100)
    >>> audio_duration(path)
    0.5
    """
    try:
        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001  (libsndfile raises several types)
        return None
    if not info.samplerate:
        return None
    return info.frames / info.samplerate


def stream_mono(path, sample_rate, block_frames=BLOCK_FRAMES):
    """Read an audio file block by block as mono float32 at ``sample_rate``.

    Channels are averaged, then each block is resampled with
    ``soxr.ResampleStream`` (high quality), which keeps its state between
    blocks, so the concatenated chunks are the resampled file. No
    normalisation (windows are normalised one by one).

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file (any format libsndfile reads).
    sample_rate : int
        Sample rate (Hz) of the chunks.
    block_frames : int
        Frames read per block (memory ~ ``block_frames x channels``).

    Yields
    ------
    numpy.ndarray
        (n,) float32 chunks (some may be empty).

    Raises
    ------
    AudioError
        The file is missing, unreadable by libsndfile, empty, or holds
        non-finite samples (naming the file).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> soundfile.write(path, np.zeros((44100, 2), dtype=np.float32), 44100)
    >>> sum(chunk.size for chunk in stream_mono(path, 16000, block_frames=4096))
    16000
    """
    import soxr

    path = pathlib.Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found" if not path.exists() else "not a regular file")
    try:
        sound = soundfile.SoundFile(str(path))
    except Exception as error:  # noqa: BLE001
        raise AudioError(path, f"unreadable or corrupt audio ({error})") from error
    with sound:
        rate = int(sound.samplerate)
        if sound.frames == 0:
            raise AudioError(path, "empty audio (0 samples)")
        resampler = None
        if rate != sample_rate:
            resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32")
        try:
            for block in sound.blocks(blocksize=int(block_frames), dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if not np.isfinite(mono).all():
                    raise AudioError(path, "contains NaN or infinite samples")
                if resampler is not None:
                    mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=False)
                yield np.ascontiguousarray(mono, dtype=np.float32)
        except AudioError:
            raise
        except Exception as error:  # noqa: BLE001  (a read error in the middle of the file)
            raise AudioError(path, f"unreadable or corrupt audio ({error})") from error
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _fallback_chunks(classifier, path, block_frames):
    """The whole file via ``load_audio`` (formats libsndfile cannot stream), in chunks."""
    from focalnet_lobes.data.audio import load_audio

    waveform = load_audio(path, classifier.sample_rate).numpy()
    for start in range(0, waveform.size, block_frames):
        yield waveform[start:start + block_frames]


def iter_windows(chunks, window, hop):
    """Cut a stream of chunks into windows (see the module docstring for the rule).

    Arguments
    ---------
    chunks : iterable of numpy.ndarray
        Consecutive (n,) chunks of the signal.
    window, hop : int
        Window and hop in samples (``0 < hop <= window``).

    Yields
    ------
    (int, numpy.ndarray, int)
        Start sample of the window, its samples (``window`` of them, fewer only
        when the whole signal is shorter), and the number of samples received so
        far (a window's samples before ``received - window`` are final).

    Example
    -------
    >>> chunks = [np.arange(4.0), np.arange(4.0, 11.0)]
    >>> [(start, w.tolist()) for start, w, _ in iter_windows(chunks, 4, 3)]
    [(0, [0.0, 1.0, 2.0, 3.0]), (3, [3.0, 4.0, 5.0, 6.0]), (6, [6.0, 7.0, 8.0, 9.0]), (7, [7.0, 8.0, 9.0, 10.0])]
    >>> [(start, w.tolist()) for start, w, _ in iter_windows([np.ones(2)], 4, 2)]
    [(0, [1.0, 1.0])]
    """
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # absolute index of buffer[0]
    received = 0
    next_start = 0
    last_end = 0  # end of the last window emitted
    for chunk in chunks:
        if chunk.size == 0:
            continue
        buffer = np.concatenate([buffer, chunk.astype(np.float32, copy=False)])
        received += chunk.size
        while next_start + window <= received:
            offset = next_start - buffer_start
            yield next_start, buffer[offset:offset + window].copy(), received
            last_end = next_start + window
            next_start += hop
            # keep what the next window and a final end-aligned window may need
            keep_from = min(next_start, received - window)
            if keep_from > buffer_start:
                buffer = buffer[keep_from - buffer_start:]
                buffer_start = keep_from
    if received == 0:
        return
    if received <= window:
        if last_end == 0:
            yield 0, buffer[-received:].copy(), received
        return
    if last_end < received:
        start = received - window
        yield start, buffer[start - buffer_start:start - buffer_start + window].copy(), received


class OverlapAddWriter:
    """Join overlapping windows into one mono WAV, written as they come.

    Weighted overlap-add: output sample ``n`` is ``sum_i g(n - s_i) y_i(n - s_i)
    / sum_i g(n - s_i)`` over the windows ``i`` (start ``s_i``) covering it, with
    ``g`` the Hann window of the window length floored at ``floor``. Samples
    that no later window can reach are written at once, so memory holds about one
    window. The file is written to ``<path>.partial`` and renamed when closed.

    Arguments
    ---------
    path : str or pathlib.Path
        Output WAV.
    sample_rate : int
        Its sample rate.
    window : int
        Window length in samples.
    floor : float
        Smallest weight (positive).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "joined.wav")
    >>> writer = OverlapAddWriter(path, 8, window=4)
    >>> writer.add(0, np.ones(4)); writer.add(2, np.ones(4)); writer.add(4, np.ones(4))
    >>> writer.close(total=8)
    >>> soundfile.read(path)[0].round(3).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, path, sample_rate, window, floor=TAPER_FLOOR):
        self.path = pathlib.Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.taper = np.maximum(np.hanning(window + 2)[1:-1], floor).astype(np.float64)
        self.file = soundfile.SoundFile(
            str(self.partial), "w", samplerate=int(sample_rate), channels=1,
            subtype="FLOAT", format="WAV",
        )
        self.sum = np.zeros(0)
        self.weight = np.zeros(0)
        self.offset = 0  # absolute index of self.sum[0]
        self.written = 0

    def add(self, start, samples, final_before=None):
        """Add a window's samples at ``start``; write out what is final.

        Arguments
        ---------
        start : int
            Absolute start sample.
        samples : numpy.ndarray
            (n,) the window's samples (n <= window).
        final_before : int or None
            Samples before this index will get no more windows (written now).
        """
        samples = np.asarray(samples, dtype=np.float64)
        end = start + samples.size
        if end - self.offset > self.sum.size:
            grow = end - self.offset - self.sum.size
            self.sum = np.concatenate([self.sum, np.zeros(grow)])
            self.weight = np.concatenate([self.weight, np.zeros(grow)])
        taper = self.taper[:samples.size] if samples.size == self.taper.size else np.maximum(
            np.hanning(samples.size + 2)[1:-1], self.taper.min()
        )
        lo = start - self.offset
        self.sum[lo:lo + samples.size] += taper * samples
        self.weight[lo:lo + samples.size] += taper
        if final_before is not None:
            self.flush(min(final_before, start))

    def flush(self, upto):
        """Write the samples before absolute index ``upto``."""
        count = int(upto) - self.offset
        if count <= 0:
            return
        count = min(count, self.sum.size)
        out = np.divide(self.sum[:count], self.weight[:count],
                        out=np.zeros(count), where=self.weight[:count] > 0)
        self.file.write(out.astype(np.float32))
        self.written += count
        self.sum, self.weight = self.sum[count:], self.weight[count:]
        self.offset += count

    def close(self, total):
        """Write everything up to ``total`` samples (zeros past the last window) and rename."""
        self.flush(total)
        if self.written < total:
            self.file.write(np.zeros(total - self.written, dtype=np.float32))
            self.written = total
        self.file.close()
        os.replace(self.partial, self.path)

    def abort(self):
        """Close and delete the partial file."""
        try:
            self.file.close()
        finally:
            self.partial.unlink(missing_ok=True)


@dataclasses.dataclass
class LongformResult:
    """Per-window and aggregate results of a long file.

    Attributes
    ----------
    file : str
        The input.
    windows : list of dict
        Per window: ``index``, ``start_s``, ``end_s``, ``top_k`` (list of
        ``{"label", "index", "score"}``), ``silent`` (the window's level before
        normalisation is under the model's ``silence_threshold_dbfs``: its
        probabilities are uniform, it names no class), and ``mask_fraction``
        when interpreted.
    probabilities : numpy.ndarray
        (N windows, K classes) window probabilities.
    aggregate : list of dict
        Top-k of the mean probability of the windows that are not silent (the
        file's prediction), best first; of all windows when every one is silent.
    class_names : list of str
        Class name of each index.
    duration_s : float
        Duration of the file (resampled), in seconds.
    sample_rate : int
        The model's sample rate.
    window_s, hop_s : float
        The window and the hop in seconds.
    quantile : float or None
        Mask quantile when interpreted.
    files : dict
        Written paths (``wav``, ``png``, ``json``, ``csv``).
    """

    file: str
    windows: list
    probabilities: np.ndarray
    aggregate: list
    class_names: list
    duration_s: float
    sample_rate: int
    window_s: float
    hop_s: float
    quantile: float = None
    files: dict = dataclasses.field(default_factory=dict)

    @property
    def silent(self):
        """True when every window is silent (the file names no class)."""
        return all(entry.get("silent", False) for entry in self.windows)

    @property
    def predicted(self):
        """The aggregate prediction ``{"label", "index", "score"}`` (label ``silence``,
        index -1 when every window is silent)."""
        if self.silent:
            return {"label": "silence", "index": -1, "score": self.aggregate[0]["score"]}
        return self.aggregate[0]

    def to_json(self, **extra):
        """The JSON document (dict) of the result."""
        document = {
            "file": self.file,
            "mode": "windowed",
            "aggregation": "mean of the probabilities of the windows that are not silent",
            "predicted": self.predicted,
            "silent": self.silent,
            "silent_windows": sum(bool(entry.get("silent", False)) for entry in self.windows),
            "top_k": self.aggregate,
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "duration_s": self.duration_s,
            "sample_rate": self.sample_rate,
            "num_windows": len(self.windows),
        }
        if self.quantile is not None:
            document["quantile"] = self.quantile
        document.update(extra)
        document.update({key: value for key, value in self.files.items()})
        document["windows"] = self.windows
        return document

    def write_csv(self, path):
        """Write one row per window: times, prediction, mask fraction, all probabilities."""
        with open(path, "w", newline="", encoding="utf-8") as fout:
            writer = csv.writer(fout)
            header = ["window", "start_s", "end_s", "predicted", "score"]
            if self.quantile is not None:
                header.append("mask_fraction")
            writer.writerow(header + [f"p_{name}" for name in self.class_names])
            for entry, row in zip(self.windows, self.probabilities):
                best = entry["top_k"][0]
                values = [entry["index"], f"{entry['start_s']:.3f}", f"{entry['end_s']:.3f}",
                          best["label"], f"{best['score']:.6f}"]
                if self.quantile is not None:
                    values.append(f"{entry['mask_fraction']:.6f}")
                writer.writerow(values + [f"{p:.6f}" for p in row])


def _scale_of(classifier, window):
    """The factor a window is divided by in the classifier's normalisation."""
    mode = getattr(classifier, "waveform_normalization", "peak")
    if mode == "peak":
        return float(window.abs().max().clamp_min(1e-8))
    if mode == "max":
        return float(window.max().clamp_min(1e-8))
    return 1.0


def _analyse(classifier, path, window_s, hop_s, k, interpret, quantile, wav_path,
             block_frames, progress):
    from focalnet_lobes.inference.classifiers import top_k

    rate = classifier.sample_rate
    window_s = model_clip_seconds(classifier) if window_s is None else window_s
    window, hop = window_settings(rate, window_s, hop_s)
    try:
        soundfile.info(str(path))
        chunks = stream_mono(path, rate, block_frames)
    except Exception:  # noqa: BLE001  (not streamable by libsndfile: whole-file fallback)
        chunks = _fallback_chunks(classifier, path, block_frames)
    writer = OverlapAddWriter(wav_path, rate, window) if interpret else None
    windows, rows = [], []
    received = 0
    try:
        for index, (start, samples, received) in enumerate(iter_windows(chunks, window, hop)):
            wav = torch.from_numpy(samples)
            entry = {"index": index, "start_s": start / rate, "end_s": (start + samples.size) / rate}
            if interpret:
                result = classifier.interpret_batch(wav[None], quantile=quantile)
                probabilities = result.probabilities[0]
                entry["silent"] = bool(result.silent[0])
                entry["mask_fraction"] = float(result.mask[0].float().mean())
                listenable = result.listenable[0].numpy() * _scale_of(classifier, wav)
                writer.add(start, listenable, final_before=received - window)
                quantile = result.quantile
            else:
                probabilities, _, indices, _ = classifier.classify_batch(wav[None])
                probabilities = probabilities[0].cpu()
                entry["silent"] = bool(indices[0] < 0)
            entry["top_k"] = top_k(probabilities, classifier.class_names, k)
            windows.append(entry)
            rows.append(probabilities.float().numpy())
            if progress is not None:
                progress(start + samples.size)
        if not windows:
            raise AudioError(path, "empty audio (0 samples)")
        if writer is not None:
            writer.close(received)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    probabilities = np.stack(rows)
    # Silent windows (uniform probabilities) would dilute the file's prediction.
    heard = np.array([not entry["silent"] for entry in windows])
    mean = probabilities[heard].mean(axis=0) if heard.any() else probabilities.mean(axis=0)
    aggregate = top_k(torch.from_numpy(mean), classifier.class_names, k)
    return LongformResult(
        file=str(path),
        windows=windows,
        probabilities=probabilities,
        aggregate=aggregate,
        class_names=list(classifier.class_names),
        duration_s=received / rate,
        sample_rate=rate,
        window_s=window / rate,
        hop_s=hop / rate,
        quantile=quantile if interpret else None,
    )


def classify_long_file(classifier, path, window=None, hop=None, top_k=5,
                       block_frames=BLOCK_FRAMES, progress=None):
    """Classify a recording of any length over sliding windows, streaming it.

    Arguments
    ---------
    classifier : focalnet_lobes.inference.classifiers.AudioClassifier
        The model.
    path : str or pathlib.Path
        The audio file (any rate, any channels, any length).
    window : float or None
        Window length (s); ``None``: :func:`model_clip_seconds`.
    hop : float or None
        Hop (s) in ``(0, window]``; ``None``: half the window.
    top_k : int
        Classes reported per window and for the file.
    block_frames : int
        Frames read per block.
    progress : callable or None
        Called with the samples processed so far after each window.

    Returns
    -------
    LongformResult
        Per-window top-k and probabilities; the aggregate (mean of the
        probabilities of the windows that are not silent).

    Raises
    ------
    AudioError
        The file is missing, unreadable, empty or non-finite.
    ValueError
        A bad window or hop.

    Example
    -------
    >>> import tempfile, os
    >>> from focalnet_lobes.inference.classifiers import AudioClassifier, write_demo_model
    >>> folder = tempfile.mkdtemp()
    >>> classifier = AudioClassifier.from_hparams(source=write_demo_model(folder))
    >>> path = os.path.join(folder, "long.wav")
    >>> soundfile.write(path, np.random.default_rng(0).standard_normal(44100 * 3) * 0.1, 44100)
    >>> result = classify_long_file(classifier, path, window=1.0, hop=0.5)
    >>> len(result.windows), result.probabilities.shape, result.duration_s
    (5, (5, 3), 3.0)
    >>> result.windows[-1]["start_s"], result.windows[-1]["end_s"]
    (2.0, 3.0)
    """
    return _analyse(classifier, path, window, hop, top_k, False, None, None,
                    block_frames, progress)


def interpret_long_file(classifier, path, out_dir, name=None, window=None, hop=None,
                        quantile=None, top_k=5, block_frames=BLOCK_FRAMES, progress=None):
    """Classify and interpret a recording of any length; write WAV, PNG, JSON and CSV.

    Writes, in ``out_dir``, ``<name>_interpretation.wav`` (the per-window
    listenable interpretations joined by overlap-add, as long as the input, at the
    model's sample rate), ``<name>_interpretation.png`` (timeline: time x class
    probabilities), ``<name>_interpretation.json`` (aggregate and per-window
    results) and ``<name>_windows.csv`` (one row per window).

    Arguments
    ---------
    classifier : focalnet_lobes.inference.classifiers.AudioClassifier
        The model.
    path : str or pathlib.Path
        The audio file.
    out_dir : str or pathlib.Path
        Output folder (created).
    name : str or None
        Base name of the outputs (may hold ``/`` for a subfolder); ``None``: the
        file's stem.
    window, hop, top_k, block_frames, progress
        As :func:`classify_long_file`.
    quantile : float or None
        Mask quantile in [0, 1); ``None``: the model's.

    Returns
    -------
    LongformResult
        With ``files`` set.

    Example
    -------
    >>> import tempfile, os
    >>> from focalnet_lobes.inference.classifiers import AudioClassifier, write_demo_model
    >>> folder = tempfile.mkdtemp()
    >>> classifier = AudioClassifier.from_hparams(source=write_demo_model(folder))
    >>> path = os.path.join(folder, "long.wav")
    >>> soundfile.write(path, np.random.default_rng(0).standard_normal(22050 * 3) * 0.1, 22050)
    >>> result = interpret_long_file(classifier, path, os.path.join(folder, "out"), window=1.0)
    >>> soundfile.info(result.files["wav"]).frames, sorted(result.files)
    (48000, ['csv', 'json', 'png', 'wav'])
    """
    out_dir = pathlib.Path(out_dir)
    name = pathlib.Path(path).stem if name is None else str(name)
    base = out_dir / name
    base.parent.mkdir(parents=True, exist_ok=True)
    wav_path = base.with_name(base.name + "_interpretation.wav")
    result = _analyse(classifier, path, window, hop, top_k, True, quantile, wav_path,
                      block_frames, progress)
    png_path = base.with_name(base.name + "_interpretation.png")
    json_path = base.with_name(base.name + "_interpretation.json")
    csv_path = base.with_name(base.name + "_windows.csv")
    plot_timeline(result, png_path, title=f"{name}: predicted '{result.predicted['label']}' "
                  f"(mean window p = {result.predicted['score']:.3f})")
    result.write_csv(csv_path)
    result.files = {"wav": str(wav_path), "png": str(png_path), "csv": str(csv_path),
                    "json": str(json_path)}
    json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    return result


def plot_timeline(result, path, title="", max_classes=None):
    """Save a PNG of time x class probabilities (one column per window).

    Each window's probabilities fill the time from the midpoint with the previous
    window's centre to the midpoint with the next one's.

    Arguments
    ---------
    result : LongformResult
        Per-window probabilities.
    path : str or pathlib.Path
        Output PNG.
    title : str
        Figure title.
    max_classes : int or None
        Show only the classes with the highest mean probability (``None``: all).

    Example
    -------
    >>> import tempfile, os
    >>> windows = [{"start_s": 0.0, "end_s": 1.0}, {"start_s": 0.5, "end_s": 1.5}]
    >>> result = LongformResult("a.wav", windows, np.array([[0.9, 0.1], [0.2, 0.8]]),
    ...                         [], ["dog", "rain"], 1.5, 16000, 1.0, 0.5)
    >>> path = os.path.join(tempfile.mkdtemp(), "timeline.png")
    >>> plot_timeline(result, path)
    >>> open(path, "rb").read(4) == b"\\x89PNG"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    probabilities = np.asarray(result.probabilities, dtype=np.float64)
    names = list(result.class_names)
    order = np.argsort(-probabilities.mean(axis=0), kind="stable")
    if max_classes is not None:
        order = order[:max_classes]
    centres = np.array([(w["start_s"] + w["end_s"]) / 2 for w in result.windows])
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [result.duration_s]])
    figure = Figure(figsize=(12, 1.2 + 0.32 * len(order)))
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    mesh = axis.pcolormesh(edges, np.arange(len(order) + 1), probabilities[:, order].T,
                           cmap="viridis", vmin=0.0, vmax=1.0, shading="flat")
    axis.set_yticks(np.arange(len(order)) + 0.5)
    axis.set_yticklabels([names[i] for i in order], fontsize=8)
    axis.set_xlabel("time (s)")
    axis.set_xlim(0.0, max(result.duration_s, 1e-6))
    figure.colorbar(mesh, ax=axis, label="probability", pad=0.01)
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
