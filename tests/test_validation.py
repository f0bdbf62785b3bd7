"""One test per input rule: every public entry point refuses bad input with a message that says what to do."""

import warnings

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.data import CoDivideData, IndexedDataset
from keras_sanm.label_quality import clean_probability
from keras_sanm.training.backup import TrainingBackup

from conftest import learnable_problem, small_cnn


class Batches(keras.utils.PyDataset):
    """An (x, y) dataset without sample identities."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.x[i * 8:(i + 1) * 8], self.y[i * 8:(i + 1) * 8]


@pytest.fixture
def data():
    return learnable_problem(n=32)


def ce_model():
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def test_images_of_the_wrong_rank(data):
    x, y = data
    with pytest.raises(ValueError, match="rank 3.*Add a channel axis"):
        ce_model().fit(x[..., 0], y, verbose=0)


def test_images_of_the_wrong_size(data):
    x, y = data
    with pytest.raises(ValueError, match=r"the model expects \(16, 16, 3\)"):
        ce_model().fit(x[:, :8, :8], y, verbose=0)


def test_images_with_nan(data):
    x, y = data
    x = x.copy()
    x[5, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf.*sample 5"):
        ce_model().fit(x, y, verbose=0)


def test_float_labels(data):
    x, y = data
    with pytest.raises(ValueError, match="must be integers"):
        ce_model().fit(x, y.astype("float32"), verbose=0)


def test_labels_and_images_of_different_lengths(data):
    x, y = data
    with pytest.raises(ValueError, match="Got 31 labels for 32 images"):
        ce_model().fit(x, y[:31], verbose=0)


def test_labels_beyond_the_models_classes(data):
    x, y = data
    with pytest.raises(ValueError, match="out of range for 4 classes.*output size"):
        ce_model().fit(x, np.where(y == 0, 7, y), verbose=0)


def test_indexed_data_with_more_classes_than_the_model(data):
    x, y = data
    source = IndexedDataset(x, y, 8, num_classes=6)
    with pytest.raises(ValueError, match="data has 6 classes but the model outputs 4"):
        ce_model().fit(source, verbose=0)


def test_codivide_data_with_more_classes_than_the_model(data):
    x, y = data
    model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, seed=0, batch_size=8)
    with pytest.raises(ValueError, match="data has 6 classes but the model outputs 4"):
        model.fit(CoDivideData(x, y, 8, num_classes=6), epochs=1, verbose=0)


@pytest.mark.parametrize("method,options", [
    ("dividemix", {"batch_size": 8}),
    ("elr_plus", {"num_samples": 16, "batch_size": 8}),
    # SANM(Co-teaching) reads each sample's peer quality through Keras' own fit loop.
    ("coteaching", {"forget_rate": 0.2}),
])
def test_a_dataset_for_per_sample_state_is_checked_before_any_step(data, method, options):
    x, y = data
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=method == "coteaching", seed=0,
                            **options)
    model.compile()
    bad = y.copy()
    bad[12] = 9  # in the second batch
    with pytest.raises(ValueError, match="Label 9 is out of range for 4 classes"):
        model.fit(Batches(x, bad), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_model_without_a_spatial_feature_map():
    dense = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="no spatial feature map.*sanm=False"):
        keras_sanm.wrap(dense)


def test_model_that_does_not_output_class_scores():
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match=r"must output class scores of shape \(batch, classes\)"):
        keras_sanm.wrap(model)


def test_non_finite_losses_for_the_gmm():
    losses = np.r_[np.linspace(0, 1, 20), np.nan]
    with pytest.raises(ValueError, match="training diverged.*resume from the last checkpoint"):
        clean_probability(losses, seed=0)


def test_empty_labeled_split_warns_and_still_trains_full_batches(data):
    x, y = data
    source = CoDivideData(x, y, 8)
    source.label_quality[:] = 0.1  # the GMM put every sample on the noisy side
    with pytest.warns(UserWarning, match="labeled set is empty.*lengthen the warm-up"):
        plan = source.training_plan(0, threshold=0.5, epoch=3)
    assert len(plan) == 1 and all(len(part) == 8 for part in plan[0][:2])


def test_empty_unlabeled_split_warns_and_draws_unlabeled_rows_from_all(data):
    x, y = data
    source = CoDivideData(x, y, 8)
    source.label_quality[:] = 0.9  # every sample on the clean side
    with pytest.warns(UserWarning, match="unlabeled set is empty.*shorten it"):
        plan = source.training_plan(1, threshold=0.5, epoch=3)
    assert len(plan) == 4 and all(len(step[1]) == 8 for step in plan)


def test_split_without_an_empty_side_does_not_warn(data):
    x, y = data
    source = CoDivideData(x, y, 8)
    source.label_quality[:16, :] = 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = source.training_plan(0, threshold=0.5, epoch=3)
    # 16 labeled samples (the clean side) in 2 full batches, each once; 8
    # unlabeled rows per step from the noisy side; the L_u ramp's progress.
    labeled = np.concatenate([step[0] for step in plan])
    assert len(plan) == 2 and sorted(labeled.tolist()) == list(range(16, 32))
    assert all(len(step[1]) == 8 and (step[1] < 16).all() for step in plan)
    assert [step[2] for step in plan] == [3.0, 3.0 + 1 / 3]


def test_resuming_with_other_settings(tmp_path, data):
    x, y = data
    ce_model().fit(x, y, batch_size=8, epochs=1, verbose=0,
                   callbacks=[TrainingBackup(tmp_path, run_config={"seed": 0, "method": "ce"})])
    with pytest.raises(ValueError, match="other settings.*seed: 0 then, 1 now"):
        ce_model().fit(x, y, batch_size=8, epochs=2, verbose=0,
                       callbacks=[TrainingBackup(tmp_path, run_config={"seed": 1, "method": "ce"})])


def test_resuming_on_other_training_data(tmp_path, data):
    x, y = data
    ce_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[TrainingBackup(tmp_path)])
    with pytest.raises(ValueError, match="different training data"):
        ce_model().fit(x, (y + 1) % 4, batch_size=8, epochs=2, verbose=0,
                       callbacks=[TrainingBackup(tmp_path)])


def test_resuming_a_method_with_other_state(tmp_path, data):
    x, y = data
    ce_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[TrainingBackup(tmp_path)])
    model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, seed=0, batch_size=8)
    with pytest.raises(ValueError, match="written by a CrossEntropyTrainer.*DivideMixTrainer"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[TrainingBackup(tmp_path)])
