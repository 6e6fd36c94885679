"""What training through TVNet costs: a training step of the temporal stream with TVNet trainable against the
same step with TVNet frozen, side by side in one run (issue 15's target: trainable <= 3x frozen).

    python benchmarks/tvnet_train.py [--quick] [--sizes 48 96] [--iterations 50] [--batch 4] [--repeats 5]
                                     [--modes graph xla_iterations jit] [--json out.json]

The model is the recipe's (``tfvideo.models.tvnet.temporal_stream``: TVNet-``iterations`` on the 5 pairs of
each 6-frame stack, 3 segments, the ``small`` CNN, ``L = L_c + 0.1 L_f``) and the step is Keras's
``train_on_batch`` after a warm-up call (trace + compile excluded; the first call is reported apart).
Modes:

* ``graph``: ``model.compile(jit_compile=False)``, TVNet without XLA (TF's while-loop gradients);
* ``xla_iterations``: TVNet(xla_iterations=True) (each warp's iterations in one XLA cluster, the backward
  pass recomputes them: ``tfvideo/layers/tvnet.py::_xla_with_recomputed_gradient``), step not compiled;
* ``jit``: as the recipe trains: ``xla_iterations`` and ``model.compile(jit_compile=True)``.

Rows are timed in the same rounds, interleaved (medians), by default in CPU time of the process (all its threads:
on a shared machine other processes stretch wall time, by different amounts for different rows; ``--clock wall``
for wall time). Memory: the peak of TF's CPU allocator during one training step
(``tf.config.experimental.get_memory_info``, reset before the step; it counts the XLA executables' buffers too,
and the model's weights and the batch). Until 2026-12-06 this column showed the growth of the process's peak
resident set per model, which depends on the rows measured before it (``ru_maxrss`` only grows).
No timing is asserted anywhere (tests/test_benchmarks_tvnet_train.py runs a tiny configuration).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo.files import atomic_write_json  # noqa: E402

# the interleaved timing rounds of benchmarks/video_heads.py (one call of each row per round, medians)
_spec = importlib.util.spec_from_file_location("_video_heads", pathlib.Path(__file__).with_name("video_heads.py"))
_heads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_heads)

MODES = ("graph", "xla_iterations", "jit")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _step_peak_mb(step):
    """The peak of TF's CPU allocator (MB) during one call of ``step``."""
    tf.config.experimental.reset_memory_stats("CPU:0")
    step()
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2 ** 20


def build(size, iterations, mode, trainable):
    import keras

    from tfvideo.models.tvnet import temporal_stream

    tv = {"iterations": iterations, "xla_iterations": mode != "graph"}
    model = temporal_stream(8, size=(size, size), tvnet=tv, train_tvnet=trainable)
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=mode == "jit")
    return model


def rows(size, iterations, modes, batch, rounds, clock=time.process_time):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, 3, 6, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 8, (batch,))
    calls, first, memory = {}, {}, {}
    for mode in modes:
        for trainable in (False, True):
            name = f"{mode} | TVNet {'trainable' if trainable else 'frozen'}"
            model = build(size, iterations, mode, trainable)
            start = time.perf_counter()
            model.train_on_batch(x, y)
            first[name] = time.perf_counter() - start
            memory[name] = _step_peak_mb(lambda: model.train_on_batch(x, y))
            calls[name] = lambda m=model: m.train_on_batch(x, y)
    return _heads.interleaved(calls, rounds, clock), first, memory


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: 32 px, TVNet-5, 1 round")
    p.add_argument("--sizes", type=int, nargs="+", help="crop sizes (default 48 96)")
    p.add_argument("--iterations", type=int, help="TVNet iterations (default 50: TVNet-50)")
    p.add_argument("--modes", nargs="+", choices=MODES, help=f"default: {' '.join(MODES)}")
    p.add_argument("--batch", type=int, default=4, help="videos per step (3 stacks of 6 frames each)")
    p.add_argument("--repeats", type=int, help="timed rounds (default 5; --quick 1)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="time steps by the process's CPU time (all threads) or by wall time")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    sizes = args.sizes or ([32] if args.quick else [48, 96])
    iterations = args.iterations or (5 if args.quick else 50)
    modes = args.modes or list(MODES)
    rounds = args.repeats or (1 if args.quick else 5)
    import keras

    log(f"{os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}; batch {args.batch} x 3 stacks "
        f"x 5 pairs, TVNet-{iterations}")
    keras.utils.set_random_seed(0)
    out = {"argv": sys.argv[1:] if argv is None else list(argv), "batch": args.batch, "iterations": iterations,
           "clock": args.clock,
           "rounds": rounds, "sizes": {}}
    for size in sizes:
        times, first, memory = rows(size, iterations, modes, args.batch, rounds,
                                    time.process_time if args.clock == "cpu" else time.perf_counter)
        out["sizes"][size] = {"step": times, "first_call": first, "memory_mb": memory}
        print(f"\ntraining step of the temporal stream at {size} x {size} (TVNet-{iterations}, batch {args.batch})")
        print(f"  {'mode | TVNet':36s} {args.clock + ' ms':>9s} {'vs frozen':>10s} {'first call s':>13s} {'peak MB':>8s}")
        for name, t in times.items():
            mode = name.split(" | ")[0]
            frozen = times[f"{mode} | TVNet frozen"]
            print(f"  {name:36s} {1e3 * t:9.1f} {t / frozen:9.2f}x {first[name]:13.1f} {memory[name]:8.0f}")
        print("  (target of issue 15: trainable <= 3x frozen)")
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
