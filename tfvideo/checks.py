"""Argument checks shared by the whole package (standard library only, no TensorFlow).

One rule each, so that every function and command line says the same thing for the same mistake:

* :func:`positive_int` -- an ``int`` (not ``bool``) >= ``minimum``; the error names the argument.
* :func:`positive_float` -- a finite number > 0 (or >= 0 with ``allow_zero``).
* :func:`parse_size` -- a frame size. **Sizes are always height first**: ``"HxW"`` (e.g. ``"96x128"``:
  96 rows, 128 columns, as NumPy shapes and ``tf.image.resize`` take them) or one number ``"N"`` for a
  square ``N x N``; tuples are ``(height, width)``.
* :func:`check_model_name` -- a model name usable as a folder name and in TF Serving's REST URLs.
"""

from __future__ import annotations

import math
import numbers
import re

__all__ = ["MODEL_NAME_PATTERN", "check_model_name", "parse_size", "positive_float", "positive_int"]

#: model (and signature) names: a folder name and a REST URL segment; TF Serving's rule.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) >= ``minimum``.

    Raises:
        ValueError: naming ``name``, the rule and the value given.

    >>> positive_int(3, "steps")
    3
    >>> positive_int(0, "steps")
    Traceback (most recent call last):
    ValueError: steps must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_float(value, name: str, allow_zero: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite real number > 0 (>= 0 with ``allow_zero``)."""
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def parse_size(text, name: str = "size", minimum: int = 1) -> tuple[int, int]:
    """A frame size ``(height, width)`` from ``"HxW"`` (height first), ``"N"`` (square), an int or a
    ``(height, width)`` pair; each side must be >= ``minimum``.

    >>> parse_size("96x128")
    (96, 128)
    >>> parse_size("48")
    (48, 48)
    """
    if isinstance(text, (tuple, list)):
        parts = list(text)
    elif isinstance(text, numbers.Integral) and not isinstance(text, bool):
        parts = [text, text]
    else:
        raw = str(text).strip().lower().split("x")
        try:
            parts = [int(p) for p in raw]
        except ValueError:
            parts = None
        if parts is not None and len(parts) == 1:
            parts = parts * 2
    if not parts or len(parts) != 2 or any(isinstance(p, bool) or not isinstance(p, numbers.Integral)
                                           for p in parts):
        raise ValueError(f"{name} must be HEIGHTxWIDTH (height first, e.g. 96x128) or one number for a "
                         f"square, got {text!r}")
    if min(parts) < minimum:
        raise ValueError(f"{name} must be at least {minimum}x{minimum} (height x width), got {text!r}")
    return int(parts[0]), int(parts[1])


def check_model_name(name, arg: str = "name") -> str:
    """``name`` if it matches :data:`MODEL_NAME_PATTERN` (letters, digits, ``_ . -``; not starting
    with ``.`` or ``-``), else a ``ValueError`` naming ``arg``."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        raise ValueError(f"{arg} must be letters, digits, '_', '.' or '-' (not starting with '.' or "
                         f"'-'), got {name!r}")
    return name
