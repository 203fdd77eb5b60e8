"""AudioClassifier (focalnet_lobes.inference.classifiers) and the compatibility YAMLs of SpeechBrain's
published ESC-50 models (hparams/inference/{focalnet,vit}-base-esc50).

No network: models come from the shared trained run (exported to a folder) or from
state dicts of randomly initialised transformers models saved to disk.
"""

import pathlib

import numpy as np
import pytest
import soundfile
import torch

from focalnet_lobes.data.audio import AudioError, fix_length, load_audio
from focalnet_lobes.inference.classifiers import AudioClassifier, ModelSourceError, top_k

REPO = pathlib.Path(__file__).resolve().parents[1]
COMPAT = REPO / "hparams" / "inference"


def _write_clip(path, seconds, sample_rate=44100, channels=2, seed=0):
    """A tone pair plus noise, (time, channels), written with soundfile."""
    generator = np.random.default_rng(seed)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * 700 * time) + 0.3 * np.sin(2 * np.pi * 2300 * time)
    signal = tone[:, None] + 0.05 * generator.standard_normal((time.size, channels))
    soundfile.write(str(path), signal.astype(np.float32), sample_rate)
    return path


@pytest.fixture(scope="module")
def exported(trained_runs, tmp_path_factory):
    """(run folder, exported folder) of the shared FocalNet run."""
    from focalnet_lobes.inference.export import export_classifier

    run = trained_runs("focalnet_cpu.yaml")
    folder = tmp_path_factory.mktemp("export") / "focalnet-cpu-esc10"
    export_classifier(run, folder, verify=False)
    return run, folder


@pytest.fixture(scope="module")
def classifier(exported, tmp_path_factory):
    return AudioClassifier.from_hparams(
        source=str(exported[1]), savedir=str(tmp_path_factory.mktemp("savedir"))
    )


@pytest.fixture(scope="module")
def trained(exported):
    from focalnet_lobes.inference.trained import load_trained_classifier

    return load_trained_classifier(exported[0])


def test_classify_file_any_rate_and_channels(classifier, trained, tmp_path):
    """44.1 kHz stereo files give the trained classifier's logits on the 16 kHz mono clip;
    a clip shorter than the training length is zero-padded to it, as in training."""
    for seconds in (1.0, 0.6):
        path = _write_clip(tmp_path / f"clip_{seconds}.wav", seconds)
        probabilities, score, index, labels = classifier.classify_file(path)
        wav = fix_length(load_audio(path, 16000), 16000)[None]
        with torch.no_grad():
            reference = trained.model(trained.frontend(wav))
        assert probabilities.shape == (1, len(trained.class_names))
        assert torch.allclose(probabilities, reference.softmax(-1), atol=1e-6)
        assert int(index) == int(reference.argmax())
        assert labels == [trained.class_names[int(reference.argmax())]]
        assert float(score) == pytest.approx(float(probabilities.max()))
        assert float(probabilities.sum()) == pytest.approx(1.0, abs=1e-5)


def test_batch_results_do_not_depend_on_padding(classifier, tmp_path):
    long = load_audio(_write_clip(tmp_path / "long.wav", 1.3, seed=1), 16000)
    short = load_audio(_write_clip(tmp_path / "short.wav", 1.1, seed=2), 16000)
    batch = torch.stack([long, fix_length(short, long.numel())])
    lengths = torch.tensor([1.0, short.numel() / long.numel()])
    batched = classifier(batch, lengths)
    alone = torch.cat([classifier(long[None]), classifier(short[None])])
    assert (batched - alone).abs().max() <= 1e-5
    # Without lengths the zero padding is part of the second clip.
    assert (classifier(batch)[1] - alone[1]).abs().max() > 1e-4


def test_interpret_file_writes_listenable_wav_and_png(classifier, tmp_path):
    path = _write_clip(tmp_path / "dog.wav", 1.0, seed=3)
    result = classifier.interpret_file(path, out_dir=tmp_path / "out")
    clip = load_audio(path, 16000)
    assert result.files == {
        "wav": str(tmp_path / "out" / "dog_interpretation.wav"),
        "png": str(tmp_path / "out" / "dog_interpretation.png"),
    }
    audio, rate = soundfile.read(result.files["wav"])
    assert rate == 16000 and audio.shape == (clip.numel(),)
    assert np.isfinite(audio).all()
    assert np.sqrt(np.mean(audio**2)) > 1e-3 * float(clip.pow(2).mean().sqrt())
    assert pathlib.Path(result.files["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The mask is binary, on the feature grid, and keeps ~10 % of the bins at q = 0.9.
    assert result.mask.shape == result.features.shape == result.maps.shape
    assert result.mask.shape[:2] == (1, 1) and result.mask.shape[-1] == 64
    assert set(result.mask.unique().tolist()) <= {0.0, 1.0}
    assert 0.08 <= float(result.mask.mean()) <= 0.15
    assert result.labels[0] in classifier.class_names
    assert torch.allclose(result.probabilities, classifier.classify_file(path)[0], atol=1e-6)


def test_interpretation_of_a_padded_clip_keeps_its_length(classifier, tmp_path):
    path = _write_clip(tmp_path / "short.wav", 0.5, seed=4)
    result = classifier.interpret_file(path)
    assert result.listenable.shape == (1, 8000)
    assert result.mask.shape[2] == 1 + 8000 // 186  # frames of the unpadded clip
    assert 0.08 <= float(result.mask.mean()) <= 0.15  # the quantile of the clip's own map
    assert np.isfinite(result.listenable.numpy()).all() and result.listenable.abs().max() > 0


def test_full_mask_gives_back_the_input(classifier, tmp_path):
    """With quantile 0 the mask keeps every bin: the listenable audio is the input."""
    path = _write_clip(tmp_path / "clip.wav", 1.0, seed=5)
    result = classifier.interpret_file(path, quantile=0.0)
    assert bool(result.mask.eq(1).all())
    assert (result.listenable[0] - load_audio(path, 16000)).abs().max() < 1e-3


def test_errors_are_clear(classifier, tmp_path):
    with pytest.raises(AudioError, match="missing.wav.*file not found"):
        classifier.classify_file(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not audio at all")
    with pytest.raises(AudioError, match="corrupt.wav"):
        classifier.interpret_file(corrupt)
    with pytest.raises(ModelSourceError, match="no hyperparams.yaml"):
        AudioClassifier.from_hparams(source=str(tmp_path))
    with pytest.raises(ValueError, match="quantile"):
        classifier.interpret_batch(torch.randn(1, 16000), quantile=1.5)
    with pytest.raises(ValueError, match="NaN"):
        classifier.classify_batch(torch.full((1, 16000), float("nan")))


def test_top_k_is_sorted_and_named():
    best = top_k(torch.tensor([0.1, 0.6, 0.3]), ["a", "b", "c"], k=5)
    assert [entry["label"] for entry in best] == ["b", "c", "a"]
    assert [entry["index"] for entry in best] == [1, 2, 0]


# --- Compatibility with SpeechBrain's published ESC-50 models -------------------------


def _ecapa_classifier(input_size, lin_neurons):
    """An ECAPA Classifier with non-trivial BatchNorm statistics."""
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    classifier = Classifier(
        input_size=input_size, lin_blocks=1, lin_neurons=lin_neurons, out_neurons=50
    ).eval()
    norm = classifier.blocks[0].norm
    with torch.no_grad():
        norm.running_mean.normal_(0, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_(0, 0.1)
    return classifier


def _recipe_input(wavs, image_size):
    """The published recipes' preprocessing (train_{focalnet,vit}_classifier.py)."""
    import torchvision
    from speechbrain.processing.features import STFT, spectral_magnitude

    stft = STFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    log_spectrogram = torch.log1p(spectral_magnitude(stft(wavs), power=0.5))
    image = torchvision.transforms.functional.resize(log_spectrogram, (image_size, image_size))
    return log_spectrogram, image[:, None].expand(-1, 3, -1, -1)


def _test_waves():
    generator = torch.Generator().manual_seed(0)
    time = torch.arange(16000)
    wavs = 0.3 * torch.randn(2, 16000, generator=generator) + torch.sin(time * 0.1)
    return wavs / wavs.max(dim=1, keepdim=True).values  # the recipes' sig / sig.max()


@pytest.mark.parametrize("kind", ["focalnet", "vit"])
def test_compatibility_yaml_reproduces_the_published_pipeline(kind, tmp_path):
    """Small transformers models saved as embedding_model.ckpt + an ECAPA classifier.ckpt:
    the compatibility YAML gives the recipe's logits (30 * cosine), its interpretation
    map and mask, and the recipe's label order."""
    import torchvision
    from transformers import FocalNetBackbone, FocalNetConfig, ViTConfig, ViTModel

    torch.manual_seed(0)
    image_size = 64
    if kind == "focalnet":
        config = FocalNetConfig(
            embed_dim=16, depths=[1, 1, 2, 1], hidden_sizes=[32, 64, 128, 128],
            image_size=image_size,
        )
        reference = FocalNetBackbone(config).eval()
        head = _ecapa_classifier(128, 16)
        overrides = {"embed_dim": 16, "depths": [1, 1, 2, 1]}
    else:
        config = ViTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            image_size=image_size, patch_size=16, attn_implementation="eager",
        )
        reference = ViTModel(config).eval()
        head = _ecapa_classifier(32, 16)
        overrides = {"embed_dim": 32, "depth": 2, "num_heads": 4}
    torch.save(reference.state_dict(), tmp_path / "embedding_model.ckpt")
    torch.save(head.state_dict(), tmp_path / "classifier.ckpt")
    overrides.update(checkpoint_source=str(tmp_path), image_size=image_size, lin_neurons=16)
    model = AudioClassifier.from_hparams(
        source=str(COMPAT / f"{kind}-base-esc50"), savedir=str(tmp_path / "savedir"),
        overrides=overrides,
    )

    wavs = _test_waves()
    captured = {}
    with torch.no_grad():
        log_spectrogram, image = _recipe_input(wavs, image_size)
        if kind == "focalnet":
            last = reference.focalnet.encoder.stages[-1].layers[-1].modulation
            last.projection_context.register_forward_hook(
                lambda module, inputs, output: captured.update(modulator=output)
            )
            output = reference(image)
            embeddings = output.feature_maps[-1].mean(dim=(-1, -2))
            grid_map = captured["modulator"].norm(dim=-3, p=2, keepdim=True)
        else:
            output = reference(image, output_attentions=True)
            embeddings = output.last_hidden_state.movedim(-1, -2).mean(dim=-1)
            side = image_size // 16
            grid_map = output.attentions[-1][:, :, 0, 1:].reshape(-1, 4, side, side)
            grid_map = grid_map.mean(dim=-3, keepdim=True)
        expected_logits = 30.0 * head(embeddings).squeeze(1)
        expected_map = torchvision.transforms.functional.resize(
            grid_map, log_spectrogram.shape[-2:]
        )

    logits = model(wavs)
    assert (logits - expected_logits).abs().max() <= 1e-4
    assert torch.equal(logits.argmax(-1), expected_logits.argmax(-1))
    result = model.interpret_batch(wavs)
    assert (result.features[:, 0] - log_spectrogram).abs().max() <= 1e-5
    assert (result.maps - expected_map).abs().max() <= 1e-5 * expected_map.abs().max()
    threshold = torch.quantile(expected_map.flatten(1), 0.9, dim=1)[:, None, None, None]
    assert (result.mask == (expected_map >= threshold).float()).float().mean() >= 0.999
    assert model.class_names[:3] == ["dog", "chirping_birds", "vacuum_cleaner"]
    assert model.class_names[-1] == "crickets" and len(set(model.class_names)) == 50


def test_focalnet_base_checkpoint_gives_the_transformers_logits(tmp_path, monkeypatch):
    """The real FocalNet-B layout (microsoft/focalnet-base config, random weights):
    the compatibility YAML as shipped gives the transformers FocalNetBackbone +
    ECAPA Classifier logits."""
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    from transformers import FocalNetBackbone, FocalNetConfig

    torch.manual_seed(0)
    config = FocalNetConfig(
        embed_dim=128, depths=[2, 2, 18, 2], focal_levels=[2] * 4, focal_windows=[3] * 4,
        hidden_sizes=[256, 512, 1024, 1024], image_size=224,
    )
    reference = FocalNetBackbone(config).eval()
    head = Classifier(input_size=1024, lin_blocks=1, lin_neurons=192, out_neurons=50).eval()
    torch.save(reference.state_dict(), tmp_path / "embedding_model.ckpt")
    torch.save(head.state_dict(), tmp_path / "classifier.ckpt")
    # Our model's random initialisation is overwritten by the strict load: skip the
    # slow truncated-normal fill of 88 M parameters.
    monkeypatch.setattr(torch.nn.init, "trunc_normal_", lambda tensor, *a, **k: tensor)
    model = AudioClassifier.from_hparams(
        source=str(COMPAT / "focalnet-base-esc50"), savedir=str(tmp_path / "savedir"),
        overrides={"checkpoint_source": str(tmp_path)},
    )
    assert model.mods.model.backbone.embed_dims == [128, 256, 512, 1024]
    wavs = _test_waves()[:1]
    with torch.no_grad():
        _, image = _recipe_input(wavs, 224)
        embeddings = reference(image).feature_maps[-1].mean(dim=(-1, -2))
        expected = 30.0 * head(embeddings).squeeze(1)
    assert (model(wavs) - expected).abs().max() <= 1e-4
