"""Conv-feature VLAD image retrieval (Ng's thesis, chapter 2): ``python -m recipes.vlad_retrieval``.

local features of every chosen conv layer at two scales (images warped to 224 x 224 and 448 x 448,
per-location L2 normalisation) -> one k-means codebook (k = 100) per layer and scale -> VLAD
(hard assignment, residual sums, intra-normalisation, final L2) -> L2 ranking -> mAP per layer and
scale, the two scales concatenated, and the best layer PCA-whitened to 128-D -> a table with the thesis's
figures beside when the data is Holidays / Oxford / Paris -> export of the best layer's descriptor model
(``serving_default``: uint8 ``images`` ``(B, H, W, 3)``, any size -> ``descriptor`` (+ per-scale VLADs,
``descriptor_pca`` when fitted)).

Data (``--dataset``):

* ``builtin`` (default): the offline benchmark of :func:`tfvideo.data.retrieval_sets.builtin_retrieval`,
  real photographs (scikit-image) seen through crops, rotations, scale, colour and JPEG changes; each query's
  positives are the database views of its photo.
* ``holidays``, ``oxford5k``, ``paris6k`` with ``--data-dir`` (readers and protocols:
  :mod:`tfvideo.data.retrieval_sets`; Oxford/Paris query ROIs ignored, as the thesis does).

Backbones: ``vgg16`` (the thesis's) and ``inception_v3`` (our stand-in for GoogLeNet, which Keras lacks:
a deviation, digest 2.6 q9). Weights: ImageNet on real data (Keras downloads them on first use: a clear
error when offline; ``--weights none`` opts out, or give a weights file); the built-in benchmark runs
with **random weights** by default so that nothing is downloaded: its table shows what VLAD of untrained
conv features retrieves, not the thesis's ImageNet findings (pass ``--weights imagenet`` to see those).

Choices where the thesis is silent (digest 2.6): the codebook of each layer and scale is learnt on the
database images themselves (at most ``--kmeans-images`` of them, at most ``--kmeans-features`` local
features in all, drawn evenly per image: 100,000 on real data, 25,000 on the small built-in set; q1); PCA-whitening is fitted on the database descriptors
(q2; capped below the number of database images when there are fewer than 129).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

NAME = "vlad_retrieval"
#: The thesis's Table 2.2 (uncompressed multi-scale VLAD) and 2.3 (PCA-whitened to 128-D), mAP %.
PAPER = {
    ("vgg16", "full"): {"holidays": 83.8, "oxford5k": 64.9, "paris6k": 69.4},
    ("googlenet", "full"): {"holidays": 84.0, "oxford5k": 58.1, "paris6k": 68.8},
    ("vgg16", "pca"): {"holidays": 81.6, "oxford5k": 59.3, "paris6k": 59.0},
    ("googlenet", "pca"): {"holidays": 83.6, "oxford5k": 55.8, "paris6k": 58.3},
}
#: The thesis's best layers (digest 2.4), in Keras names (InceptionV3 has no GoogLeNet names).
PAPER_BEST = {"vgg16": {"holidays": "block4_conv2", "oxford5k": "block5_conv1", "paris6k": "block5_conv2"}}


def build_parser():
    from tfvideo import cli
    from tfvideo.models.retrieval import BACKBONES

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.{NAME}", description=(
        "Conv-feature VLAD retrieval (Ng's thesis ch. 2): mAP of every chosen conv layer at one and two scales."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=("builtin", "holidays", "oxford5k", "paris6k"), default="builtin")
    p.add_argument("--data-dir", help="root of Holidays / Oxford5k / Paris6k (images + ground truth)")
    p.add_argument("--backbone", default="vgg16", help=f"{' or '.join(BACKBONES)} (the thesis's, and the stand-in "
                   "for GoogLeNet), or any keras.applications model name (e.g. ResNet50; give --layers)")
    p.add_argument("--layers", nargs="+", help="conv layers to compare (default: a low, two middle and the last; "
                                               "'all' for every layer of the backbone)")
    p.add_argument("--weights", help="'imagenet' (downloads; default on real data), 'none' (default on the "
                                     "built-in set) or a weights file of the stock network")
    p.add_argument("--size", type=cli.int_type(32), default=224, help="side n of the warped image at scale 1")
    p.add_argument("--scales", type=pos, nargs="+", default=[1, 2], help="scales (1: n x n, 2: 2n x 2n)")
    p.add_argument("--k", type=cli.int_type(2), default=100, help="visual words per codebook")
    p.add_argument("--kmeans-images", type=pos, default=200, help="database images the codebooks learn from")
    p.add_argument("--kmeans-features", type=pos, help="local features per codebook (default 100,000 on real data, "
                                                        "25,000 on the built-in set)")
    p.add_argument("--pca", type=cli.int_type(0), default=128, help="PCA-whitening dimension (0: none)")
    p.add_argument("--batch-size", type=pos, default=8)
    p.add_argument("--run-dir", help=f"output folder (default runs/{NAME}/<time>)")
    p.add_argument("--export", default=f"saved_models/{NAME}", help="TF Serving export: <base_dir>/<name>")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    cli.add_output_flags(p)
    return p


def resolve(args):
    from tfvideo.models.retrieval import BACKBONES, DEFAULT_LAYERS

    weights = args.weights or ("none" if args.dataset == "builtin" else "imagenet")
    layers = args.layers or list(DEFAULT_LAYERS.get(args.backbone, []))
    if layers == ["all"]:
        layers = list(BACKBONES.get(args.backbone, ["all"]))
    return dict(dataset=args.dataset, data_dir=args.data_dir, backbone=args.backbone, layers=layers,
                weights=None if weights.lower() == "none" else weights, size=args.size,
                scales=sorted(set(args.scales)), k=args.k, kmeans_images=args.kmeans_images,
                kmeans_features=args.kmeans_features or (25_000 if args.dataset == "builtin" else 100_000),
                pca=args.pca, batch_size=args.batch_size, seed=args.seed)


def check_args(args, cfg):
    from tfvideo.checks import check_model_name
    from tfvideo.models.retrieval import BACKBONES, backbone_layers

    if cfg["dataset"] != "builtin" and not (args.data_dir and os.path.isdir(args.data_dir)):
        return [f"--dataset {cfg['dataset']} needs --data-dir with the images and ground truth"]
    if cfg["dataset"] == "builtin" and args.data_dir:
        return ["--data-dir needs --dataset holidays, oxford5k or paris6k"]
    try:
        names = backbone_layers(cfg["backbone"])
    except ValueError as err:
        return [f"--backbone: {err}"]
    if not cfg["layers"] or cfg["layers"] == ["all"]:
        return [f"--layers: give the layers of {cfg['backbone']} to compare (e.g. {', '.join(names[-3:])})"]
    bad = [name for name in cfg["layers"] if name not in names]
    if bad:
        shown = ", ".join(names) if len(names) <= 20 else ", ".join(names[:10]) + ", ..."
        return [f"--layers: {', '.join(bad)} not in {cfg['backbone']} (choose from {shown}"
                + (", or 'all')" if cfg["backbone"] in BACKBONES else ")")]
    if cfg["weights"] not in (None, "imagenet") and not os.path.isfile(cfg["weights"]):
        return [f"--weights {cfg['weights']}: expected 'imagenet', 'none' or an existing weights file"]
    if not args.no_export:
        try:
            check_model_name(os.path.basename(os.path.normpath(args.export)), "--export's last part")
        except ValueError as err:
            return [str(err)]
    return []


def load_dataset(cfg):
    from tfvideo.data import retrieval_sets

    if cfg["dataset"] == "builtin":
        return retrieval_sets.builtin_retrieval(cfg["seed"])
    return getattr(retrieval_sets, cfg["dataset"])(cfg["data_dir"])


# ------------------------------------------------------------------------------------ features ----
def _same_shape_batches(load, indices, batch_size):
    """Images of ``indices`` (loaded by ``load(i)``) in batches of equal shape (else one at a time)."""
    batch, ids = [], []
    for i in indices:
        img = load(i)
        if batch and (img.shape != batch[0].shape or len(batch) == batch_size):
            yield ids, np.stack(batch)
            batch, ids = [], []
        batch.append(img)
        ids.append(i)
    if batch:
        yield ids, np.stack(batch)


def readable(dataset, log):
    """The dataset without the images that cannot be decoded (listed in the log)."""
    from tfvideo.data.items import ReadError

    bad = []
    for i in range(dataset.num_images):  # decoded once here, so that the passes below meet no bad file
        try:
            dataset.load_image(i)
        except ReadError as err:
            bad.append((i, err.reason))
    names = [str(dataset.database[i]) for i, _ in bad]
    if bad:
        for i, reason in bad:
            log(f"  skipped {dataset.database[i]}: {reason}")
        dataset = dataset.without_images([i for i, _ in bad], "unreadable")
    return dataset, names


def codebooks(features, dataset, cfg, log, progress):
    """One k-means codebook per output (layer and scale), from local features of database images."""
    from tqdm import tqdm

    from tfvideo.retrieval import kmeans

    rng = np.random.default_rng(cfg["seed"])
    n = dataset.num_images
    chosen = np.sort(rng.choice(n, size=min(n, cfg["kmeans_images"]), replace=False))
    per_image = max(1, -(-cfg["kmeans_features"] // len(chosen)))
    samples = {name: [] for name in features.output}
    step = _step(features)
    with tqdm(total=len(chosen), desc="codebook features", unit="image", disable=not progress) as bar:
        for _, images in _same_shape_batches(dataset.load_image, chosen, cfg["batch_size"]):
            maps = step(images)
            for name, m in maps.items():
                m = np.asarray(m).reshape(len(images), -1, m.shape[-1])
                for one in m:
                    take = rng.choice(len(one), size=min(len(one), per_image), replace=False)
                    samples[name].append(one[take])
            bar.update(len(images))
    centers = {}
    for name, parts in samples.items():
        x = np.concatenate(parts)
        t = time.time()
        centers[name] = kmeans(x, cfg["k"], seed=cfg["seed"])
        log(f"  k-means {name}: {len(x):,} features of {x.shape[1]} dims from {len(chosen)} images -> "
            f"{cfg['k']} centres ({time.time() - t:.1f} s)")
    return centers


def _step(model):
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def encode(model, load, count, cfg, progress, desc):
    """VLAD descriptors of ``count`` images: ``{name: (count, K * D) float32}``."""
    from tqdm import tqdm

    step = _step(model)
    out = {}
    with tqdm(total=count, desc=desc, unit="image", disable=not progress) as bar:
        for ids, images in _same_shape_batches(load, range(count), cfg["batch_size"]):
            for name, d in step(images).items():
                if name not in out:
                    out[name] = np.zeros((count, d.shape[-1]), np.float32)
                out[name][ids] = np.asarray(d)
            bar.update(len(ids))
    return out


def _l2(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def evaluate(db, queries, dataset):
    """mAP of L2 ranking of ``queries`` (Q, D) against ``db`` (N, D) under the dataset's protocol."""
    from tfvideo.retrieval import mean_average_precision, rank_by_l2

    return mean_average_precision(rank_by_l2(queries, db), dataset.positives, dataset.junk)[0]


def query_rows(dataset, db_desc, query_desc):
    """Query descriptors: the database rows of database queries, else the separately encoded ones."""
    q = np.asarray(dataset.queries)
    if np.all(q >= 0):
        return db_desc[q]
    return query_desc


# ---------------------------------------------------------------------------------------- export ----
def export_model(features, centers, best, cfg, pca, path_arg, quiet):
    """images -> {"descriptor": the best layer's scales concatenated and L2-normalised, "<layer>_s<k>": ...,
    "descriptor_pca": PCA-whitened (if fitted)}."""
    import keras
    import tensorflow as tf

    from tfvideo.export import export_for_serving, function_signature
    from tfvideo.layers.vlad import LocalL2Normalize
    from tfvideo.models.retrieval import output_name, vlad_model

    names = [output_name(best, s) for s in cfg["scales"]]
    vlad = vlad_model(features, {n: centers[n] for n in names})
    images = keras.Input((None, None, 3), name="images")
    parts = vlad(images)
    joined = parts[names[0]] if len(names) == 1 else keras.layers.Concatenate(name="scales")([parts[n] for n in names])
    outputs = {**parts, "descriptor": LocalL2Normalize(name="descriptor")(joined)}
    if pca is not None:
        dense = keras.layers.Dense(pca.dim, name="pca_whitening")
        dense.build((None, pca.input_dim))
        kernel = (pca.components_ / np.sqrt(pca.eigenvalues_ + pca.eps)[:, None]).T.astype(np.float32)
        dense.set_weights([kernel, (-pca.mean_ @ kernel).astype(np.float32)])
        outputs["descriptor_pca"] = LocalL2Normalize(name="descriptor_pca")(dense(outputs["descriptor"]))
    model = keras.Model(images, outputs, name="vlad_retrieval")
    base_dir, name = os.path.split(os.path.normpath(path_arg))
    spec = {"images": tf.TensorSpec((None, None, None, 3), tf.uint8)}
    path = export_for_serving(model, base_dir or ".", name, print_signatures=not quiet,
                              signatures={"serving_default": function_signature(model, spec, None)})
    return path, model


# ------------------------------------------------------------------------------------------ main ----
def main(argv=None):
    from tfvideo.cli import timed_log
    from tfvideo.files import atomic_write_json

    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = resolve(args)
    for problem in check_args(args, cfg):
        parser.error(problem)
    log = timed_log()
    run_dir = args.run_dir or os.path.join("runs", NAME, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    progress = not args.quiet

    import keras

    from tfvideo.models.retrieval import multiscale_features, output_name, vlad_model
    from tfvideo.retrieval import PCAWhitening

    keras.utils.set_random_seed(cfg["seed"])
    try:
        dataset = load_dataset(cfg)
    except (OSError, ValueError) as err:
        parser.error(f"--data-dir {cfg['data_dir']}: {err}")
    dataset, skipped = readable(dataset, log)
    log(f"data: {dataset.describe()}")
    try:
        features = multiscale_features(cfg["backbone"], cfg["layers"], size=cfg["size"], scales=tuple(cfg["scales"]),
                                       weights=cfg["weights"])
    except Exception as err:  # noqa: BLE001 -- the download of ImageNet weights fails offline
        if cfg["weights"] == "imagenet":
            parser.error(f"could not get {cfg['backbone']}'s ImageNet weights ({type(err).__name__}: {err}); "
                         "they are downloaded by Keras on first use: run once with network access, or pass "
                         "--weights none / a weights file")
        raise
    log(f"{cfg['backbone']} ({cfg['weights'] or 'random weights'}), layers {', '.join(cfg['layers'])}, scales "
        f"{cfg['scales']} (n = {cfg['size']}), k = {cfg['k']}")
    centers = codebooks(features, dataset, cfg, log, progress)
    model = vlad_model(features, centers)
    db = encode(model, dataset.load_image, dataset.num_images, cfg, progress, "database")
    separate = not np.all(np.asarray(dataset.queries) >= 0)
    qd = encode(model, dataset.load_query, dataset.num_queries, cfg, progress, "queries") if separate else {}

    table, results = [], {}
    for layer in cfg["layers"]:
        row = {}
        for s in cfg["scales"]:
            name = output_name(layer, s)
            row[f"s{s}"] = evaluate(db[name], query_rows(dataset, db[name], qd.get(name)), dataset)
        if len(cfg["scales"]) > 1:
            names = [output_name(layer, s) for s in cfg["scales"]]
            d = _l2(np.concatenate([db[n] for n in names], 1))
            q = _l2(np.concatenate([query_rows(dataset, db[n], qd.get(n)) for n in names], 1))
            row["multi"] = evaluate(d, q, dataset)
        results[layer] = row
    key = "multi" if len(cfg["scales"]) > 1 else f"s{cfg['scales'][0]}"
    best = max(cfg["layers"], key=lambda layer: results[layer][key])
    names = [output_name(best, s) for s in cfg["scales"]]
    best_db = _l2(np.concatenate([db[n] for n in names], 1))
    best_q = _l2(np.concatenate([query_rows(dataset, db[n], qd.get(n)) for n in names], 1))
    pca, pca_map, pca_note = None, None, "off (--pca 0)"
    if cfg["pca"]:
        dim = min(cfg["pca"], len(best_db) - 1)
        try:
            pca = PCAWhitening().fit(best_db, dim)
            pca_map = evaluate(pca.transform(best_db), pca.transform(best_q), dataset)
            pca_note = f"{dim}-D" + ("" if dim == cfg["pca"] else f" (capped: {len(best_db)} database images)")
        except ValueError as err:
            pca, pca_note = None, f"not possible: {err}"

    real = cfg["dataset"] != "builtin"
    paper_net = "googlenet" if cfg["backbone"] == "inception_v3" else "vgg16"
    d_k = {layer: int(db[output_name(layer, cfg["scales"][0])].shape[1]) for layer in cfg["layers"]}
    header = f"  {'layer':14s} {'K x D':>8s} " + " ".join(f"{'scale ' + str(s):>9s}" for s in cfg["scales"])
    header += f" {'scales 1+2':>11s}" if len(cfg["scales"]) > 1 else ""
    table.append(f"mAP (%) on {cfg['dataset']} ({dataset.num_queries} queries, {dataset.num_images} database "
                 f"images), {cfg['backbone']} {cfg['weights'] or 'random weights'}, k = {cfg['k']}:")
    table.append(header)
    for layer in cfg["layers"]:
        row = results[layer]
        line = f"  {layer:14s} {d_k[layer]:8d} " + " ".join(f"{100 * row[f's{s}']:9.1f}" for s in cfg["scales"])
        if "multi" in row:
            line += f" {100 * row['multi']:11.1f}"
        table.append(line + ("   <- best" if layer == best else ""))
    last = cfg["layers"][-1]
    table.append(f"  best layer {best} ({100 * results[best][key]:.1f}) vs the last listed layer {last} "
                 f"({100 * results[last][key]:.1f}); the thesis: middle layers beat the last (GoogLeNet on "
                 "Holidays, scale 1: 82.0 vs 68.5)")
    if pca_map is not None:
        table.append(f"  {best}, scales concatenated, PCA-whitened {pca_note}: {100 * pca_map:.1f}")
    else:
        table.append(f"  PCA-whitening: {pca_note}")
    if real:
        full, low = PAPER[(paper_net, "full")][cfg["dataset"]], PAPER[(paper_net, "pca")][cfg["dataset"]]
        sub = " (GoogLeNet's; ours is InceptionV3)" if paper_net == "googlenet" else ""
        table.append(f"  the thesis{sub}: {full:.1f} uncompressed (Table 2.2), {low:.1f} at 128-D (Table 2.3)"
                     + (f"; best layer {PAPER_BEST[paper_net][cfg['dataset']]}" if paper_net in PAPER_BEST else ""))
    else:
        table.append("  (built-in benchmark: no thesis figures; random weights unless --weights is given)")
    for line in table:
        log(line)
    summary = {"config": cfg, "results": results, "best_layer": best, "pca": pca_map, "pca_note": pca_note,
               "skipped": skipped}
    atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
    with open(os.path.join(run_dir, "table.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(table) + "\n")
    if skipped:
        log(f"skipped {len(skipped)} unreadable image(s): {', '.join(map(str, skipped))}")
    path = None
    if not args.no_export:
        path, _ = export_model(features, centers, best, cfg, pca, args.export, args.quiet)
        log(f"exported the {best} descriptor model to {path} (serving_default: images (B, H, W, 3) uint8 -> "
            "descriptor" + (", descriptor_pca" if pca is not None else "") + ")")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": results, "best_layer": best, "pca": pca_map, "export": path,
            "run_dir": run_dir, "model": model, "dataset": dataset, "centers": centers}


if __name__ == "__main__":
    from tfvideo.cli import run_main

    run_main(main)
