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
