"""Moved to `keras_sanm.training.callbacks` (this path warns, and goes in the next release)."""

from keras_sanm._moved import moved_module

moved_module(__name__)
