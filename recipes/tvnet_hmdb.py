"""TVNet action recognition on HMDB51 (seed 002, Sec. 5.2): ``python -m recipes.tvnet_hmdb``.

Without ``--data-dir`` it generates the built-in ``motion`` dataset in HMDB51's layout and runs the
same path on it with the ``cpu`` profile (under 15 minutes on 2 cores). See
:mod:`recipes.tvnet_common` for the steps and the two profiles, ``--help`` for every option.
"""

from recipes.tvnet_common import run
from tfvideo.cli import run_main


def main(argv=None):
    return run(argv, "hmdb51", __doc__.splitlines()[0])


if __name__ == "__main__":
    run_main(main)
