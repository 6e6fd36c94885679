"""ResNet-v1 bottleneck blocks with keras.applications' layer names, shared by the model families that
rebuild parts of a ResNet (Deep Feature Flow's dilated conv5, :mod:`tfvideo.models.dff`; the two
subnetworks of Ng & Davis 2018 TDN, :mod:`tfvideo.models.tdn`)."""

from __future__ import annotations

import keras

__all__ = ["BN_EPSILON", "Bottleneck"]

BN_EPSILON = 1.001e-5
"""keras.applications' ResNet batch-norm epsilon (Caffe's and the DFF code's: 1e-5)."""


class Bottleneck:
    """A ResNet-v1 bottleneck with keras.applications' layer names (``{name}_0_conv`` ... ``_out``).

    ``stride`` sits on the first 1x1 convolution and the projection, as in Keras and MSRA's ResNet-v1;
    ``dilation`` on the 3x3 convolution (DFF Sec. 4, holing). ``Bottleneck.stock`` takes the layers of an
    existing keras.applications block so that they can be applied again on new tensors."""

    def __init__(self, layers):
        self.layers = layers
        self.weight_layers = 4 if "0_conv" in layers else 3

    @classmethod
    def new(cls, name, filters, *, stride=1, dilation=1, shortcut=False):
        conv, bn = keras.layers.Conv2D, keras.layers.BatchNormalization
        layers = {}
        if shortcut:
            layers["0_conv"] = conv(4 * filters, 1, strides=stride, name=f"{name}_0_conv")
            layers["0_bn"] = bn(epsilon=BN_EPSILON, name=f"{name}_0_bn")
        layers["1_conv"] = conv(filters, 1, strides=stride, name=f"{name}_1_conv")
        layers["2_conv"] = conv(filters, 3, padding="same", dilation_rate=dilation,
                                name=f"{name}_2_conv")
        layers["3_conv"] = conv(4 * filters, 1, name=f"{name}_3_conv")
        for i in (1, 2, 3):
            layers[f"{i}_bn"] = bn(epsilon=BN_EPSILON, name=f"{name}_{i}_bn")
        for i in (1, 2):
            layers[f"{i}_relu"] = keras.layers.Activation("relu", name=f"{name}_{i}_relu")
        layers["add"] = keras.layers.Add(name=f"{name}_add")
        layers["out"] = keras.layers.Activation("relu", name=f"{name}_out")
        return cls(layers)

    @classmethod
    def stock(cls, model, name):
        names = {layer.name for layer in model.layers}
        keys = ["1_conv", "1_bn", "1_relu", "2_conv", "2_bn", "2_relu", "3_conv", "3_bn", "add", "out"]
        if f"{name}_0_conv" in names:
            keys = ["0_conv", "0_bn", *keys]
        return cls({k: model.get_layer(f"{name}_{k}") for k in keys})

    def __call__(self, x):
        lay = self.layers
        shortcut = lay["0_bn"](lay["0_conv"](x)) if "0_conv" in lay else x
        y = lay["1_relu"](lay["1_bn"](lay["1_conv"](x)))
        y = lay["2_relu"](lay["2_bn"](lay["2_conv"](y)))
        y = lay["3_bn"](lay["3_conv"](y))
        return lay["out"](lay["add"]([shortcut, y]))
