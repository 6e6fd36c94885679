"""Local features from the convolutional layers of an ImageNet CNN (Ng's thesis, chapter 2).

Every spatial location ``(i, j)`` of a conv layer's map ``(n_l, n_l, d_l)`` is one ``d_l``-dimensional local
descriptor (digest 2.1 step 3, following Xu et al. [34] but at every layer). :func:`local_features` builds a
``keras.Model`` from RGB images in ``[0, 255]`` (any size: the backbones are fully convolutional) to the maps
of the named layers, each L2-normalised per location (digest 2.1 step 5) by
:class:`tfvideo.layers.LocalL2Normalize`. The VLAD encoding, codebooks and ranking are in
:mod:`tfvideo.retrieval`.

Backbones (``keras.applications``, features after ReLU: Keras fuses the activation into the convolution,
as Caffe's in-place ReLU does, digest 2.6 q5):

* ``vgg16``: the thesis's VGG-16. Layer names map as ``conv4_2 -> block4_conv2`` (:data:`VGG16_LAYERS`;
  the digest's ``conv2_3`` does not exist in VGG-16, digest 2.6 q8). Caffe preprocessing (BGR, ImageNet
  mean subtracted), as the thesis's Caffe model-zoo weights.
* ``inception_v3``: **substitute** for GoogLeNet (Inception-v1), which ``keras.applications`` lacks
  (digest 2.6 q9): a deviation. Its inception blocks ``mixed0 .. mixed10`` play the role of Inception
  3a .. 5b (:data:`INCEPTION_V3_LAYERS`), inputs scaled to ``[-1, 1]``.

Any other ``keras.applications`` model works too (``local_features("ResNet50", ["conv4_block6_out"])``):
every layer with a 4-D output is a source of local features (:func:`backbone_layers`).

``weights``: ``None`` (random init: the default of tests and of the built-in benchmark, which may not
download), ``"imagenet"`` (Keras downloads the weights on first use; needs the network) or a weights
file of the stock network (``model.save_weights`` of ``keras.applications.<backbone>(include_top=False)``).

>>> import numpy as np
>>> net = local_features("vgg16", ["block4_conv2", "block5_conv1"])
>>> maps = net(np.zeros((1, 224, 224, 3), "float32"))
>>> maps["block4_conv2"].shape, maps["block5_conv1"].shape
(TensorShape([1, 28, 28, 512]), TensorShape([1, 14, 14, 512]))
"""

from __future__ import annotations

import os

import keras

from tfvideo.layers.vlad import VLAD, LocalL2Normalize

__all__ = ["BACKBONES", "VGG16_LAYERS", "INCEPTION_V3_LAYERS", "DEFAULT_LAYERS", "local_features",
           "backbone_layers", "multiscale_features", "vlad_model", "output_name"]

#: The VGG-16 layers of the thesis's Table 2.1 (b) that exist in VGG-16, low to high.
VGG16_LAYERS = ("block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2", "block3_conv3", "block4_conv1",
                "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3")
#: InceptionV3's inception blocks, low to high (our stand-in for GoogLeNet's Inception 3a .. 5b).
INCEPTION_V3_LAYERS = ("mixed0", "mixed1", "mixed2", "mixed3", "mixed4", "mixed5", "mixed6", "mixed7", "mixed8",
                       "mixed9", "mixed10")
BACKBONES = {"vgg16": VGG16_LAYERS, "inception_v3": INCEPTION_V3_LAYERS}
#: The layers a default study compares: low, middle and last conv layers.
DEFAULT_LAYERS = {"vgg16": ("block3_conv3", "block4_conv2", "block5_conv1", "block5_conv3"),
                  "inception_v3": ("mixed2", "mixed4", "mixed7", "mixed10")}


_APPLICATIONS = {"vgg16": "VGG16", "inception_v3": "InceptionV3"}


def _application(backbone):
    """``(keras.applications class, its preprocess_input)`` for ``"vgg16"``, ``"inception_v3"`` or any
    ``keras.applications`` model name (``"ResNet50"``, ``"MobileNetV2"``, ...)."""
    name = _APPLICATIONS.get(backbone, backbone)
    app = getattr(keras.applications, name, None) if isinstance(name, str) and name[:1].isupper() else None
    if app is None:
        names = [n for n in dir(keras.applications) if n[:1].isupper()]
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)} or a keras.applications model "
                         f"({', '.join(names[:6])}, ...); got {backbone!r}")
    module = getattr(keras.applications, app.__module__.rsplit(".", 1)[-1])
    return app, module.preprocess_input


def backbone_layers(backbone: str) -> tuple:
    """The layer names :func:`local_features` accepts for ``backbone``, low to high: the thesis's lists for
    ``vgg16`` / ``inception_v3``; for another ``keras.applications`` model every layer with a 4-D output
    (a feature map), in model order (the model is built once, without weights, to list them)."""
    if backbone in BACKBONES:
        return BACKBONES[backbone]
    app, _ = _application(backbone)
    net = app(include_top=False, weights=None, input_shape=(None, None, 3))
    return tuple(layer.name for layer in net.layers[1:] if len(getattr(layer.output, "shape", ())) == 4)


def _stock(backbone, weights):
    app, _ = _application(backbone)
    if weights in (None, "imagenet"):
        return app(include_top=False, weights=weights, input_shape=(None, None, 3))
    if not os.path.isfile(weights):
        raise ValueError(f"weights must be None, 'imagenet' or an existing weights file; got {weights!r}")
    net = app(include_top=False, weights=None, input_shape=(None, None, 3))
    net.load_weights(weights)
    return net


def local_features(backbone: str = "vgg16", layers=None, *, weights=None, normalize: bool = True) -> keras.Model:
    """``images (B, H, W, 3)`` RGB in ``[0, 255]`` (uint8 or float) -> ``{layer: (B, h, w, d)}`` local features.

    Args:
      backbone: ``"vgg16"`` or ``"inception_v3"`` (GoogLeNet's substitute; see the module doc), or any
        ``keras.applications`` model name (``"ResNet50"``, ...), preprocessed by its own
        ``preprocess_input``.
      layers: names from :func:`backbone_layers` (default :data:`DEFAULT_LAYERS`; required for other
        backbones).
      weights: ``None``, ``"imagenet"`` (downloads) or a weights file of the stock network.
      normalize: L2-normalise each local descriptor (digest 2.1 step 5).

    Raises:
      ValueError: unknown backbone or layer (the message lists the valid names), bad weights.
    """
    _application(backbone)  # an unknown backbone is named first
    if layers is None and backbone not in DEFAULT_LAYERS:
        raise ValueError(f"layers must be given for backbone {backbone!r} (names: backbone_layers({backbone!r}))")
    layers = tuple(DEFAULT_LAYERS[backbone] if layers is None else layers)
    _, preprocess = _application(backbone)
    net = _stock(backbone, weights)
    names = BACKBONES.get(backbone) or tuple(
        layer.name for layer in net.layers[1:] if len(getattr(layer.output, "shape", ())) == 4)
    if not layers or any(name not in names for name in layers):
        raise ValueError(f"layers must be names of {backbone}'s conv layers {', '.join(names)}; got {layers!r}")
    images = keras.Input((None, None, 3), name="images")
    # the backbone's own ImageNet preprocessing (VGG16: Caffe's BGR minus the mean; InceptionV3: [-1, 1])
    x = preprocess(keras.ops.cast(images, "float32"))
    # the stock network cut after the highest requested layer (Keras keeps only the needed subgraph)
    feature = keras.Model(net.input, [net.get_layer(name).output for name in layers], name=f"{backbone}_features")
    maps = feature(x)
    outputs = {}
    for name, m in zip(layers, maps):
        outputs[name] = LocalL2Normalize(name=f"{name}_l2")(m) if normalize else m
    return keras.Model(images, outputs, name=f"{backbone}_local_features")


def output_name(layer: str, scale: int) -> str:
    """The output key of ``layer`` at ``scale`` in :func:`multiscale_features` / :func:`vlad_model`."""
    return f"{layer}_s{scale}"


def multiscale_features(backbone: str = "vgg16", layers=None, *, size: int = 224, scales=(1, 2),
                        weights=None) -> keras.Model:
    """``images (B, H, W, 3)`` RGB in [0, 255], any size -> ``{"<layer>_s<scale>": (B, h, w, d)}``.

    Each image is *warped* (aspect ratio not kept, digest 2.1 step 2) to ``n x n`` with ``n = size *
    scale`` (scale 1: 224 x 224, scale 2: 448 x 448, digest 2.1 step 6; bilinear with antialiasing) and
    goes through ONE :func:`local_features` network shared by the scales (per-location L2-normalised
    maps).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32 (the warped square's side at scale 1); got {size!r}")
    scales = tuple(scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales) \
            or len(set(scales)) != len(scales):
        raise ValueError(f"scales must be distinct positive ints (1: n x n, 2: 2n x 2n); got {scales!r}")
    net = local_features(backbone, layers, weights=weights)
    layers = tuple(net.output)
    images = keras.Input((None, None, 3), name="images")
    x = keras.ops.cast(images, "float32")
    outputs = {}
    for scale in scales:
        n = size * scale
        warped = keras.layers.Resizing(n, n, interpolation="bilinear", antialias=True, name=f"warp_s{scale}")(x)
        maps = net(warped)
        for layer in layers:
            outputs[output_name(layer, scale)] = keras.layers.Identity(name=output_name(layer, scale))(maps[layer])
    return keras.Model(images, outputs, name=f"{backbone}_multiscale_features")


def vlad_model(features: keras.Model, centers: dict, *, num_clusters: int | None = None) -> keras.Model:
    """``features`` (:func:`multiscale_features`) followed by one hard-assignment :class:`~tfvideo.layers.VLAD`
    per output (Eq. 2.1, intra-normalised, final L2), its codebook ``centers[name]`` ``(K, D)``
    (:func:`tfvideo.retrieval.kmeans`). Outputs ``{name: (B, K * D)}`` for every name of ``centers``.
    This is the model a retrieval server exports: images in, descriptors out."""
    missing = [name for name in centers if name not in features.output]
    if not centers or missing:
        raise ValueError(f"centers must be keyed by outputs of the features model ({', '.join(features.output)}); "
                         f"unknown: {missing or 'none given'}")
    images = keras.Input((None, None, 3), name="images")
    maps = features(images)
    outputs = {}
    for name, c in centers.items():
        layer = VLAD(num_clusters or len(c), name=f"vlad_{name}")
        layer.build(maps[name].shape)
        layer.set_centers(c)
        outputs[name] = layer(maps[name])
    return keras.Model(images, outputs, name="vlad_descriptors")
