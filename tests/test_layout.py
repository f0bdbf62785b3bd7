"""The layout by concern: old import paths of public names warn and still work, and
models saved before the move load and predict as they did."""

import importlib
import os
import sys

import numpy as np
import pytest

import keras_sanm
from keras_sanm._moved import MOVED_MODULES

from conftest import learnable_problem

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.mark.only_backend("tensorflow", reason="module paths do not depend on the backend")
@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_warns_and_is_the_new_module(old):
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=f"{old} moved to {MOVED_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])


@pytest.mark.only_backend("tensorflow", reason="module paths do not depend on the backend")
def test_old_names_of_public_objects_are_the_same_objects():
    for old in ("keras_sanm.masking", "keras_sanm.noisy_mask", "keras_sanm.decoder",
                "keras_sanm.training_backup", "keras_sanm.preprocessing"):
        sys.modules.pop(old, None)
    with pytest.warns(FutureWarning):
        from keras_sanm.decoder import ReconstructionDecoder
        from keras_sanm.masking import modulate_labels
        from keras_sanm.noisy_mask import NoisyMask
        from keras_sanm.preprocessing import ImagePreprocessing
        from keras_sanm.training_backup import TrainingBackup
    assert modulate_labels is keras_sanm.modulate_labels and NoisyMask is keras_sanm.NoisyMask
    assert ReconstructionDecoder is keras_sanm.ReconstructionDecoder
    assert TrainingBackup is keras_sanm.TrainingBackup
    assert ImagePreprocessing is keras_sanm.ImagePreprocessing
    vars(keras_sanm).pop("callbacks", None)  # an earlier import of the old path set it
    with pytest.warns(FutureWarning, match="keras_sanm.callbacks moved"):
        assert keras_sanm.callbacks is keras_sanm.training.callbacks


def test_a_model_saved_before_the_move_loads_and_predicts_the_same():
    x, _ = learnable_problem(n=32)
    images = np.clip(x * 40 + 128, 0, 255).astype("uint8")
    model = keras_sanm.load_model(os.path.join(FIXTURES, "sanm_dividemix_0.1_layout.keras"))
    assert type(model).__name__ == "SANMDivideMixTrainer"
    expected = np.load(os.path.join(FIXTURES, "sanm_dividemix_0.1_layout_predictions.npy"))
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)
