"""Serving exported models over gRPC: TF Serving's protocol, a client and a development server.

* :class:`PredictClient` (:mod:`tfvideo.serving.client`): ``Predict``, ``GetModelMetadata`` and
  ``GetModelStatus`` against TensorFlow Serving (or the development server), numpy in and out, large
  messages, retries on ``UNAVAILABLE``, :class:`ServingError` with the gRPC code.
* :class:`ServedSignatures` (:mod:`tfvideo.serving.signatures`): a served model's signatures as a
  loaded SavedModel's ``signatures`` mapping (``name -> callable(**inputs) -> dict``), so code written
  for ``tf.saved_model.load`` (e.g. ``DFFVideoRunner.from_signatures``) runs against TF Serving.
* :class:`DevServer` (:mod:`tfvideo.serving.dev_server`, ``python -m tfvideo.serving.dev_server``): a
  development/test server implementing those RPCs with the same protos over ``tf.saved_model.load``,
  for machines without the ``tensorflow_model_server`` binary. Not a replacement for TF Serving.

Example (after :func:`tfvideo.export.export_for_serving` wrote ``saved_models/toy/1``)::

    python -m tfvideo.serving.dev_server --model-base saved_models --port 8500 &

    from tfvideo.serving import PredictClient
    with PredictClient("localhost:8500", model_name="toy") as client:
        probabilities = client.predict(frames=clips)["probabilities"]   # clips: uint8 (B, T, H, W, 3)
"""

from __future__ import annotations

from tfvideo.serving.client import PredictClient, ServingError, VersionStatus, call_with_retries

__all__ = ["DevServer", "PredictClient", "ServedSignatures", "ServingError", "VersionStatus", "call_with_retries"]


def __getattr__(name):
    # imported lazily so that `python -m tfvideo.serving.dev_server` does not import the module twice
    if name == "DevServer":
        from tfvideo.serving.dev_server import DevServer

        return DevServer
    if name == "ServedSignatures":
        from tfvideo.serving.signatures import ServedSignatures

        return ServedSignatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
