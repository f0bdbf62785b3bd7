"""Moved to `keras_sanm.sanm.noisy_mask` (this path warns, and goes in the next release)."""

from keras_sanm._moved import moved_module

moved_module(__name__)
