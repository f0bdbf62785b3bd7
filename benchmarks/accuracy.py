"""Script form of `keras-sanm bench accuracy` (see keras_sanm/benchmarks/accuracy.py)."""

import sys

from keras_sanm.benchmarks.accuracy import main

if __name__ == "__main__":
    sys.exit(main())
