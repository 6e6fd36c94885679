"""Feature-pooling heads of Ng's thesis, chapter 3 ("Beyond Short Snippets": full-length video
classification; digest ``seeds/digest-004-thesis.md``, Sec. 3.1-3.2, open questions 3.9).

A per-frame CNN with one set of weights shared over time (digest 3.1) turns a clip of ``T`` frames
into ``T`` conv maps; a head aggregates them over time with max-pooling (digest 3.2, "Why
max-pooling": sparse updates) and classifies the clip. :func:`pooling_model` builds the five heads of
digest 3.2 (Figure 3.2) and returns logits (the softmax goes into the loss,
``from_logits=True``):

===========  =============================================================================  ========
head         layers after the per-frame conv maps (``m_t``, ``(h, w, C)`` per frame)          min T
===========  =============================================================================  ========
``"conv"``   Conv Pooling: ``max_t m_t`` -> vector -> FC -> FC -> softmax                    1
``"late"``   Late Pooling: per frame ``m_t`` -> vector -> FC -> FC; ``max_t`` -> softmax       1
``"slow"``   Slow Pooling: window max (10, stride 5) -> vector -> shared FC; max over          1
             windows -> softmax
``"local"``  Local Pooling: window max -> vector -> shared FC -> FC; towers concatenated     fixed
             -> one softmax over all towers                                                 T
``"tdc"``    Time-Domain Convolution: Conv3D (10 frames x 3 x 3, 256 kernels, frame         10
             stride 5) + ReLU -> ``max_t`` -> vector -> FC -> FC -> softmax                 (window)
``"netvlad"`` not chapter 3: per frame unit vector -> trainable soft-assignment VLAD         1
             over time (:class:`tfvideo.layers.NetVLAD`, alpha 1; chapter 2's encoding made
             trainable) -> FC
             -> FC -> softmax
===========  =============================================================================  ========

Choices where the thesis is silent (each cites the digest):

* **FC layers** (digest 3.1, 3.9 q4): ``fc_units`` ReLU units each (4096 in the thesis: AlexNet's
  "two fully connected layers of 4096 ReLU units", and GoogLeNet Conv Pooling's "two FC layers of
  size 4096 with ReLU"), every FC followed by ``Dropout(dropout)`` (0.6: "keep and rescale 40%").
  Conv Pooling gets two FC layers after the temporal max (3.9 q4: "probably 2 x 4096"); Late
  Pooling its two per-frame FC layers (3.2); Slow Pooling one shared FC per window (3.2: "an FC
  layer with weights shared across windows", then max, then softmax); Local Pooling two shared FC
  per tower (3.2); the Time-Domain Convolution head is Conv Pooling with the extra layer before the
  max (3.2: "inserted before temporal max-pooling"), so it gets Conv Pooling's two FC layers
  (3.9 q6).
* **Dropout where a max follows an FC** (Late, Slow): the dropout is applied once to the pooled
  vector that feeds the classifier (like AlexNet's ``fc7 -> drop7 -> fc8``), not per frame before
  the max.
* **Conv maps -> vector** (``spatial_pooling``): AlexNet's FC6 reads its flattened last conv maps,
  GoogLeNet's average-pools them (digest 3.1). ``"flatten"`` flattens ``(h, w, C)`` (needs a static
  frame size), ``"avg"`` averages over ``h, w``; either one is applied after the temporal pooling
  (Conv Pooling: the max is element-wise over the ``h x w x C`` maps, keeping the spatial layout) and
  per frame in Late Pooling. ``"avg_first"`` averages every frame's maps *before* the temporal
  pooling: GoogLeNet Conv Pooling, max-pooled "after GoogLeNet's dimensionality-reduction (average
  pooling) layer" (digest 3.2; 3.9 q3: the 1024-D pool output, not the 1000 logits); it is refused
  for ``"tdc"``, which convolves the maps. ``"auto"`` (default): ``"flatten"`` for the ``"small"``
  backbone when the frame size is static (the AlexNet-like case), ``"avg"`` otherwise (what the
  ``keras.applications`` backbones do, and the only choice with unknown frame sizes).
* **Windows** (digest 3.2, 3.9 q5): Slow and Local Pooling use ``window=10, stride=5``; a clip with
  ``T`` not of the form ``window + k * stride`` drops the trailing frames after the last full window,
  and a clip shorter than a window is pooled as one window
  (:class:`~tfvideo.layers.temporal_pooling.TemporalWindowMaxPooling`). The time-domain convolution
  spans the same ``window`` frames with the same ``stride`` (its 10 / 5), ``VALID`` in time (needs
  ``T >= window``) and ``SAME`` in space (3.9 q6,
  :class:`~tfvideo.layers.temporal_pooling.TimeDomainConvolution`).
* **Local Pooling's "larger softmax connected to all towers"** (3.9 q5): one ``Dense(num_classes)``
  on the concatenation of the ``T' = 1 + (T - window) // stride`` towers (1 for ``T < window``),
  so a Local Pooling model is built for one clip length: ``input_shape[0]`` must be an int.
* **Backbones** (digest 3.1: AlexNet-style and GoogLeNet; 3.9 q1: the AlexNet variant is
  underspecified and Keras has no LRN/LCN): ``"small"`` (three 3x3 conv + BN + ReLU + 2x2 max-pool
  stages of 32, 64 and 128 channels, for CPU runs), or any ``keras.applications`` model by name
  (``"InceptionV3"``, ``"inception_v3"``, ``"ResNet50"``, ``"mobilenet_v2"``, ...) without its top,
  returning its last conv maps. Each gets the input scaling it was trained with
  (:func:`preprocess_mode`): ``"tf"`` ([-1, 1]) or ``"caffe"`` (BGR minus the ImageNet mean) by
  :class:`~tfvideo.layers.RGBPreprocess`, ``"torch"`` (DenseNet: ``(x / 255 - mean) / std``) by a
  per-channel ``keras.layers.Rescaling``, ``"raw"`` (EfficientNet, EfficientNetV2, ConvNeXt,
  MobileNetV3: the scaling is inside the model) a cast to float.
* The per-frame CNN is applied by folding time into the batch
  (:class:`~tfvideo.layers.PerSegment`), not ``keras.layers.TimeDistributed`` (which breaks exported
  signatures with an unknown number of frames), so BatchNorm sees the ``B * T`` frames of a batch.

Train with ``model.fit`` and softmax cross-entropy on the logits (``from_logits=True``); the
thesis's optimiser settings (digest 3.4: learning rate 1e-5, momentum 0.9, weight decay 0.0005,
exponential decay) belong to the caller's optimizer, not to the model. Heads other than Local
Pooling have no weight that depends on ``T``, so a model trained on one clip length runs on any
other (digest 3.4, "network expansion": 1 -> 30 -> 120 frames): a model built with
``input_shape[0] = None`` takes any ``T``, and one built with a fixed ``T`` passes its weights to
another built for a different ``T`` by ``get_weights``/``set_weights``.

Example
-------
>>> import numpy as np
>>> model = pooling_model(5, "conv", input_shape=(None, 32, 32, 3), fc_units=16)
>>> model(np.zeros((2, 12, 32, 32, 3), np.uint8)).shape
TensorShape([2, 5])
>>> model(np.zeros((2, 30, 32, 32, 3), np.uint8)).shape        # any clip length
TensorShape([2, 5])
"""

from __future__ import annotations

import numbers

import keras

from tfvideo.layers.segments import PerSegment, RGBPreprocess
from tfvideo.layers.temporal_pooling import (FlattenTowers, TemporalMaxPooling,
                                             TemporalWindowMaxPooling, TimeDomainConvolution)

__all__ = ["HEADS", "SPATIAL_POOLING", "SMALL_FILTERS", "IMAGENET_MEAN", "IMAGENET_STD",
           "application_name", "preprocess_mode", "preprocess_layer", "backbone_maps",
           "min_frames", "pooling_model", "lstm_model"]

#: the heads of digest 3.2, in the order of Table 3.1
HEADS = ("conv", "late", "slow", "local", "tdc", "netvlad")
#: how conv maps become vectors (module docstring)
SPATIAL_POOLING = ("auto", "flatten", "avg", "avg_first")
#: channels of the stages of the ``"small"`` backbone
SMALL_FILTERS = (32, 64, 128)
#: the ImageNet RGB statistics of the ``"torch"`` input scaling (DenseNet), on [0, 1] pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# input scaling of every keras.applications family, by the module that defines it
_MODES = {"resnet": "caffe", "vgg16": "caffe", "vgg19": "caffe",
          "resnet_v2": "tf", "inception_v3": "tf", "inception_resnet_v2": "tf", "xception": "tf",
          "mobilenet": "tf", "mobilenet_v2": "tf", "nasnet": "tf",
          "densenet": "torch",
          "efficientnet": "raw", "efficientnet_v2": "raw", "convnext": "raw", "mobilenet_v3": "raw"}


def _key(name):
    return name.lower().replace("_", "").replace("-", "")


def _applications():
    return {_key(n): n for n in dir(keras.applications)
            if n[:1].isupper() and callable(getattr(keras.applications, n))}


def application_name(backbone):
    """The ``keras.applications`` attribute for ``backbone`` (case, ``_`` and ``-`` ignored:
    ``"inception_v3"`` -> ``"InceptionV3"``), or ``"small"``; ``ValueError`` for anything else."""
    if not isinstance(backbone, str):
        raise ValueError(f"`backbone` must be 'small' or a keras.applications model name; got "
                         f"{backbone!r}")
    if backbone == "small":
        return "small"
    apps = _applications()
    if _key(backbone) not in apps:
        raise ValueError(f"`backbone` must be 'small' or a keras.applications model name (e.g. "
                         f"'InceptionV3', 'resnet50', 'mobilenet_v2'); got {backbone!r}; known: "
                         f"{', '.join(sorted(apps.values()))}")
    return apps[_key(backbone)]


def preprocess_mode(backbone):
    """The input scaling ``backbone`` was trained with: ``"tf"`` ([-1, 1]; also the ``"small"``
    CNN), ``"caffe"`` (BGR minus the ImageNet mean), ``"torch"`` (``(x / 255 - mean) / std``) or
    ``"raw"`` ([0, 255]: the model scales its input itself)."""
    name = application_name(backbone)
    if name == "small":
        return "tf"
    module = getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]
    if module not in _MODES:
        raise ValueError(f"no known input scaling for the keras.applications model {name!r} (module "
                         f"{module!r}); known families: {', '.join(sorted(_MODES))}")
    return _MODES[module]


def preprocess_layer(backbone, name="preprocess"):
    """A layer mapping RGB in [0, 255] (uint8 or float, any shape ``(..., 3)``) to float32 scaled as
    :func:`preprocess_mode` says."""
    mode = preprocess_mode(backbone)
    if mode in ("tf", "caffe"):
        return RGBPreprocess(mode, name=name)
    if mode == "torch":
        return keras.layers.Rescaling([1.0 / (255.0 * s) for s in IMAGENET_STD],
                                      [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                                      dtype="float32", name=name)
    return keras.layers.Rescaling(1.0, dtype="float32", name=name)  # "raw": a cast to float32


def _small_cnn(input_shape, name):
    x = inputs = keras.Input(input_shape, name="image")
    for i, filters in enumerate(SMALL_FILTERS):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.Model(inputs, x, name=name)


def backbone_maps(backbone="small", input_shape=(None, None, 3), *, weights=None, name=None):
    """The per-frame CNN: a ``keras.Model`` ``(H, W, C)`` -> last conv maps ``(h, w, C')``.

    Args:
      backbone: ``"small"`` (three 3x3 conv + BN + ReLU + 2x2 max-pool stages, :data:`SMALL_FILTERS`
        channels: ``h = H // 8``) or a ``keras.applications`` model name (without its top, no
        pooling).
      input_shape: ``(H, W, C)`` of one frame, ``H``/``W`` may be ``None``.
      weights: ``None`` (random), ``"imagenet"`` (Keras downloads the file: needs the network) or a
        weights file, for ``keras.applications`` models; the ``"small"`` CNN takes only ``None``.
      name: the model's name (default ``"<backbone>_maps"``).
    """
    app = application_name(backbone)
    name = name or f"{backbone}_maps"
    if app == "small":
        if weights is not None:
            raise ValueError("the 'small' backbone has no pretrained weights: use weights=None")
        return _small_cnn(tuple(input_shape), name)
    return getattr(keras.applications, app)(include_top=False, weights=weights,
                                            input_shape=tuple(input_shape), pooling=None, name=name)


def min_frames(head, window=10):
    """The fewest frames a ``head`` accepts (``"local"``: the fixed ``T`` it is built for, 1 here)."""
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {', '.join(HEADS)}; got {head!r}")
    return window if head == "tdc" else 1


def _is_int(value, minimum):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum


def _check_int(value, name, minimum):
    if not _is_int(value, minimum):
        raise ValueError(f"`{name}` must be an int >= {minimum}; got {value!r}")
    return int(value)


def _check_input_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (shape is None or len(shape) != 4 or shape[3] is None
            or not all(d is None or _is_int(d, 1) for d in shape)):
        raise ValueError(f"`input_shape` must be (T, H, W, C) with ints >= 1 or None (C known); got "
                         f"{input_shape!r}")
    return tuple(None if d is None else int(d) for d in shape)


def pooling_model(num_classes, head, *, backbone="small", weights=None,
                  input_shape=(None, None, None, 3), fc_units=4096, dropout=0.6, window=10, stride=5,
                  tdc_filters=256, spatial_pooling="auto", clusters=64, name=None):
    """A chapter-3 feature-pooling model: uint8 frames ``(B, T, H, W, C)`` -> logits ``(B, classes)``.

    The heads and every choice are in the module docstring.

    Args:
      num_classes: number of classes (487 for Sports-1M, 101 for UCF-101).
      head: ``"conv"``, ``"late"``, ``"slow"``, ``"local"``, ``"tdc"`` or ``"netvlad"`` (:data:`HEADS`).
      backbone, weights: the per-frame CNN (:func:`backbone_maps`).
      input_shape: ``(T, H, W, C)``; ``None`` for sizes left free. ``T`` must be an int for
        ``"local"`` and ``>= window`` for ``"tdc"``; frames are RGB in [0, 255] (uint8).
      fc_units: width of every FC layer (4096 in the thesis; small values for CPU runs).
      dropout: dropout rate after every FC layer (0.6, digest 3.1).
      window, stride: temporal windows of Slow and Local Pooling, and the temporal extent and stride
        of the time-domain convolution (10 and 5).
      tdc_filters: kernels of the time-domain convolution (256).
      clusters: NetVLAD clusters of the ``"netvlad"`` head (not a chapter-3 head: the trainable
        soft-assignment VLAD of chapter 2's encoding over frame vectors, :class:`tfvideo.layers.NetVLAD`,
        pooled over any T, then the two FC layers; 64 as in Arandjelovic et al.).
      spatial_pooling: how conv maps become vectors (:data:`SPATIAL_POOLING`, module docstring).
      name: the model's name (default ``"<head>_pooling"``).

    The model's layers are named ``preprocess``, ``cnn`` (the
    :class:`~tfvideo.layers.PerSegment`-wrapped backbone), ``temporal_max`` / ``window_max`` /
    ``time_domain_conv``, ``vectors``, ``fc1``, ``fc2``, ``fc1_dropout``, ``fc2_dropout``,
    ``towers`` (Local Pooling) and ``logits``.

    Example (Local Pooling on 30 frames: 5 towers of 16 units feed the classifier):

    >>> import numpy as np
    >>> model = pooling_model(4, "local", input_shape=(30, 32, 32, 3), fc_units=16)
    >>> tuple(model.get_layer("logits").kernel.shape)
    (80, 4)
    >>> model(np.zeros((1, 30, 32, 32, 3), np.uint8)).shape
    TensorShape([1, 4])
    """
    num_classes = _check_int(num_classes, "num_classes", 2)
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {', '.join(HEADS)}; got {head!r}")
    shape = _check_input_shape(input_shape)
    fc_units = _check_int(fc_units, "fc_units", 1)
    if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout < 1):
        raise ValueError(f"`dropout` must be a float in [0, 1); got {dropout!r}")
    dropout = float(dropout)
    window = _check_int(window, "window", 1)
    stride = _check_int(stride, "stride", 1)
    tdc_filters = _check_int(tdc_filters, "tdc_filters", 1)
    if spatial_pooling not in SPATIAL_POOLING:
        raise ValueError(f"`spatial_pooling` must be one of {', '.join(SPATIAL_POOLING)}; got "
                         f"{spatial_pooling!r}")
    frames_count = shape[0]
    if head == "local" and frames_count is None:
        raise ValueError("`input_shape` must give a fixed number of frames T for the 'local' head (its "
                         "softmax is connected to all towers, digest 3.2); got T=None")
    if head == "tdc" and frames_count is not None and frames_count < window:
        raise ValueError(f"the 'tdc' head needs T >= window={window} frames (its time-domain "
                         f"convolution spans {window} frames); got input_shape T={frames_count}")
    if head == "tdc" and spatial_pooling == "avg_first":
        raise ValueError("`spatial_pooling`='avg_first' does not apply to the 'tdc' head: its "
                         "time-domain convolution needs the conv maps")

    frames = keras.Input(shape, dtype="uint8", name="frames")
    x = preprocess_layer(backbone, name="preprocess")(frames)
    cnn = backbone_maps(backbone, shape[1:], weights=weights,
                        name=f"{application_name(backbone).lower()}_maps")
    maps = PerSegment(cnn, name="cnn")(x)                               # (B, T, h, w, C)

    mode = spatial_pooling
    if mode == "auto":
        static = all(d is not None for d in maps.shape[2:])
        mode = "flatten" if application_name(backbone) == "small" and static else "avg"
    if mode == "flatten" and any(d is None for d in maps.shape[2:]):
        raise ValueError(f"`spatial_pooling`='flatten' needs a static frame size (conv maps of shape "
                         f"{tuple(maps.shape[2:])}): give H and W in `input_shape` or use 'avg'")

    def vector(t):  # (B, h, w, C) -> (B, D)
        layer = keras.layers.Flatten if mode == "flatten" else keras.layers.GlobalAveragePooling2D
        return layer(name="vectors")(t)

    def vectors(t, layer_name="vectors"):  # (B, T, h, w, C) -> (B, T, D)
        layer = keras.layers.Flatten() if mode == "flatten" else keras.layers.GlobalAveragePooling2D()
        return PerSegment(layer, name=layer_name)(t)

    def fc(t, i):
        return keras.layers.Dense(fc_units, activation="relu", name=f"fc{i}")(t)

    def drop(t, i):
        return keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(t)

    if head == "conv":
        if mode == "avg_first":  # GoogLeNet Conv Pooling: average pool, then max over time
            v = TemporalMaxPooling(name="temporal_max")(vectors(maps))
        else:
            v = vector(TemporalMaxPooling(name="temporal_max")(maps))
        v = drop(fc(drop(fc(v, 1), 1), 2), 2)
    elif head == "late":
        v = drop(fc(vectors(maps), 1), 1)                               # per frame (B, T, fc)
        v = drop(TemporalMaxPooling(name="temporal_max")(fc(v, 2)), 2)
    elif head in ("slow", "local"):
        pool = TemporalWindowMaxPooling(window, stride, name="window_max")
        v = pool(vectors(maps)) if mode == "avg_first" else vectors(pool(maps))   # (B, T', D)
        if head == "slow":
            v = drop(TemporalMaxPooling(name="temporal_max")(fc(v, 1)), 1)
        else:
            v = drop(fc(drop(fc(v, 1), 1), 2), 2)                       # (B, T', fc) towers
            v = FlattenTowers(name="towers")(v)                         # (B, T' * fc)
    elif head == "netvlad":  # frame vectors -> trainable VLAD over time -> FC layers
        from tfvideo.layers.vlad import LocalL2Normalize, NetVLAD

        # unit frame vectors (NetVLAD's descriptors are L2-normalised) and alpha 1: with random initial
        # centres a large alpha saturates the softmax and the assignment gets no gradient
        v = LocalL2Normalize(name="vectors_l2")(vectors(maps))
        v = NetVLAD(_check_int(clusters, "clusters", 1), alpha=1.0, name="netvlad")(v)
        v = drop(fc(drop(fc(v, 1), 1), 2), 2)
    else:  # "tdc"
        y = TimeDomainConvolution(tdc_filters, frames=window, stride=stride,
                                  name="time_domain_conv")(maps)
        v = vector(TemporalMaxPooling(name="temporal_max")(y))
        v = drop(fc(drop(fc(v, 1), 1), 2), 2)
    logits = keras.layers.Dense(num_classes, name="logits")(v)
    return keras.Model(frames, logits, name=name or f"{head}_pooling")


def lstm_model(num_classes, *, backbone="small", weights=None, input_shape=(None, None, None, 3), layers=5,
               units=512, use_peepholes=True, dropout=0.0, name=None):
    """The deep LSTM head of chapter 3 (digest 3.3): uint8 frames ``(B, T, H, W, C)`` -> per-step logits
    ``(B, T, num_classes)``.

    The per-frame CNN (:func:`backbone_maps`, shared over time by :class:`~tfvideo.layers.PerSegment`)
    gives each frame's last conv maps, averaged over space into a vector (GoogLeNet's "1000-D" average
    pool output, digest 3.9 q3: the LSTM reads "the output from the final CNN layer"; for the ``small``
    CNN the same global average, our choice), optionally dropped out (``dropout``, default none: the
    thesis names no dropout for the LSTM), then ``layers`` stacked LSTM layers of ``units`` cells
    (:class:`tfvideo.layers.lstm.DeepLSTM`, peepholes of Eqs. 3.3-3.7 or plain cells), then a softmax
    classifier at every time step (one ``Dense`` shared over time; logits here, the softmax in the
    loss). Train with :class:`tfvideo.losses.GainWeightedCrossEntropy` (the video label at every step,
    weighted by the gain g_t, digest 3.4); aggregate with :class:`tfvideo.layers.lstm.
    GainWeightedAverage` (digest 3.5). Runs on any ``T`` (including an exported signature's unknown T).
    Layers: ``preprocess``, ``cnn``, ``vectors``, ``lstm``, ``logits``.

    Example
    -------
    >>> import numpy as np
    >>> m = lstm_model(4, input_shape=(None, 32, 32, 3), layers=2, units=8)
    >>> m(np.zeros((2, 7, 32, 32, 3), np.uint8)).shape
    TensorShape([2, 7, 4])
    """
    from tfvideo.layers.lstm import DeepLSTM

    num_classes = _check_int(num_classes, "num_classes", 2)
    shape = _check_input_shape(input_shape)
    layers = _check_int(layers, "layers", 1)
    units = _check_int(units, "units", 1)
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a float in [0, 1); got {dropout!r}")
    frames = keras.Input(shape, dtype="uint8", name="frames")
    x = preprocess_layer(backbone, name="preprocess")(frames)
    cnn = backbone_maps(backbone, shape[1:], weights=weights, name=f"{application_name(backbone).lower()}_maps")
    v = PerSegment(keras.layers.GlobalAveragePooling2D(), name="vectors")(PerSegment(cnn, name="cnn")(x))
    if dropout:
        v = keras.layers.Dropout(float(dropout), name="vectors_dropout")(v)
    h = DeepLSTM(layers, units, use_peepholes=bool(use_peepholes), return_sequences=True, name="lstm")(v)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(frames, logits, name=name or "lstm_head")
