"""tfvideo: TensorFlow/Keras video models from the seed papers.

Floors (each imports only from floors below it): ``ops`` -> ``losses``/``metrics`` -> ``layers`` ->
``models`` -> ``training``/``export``/``serving``. Nothing in ``tfvideo`` imports ``recipes``.
"""

__version__ = "0.1.0"
