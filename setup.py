"""Installs focalnet-audio: the ``focalnet_lobes`` package and its command line."""

from setuptools import find_packages, setup

setup(
    name="focalnet-audio",
    version="0.1.0",
    description=(
        "SpeechBrain recipes for interpretable environmental sound classification "
        "with Focal Modulation Networks"
    ),
    packages=find_packages(include=["focalnet_lobes", "focalnet_lobes.*"]),
    # The model shipped with the package (focalnet_lobes.inference.classifiers.default_source()).
    package_data={"focalnet_lobes": ["pretrained/*/*.yaml", "pretrained/*/*.ckpt",
                                     "pretrained/*/*.txt", "pretrained/*/*.md"]},
    include_package_data=True,
    python_requires=">=3.10",
    entry_points={"console_scripts": ["focalnet-audio=focalnet_lobes.inference.cli:main"]},
    # Version ranges known to work: the versions tested (installed in the CI
    # environment) as lower bounds, the next major version excluded. torch,
    # torchaudio and torchvision are released together and only work as a set:
    # torchaudio decides torch, so those stay pinned.
    install_requires=[
        # torchaudio 2.11 works with torch 2.11 only: pin the pair.
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "speechbrain>=1.1.2,<2",  # download_file, Brain, Pretrained, PIQ blocks
        "hyperpyyaml>=1.2.3,<2",
        "numpy>=2.4.6,<3",
        "soundfile>=0.14.0,<1",
        "matplotlib>=3.11.2,<4",
        # bounded-cost resampling at any sample rate (focalnet_lobes.data.audio.resample),
        # streamed for long recordings (focalnet_lobes.inference.longform)
        "soxr>=1.1.0,<2",
        "scipy>=1.17.1,<2",  # bootstrap CIs and the exact McNemar test
        "captum>=0.9.0,<1",  # saliency and Grad-CAM controls
    ],
    extras_require={
        # timm and transformers are references for the parity tests only;
        # torchvision is pinned with torch so that timm does not replace torch.
        "test": [
            "filelock>=4.3.2,<5",  # tests/conftest.py: fixtures built once for all workers
            "pytest>=9.2.0,<10",
            "pytest-xdist>=3.8.0,<4",  # pytest.ini runs the suite on two workers
            "timm>=1.0.31,<2",
            "torchvision==0.26.0",
            "transformers>=5.23.0,<6",
        ],
    },
)
