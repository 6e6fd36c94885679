"""What every command line of tfvideo and its recipes shares (standard library only, no TensorFlow).

* argparse types built on :mod:`tfvideo.checks` (:func:`size_type`, :func:`int_type`,
  :func:`float_type`), so a bad value is refused by the parser with ``error: ...`` and exit code 2
  before any work starts;
* :func:`add_output_flags` (``--quiet``, ``--verbose``) and :func:`quiet_native_logs`, which hides the
  info and warning lines that TensorFlow's C++ runtime prints to stderr (oneDNN, CPU features, cuInit,
  XLA service, MLIR, ...: lines such as ``I0000 00:00:... port.cc:153] ...``) so a user sees progress
  bars and our own lines; ``--verbose`` keeps them. Python warnings and tracebacks are never hidden.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading

from tfvideo import checks

__all__ = ["add_output_flags", "float_type", "int_type", "quiet_native_logs", "run_main", "size_type",
           "timed_log"]


def int_type(minimum: int = 1):
    """argparse ``type=``: an integer >= ``minimum``."""

    def parse(text):
        try:
            return checks.positive_int(int(text), "value", minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None

    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_type(allow_zero: bool = False):
    """argparse ``type=``: a finite number > 0 (>= 0 with ``allow_zero``)."""

    def parse(text):
        try:
            return checks.positive_float(float(text), "value", allow_zero)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a finite number {'>= 0' if allow_zero else '> 0'}, got {text!r}") from None

    parse.__name__ = "number"
    return parse


def size_type(minimum: int = 1):
    """argparse ``type=``: a frame size ``HxW`` (height first) or ``N`` (square), each side >=
    ``minimum``; gives ``(height, width)``."""

    def parse(text):
        try:
            return checks.parse_size(text, "size", minimum)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("size must be ")) from None

    parse.__name__ = "size"
    return parse


def add_output_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``--quiet`` (no progress bars) and ``--verbose`` (keep TensorFlow's native log lines)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's C++ info/warning lines (hidden by default)")
    return parser


# A line of absl / TensorFlow C++ logging: severity letter, MMDD, time, thread id, file:line].
# E lines are kept except the CUDA ones a machine without a GPU prints and two known-harmless ones.
_NATIVE = re.compile(rb"^[IW]\d{4} [\d:.]+\s+\d+ [^ ]+:\d+\] ")
_NATIVE_ERROR_NOISE = re.compile(rb"^E\d{4} [\d:.]+\s+\d+ [^ ]+:\d+\] .*(cuInit|CUDA|cuda"
                                 # grappler skipping its optional remapper pass on a graph (it runs unoptimised
                                 # there, correctly: printed on the first training step of FlowNet's LeakyReLU)
                                 rb"|remapper failed: INVALID_ARGUMENT: Mutation::Apply error"
                                 # oneDNN falling back to Eigen for float16 (information, not an error)
                                 rb"|oneDNN supports DT_HALF only)")
_NOISE = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
          b"To enable the following instructions:")
_PIECES = re.compile(rb"(\r|\n)")  # split keeping the ends: text, end, text, end, ..., unfinished text
_installed = False


def _is_noise(line: bytes) -> bool:
    return bool(_NATIVE.match(line) or _NATIVE_ERROR_NOISE.match(line)
                or any(line.startswith(n) for n in _NOISE))


def quiet_native_logs(verbose: bool = False) -> None:
    """Filters TensorFlow's native info/warning lines (and its cuInit error on machines without a GPU)
    out of this process's stderr and of the processes it starts; call it before importing TensorFlow.

    How: ``TF_CPP_MIN_LOG_LEVEL=2`` for TensorFlow's own logging, and, since the absl logging of
    recent TensorFlow ignores that variable, file descriptor 2 is replaced by a pipe whose reader
    thread forwards every other line to the real stderr (line-buffered; Python tracebacks, warnings
    and ``E`` lines other than cuInit pass through; a progress bar's carriage-return redraws pass at
    once). Does nothing with ``verbose=True``, when called a
    second time, or when stderr is not a real file descriptor (e.g. under pytest's capture).
    """
    global _installed
    if verbose or _installed:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        real = os.dup(2)
    except OSError:
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    _installed = True

    def forward():
        with os.fdopen(read_end, "rb", buffering=0) as src, os.fdopen(real, "wb", buffering=0) as dst:
            pending = b""
            while True:
                chunk = src.read(65536)
                if not chunk:
                    break
                pending += chunk
                # a line ends at "\n"; a progress bar redraws itself with "\r" and no newline until it closes:
                # forward each "\r" piece at once, or the bars of long steps would stay hidden until their end
                *pieces, pending = _PIECES.split(pending)
                for text, end in zip(pieces[0::2], pieces[1::2]):
                    if end == b"\r" or not _is_noise(text):
                        dst.write(text + end)
            if pending and not _is_noise(pending):
                dst.write(pending)

    thread = threading.Thread(target=forward, name="tfvideo-stderr-filter", daemon=True)
    thread.start()

    import atexit

    def flush():
        sys.stderr.flush()
        os.dup2(real_copy, 2)  # closes the pipe's last write end in this process: the reader ends
        thread.join(timeout=2)

    real_copy = os.dup(real)
    atexit.register(flush)


def run_main(main, argv=None) -> None:
    """``sys.exit(main(argv))`` for ``python -m`` entry points, with TensorFlow's native log lines
    hidden unless ``--verbose`` is among the arguments (see :func:`quiet_native_logs`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_native_logs(verbose="--verbose" in argv)
    result = main(argv)
    sys.exit(result if isinstance(result, int) else 0)


def timed_log():
    """A ``log(message)`` that prints ``[   12s] message`` (seconds since this call), flushed."""
    import time

    started = time.time()

    def log(message):
        print(f"[{time.time() - started:6.0f}s] {message}", flush=True)

    log.started = started
    return log
