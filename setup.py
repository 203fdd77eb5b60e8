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
    # The model shipped with the package (focalnet_lobes.inference.default_source()).
    package_data={"focalnet_lobes": ["pretrained/*/*.yaml", "pretrained/*/*.ckpt",
                                     "pretrained/*/*.txt", "pretrained/*/*.md"]},
    include_package_data=True,
    python_requires=">=3.10",
    entry_points={"console_scripts": ["focalnet-audio=focalnet_lobes.cli:main"]},
    install_requires=[
        # torchaudio 2.11 works with torch 2.11 only: pin the pair.
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "speechbrain==1.1.2",
        "hyperpyyaml>=1.2",
        "numpy",
        "soundfile",
        "matplotlib",
        # bounded-cost resampling at any sample rate (focalnet_lobes.audio.resample),
        # streamed for long recordings (focalnet_lobes.longform); 1.1.0 tested
        "soxr>=0.3,<2",
        "scipy>=1.11,<2",  # bootstrap CIs and the exact McNemar test
        "captum>=0.7,<0.10",  # saliency and Grad-CAM controls
    ],
    extras_require={
        # timm and transformers are references for the parity tests only;
        # torchvision is pinned so that timm does not replace torch.
        "test": [
            "pytest",
            "timm==1.0.31",
            "torchvision==0.26.0",
            "transformers==5.23.0",
        ],
    },
)
