"""The start every recipe shares: arguments checked, strategy first, then the run folder, the config on
disk, the seed and the shards."""

from __future__ import annotations

from tfvideo.files import atomic_write_json


def add_run_flags(p, name, *, data_out, dry_run):
    """The flags every recipe on the shared harness has, after its own: ``--videos`` (built-in set size),
    the strategy, the run folder, shards (``data_out``: the help naming the default folder), export,
    workers, seed, ``--dry-run`` (``dry_run``: its help) and the output flags."""
    from tfvideo import cli

    p.add_argument("--videos", type=cli.int_type(2), default=None,
                   help="built-in set: train videos (test: a third of it; default 48)")
    p.add_argument("--strategy", default="auto",
                   choices=("auto", "default", "mirrored", "multiworker", "onedevice"),
                   help="tf.distribute strategy (see recipes/README.md)")
    p.add_argument("--devices", help="comma-separated devices for --strategy mirrored/onedevice")
    p.add_argument("--run-dir", help=f"experiment folder (default runs/{name}/<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--data-out", help=data_out)
    p.add_argument("--export", default=f"saved_models/{name}", help="TF Serving export: <base_dir>/<name>")
    p.add_argument("--workers", type=cli.int_type(1), default=1, help="processes preparing shards")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help=dry_run)
    cli.add_output_flags(p)
    return p


def profile_config(args, profiles, keys, *, real_data_cpu=None):
    """The run's starting config: ``args.profile`` (default ``"cpu"`` on the built-in set, ``"paper"`` with
    ``--data-dir``) copied from ``profiles``, ``real_data_cpu`` merged in for the ``cpu`` profile on real
    data, then every flag of ``keys`` that was given; ``--weights none`` is None and a ``small`` backbone
    never has weights. Returns ``(builtin, profile, cfg)``."""
    builtin = args.data_dir is None
    profile = args.profile or ("cpu" if builtin else "paper")
    cfg = dict(profiles[profile])
    if not builtin and profile == "cpu":
        cfg.update(real_data_cpu or {})
    for key in keys:
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if getattr(args, "weights", None) is not None:
        cfg["weights"] = None if args.weights.lower() == "none" else args.weights
    if cfg.get("backbone") == "small":
        cfg["weights"] = None
    return builtin, profile, cfg


def check_run_args(args, name):
    """The checks every recipe makes last, as texts for ``parser.error``: ``--export``'s last part is a
    valid TF Serving model name, and ``--run-dir`` (default ``runs/<name>/<time>``, set here) is new or,
    with ``--resume``, a run to continue."""
    import os
    import time

    from tfvideo.checks import check_model_name
    from tfvideo.training.run_dir import RunDir

    try:
        check_model_name(os.path.basename(os.path.normpath(args.export)), "--export's last part")
    except ValueError as err:
        return [str(err)]
    if args.run_dir is None:
        args.run_dir = os.path.join("runs", name, time.strftime("%Y%m%d-%H%M%S"))
    problem = RunDir.check_new_or_resume(args.run_dir, args.resume)
    return [problem] if problem else []


def start_run(parser, args, cfg, log):
    """Resolves the strategy (before anything touches TensorFlow: multi-worker needs it first), checks
    that ``cfg["batch_size"]`` splits over the replicas, claims ``args.run_dir`` (the chief writes it, a
    live process training there is refused) and writes ``config.json`` (chief). Problems end the program
    through ``parser.error`` (exit code 2). Returns ``(strategy, chief, run_dir)``."""
    from tfvideo import training

    devices = args.devices.split(",") if args.devices else None
    try:
        strategy = training.resolve_strategy(args.strategy, devices)
        training.replica_batch(cfg["batch_size"], strategy)
    except ValueError as err:
        parser.error(str(err))
    chief = training.is_chief(strategy)
    try:
        run_dir = training.RunDir(args.run_dir).claim(chief)
    except RuntimeError as err:  # another live process trains there
        parser.error(str(err))
    if chief:
        atomic_write_json(run_dir.config_path, cfg)
    log(f"strategy: {training.describe_strategy(strategy)}; global batch {cfg['batch_size']}")
    return strategy, chief, run_dir


def begin(parser, args, cfg, problems, prepare):
    """The opening of a recipe's ``main``: ``problems`` (the recipe's argument checks, found before any
    work) end the program through ``parser.error``; then the log, :func:`start_run`, the seed and the
    shards (``prepare(log, chief, workers)``; a ``ValueError`` from it, e.g. shards of that folder made
    with other writer settings, is a ``parser.error`` too). Returns ``(log, strategy, chief, run_dir,
    data)`` where ``data`` is what ``prepare`` returned."""
    from tfvideo.cli import timed_log

    for problem in problems:  # before any work: nothing written yet
        parser.error(problem)
    log = timed_log()
    strategy, chief, run_dir = start_run(parser, args, cfg, log)

    import keras

    from tfvideo import training

    keras.utils.set_random_seed(cfg["seed"])
    try:
        data = prepare(log, chief, training.num_workers(strategy))
    except ValueError as err:
        parser.error(str(err))
    return log, strategy, chief, run_dir, data


def open_recipe(recipe, argv):
    """A recipe module's ``main`` opening: ``recipe.build_parser()`` parses ``argv``, ``recipe.resolve(args)``
    gives the config, ``recipe.check_args(args, cfg)`` the problems, then :func:`begin` with
    ``recipe.prepare_data(args, cfg, log, chief=..., workers=...)``. Returns ``(args, cfg, log, strategy,
    chief, run_dir, data)``."""
    parser = recipe.build_parser()
    args = parser.parse_args(argv)
    cfg = recipe.resolve(args)
    opened = begin(parser, args, cfg, recipe.check_args(args, cfg),
                   lambda log, chief, workers: recipe.prepare_data(args, cfg, log, chief=chief, workers=workers))
    return (args, cfg, *opened)


def prepare_action_set(args, cfg, log, *, dataset, chief=True, workers=1, item_transform=None, suffix=""):
    """The shards of a classification recipe: the built-in ``motion`` set when ``cfg["dataset"]`` is
    ``"motion"`` (``cfg["videos_per_class"]`` sets its size), else ``dataset`` (``"ucf101"``,
    ``"hmdb51"``) from ``args.data_dir``, split ``cfg["split"]``, frames resized to ``cfg["short_side"]``.
    ``item_transform`` (e.g. a flow teacher) goes to ``prepare``; ``suffix`` is appended to the default
    shard folder's name so that such shards do not meet the plain ones. The chief writes, the other
    workers wait. Returns ``(shard folder, class names)``."""
    import os

    from tfvideo.data.prepare import prepare, wait_until_prepared

    if cfg["dataset"] == "motion":
        name, out, data_dir = "motion", args.data_out or "tfrecords/motion" + suffix, None
        log("data: the built-in 'motion' set (8 camera-motion classes filmed on real photographs: the class is "
            f"in the motion, single frames cannot tell it) -- pass --data-dir for {dataset.upper()}")
    else:
        name, data_dir = dataset, args.data_dir
        out = args.data_out or os.path.join("tfrecords", dataset, f"split{cfg['split']}{suffix}")
        log(f"data: {dataset.upper()} split {cfg['split']} from {data_dir}")
    if not chief:
        wait_until_prepared(out, log=log)
    options = {"videos_per_class": cfg["videos_per_class"]} if name == "motion" and cfg["videos_per_class"] else None
    summary = prepare(name, out, data_dir, split=cfg["split"], workers=args.workers, min_shards=workers,
                      short_side=None if name == "motion" else cfg["short_side"], progress=not args.quiet and chief,
                      log=None if name == "motion" or not chief else log, motion_options=options,
                      item_transform=item_transform)
    counts = {k: v["videos"] for k, v in summary["splits"].items()}
    log(f"shards: {out} ({counts.get('train', 0)} train / {counts.get('test', 0)} test videos, "
        f"{len(summary['classes'])} classes)")
    if not counts.get("train") or not counts.get("test"):
        raise SystemExit("error: the dataset has no train or no test videos")
    return out, list(summary["classes"])
