"""ActionFlowNet and conv-feature VLAD (Ng's thesis, chapters 4 and 2) side by side with their peers, in one run.

    python benchmarks/actionflownet_vlad.py [--quick] [--size 128] [--frames 16] [--batch 2] [--repeats 3]
                                            [--json out.json]

Ratios, not absolute times (shared machines are noisy); rows of one table are timed in the same rounds,
interleaved (``benchmarks/video_heads.py::interleaved``), medians over rounds:

1. **ActionFlowNet at inference vs what it replaces.** The thesis's claim (digest 4.6): ActionFlowNet "runs at
   single-stream RGB speed, with no flow computation". Forward of the exported classifier (3D-ResNet-18,
   decoder dropped) against the multitask model with its decoder, and against the two-stream peer it
   avoids: TVNet flow of the clip's frame pairs (``TVNet(1, 5, 10)``, frozen, 48 px wide steps of the
   flow) feeding a second 3D-ResNet-18 on the flow, plus the RGB stream; and C3D (:mod:`tfvideo.models.c3d`,
   the thesis's Table 4.1 peer, 8 conv layers) on the same clip. Also a training step with the flow loss
   (lambda > 0) against one without (lambda = 0: the decoder gets no gradient but still runs).
2. **VLAD tools vs SciPy / NumPy.** k-means (``tfvideo.retrieval.kmeans``, k-means++ + Lloyd) against
   ``scipy.cluster.vq.kmeans2`` (k-means++ init, same iterations) on local features of the built-in photographs
   (time and the final inertia, the quantity k-means minimises); the VLAD layer (TF, one call per batch)
   against a NumPy transcription of Eq. 2.1 per image; ``rank_by_l2`` against a full NumPy distance matrix +
   argsort.

No timing is asserted anywhere (tests/test_benchmarks_actionflownet_vlad.py runs a tiny configuration).
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

_spec = importlib.util.spec_from_file_location("_video_heads", pathlib.Path(__file__).with_name("video_heads.py"))
_heads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_heads)
interleaved, report, log, _step = _heads.interleaved, _heads.report, _heads.log, _heads._step


def actionflownet_rows(batch, frames, size, widths, rounds):
    import keras

    from tfvideo.layers import TVNet
    from tfvideo.losses import FlowEndPointError
    from tfvideo.models.actionflownet import actionflownet, classifier_model, resnet18_encoder
    from tfvideo.models.c3d import c3d_classifier

    rng = np.random.default_rng(0)
    clip = tf.constant(rng.integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8))
    model = actionflownet(8, num_frames=frames, input_size=(size, size), widths=widths)
    classifier = classifier_model(model)

    # the two-stream peer: TVNet flow of the T - 1 consecutive pairs -> a 3D-ResNet-18 on the flow, + RGB
    frames_in = keras.Input((frames, size, size, 3), dtype="uint8")
    grey = keras.ops.mean(keras.ops.cast(frames_in, "float32"), axis=-1, keepdims=True)
    pairs0 = keras.ops.reshape(grey[:, :-1], (-1, size, size, 1))
    pairs1 = keras.ops.reshape(grey[:, 1:], (-1, size, size, 1))
    flow = TVNet(1, 5, 10, trainable=False)([pairs0, pairs1])
    flow = keras.ops.reshape(flow, (-1, frames - 1, size, size, 2))
    flow = keras.ops.concatenate([flow, flow[:, -1:]], axis=1)       # T flows, as the RGB clip's T frames
    taps = resnet18_encoder(flow / 20.0, dims=3, widths=widths, prefix="flow_")
    flow_logits = keras.layers.Dense(8)(keras.layers.GlobalAveragePooling3D()(taps["conv5"]))
    rgb_logits = classifier(frames_in)
    two_stream = keras.Model(frames_in, keras.layers.Average()([rgb_logits, flow_logits]))
    # C3D's four temporal poolings need 16 frames
    c3d = c3d_classifier(8, input_shape=(frames, size, size, 3)) if frames >= 16 and size >= 64 else None

    calls = {}
    for name, m in (("ActionFlowNet classifier (decoder dropped)", classifier),
                    ("ActionFlowNet with its flow decoder", model),
                    ("two-stream peer: + TVNet flow + flow 3D-ResNet-18", two_stream), ("C3D", c3d)):
        if m is None:
            continue
        forward = tf.function(lambda x, m=m: m(x, training=False))
        forward(clip)
        calls[f"{name} | forward"] = lambda f=forward: tf.nest.flatten(f(clip))[0]
    labels = tf.constant(rng.integers(0, 8, (batch,)))
    target = tf.concat([tf.constant(rng.normal(size=(batch, frames, size, size, 2)).astype(np.float32)),
                        tf.ones((batch, frames, size, size, 1))], -1)
    ce, epe = keras.losses.SparseCategoricalCrossentropy(from_logits=True), FlowEndPointError()
    for name, lam in (("ActionFlowNet, lambda 1", 1.0), ("ActionFlowNet, lambda 0", 0.0)):
        _, train = _step(model, lambda y, out, lam=lam: ce(y[0], out["logits"]) + lam * epe(y[1], out["flow"]))
        train(clip, (labels, target))
        calls[f"{name} | train step"] = lambda t=train: t(clip, (labels, target))
    return interleaved(calls, rounds)


def _local_features(size, layer, images):
    from tfvideo.data.retrieval_sets import builtin_retrieval
    from tfvideo.models.retrieval import local_features

    ds = builtin_retrieval(0)
    net = local_features("vgg16", [layer])
    import cv2

    batch = np.stack([cv2.resize(ds.load_image(i), (size, size), interpolation=cv2.INTER_AREA)
                      for i in range(min(images, ds.num_images))])
    return np.asarray(net(batch)[layer])                             # (N, h, w, D), unit vectors


def _inertia(x, centers):
    from tfvideo.retrieval import nearest_centers

    _, d2 = nearest_centers(x, centers)
    return float(d2.sum())


def vlad_rows(size, layer, images, k, rounds):
    from scipy.cluster.vq import kmeans2

    from tfvideo.layers import VLAD
    from tfvideo.retrieval import kmeans, rank_by_l2

    maps = _local_features(size, layer, images)
    feats = maps.reshape(-1, maps.shape[-1]).astype(np.float32)
    times, extra = {}, {}
    for name, fn in (("tfvideo.retrieval.kmeans (k-means++, Lloyd)", lambda: kmeans(feats, k, seed=0, iterations=20)),
                     ("scipy.cluster.vq.kmeans2 (k-means++)", lambda: kmeans2(feats, k, iter=20, minit="++", seed=0)[0])):
        start = time.perf_counter()
        centers = np.asarray(fn(), np.float32)
        times[f"{name} | k-means, {len(feats):,} x {feats.shape[1]}"] = time.perf_counter() - start
        extra[name] = _inertia(feats, centers)
    centers = kmeans(feats, k, seed=0, iterations=20)
    layer_ = VLAD(k)
    layer_.set_centers(centers)
    encode = tf.function(lambda x: layer_(x))
    encode(maps)

    def numpy_vlad():
        out = []
        for m in maps:
            f = m.reshape(-1, m.shape[-1])
            nn = np.argmin(((f[:, None] - centers[None]) ** 2).sum(-1), 1)
            v = np.stack([(f[nn == j] - centers[j]).sum(0) for j in range(k)])
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            v = v.ravel()
            out.append(v / max(np.linalg.norm(v), 1e-12))
        return np.stack(out)

    descs = np.asarray(encode(maps))
    db = np.repeat(descs, 8, axis=0) + np.random.default_rng(1).normal(0, 0.01, (8 * len(descs), descs.shape[1]))
    db = db.astype(np.float32)

    def numpy_rank():
        d = ((descs[:, None].astype(np.float64) - db[None]) ** 2).sum(-1)
        return np.argsort(d, axis=1, kind="stable")

    timed = interleaved({
        f"VLAD layer (TF) | encode {len(maps)} images": lambda: encode(maps),
        f"NumPy Eq. 2.1 per image | encode {len(maps)} images": numpy_vlad,
        f"rank_by_l2 | rank {len(descs)} x {len(db)}": lambda: rank_by_l2(descs, db),
        f"NumPy full distances + argsort | rank {len(descs)} x {len(db)}": numpy_rank}, rounds)
    times.update(timed)
    return times, extra


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, 1 round")
    p.add_argument("--size", type=int, help="clip frame size (default 128; multiple of 32)")
    p.add_argument("--frames", type=int, help="clip length T (default 16; multiple of 8)")
    p.add_argument("--widths", type=int, nargs=4, help="ResNet-18 widths (default 64 128 256 512)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, help="timed rounds (default 3; --quick 1)")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    size = args.size or (32 if args.quick else 128)
    frames = args.frames or (8 if args.quick else 16)
    widths = tuple(args.widths or ((4, 8, 8, 16) if args.quick else (64, 128, 256, 512)))
    rounds = args.repeats or (1 if args.quick else 3)
    import keras

    log(f"{os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}; batch {args.batch}, "
        f"T = {frames}, {size} x {size}, widths {widths}")
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    out = {"argv": sys.argv[1:] if argv is None else list(argv), "batch": args.batch, "frames": frames, "size": size,
           "widths": list(widths), "rounds": rounds}
    out["actionflownet"] = actionflownet_rows(args.batch, frames, size, widths, rounds)
    report(f"1. ActionFlowNet at inference and in training, clips ({args.batch}, {frames}, {size}, {size}, 3)",
           out["actionflownet"], "ActionFlowNet classifier (decoder dropped)")
    steps = out["actionflownet"]
    print(f"  train step with the flow loss / without it: {steps['ActionFlowNet, lambda 1 | train step'] / steps['ActionFlowNet, lambda 0 | train step']:.2f}x "
          "(the thesis: at inference ActionFlowNet costs a single RGB stream, no flow computation)")
    vsize, images, k = (64, 8, 8) if args.quick else (224, 32, 100)
    out["vlad"], inertia = vlad_rows(vsize, "block4_conv2", images, k, rounds)
    print(f"\n2. VLAD tools on VGG16 (random weights) block4_conv2 local features of {images} built-in photos at "
          f"{vsize} x {vsize}, k = {k}")
    print(f"  {'tool | task':66s} {'ms':>10s}")
    for name, t in out["vlad"].items():
        print(f"  {name:66s} {1e3 * t:10.1f}")
    ours, peer = inertia.values()
    print(f"  k-means inertia: ours {ours:.1f}, SciPy {peer:.1f} (ratio {ours / peer:.3f}; lower is better)")
    out["kmeans_inertia"] = inertia
    log(f"done in {time.perf_counter() - start:.0f} s")
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
