"""A served model's signatures as callables: ``tf.saved_model.load(path).signatures``, over gRPC.

:class:`ServedSignatures` stands for a loaded SavedModel in code written against its ``signatures``
mapping (``name -> callable(**inputs) -> {output: tensor}``), so that the same code runs against a
TensorFlow Serving deployment (or :mod:`tfvideo.serving.dev_server`) instead of an in-process model.
Each signature is called through a :class:`~tfvideo.serving.client.PredictClient` bound to it (one
gRPC channel per signature used, created on first use, closed by :meth:`ServedSignatures.close` or
the ``with`` block).

Example: Deep Feature Flow's Algorithm 1 (:class:`tfvideo.models.dff_runner.DFFVideoRunner`) with
every network on the server, after ``export_for_serving(model, "saved_models", "dff",
signatures=dff_runner.signatures(model))`` and ``python -m tfvideo.serving.dev_server --model-base
saved_models --port 8500`` (or ``tensorflow_model_server``)::

    from tfvideo.models.dff_runner import DFFVideoRunner
    from tfvideo.serving import ServedSignatures

    with ServedSignatures("localhost:8500", "dff", timeout=60) as served:
        sorted(served.signatures)        # ['key_features', 'motion', 'propagate', 'serving_default', 'task']
        features = served.signatures["key_features"](frames=frames[:1])["features"]   # a tf.Tensor
        runner = DFFVideoRunner.from_signatures(served, key_interval=5)
        for index, logits, is_key in runner.run(frames):    # frames: uint8 (T, H, W, 3)
            ...

Inputs are sent as they are (numpy arrays, tensors or lists of the signature's dtype: no
conversion, as :meth:`PredictClient.predict`); outputs come back as ``tf.Tensor`` (like a loaded
SavedModel's signatures) or, with ``as_numpy=True``, as numpy arrays. Errors are
:class:`~tfvideo.serving.client.ServingError` (the gRPC code and the server's message); an unknown
signature name is a ``KeyError`` listing the served ones.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import tensorflow as tf

from tfvideo.serving.client import PredictClient

__all__ = ["ServedSignatures"]


class ServedSignature:
    """One served signature: ``signature(**inputs) -> {output name: tensor}`` (a ``Predict`` RPC).

    Attributes:
      name: the signature name.
      client: the :class:`PredictClient` bound to it.
    """

    def __init__(self, client: PredictClient, as_numpy: bool):
        self.client, self.name, self._as_numpy = client, client.signature_name, as_numpy

    def __call__(self, *args, **inputs):
        if args:
            raise TypeError(f"signature {self.name!r} takes named inputs only (e.g. frames=...), like a loaded "
                            f"SavedModel's signatures; got {len(args)} positional argument(s)")
        out = self.client.predict(**inputs)
        return out if self._as_numpy else {k: tf.convert_to_tensor(v) for k, v in out.items()}

    def __repr__(self):
        return f"ServedSignature({self.name!r} of model {self.client.model_name!r} at {self.client.target})"


class _Signatures(Mapping):
    """The ``signatures`` mapping of :class:`ServedSignatures` (names from ``GetModelMetadata``)."""

    def __init__(self, owner: "ServedSignatures"):
        self._owner = owner

    def __getitem__(self, name):
        return self._owner._signature(name)

    def __iter__(self):
        return iter(self._owner.signature_names)

    def __len__(self):
        return len(self._owner.signature_names)

    def __contains__(self, name):
        return name in self._owner.signature_names

    def __repr__(self):
        return f"<signatures {list(self)} of model {self._owner.model_name!r} at {self._owner.target}>"


class ServedSignatures:
    """The signatures of a model served over gRPC, as a loaded SavedModel exposes them (module docstring).

    Args:
      target: ``host:port`` of the TF Serving (or dev server) gRPC endpoint.
      model_name: the served model's name.
      as_numpy: return numpy arrays instead of ``tf.Tensor``.
      **client_kwargs: passed to every :class:`PredictClient` (``version``, ``timeout``,
        ``max_message_mb``, ``retries``, ``backoff``, ``max_backoff``, ``options``); not
        ``signature_name``, which each signature sets.

    Attributes:
      signatures: read-only mapping ``{signature name: ServedSignature}``; its names are the model's
        (``GetModelMetadata``, asked once, on the first look-up).

    Thread-safe; close it with :meth:`close` or use it as a context manager (closes every channel).
    """

    def __init__(self, target: str, model_name: str, *, as_numpy: bool = False, **client_kwargs):
        if "signature_name" in client_kwargs:
            raise TypeError("`signature_name` is not an argument of ServedSignatures: every signature of the "
                            "model is reached through `.signatures[name]`")
        if "model_name" in client_kwargs:
            raise TypeError("`model_name` given twice")
        # checks every argument now (a bad one raises here, naming it), then serves as the metadata client
        self._metadata_client = PredictClient(target, model_name=model_name, **client_kwargs)
        self.target, self.model_name = target, model_name
        self._as_numpy = bool(as_numpy)
        self._client_kwargs = dict(client_kwargs)
        self._lock = threading.Lock()
        self._names = None
        self._cache: dict[str, ServedSignature] = {}
        self._closed = False
        self.signatures = _Signatures(self)

    @property
    def signature_names(self) -> tuple[str, ...]:
        """The served signature names, sorted (one ``GetModelMetadata`` RPC, then cached)."""
        with self._lock:
            self._check_open()
            if self._names is None:
                self._names = tuple(sorted(self._metadata_client.model_metadata()))
            return self._names

    def model_metadata(self) -> dict[str, dict]:
        """:meth:`PredictClient.model_metadata`: every signature's inputs and outputs (dtype, shape)."""
        with self._lock:
            self._check_open()
        return self._metadata_client.model_metadata()

    def _signature(self, name) -> ServedSignature:
        if name not in self.signature_names:
            raise KeyError(f"model {self.model_name!r} at {self.target} has no signature {name!r}; it serves "
                           f"{list(self.signature_names)}")
        with self._lock:
            self._check_open()
            if name not in self._cache:
                client = PredictClient(self.target, model_name=self.model_name, signature_name=name,
                                       **self._client_kwargs)
                self._cache[name] = ServedSignature(client, self._as_numpy)
            return self._cache[name]

    def _check_open(self):
        if self._closed:
            raise ValueError(f"ServedSignatures of model {self.model_name!r} at {self.target} is closed")

    def close(self) -> None:
        """Closes every channel (pending calls are cancelled); later look-ups raise ``ValueError``."""
        with self._lock:
            self._closed = True
            clients = [self._metadata_client] + [s.client for s in self._cache.values()]
            self._cache.clear()
        for client in clients:
            client.close()

    def __enter__(self) -> "ServedSignatures":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self):
        return f"ServedSignatures({self.target!r}, {self.model_name!r})"
