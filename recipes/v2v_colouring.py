"""V2V video colouring, grey in, RGB out (seed 000, Sec. 6): ``python -m recipes.v2v_colouring``.

Without ``--data-dir`` it generates the built-in ``objects`` set and runs the same path on it with the
``cpu`` profile (under 15 minutes on 2 cores). See :mod:`recipes.v2v_common` for the steps and the two
profiles, ``--help`` for every option.
"""

from recipes.v2v_common import run
from tfvideo.cli import run_main


def main(argv=None):
    return run(argv, "colour", __doc__.splitlines()[0])


if __name__ == "__main__":
    run_main(main)
