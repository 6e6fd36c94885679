"""Test-wide set-up.

Two logical CPU devices are configured before TensorFlow initialises its runtime so that tests can run
``tf.distribute.MirroredStrategy`` over ``/cpu:0`` and ``/cpu:1`` on a machine without GPUs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # runtime already initialised by an earlier import: keep what we have
    pass


@pytest.fixture
def photo_grey():
    """A real photograph (scikit-image's ``camera``), float32 in [0, 255], shape (512, 512)."""
    from skimage import data

    return data.camera().astype(np.float32)


@pytest.fixture
def photo_rgb():
    """A real colour photograph (scikit-image's ``astronaut``), float32 in [0, 255], (512, 512, 3)."""
    from skimage import data

    return data.astronaut().astype(np.float32)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One ``MirroredStrategy`` over the two logical CPUs for the whole test session.

    Strategies created one after another in a process reuse collective instance keys, and the
    second one's all-reduce can then fail with "Shape mismatch in the collective instance" (a TF
    limitation: one strategy per process is the supported use), so tests share this one.
    """
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest configures two logical CPUs"
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
