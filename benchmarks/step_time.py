"""Script form of `keras-sanm bench speed` (see keras_sanm/benchmarks/step_time.py)."""

import sys

from keras_sanm.benchmarks.step_time import main, median_time  # noqa: F401 (used by siblings)

if __name__ == "__main__":
    sys.exit(main())
