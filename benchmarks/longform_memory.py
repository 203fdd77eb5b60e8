#!/usr/bin/env python3
"""Peak memory and time of ``focalnet-audio`` on long recordings (issue 16, must-show 2).

> python benchmarks/longform_memory.py [--minutes 10 1] [--data_folder ESC-50-dev]
>     [--source MODEL] [--hop 2.5]

For each length, writes a 44.1 kHz stereo 16-bit WAV (in blocks: the generator
holds one block), then runs ``python -m focalnet_lobes.inference.cli interpret FILE --out
OUT`` (the shipped model unless ``--source``) in a fresh process and measures its
peak resident memory (``ru_maxrss`` of ``os.wait4``: that process alone) and wall time. It
checks that the interpretation WAV is as long as the input (at 16 kHz) and that
the per-window CSV has one row per window. With ``--data_folder`` the recording is
the ESC-10 clips of fold 4 one after another (resampled to 44.1 kHz, repeated as
needed), so the timeline has known labels; otherwise a synthetic mix of tones and
noise bursts. Results: ``benchmarks/results/longform_memory.json``.
"""

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "longform_memory.json"
RATE = 44100


def real_clips(data_folder, folds=(4,)):
    with open(pathlib.Path(data_folder) / "meta" / "esc50.csv", newline="") as fin:
        rows = [row for row in csv.DictReader(fin)
                if int(row["fold"]) in folds and row["esc10"] == "True"]
    return [(pathlib.Path(data_folder) / "audio" / row["filename"], row["category"]) for row in rows]


def write_recording(path, minutes, data_folder=None, seed=0):
    """Write the test recording block by block; returns the label of each 5 s (or None)."""
    import soxr

    total = int(round(minutes * 60 * RATE))
    labels = []
    generator = np.random.default_rng(seed)
    clips = real_clips(data_folder) if data_folder else None
    with soundfile.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16") as fout:
        written, index = 0, 0
        while written < total:
            if clips:
                clip_path, label = clips[index % len(clips)]
                data, rate = soundfile.read(str(clip_path), dtype="float32", always_2d=True)
                block = soxr.resample(data.mean(axis=1), rate, RATE)
                labels.append(label)
            else:
                n = 5 * RATE
                t = np.arange(n) / RATE
                tone = np.sin(2 * np.pi * (200 + 100 * (index % 17)) * t)
                burst = generator.standard_normal(n) * (t % 1.0 < 0.2)
                block = (0.3 * tone + 0.2 * burst).astype(np.float32)
            block = block[: total - written]
            fout.write(np.stack([block, 0.8 * block], axis=1))
            written += block.size
            index += 1
    return labels


def run_cli(path, out_dir, source=None, hop=None):
    command = [sys.executable, "-m", "focalnet_lobes.inference.cli", "interpret", str(path), "--out", str(out_dir)]
    if source:
        command += ["--source", str(source)]
    if hop:
        command += ["--hop", str(hop)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    with open(out_dir.parent / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit("the command failed: "
                         + (out_dir.parent / "stderr.txt").read_text()[-2000:])
    return {"command": " ".join(command[1:]), "wall_s": round(seconds, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--data_folder", default=None)
    parser.add_argument("--source", default=None)
    parser.add_argument("--hop", type=float, default=None)
    parser.add_argument("--keep", default=None, help="keep the outputs in this folder")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(args.keep or tmp)
        for minutes in sorted(args.minutes):
            path = root / f"recording_{minutes:g}min.wav"
            labels = write_recording(path, minutes, args.data_folder)
            out_dir = root / f"out_{minutes:g}min"
            row = {"minutes": minutes, "input_mb": round(path.stat().st_size / 1e6, 1)}
            row.update(run_cli(path, out_dir, args.source, args.hop))
            document = json.loads((out_dir / f"{path.stem}_interpretation.json").read_text())
            frames = soundfile.info(document["wav"]).frames
            expected = soundfile.info(str(path)).frames * 16000 / RATE
            assert abs(frames - expected) <= 1, (frames, expected)
            row.update({"mode": document["mode"], "interpretation_wav_frames": frames,
                        "input_frames_at_16k": expected, "aggregate": document["predicted"]})
            if document["mode"] == "clip":  # a file no longer than the model's clip
                rows.append(row)
                print(json.dumps(row), flush=True)
                continue
            with open(document["csv"], newline="") as fin:
                csv_rows = list(csv.DictReader(fin))
            assert len(csv_rows) == document["num_windows"]
            row.update({
                "windows": document["num_windows"],
                "window_s": document["window_s"],
                "hop_s": document["hop_s"],
            })
            if labels:
                # a window whose centre lies in clip j carries clip j's label
                hits = [
                    window["top_k"][0]["label"] == labels[int((window["start_s"] + window["end_s"]) / 2 // 5)]
                    for window in document["windows"]
                ]
                row["window_label_agreement"] = round(float(np.mean(hits)), 4)
                row["labelled_windows"] = len(hits)
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.write_text(json.dumps({"runs": rows, "python": sys.version.split()[0]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
