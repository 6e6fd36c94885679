"""Export Keras models as SavedModels in TensorFlow Serving's layout.

Layout written under ``base_dir`` (default ``saved_models/``)::

    saved_models/
      models.config          # model_config_list listing every model folder below
      <name>/
        1/                   # one SavedModel per version: saved_model.pb, variables/, assets/
        2/

TensorFlow Serving loads every all-digit sub-folder of a model's ``base_path`` as a version (and by
default serves the highest one), so versions are positive integers; the default is one more than the
highest existing version (1 for a new model; gaps are never filled, so the new version is always the
latest). An existing version is never overwritten. A SavedModel is first written to a hidden temporary
folder ``<name>/.tmp-export-*`` (not all digits, so TF Serving ignores it) and renamed
(:func:`tfvideo.files.atomic_directory`) to ``<name>/<version>`` only when complete and checked.
``models.config`` is then rewritten (atomically) as TF Serving's text-proto ``ModelServerConfig``
listing, in name order, every folder of ``base_dir`` that holds at least one all-digit version
folder::

    model_config_list {
      config {
        name: "toy"
        base_path: "/models/toy"
        model_platform: "tensorflow"
      }
    }

``base_path`` is ``/models/<name>`` by default: the path inside the official ``tensorflow/serving``
Docker image when ``saved_models/`` is mounted at ``/models``. Serve every exported model (gRPC on 8500,
REST on 8501) with::

    docker run -p 8500:8500 -p 8501:8501 -v "$PWD/saved_models:/models" tensorflow/serving \\
        --model_config_file=/models/models.config

Pass ``serving_base_path="/abs/path/saved_models"`` to point ``base_path`` at a local folder instead
(for a ``tensorflow_model_server`` run outside Docker).

Signatures. Each SavedModel signature is a ``tf.function`` with an ``input_signature`` whose
``TensorSpec`` names are the request's input names and which returns a dict of named outputs.
:func:`classifier_signature` wraps a model that outputs logits (outputs ``logits`` and
``probabilities``); :func:`function_signature` wraps any callable. Without ``signatures``,
``serving_default`` calls the Keras model with its own inputs (names, dtypes and shapes of
``model.inputs``: ``frames``/uint8 for our video models) and returns its outputs as a dict. The
SavedModel holds plain TF ops only: ``tf.saved_model.load`` needs neither tfvideo nor Keras code.

XLA. Stock TF Serving builds may lack XLA JIT support on CPU, so a graph with ``jit_compile``
functions (attribute ``_XlaMustCompile``) may fail to load or run there. The export scans the saved
function library and refuses such models (``ValueError``): build models with XLA off for export, e.g.
``TVNet(..., xla_iterations=False)`` (same weights: ``model.set_weights(trained.get_weights())``).

Example (writes ``saved_models/toy/1`` and ``saved_models/models.config``)::

    import keras
    from tfvideo.export import classifier_signature, export_for_serving

    frames = keras.Input((None, 32, 32, 3), dtype="uint8", name="frames")
    x = keras.layers.Rescaling(1 / 255)(frames)
    x = keras.layers.GlobalAveragePooling3D()(x)
    model = keras.Model(frames, keras.layers.Dense(5)(x))
    path = export_for_serving(model, "saved_models", "toy",
                              signatures={"serving_default": classifier_signature(model)})

    # then, e.g.: curl -d '{"instances": [...uint8 clip (T, 32, 32, 3)...]}' \\
    #     http://localhost:8501/v1/models/toy:predict
"""

from __future__ import annotations

import numbers
import os
from typing import Callable, Mapping, Sequence

import keras
import tensorflow as tf
from google.protobuf import text_encoding
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from tfvideo.checks import MODEL_NAME_PATTERN, check_model_name
from tfvideo.files import atomic_directory, atomic_write_text

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_SERVING_BASE_PATH",
    "classifier_signature",
    "describe_saved_model",
    "export_for_serving",
    "function_signature",
    "list_versions",
    "write_models_config",
]

CONFIG_FILENAME = "models.config"
DEFAULT_SERVING_BASE_PATH = "/models"
_XLA_ATTR = "_XlaMustCompile"
_TMP_PREFIX = ".tmp-export-"


# ----------------------------------------------------------------------------------------------------
# signatures
# ----------------------------------------------------------------------------------------------------
def function_signature(
    fn: Callable,
    input_specs: Mapping[str, tf.TensorSpec],
    output_names: str | Sequence[str] | None,
) -> tf.function:
    """Wraps ``fn`` as a serving signature: a ``tf.function`` with named inputs and dict outputs.

    Args:
      fn: callable taking the inputs positionally, in the order of ``input_specs`` (so a Keras model
        with one input can be passed directly), returning a tensor, a sequence of tensors or a dict.
      input_specs: ``{input_name: spec}``; ``spec`` is anything with ``shape`` and ``dtype``
        (``tf.TensorSpec``, ``keras.InputSpec``, a ``KerasTensor``); use ``None`` for variable sizes
        (batch, time). The names become the signature's input names.
      output_names: names of ``fn``'s outputs: one name for a single tensor, one per tensor for a
        sequence (in order), or the keys of a returned dict (checked). ``None``: ``fn`` must return a
        dict with string keys, exported as is.

    Returns:
      A ``tf.function`` with an ``input_signature``, for ``export_for_serving(signatures=...)``.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}")
    if not isinstance(input_specs, Mapping) or not input_specs:
        raise TypeError(f"`input_specs` must be a non-empty dict {{name: TensorSpec}}, got {input_specs!r}")
    specs = []
    for key, spec in input_specs.items():
        if not isinstance(key, str) or not MODEL_NAME_PATTERN.match(key):
            raise ValueError(f"`input_specs` keys must be names like 'frames', got {key!r}")
        if not (hasattr(spec, "shape") and hasattr(spec, "dtype")):
            raise TypeError(f"`input_specs[{key!r}]` must be a tf.TensorSpec (shape and dtype), got {spec!r}")
        specs.append(tf.TensorSpec(spec.shape, spec.dtype, name=key))
    names = [output_names] if isinstance(output_names, str) else output_names
    if names is not None:
        names = list(names)
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"`output_names` must be distinct non-empty strings, got {output_names!r}")

    def signature(*inputs):
        outputs = fn(*inputs)
        if isinstance(outputs, Mapping):
            keys = list(outputs)
            bad_keys = not all(isinstance(k, str) and k for k in keys)
            if bad_keys or (names is not None and set(keys) != set(names)):
                raise ValueError(f"the function returned a dict with keys {keys}, `output_names` are {names}")
            return {k: outputs[k] for k in (names or keys)}
        flat = tf.nest.flatten(outputs)
        if names is None or len(flat) != len(names):
            raise ValueError(f"the function returned {len(flat)} tensor(s), expected `output_names` {names}")
        return dict(zip(names, flat))

    return tf.function(signature, input_signature=specs)


def classifier_signature(model, input_spec=None, input_name: str = "frames") -> tf.function:
    """A signature for a classifier whose output is logits: outputs ``logits`` and ``probabilities``.

    Args:
      model: a Keras model (or any callable) with one input, returning logits ``(batch, classes)``;
        called with ``training=False``.
      input_spec: spec of the input (``shape``/``dtype``, e.g. ``tf.TensorSpec((None, None, 224, 224, 3),
        tf.uint8)``). Default: the shape and dtype of the model's single Keras input.
      input_name: the signature's input name.

    Returns:
      A ``tf.function`` returning ``{"logits": logits, "probabilities": softmax(logits, axis=-1)}``.
    """
    if input_spec is None:
        inputs = _model_inputs(model)
        if len(inputs) != 1:
            raise ValueError(f"`model` has {len(inputs)} inputs; pass `input_spec` or use function_signature")
        input_spec = inputs[0]

    def classify(frames):
        logits = model(frames, training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    return function_signature(classify, {input_name: input_spec}, ("logits", "probabilities"))


def _model_inputs(model) -> list:
    """The Keras symbolic inputs of ``model`` (a built functional or Sequential model)."""
    try:
        inputs = list(model.inputs or ())
    except (AttributeError, ValueError, TypeError):
        inputs = []
    if not inputs:
        raise ValueError(
            "`model` has no symbolic Keras inputs (a subclassed or unbuilt model?); "
            "pass explicit `signatures` (see function_signature)"
        )
    return inputs


def _default_signature(model) -> tf.function:
    """``serving_default`` made from ``model``: inputs as ``model.inputs``, outputs as a dict.

    Output names: the keys of a dict output, else ``model.output_names`` (functional models: the output
    layers' names), else ``output_0``, ``output_1``, ...
    """
    inputs = _model_inputs(model)
    try:
        structure = model.input  # e.g. a dict for a model built with dict inputs
    except (AttributeError, ValueError):
        structure = inputs[0] if len(inputs) == 1 else inputs
    names = getattr(model, "output_names", None)

    def serve(*tensors):
        outputs = model(keras.tree.pack_sequence_as(structure, list(tensors)), training=False)
        if isinstance(outputs, Mapping):
            return dict(outputs)
        flat = tf.nest.flatten(outputs)
        keys = names if names and len(names) == len(flat) else [f"output_{i}" for i in range(len(flat))]
        return dict(zip(keys, flat))

    specs = {t.name: t for t in inputs}
    if len(specs) != len(inputs):
        raise ValueError(f"`model` inputs must have distinct names, got {[t.name for t in inputs]}")
    return function_signature(serve, specs, None)


def _check_signatures(signatures) -> dict:
    if not isinstance(signatures, Mapping) or not signatures:
        raise TypeError(f"`signatures` must be a non-empty dict {{name: tf.function}}, got {signatures!r}")
    for key, fn in signatures.items():
        if not isinstance(key, str) or not MODEL_NAME_PATTERN.match(key):
            raise ValueError(f"`signatures` keys must be names like 'serving_default', got {key!r}")
        if not isinstance(fn, tf.types.experimental.GenericFunction):
            raise TypeError(f"`signatures[{key!r}]` must be a tf.function, got {type(fn).__name__}")
        if fn.input_signature is None:
            raise ValueError(f"`signatures[{key!r}]` must be a tf.function with an `input_signature`")
        outputs = fn.get_concrete_function().structured_outputs
        if not isinstance(outputs, Mapping):
            got = type(outputs).__name__
            raise ValueError(f"`signatures[{key!r}]` must return a dict of named tensors, got {got}")
    return dict(signatures)


# ----------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------
def list_versions(model_dir: str | os.PathLike) -> list[int]:
    """The versions (all-digit sub-folders, as TF Serving sees them) in ``model_dir``, sorted.

    Args:
      model_dir: ``base_dir/<name>``; a missing folder has no versions.

    Returns:
      Sorted list of ints.
    """
    if not os.path.isdir(model_dir):
        return []
    return sorted(
        int(entry.name) for entry in os.scandir(model_dir) if entry.name.isdigit() and entry.is_dir()
    )


def export_for_serving(
    model,
    base_dir: str | os.PathLike = "saved_models",
    name: str | None = None,
    version: int | None = None,
    signatures: Mapping[str, tf.function] | None = None,
    *,
    serving_base_path: str = DEFAULT_SERVING_BASE_PATH,
    print_signatures: bool = True,
) -> str:
    """Writes ``model`` as SavedModel ``base_dir/<name>/<version>`` and updates ``base_dir/models.config``.

    Args:
      model: a built Keras model (its variables are saved; the signatures call it).
      base_dir: root folder of the TF Serving layout (created if missing).
      name: model name (folder and TF Serving model name; letters, digits, ``_``, ``.``, ``-``, not
        starting with ``.`` or ``-``). Default: ``model.name``.
      version: positive int; default: highest existing version + 1 (1 for a new model). An existing
        version raises ``FileExistsError``.
      signatures: ``{signature_name: tf.function}`` (with ``input_signature`` and dict outputs; see
        :func:`classifier_signature`, :func:`function_signature`). Without a ``"serving_default"`` key
        the first signature is also exported under that name (TF Serving's default). Default:
        ``serving_default`` calling the model on its own inputs.
      serving_base_path: folder that ``base_dir`` is seen as by TF Serving, used for ``base_path`` in
        ``models.config`` (default ``/models``, the Docker mount point).
      print_signatures: print :func:`describe_saved_model` of the export.

    Returns:
      The path of the version folder.

    Raises:
      FileExistsError: ``version`` exists already.
      ValueError: the graph contains XLA-compiled (``_XlaMustCompile``) functions, or bad arguments.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"`model` must be a Keras model, got {type(model).__name__}")
    name = check_model_name(model.name if name is None else name, "`name`")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, numbers.Integral):
            raise TypeError(f"`version` must be a positive int or None, got {version!r}")
        if version < 1:
            raise ValueError(f"`version` must be a positive int, got {version}")
        version = int(version)
    if signatures is None:
        signatures = {"serving_default": _default_signature(model)}
    signatures = _check_signatures(signatures)

    model_dir = os.path.join(os.fspath(base_dir), name)
    os.makedirs(model_dir, exist_ok=True)
    existing = list_versions(model_dir)
    if version is None:
        version = max(existing, default=0) + 1
    elif version in existing:
        raise FileExistsError(f"version {version} of model {name!r} exists already in {model_dir}")
    final = os.path.join(model_dir, str(version))

    # a hidden folder (not all digits: TF Serving ignores it), renamed when complete and checked
    with atomic_directory(final, prefix=_TMP_PREFIX) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for key, fn in signatures.items():
            archive.add_endpoint(key, fn)
        # serving computes no gradients: custom gradients (e.g. TVNet's adjoint, whose backward loop is
        # XLA-compiled) are not written, so they cannot bring XLA functions into the SavedModel
        archive.write_out(tmp, options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
                          verbose=False)
        _refuse_xla(tmp)
        if version in list_versions(model_dir):  # created meanwhile by another process
            raise FileExistsError(f"version {version} of model {name!r} exists already in {model_dir}")
    write_models_config(base_dir, serving_base_path)
    if print_signatures:
        print(f"Exported {final}\n{describe_saved_model(final)}")
    return final


def _read_saved_model(path) -> saved_model_pb2.SavedModel:
    pb_path = os.path.join(os.fspath(path), "saved_model.pb")
    if not os.path.isfile(pb_path):
        raise ValueError(f"`path` must be a SavedModel folder (with saved_model.pb), got {os.fspath(path)!r}")
    saved_model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    return saved_model


def _refuse_xla(path) -> None:
    """Raises ValueError if the SavedModel at ``path`` has functions or calls marked ``_XlaMustCompile``."""
    found = []
    for meta_graph in _read_saved_model(path).meta_graphs:
        library = meta_graph.graph_def.library
        for fdef in library.function:
            if _XLA_ATTR in fdef.attr and fdef.attr[_XLA_ATTR].b:
                found.append(fdef.signature.name)
        nodes = [n for f in library.function for n in f.node_def] + list(meta_graph.graph_def.node)
        for node in nodes:
            if _XLA_ATTR in node.attr and node.attr[_XLA_ATTR].b:
                found.append(node.attr["f"].func.name if "f" in node.attr else node.name)
    if found:
        raise ValueError(
            f"refusing to export: the graph contains XLA-compiled functions ({_XLA_ATTR}): "
            f"{', '.join(sorted(set(found)))}. Stock TensorFlow Serving builds may lack XLA JIT on CPU. "
            "Export a copy of the model built with XLA off (no tf.function(jit_compile=True) on the "
            "serving path, e.g. TVNet(xla_iterations=False)) carrying the same weights."
        )


def write_models_config(
    base_dir: str | os.PathLike = "saved_models", serving_base_path: str = DEFAULT_SERVING_BASE_PATH
) -> str:
    """(Re)writes ``base_dir/models.config`` listing every model folder with at least one version.

    Models are listed in name order; ``base_path`` is ``<serving_base_path>/<name>``. Written to a
    temporary file and renamed. Call it after deleting a model folder by hand.

    Args:
      base_dir: root folder of the TF Serving layout.
      serving_base_path: how TF Serving sees ``base_dir`` (default ``/models``, the Docker mount).

    Returns:
      The path of ``models.config``.
    """
    if not isinstance(serving_base_path, str) or not serving_base_path:
        raise ValueError(f"`serving_base_path` must be a non-empty path string, got {serving_base_path!r}")
    base_dir = os.fspath(base_dir)
    names = sorted(
        entry.name
        for entry in os.scandir(base_dir)
        if entry.is_dir() and MODEL_NAME_PATTERN.match(entry.name) and list_versions(entry.path)
    )
    lines = ["model_config_list {"]
    for name in names:
        base_path = serving_base_path.rstrip("/") + "/" + name
        lines += [
            "  config {",
            f'    name: "{text_encoding.CEscape(name, as_utf8=True)}"',
            f'    base_path: "{text_encoding.CEscape(base_path, as_utf8=True)}"',
            '    model_platform: "tensorflow"',
            "  }",
        ]
    lines.append("}")
    path = os.path.join(base_dir, CONFIG_FILENAME)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------
# inspection
# ----------------------------------------------------------------------------------------------------
def describe_saved_model(path: str | os.PathLike) -> str:
    """The signatures of a SavedModel as text, in the style of ``saved_model_cli show --all``.

    Read from ``saved_model.pb`` without loading the model. Per tag-set and signature (sorted by name):
    inputs and outputs (sorted by name) with dtype (``DT_UINT8``...) and shape (``-1`` = any size). The
    internal ``__saved_model_init_op`` entry and graph tensor names (which clients never use) are left
    out.

    Args:
      path: a SavedModel folder (``base_dir/<name>/<version>``).

    Returns:
      Multi-line text ending with a newline.
    """

    def tensor_lines(kind, tensors):
        out = [f"  The given SavedModel SignatureDef contains the following {kind}(s):"]
        for key in sorted(tensors):
            info = tensors[key]
            shape = info.tensor_shape
            dims = "unknown_rank" if shape.unknown_rank else f"({', '.join(str(d.size) for d in shape.dim)})"
            out += [
                f"    {kind}s['{key}'] tensor_info:",
                f"        dtype: {types_pb2.DataType.Name(info.dtype)}",
                f"        shape: {dims}",
            ]
        return out

    lines = []
    meta_graphs = sorted(_read_saved_model(path).meta_graphs, key=lambda m: list(m.meta_info_def.tags))
    for meta_graph in meta_graphs:
        tags = ", ".join(meta_graph.meta_info_def.tags)
        lines.append(f"MetaGraphDef with tag-set: '{tags}' contains the following SignatureDefs:")
        for key in sorted(meta_graph.signature_def):
            if key == "__saved_model_init_op":
                continue
            signature = meta_graph.signature_def[key]
            lines += ["", f"signature_def['{key}']:"]
            lines += tensor_lines("input", signature.inputs) + tensor_lines("output", signature.outputs)
            lines.append(f"  Method name is: {signature.method_name}")
    return "\n".join(lines) + "\n"
