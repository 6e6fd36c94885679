"""The start every recipe shares: arguments checked, strategy first, then the run folder, the config on
disk, the seed and the shards."""

from __future__ import annotations

from tfvideo.files import atomic_write_json


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
