"""The input contract, every input kind x every method, plain and SANM.

For each method, one model trains in turn on the same images given as a uint8
numpy array, a `keras.utils.PyDataset`, a `tf.data.Dataset` and an image
folder read from disk (one preprocessing decision: uint8), and another on
float images in [0, 1] as an array and as a `tf.data.Dataset` (what Keras'
own image loaders give). After each `fit`: `evaluate`, `predict` and the
validation during `fit` on the test images in the same kind agree with an
accuracy computed by hand, `label_quality` and `find_label_issues` take the
training input, and a saved and reloaded model predicts the same. Every call
applies the preprocessing the first `fit` fixed and refuses images in
another pixel scale, also after loading.
"""

import keras
import numpy as np
import pytest
from PIL import Image

import keras_sanm
from keras_sanm import methods
from keras_sanm.data import normalize_images

from conftest import learnable_problem, small_cnn, small_data_options

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` skips them

N_TRAIN, N_TEST, BATCH = 48, 16, 16
# method -> wrap options (the registry's for small data: small batches, a one-epoch warm-up).
METHODS = {name: small_data_options(name, N_TRAIN, BATCH) for name in methods.names()}


class ArrayBatches(keras.utils.PyDataset):
    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, labels

    def __len__(self):
        return -(-len(self.images) // BATCH)

    def __getitem__(self, index):
        part = slice(index * BATCH, (index + 1) * BATCH)
        return self.images[part], self.labels[part]


def write_folder(root, images, labels):
    root.mkdir()
    rows = ["filename,label"]
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / f"{i}.png")  # lossless: the same pixels
        rows.append(f"{i}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return keras_sanm.data.load_image_folder(str(root), lazy=True)


def inputs(kind, images, labels, tmp_path, split):
    """`(fit arguments, images for predict/evaluate, label arguments)` of one kind."""
    if kind in ("uint8", "float"):
        return (images, labels), images, (images, labels)
    if kind == "PyDataset":
        batches = ArrayBatches(images, labels)
        return (batches,), batches, (batches,)
    if kind == "tf.data":
        tf = pytest.importorskip("tensorflow")
        batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH)
        return (batches,), batches, (batches,)
    folder = write_folder(tmp_path / split, images, labels)
    assert isinstance(folder.images, keras_sanm.data.ImageFiles)
    np.testing.assert_array_equal(folder.labels, labels)
    return (folder.images, folder.labels), folder.images, (folder.images, folder.labels)


def check_calls(model, kind, train, test, labels, test_labels, first):
    fit_args, _, label_args = train
    _, test_input, evaluate_args = test
    options = {} if len(fit_args) == 1 else {"batch_size": BATCH}
    # Validation during fit is the same evaluation as evaluate().
    options["validation_data"] = evaluate_args if len(evaluate_args) == 2 else test_input
    if model.method_name == "dividemix":  # a warm-up epoch first, then divided epochs
        options.update(epochs=2, initial_epoch=0 if first else 1)
    else:  # (ELR+'s fit defaults to its reference run)
        options.update(epochs=1)
    history = model.fit(*fit_args, verbose=0, **options).history
    scores = model.predict(test_input, verbose=0)
    assert scores.shape == (N_TEST, 4), kind
    by_hand = float(np.mean(np.argmax(scores, -1) == test_labels))
    evaluated = model.evaluate(*evaluate_args, verbose=0, return_dict=True)["accuracy"]
    assert evaluated == pytest.approx(by_hand, abs=1e-6), kind
    assert history["val_accuracy"][-1] == pytest.approx(evaluated, abs=1e-6), kind
    quality = model.label_quality(*label_args)
    assert quality.shape == (N_TRAIN,) and np.all((quality >= 0) & (quality <= 1)), kind
    issues = keras_sanm.find_label_issues(model, *label_args, threshold=None)
    np.testing.assert_array_equal(np.sort(issues), np.arange(N_TRAIN))
    np.testing.assert_array_equal(issues, np.argsort(quality, kind="stable"))
    return scores


def check_one_preprocessing_decision(model, raw, y, raw_test, y_test, pixels, other):
    """Array input: the scale is fixed by the first fit, applied in every call, refused
    in another scale. `pixels` and `other` turn uint8 images into the training scale
    and into another one."""
    x, x_test = pixels(raw), pixels(raw_test)
    pre = model.preprocessing
    assert pre.pixel_scale == (255.0 if x.dtype == np.uint8 else 1.0)
    np.testing.assert_allclose(pre.mean, (x / pre.pixel_scale).reshape(-1, 3).mean(0),
                               rtol=1e-4)
    # The network computes on standardised images: given them by hand, it agrees.
    by_hand = normalize_images(x_test.astype("float32") / pre.pixel_scale, pre.mean, pre.std)
    np.testing.assert_allclose(model.predict(x_test, verbose=0),
                               keras.ops.convert_to_numpy(model.scores(by_hand)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.predict_proba(x_test, verbose=0).sum(-1), 1.0, rtol=1e-5)
    for call in (lambda: model.evaluate(other(raw_test), y_test, verbose=0),
                 lambda: model.predict(other(raw_test), verbose=0),
                 lambda: model.label_quality(other(raw), y),
                 lambda: keras_sanm.find_label_issues(model, other(raw), y)):
        with pytest.raises(ValueError, match="as it was trained on"):
            call()


@pytest.mark.parametrize("sanm", [False, True], ids=["plain", "sanm"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_input_kind_with_every_method(tmp_path, method, sanm):
    images, labels = learnable_problem(N_TRAIN + N_TEST, seed=1)
    images = np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8")
    x, y, x_test, y_test = images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:]
    to_unit = lambda a: a.astype("float32") / 255.0  # noqa: E731
    # (kinds trained in turn, their pixels, the same pixels in another scale)
    for kinds, pixels, other in ((("uint8", "PyDataset", "tf.data", "folder"), lambda a: a,
                                  to_unit),
                                 (("float", "tf.data"), to_unit, lambda a: a.astype("float32"))):
        model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0,
                                **METHODS[method])
        model.compile()
        # Validation images in another scale are refused before any step.
        with pytest.raises(ValueError, match="validation images"):
            model.fit(pixels(x), y, batch_size=BATCH, verbose=0,
                      validation_data=(other(x_test), y_test))
        assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
        for kind in kinds:
            train = inputs(kind, pixels(x), y, tmp_path, f"train_{kind}")
            test = inputs(kind, pixels(x_test), y_test, tmp_path, f"test_{kind}")
            scores = check_calls(model, kind, train, test, y, y_test, kind == kinds[0])
            if kind == kinds[0]:
                check_one_preprocessing_decision(model, x, y, x_test, y_test, pixels, other)
        path = str(tmp_path / f"{kinds[0]}.keras")
        model.save(path)
        loaded = keras_sanm.load_model(path)
        assert loaded.preprocessing.get_config() == model.preprocessing.get_config()
        np.testing.assert_allclose(loaded.predict(test[1], verbose=0), scores,
                                   rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="as it was trained on"):
            loaded.predict(other(x_test), verbose=0)
