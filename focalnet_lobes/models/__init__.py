"""Models: the FocalNet and ViT backbones, stems, heads and the whole classifier.

* :mod:`.focalnet`, :mod:`.vit`: the architectures, each exposing its interpretation
  map (modulators; attention probabilities);
* :mod:`.stems`: convolutional stems for small audio datasets; :mod:`.layers`: layers
  and map helpers shared by the lobes and the interpreters;
* :mod:`.heads`: classification heads; :mod:`.classifier`: normalisation + backbone +
  head, the module the recipes train;
* :mod:`.registry`: named configurations and ``create_model``;
* :mod:`.convert`, :mod:`.pretrained_init`: weights of microsoft/FocalNet, timm and
  transformers, converted to ours and loaded before training.

Model code imports nothing from the other subpackages of :mod:`focalnet_lobes`.
"""
