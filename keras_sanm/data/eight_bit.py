"""`EightBitPixels`: what a data side needs when its augmentations take 8-bit pixels."""

from __future__ import annotations

import numpy as np

from keras_sanm.data.augment import black_level
from keras_sanm.data.normalization import raw_batch


class EightBitPixels:
    """Batches for 8-bit augmentations (the strong views are PIL operations).

    The class using it holds `images` and `pixel_scale` (`None` for uint8
    images; else the scale read once from the whole set: 1.0 or 255.0).
    Float images are converted batch by batch, so there is no second copy
    of the set and images read on access stay on disk; augmented pixels go
    back to the images' own scale. Standardised images (`pixel_scale` `None`,
    floats) reach the package's own augmentations with their black at 0,
    where those pad (`keras_sanm.data.augment.black_level`), and the user's
    callables as they are (`builtin_views` false).
    """

    _black_level = False  # not read yet
    builtin_views = True  # every augmentation is one of the package's named ones

    def _black(self) -> np.ndarray | None:
        """`black_level` of the images, read once (`None` unless standardised and
        every augmentation is the package's own)."""
        if not self.builtin_views:
            return None
        if self._black_level is False:
            self._black_level = black_level(self.images)
        return self._black_level

    def _pixels(self, indices) -> np.ndarray:
        """The given samples as the augmentations take them (8-bit where scaled)."""
        images = self.images[indices]
        if self.pixel_scale is None:
            # Standardised floats: black moved to 0, where the augmentations pad.
            black = self._black()
            return images if black is None else np.asarray(images, np.float32) - black
        return np.round(np.asarray(images, np.float32)
                        * np.float32(255.0 / self.pixel_scale)).astype(np.uint8)

    def _in_own_scale(self, images) -> np.ndarray:
        """Augmented 8-bit pixels back in the scale of the given images."""
        if self.pixel_scale is None:
            black = self._black()
            return raw_batch(images) if black is None else raw_batch(images) + black
        return np.asarray(images, np.float32) * np.float32(self.pixel_scale / 255.0)
