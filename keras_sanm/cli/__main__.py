"""`python -m keras_sanm.cli`: the `keras-sanm` command."""

import sys

from keras_sanm.cli import main

sys.exit(main())
