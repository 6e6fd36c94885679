"""Tests for tfvideo.export: TF Serving layout, versions, models.config, signatures, XLA guard.

References are independent of the exporter: the SavedModel is loaded with plain ``tf.saved_model.load``
in a fresh Python process and compared with ``model.predict`` and a NumPy transcription of the model
(mean of frames / 255, then ``x @ W + b``); ``models.config`` is compared with hand-written text and
parsed with protobuf's text parser against a transcription of TF Serving's ``ModelServerConfig``.
"""

import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from tfvideo.export import (
    classifier_signature,
    describe_saved_model,
    export_for_serving,
    function_signature,
    list_versions,
    write_models_config,
)

H = W = 6
CLASSES = 4


def _classifier():
    """uint8 frames (B, T, H, W, 3) -> Rescaling -> GlobalAveragePooling3D -> Dense ("logits"), and the
    feature model (pooled colour means), with fixed non-trivial weights for the NumPy reference."""
    frames = keras.Input((None, H, W, 3), dtype="uint8", name="frames")
    pooled = keras.layers.GlobalAveragePooling3D()(keras.layers.Rescaling(1 / 255)(frames))
    dense = keras.layers.Dense(CLASSES, name="logits")
    model = keras.Model(frames, dense(pooled))
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 3, (3, CLASSES)).astype(np.float32)
    bias = rng.normal(0, 1, CLASSES).astype(np.float32)
    dense.set_weights([kernel, bias])
    return model, keras.Model(frames, pooled), kernel, bias


def _frames(batch=3, time=5, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (batch, time, H, W, 3), dtype=np.uint8)


def _numpy_reference(frames, kernel, bias):
    features = frames.astype(np.float64).mean(axis=(1, 2, 3)) / 255
    logits = features @ kernel + bias
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return features, logits, e / e.sum(axis=1, keepdims=True)


def _tree_digest(path):
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export with a classifier ``serving_default`` and a custom ``features`` signature."""
    model, feature_model, kernel, bias = _classifier()
    base = tmp_path_factory.mktemp("serving") / "saved_models"
    spec = tf.TensorSpec((None, None, H, W, 3), tf.uint8)
    signatures = {
        "serving_default": classifier_signature(model),
        "features": function_signature(feature_model, {"frames": spec}, "features"),
    }
    path = export_for_serving(model, base, "toy", signatures=signatures, print_signatures=False)
    return model, kernel, bias, base, path


_LOAD_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
path, frames_file, out_file = sys.argv[1:]
loaded = tf.saved_model.load(path)
frames = tf.constant(np.load(frames_file))
out = {f"{sig}/{key}": value.numpy() for sig in ("serving_default", "features")
       for key, value in loaded.signatures[sig](frames=frames).items()}
out["signature_names"] = np.array(sorted(loaded.signatures.keys()))
out["tfvideo_imported"] = np.array(any(m.split(".")[0] == "tfvideo" for m in sys.modules))
np.savez(out_file, **out)
"""


def test_export_runs_in_a_fresh_process_like_model_predict(exported, tmp_path):
    model, kernel, bias, base, path = exported
    assert path == os.path.join(str(base), "toy", "1")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert sorted(os.listdir(base / "toy")) == ["1"]  # no temporary folder left
    frames = _frames()
    np.save(tmp_path / "frames.npy", frames)
    subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, path, str(tmp_path / "frames.npy"), str(tmp_path / "out.npz")],
        cwd=tmp_path, check=True, capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    out = np.load(tmp_path / "out.npz")
    assert set(out.files) == {"serving_default/logits", "serving_default/probabilities", "features/features",
                              "signature_names", "tfvideo_imported"}
    assert list(out["signature_names"]) == ["features", "serving_default"]
    assert not out["tfvideo_imported"]
    features, logits, probabilities = _numpy_reference(frames, kernel, bias)
    predicted = model.predict(frames, verbose=0)
    np.testing.assert_allclose(out["serving_default/logits"], predicted, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["serving_default/logits"], logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["serving_default/probabilities"], probabilities, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["features/features"], features, rtol=1e-5, atol=1e-6)


def test_describe_saved_model_lists_signatures(exported):
    tensor = "    {}s['{}'] tensor_info:\n        dtype: {}\n        shape: {}\n"
    head = "  The given SavedModel SignatureDef contains the following {}(s):\n"
    method = "  Method name is: tensorflow/serving/predict\n"
    expected = (
        "MetaGraphDef with tag-set: 'serve' contains the following SignatureDefs:\n"
        "\nsignature_def['features']:\n"
        + head.format("input") + tensor.format("input", "frames", "DT_UINT8", "(-1, -1, 6, 6, 3)")
        + head.format("output") + tensor.format("output", "features", "DT_FLOAT", "(-1, 3)")
        + method
        + "\nsignature_def['serving_default']:\n"
        + head.format("input") + tensor.format("input", "frames", "DT_UINT8", "(-1, -1, 6, 6, 3)")
        + head.format("output") + tensor.format("output", "logits", "DT_FLOAT", "(-1, 4)")
        + tensor.format("output", "probabilities", "DT_FLOAT", "(-1, 4)")
        + method
    )
    assert describe_saved_model(exported[4]) == expected
    with pytest.raises(ValueError, match="saved_model.pb"):
        describe_saved_model(exported[3])


def test_versions_default_to_next_and_are_never_overwritten(tmp_path, capsys):
    model = _classifier()[0]
    base = tmp_path / "saved_models"
    first = export_for_serving(model, base, "clf")
    printed = capsys.readouterr().out
    # default signature: inputs named/typed like the Keras input, outputs a dict named after the layer
    info = "{}['{}'] tensor_info:\n        dtype: {}\n        shape: {}\n"
    assert info.format("inputs", "frames", "DT_UINT8", "(-1, -1, 6, 6, 3)") in printed
    assert info.format("outputs", "logits", "DT_FLOAT", "(-1, 4)") in printed
    digest = _tree_digest(first)
    second = export_for_serving(model, base, "clf", print_signatures=False)
    assert (first, second) == (str(base / "clf" / "1"), str(base / "clf" / "2"))
    with pytest.raises(FileExistsError, match="version 1 "):
        export_for_serving(model, base, "clf", version=1, print_signatures=False)
    assert export_for_serving(model, base, "clf", version=np.int64(7), print_signatures=False).endswith("7")
    assert export_for_serving(model, base, "clf", print_signatures=False).endswith("8")  # never fills gaps
    assert _tree_digest(first) == digest
    assert sorted(os.listdir(base / "clf")) == ["1", "2", "7", "8"]  # no temporary folders
    assert list_versions(base / "clf") == [1, 2, 7, 8] and list_versions(base / "missing") == []


def _model_server_config_class():
    """TF Serving's ModelServerConfig / ModelConfigList / ModelConfig (fields used here), transcribed
    from tensorflow_serving/config/model_server_config.proto (not installed)."""
    proto = descriptor_pb2.FileDescriptorProto(name="test_model_server_config.proto", package="tfs_test")
    field = descriptor_pb2.FieldDescriptorProto
    string, message = field.TYPE_STRING, field.TYPE_MESSAGE
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    config = proto.message_type.add(name="ModelConfig")
    for number, name in [(1, "name"), (2, "base_path"), (4, "model_platform")]:
        config.field.add(name=name, number=number, type=string, label=optional)
    for owner, name, label, type_name in [
        ("ModelConfigList", "config", repeated, "ModelConfig"),
        ("ModelServerConfig", "model_config_list", optional, "ModelConfigList"),
    ]:
        proto.message_type.add(name=owner).field.add(
            name=name, number=1, type=message, label=label, type_name=".tfs_test." + type_name
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tfs_test.ModelServerConfig"))


def test_models_config_lists_models_with_versions(tmp_path):
    model = _classifier()[0]
    base = tmp_path / "saved_models"
    (base / "no_versions" / "v1").mkdir(parents=True)  # not a model: no all-digit folder
    (base / "README.md").write_text("not a model\n")
    export_for_serving(model, base, "toy", print_signatures=False)
    local = str(tmp_path / "serving root")
    export_for_serving(model, base, "a-model", serving_base_path=local, print_signatures=False)
    expected_local = (
        "model_config_list {\n"
        "  config {\n"
        '    name: "a-model"\n'
        f'    base_path: "{local}/a-model"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "  config {\n"
        '    name: "toy"\n'
        f'    base_path: "{local}/toy"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "}\n"
    )
    assert (base / "models.config").read_text() == expected_local
    assert write_models_config(base) == str(base / "models.config")
    expected_docker = expected_local.replace(local, "/models")
    assert (base / "models.config").read_text() == expected_docker
    assert sorted(os.listdir(base)) == ["README.md", "a-model", "models.config", "no_versions", "toy"]

    parsed = text_format.Parse(expected_docker, _model_server_config_class()())
    assert [(c.name, c.base_path, c.model_platform) for c in parsed.model_config_list.config] == [
        ("a-model", "/models/a-model", "tensorflow"), ("toy", "/models/toy", "tensorflow")]


@tf.function(jit_compile=True)
def _xla_square(x):
    return x * x


class _XlaLayer(keras.layers.Layer):
    def call(self, x):
        return _xla_square(x)


def test_refuses_xla_compiled_functions(tmp_path):
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2)(_XlaLayer()(inputs)))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), (x * x) @ kernel + bias, rtol=1e-5)  # it works
    base = tmp_path / "saved_models"
    with pytest.raises(ValueError, match="_XlaMustCompile.*_xla_square"):
        export_for_serving(model, base, "xla", print_signatures=False)
    assert os.listdir(base / "xla") == []  # neither a version nor a temporary folder
    assert not (base / "models.config").exists()


def test_bad_arguments(tmp_path):
    model = _classifier()[0]
    spec = {"frames": tf.TensorSpec((None, None, H, W, 3), tf.uint8)}
    for name in ["", "../up", ".hidden", "a/b"]:
        with pytest.raises(ValueError, match="`name`"):
            export_for_serving(model, tmp_path, name)
    with pytest.raises(ValueError, match="`version`"):
        export_for_serving(model, tmp_path, "m", version=0)
    with pytest.raises(TypeError, match="`version`"):
        export_for_serving(model, tmp_path, "m", version="1")
    with pytest.raises(TypeError, match="signatures\\['s'\\]"):
        export_for_serving(model, tmp_path, "m", signatures={"s": lambda frames: model(frames)})
    with pytest.raises(ValueError, match="input_signature"):
        export_for_serving(model, tmp_path, "m", signatures={"s": tf.function(lambda frames: model(frames))})
    with pytest.raises(ValueError, match="dict of named tensors"):
        plain = tf.function(model, input_signature=list(spec.values()))  # returns a tensor, not a dict
        export_for_serving(model, tmp_path, "m", signatures={"s": plain})
    with pytest.raises(TypeError, match="`model`"):
        export_for_serving(lambda x: x, tmp_path, "m")
    with pytest.raises(ValueError, match="`output_names`"):
        function_signature(model, spec, ["a", "a"])
    with pytest.raises(ValueError, match="returned 1 tensor"):  # checked when traced
        function_signature(model, spec, ["a", "b"]).get_concrete_function()
    assert list(tmp_path.iterdir()) == []  # arguments are checked before anything is written
