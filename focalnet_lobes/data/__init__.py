"""Data: audio files, the spectrogram front end, augmentations, manifests, downloads.

* :mod:`.audio`: reading any audio file into the model's input waveform;
* :mod:`.features`: waveform -> STFT -> log-magnitude features, and back (with phase);
* :mod:`.augment`: training-time augmentations on waveforms and features;
* :mod:`.manifests`: JSON manifests of any dataset (``recipes/esc50_prepare.py`` keeps
  what is ESC-50's own);
* :mod:`.download`: downloading and safely extracting archives, with checksums.
"""
