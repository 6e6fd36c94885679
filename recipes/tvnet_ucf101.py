"""TVNet action recognition on UCF101 (seed 002, Sec. 5.2): ``python -m recipes.tvnet_ucf101``.

Same code as :mod:`recipes.tvnet_hmdb` with UCF101's layout and schedule (18000 iterations, lr / 10
at 10000 and 16000). Without ``--data-dir`` it runs on the built-in ``motion`` set.
"""

from recipes.tvnet_common import run
from tfvideo.cli import run_main


def main(argv=None):
    return run(argv, "ucf101", __doc__.splitlines()[0])


if __name__ == "__main__":
    run_main(main)
