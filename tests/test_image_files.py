"""Images on disk (`ImageFiles`): every method trains on them as on the same images in memory,
reading only batches."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import keras_sanm
from keras_sanm.data import ImageFiles, load_image_folder

from conftest import DATA_SIDE_ONLY, learnable_problem, small_cnn, write_animal10n


def uint8_images(n, seed=0):
    images, labels = learnable_problem(n, seed=seed)
    return np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8"), labels


def write_folder(folder, images, labels, suffix=".png"):
    """One image file per sample plus the labels CSV; returns the file names."""
    folder.mkdir(exist_ok=True)
    names = []
    for i, image in enumerate(images):
        names.append(f"c{labels[i]}/img_{i}{suffix}")
        (folder / f"c{labels[i]}").mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / names[-1])
    rows = "".join(f"{name},{label}\n" for name, label in zip(names, labels))
    (folder / "labels.csv").write_text("filename,label\n" + rows)
    return names


class CountingFiles(ImageFiles):
    """An `ImageFiles` that records how many images each read decodes."""

    reads: list

    def __getitem__(self, key):
        out = super().__getitem__(key)
        self.reads.append(1 if np.ndim(out) == 3 else len(out))
        return out


def test_image_files_index_like_an_array(tmp_path):
    images, labels = uint8_images(12)
    names = write_folder(tmp_path, images, labels)
    files = ImageFiles(names, directory=str(tmp_path))
    assert files.shape == (12, 16, 16, 3) and files.dtype == np.uint8 and len(files) == 12
    np.testing.assert_array_equal(files[3], images[3])
    np.testing.assert_array_equal(files[2:9:3], images[2:9:3])
    np.testing.assert_array_equal(files[[5, 0, 5]], images[[5, 0, 5]])
    np.testing.assert_array_equal(files[np.arange(12) % 4 == 1], images[1::4])
    np.testing.assert_array_equal(files.load(), images)
    with pytest.raises(TypeError, match="files.load"):
        np.asarray(files)
    with pytest.raises(IndexError, match="1-D integer"):
        files[[0.5]]
    resized = ImageFiles(names, (8, 10), str(tmp_path))
    assert resized.shape == (12, 8, 10, 3) and resized[[0, 1]].shape == (2, 8, 10, 3)


def test_image_files_say_what_is_wrong(tmp_path):
    images, labels = uint8_images(3)
    names = write_folder(tmp_path, images, labels)
    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="pass image_size"):
        ImageFiles([*names, "big.png"], directory=str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    files = ImageFiles([*names, "broken.png"], (16, 16), str(tmp_path))
    with pytest.raises(ValueError, match="Cannot read .*broken.png"):
        files[[0, 3]]
    with pytest.raises(ValueError, match="at least one"):
        ImageFiles([])


def test_folder_stays_on_disk_when_asked_or_large(tmp_path, monkeypatch):
    from keras_sanm.data import image_folder

    images, labels = uint8_images(10)
    write_folder(tmp_path, images, labels)
    in_memory = load_image_folder(str(tmp_path))
    assert isinstance(in_memory.images, np.ndarray)
    on_disk = load_image_folder(str(tmp_path), lazy=True)
    assert isinstance(on_disk.images, ImageFiles)
    np.testing.assert_array_equal(on_disk.images.load(), in_memory.images)
    np.testing.assert_array_equal(on_disk.labels, in_memory.labels)
    # Default: on disk once the decoded images would pass the limit.
    monkeypatch.setattr(image_folder, "IN_MEMORY_LIMIT_BYTES", 10 * 16 * 16 * 3 - 1)
    assert isinstance(load_image_folder(str(tmp_path)).images, ImageFiles)


# (method, sanm, options): each data path (IndexedDataset, DivideMix's CoDivideData,
# ELR+'s per-sample targets, the alternating SANM(Co-teaching) loop).
SETTINGS = {
    "ce_sanm": ("ce", True, {}),
    "dividemix_sanm": ("dividemix", True, {"warmup_epochs": 1, "batch_size": 16}),
    "elr_plus": ("elr_plus", False, {}),
    "coteaching_sanm": ("coteaching", True, {"forget_rate": 0.2}),
    "cdr": ("cdr", False, {"noise_rate": 0.2}),
}


@DATA_SIDE_ONLY
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_method_trains_on_files_as_on_arrays(tmp_path, setting):
    method, sanm, options = SETTINGS[setting]
    images, labels = uint8_images(96)
    names = write_folder(tmp_path, images, labels)
    x_test = images[64:]
    results = []
    in_memory = (images[:64], x_test)
    on_disk = (ImageFiles(names[:64], directory=str(tmp_path)),
               ImageFiles(names[64:], directory=str(tmp_path)))
    for x, x_val in (in_memory, on_disk):
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0, **options)
        model.compile()
        history = model.fit(x, labels[:64], epochs=2, verbose=0,
                            batch_size=None if method == "dividemix" else 16,
                            validation_data=(x_val, labels[64:])).history
        results.append((model.predict(x_test, verbose=0),
                        model.label_quality(x, labels[:64], batch_size=32),
                        history["val_accuracy"]))
    # Same batches, augmentation and preprocessing: the same model.
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(results[1][2], results[0][2], atol=1e-6)


def test_evaluate_predict_and_label_issues_take_files(tmp_path):
    images, labels = uint8_images(80)
    names = write_folder(tmp_path, images, labels)
    files = ImageFiles(names, directory=str(tmp_path))
    model = keras_sanm.wrap(small_cnn(), method="ce", seed=0)
    model.compile()
    history = model.fit(images, labels, epochs=1, batch_size=16, verbose=0,
                        validation_data=(files, labels)).history
    np.testing.assert_allclose(model.predict(files, batch_size=32, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    on_disk = model.evaluate(files, labels, batch_size=32, verbose=0, return_dict=True)
    in_memory = model.evaluate(images, labels, verbose=0, return_dict=True)
    assert on_disk["accuracy"] == pytest.approx(in_memory["accuracy"], abs=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(in_memory["accuracy"], abs=1e-6)
    np.testing.assert_array_equal(
        keras_sanm.find_label_issues(model, files, labels, threshold=None),
        keras_sanm.find_label_issues(model, images, labels, threshold=None))
    np.testing.assert_allclose(model.predict_proba(files).sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        model.evaluate(files, labels[:5], verbose=0)


def test_training_reads_batches_not_the_dataset(tmp_path, monkeypatch):
    """No read decodes more than a batch-sized part of the files: memory does
    not grow with the dataset."""
    from keras_sanm.data import normalization

    monkeypatch.setattr(normalization, "LAZY_SAMPLE_SIZE", 16)
    images, labels = uint8_images(300)
    names = write_folder(tmp_path, images, labels, suffix=".jpg")
    files = CountingFiles(names, directory=str(tmp_path))
    files.reads = []
    model = keras_sanm.wrap(small_cnn(), method="ce", seed=0)
    model.compile()
    model.fit(files, labels, epochs=2, batch_size=16, verbose=0)
    model.label_quality(files, labels, batch_size=32)
    model.evaluate(files, labels, batch_size=32, verbose=0)
    assert sum(files.reads) > 2 * 300  # two epochs, label quality and evaluation read it all
    assert max(files.reads) <= 300 // 3, max(files.reads)


def test_animal10n_in_its_published_layout_trains_from_disk(tmp_path):
    """training/ and testing/ of `<label>_<number>.jpg`, 64x64; labels from the names."""
    labels = write_animal10n(tmp_path, 32, 8)
    data = keras_sanm.data.load_animal10n(str(tmp_path))
    assert isinstance(data.x_train, ImageFiles) and data.x_train.shape == (32, 64, 64, 3)
    assert data.x_test.shape == (8, 64, 64, 3) and data.num_classes == 10
    for path, label in zip(data.x_train.paths, data.noisy_train):  # file-name order
        i = int(os.path.basename(path).split("_")[1][:5])
        assert label == 2 * int(labels[i]) + i % 2, path
    assert data.class_names[:2] == ("cat", "lynx")
    model = keras_sanm.wrap(small_cnn((64, 64, 3), 10), method="ce", sanm=False, seed=0)
    model.fit(data.x_train, data.noisy_train, batch_size=16, epochs=1, verbose=0,
              validation_data=(data.x_test, data.y_test))
    (tmp_path / "training" / "cat.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="<label>_<number>"):
        keras_sanm.data.load_animal10n(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="training/ and testing/"):
        keras_sanm.data.load_animal10n(str(tmp_path / "nowhere"))


def test_clothing1m_from_its_published_files(tmp_path):
    """Label files `<path> <label>`, key lists per split, images under images/."""
    images, labels = uint8_images(30)
    keys = []
    for i, image in enumerate(images):
        folder = tmp_path / "images" / str(i % 3) / f"{i:02d}"
        folder.mkdir(parents=True)
        Image.fromarray(image).resize((40, 30)).save(folder / f"{i}.jpg")
        keys.append(f"images/{i % 3}/{i:02d}/{i}.jpg")
    noisy = (labels + (np.arange(30) % 5 == 0)) % 4  # every fifth label wrong
    (tmp_path / "noisy_label_kv.txt").write_text(
        "".join(f"{k} {n}\n" for k, n in zip(keys[:20], noisy[:20])))
    (tmp_path / "clean_label_kv.txt").write_text(
        "".join(f"{k} {y}\n" for k, y in zip(keys[20:], labels[20:])))
    (tmp_path / "noisy_train_key_list.txt").write_text("\n".join(keys[:20]) + "\n")
    (tmp_path / "clean_val_key_list.txt").write_text("\n".join(keys[20:25]) + "\n")
    (tmp_path / "clean_test_key_list.txt").write_text("\n".join(keys[25:]) + "\n")
    data = keras_sanm.data.load_clothing1m(str(tmp_path), image_size=(16, 16))
    assert data.x_train.shape == (20, 16, 16, 3) and data.x_val.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(data.noisy_train, noisy[:20])
    np.testing.assert_array_equal(data.y_val, labels[20:25])
    np.testing.assert_array_equal(data.y_test, labels[25:])
    assert data.num_classes == 14
    model = keras_sanm.wrap(small_cnn((16, 16, 3), 14), method="ce", sanm=False, seed=0)
    model.fit(data.x_train, data.noisy_train, batch_size=10, epochs=1, verbose=0,
              validation_data=(data.x_val, data.y_val))
    (tmp_path / "clean_test_key_list.txt").write_text("images/9/99/gone.jpg\n")
    with pytest.raises(ValueError, match="no label in clean_label_kv.txt"):
        keras_sanm.data.load_clothing1m(str(tmp_path))
    (tmp_path / "clean_label_kv.txt").write_text("images/0/00/0.jpg three\n")
    with pytest.raises(ValueError, match="line 1"):
        keras_sanm.data.load_clothing1m(str(tmp_path))


def test_mini_webvision_keeps_the_first_classes(tmp_path):
    """info/ lists of `<path> <label>`; Google images by query folder, validation
    images in val_images_256/; classes from num_classes on are left out."""
    images, labels = uint8_images(24)
    (tmp_path / "info").mkdir()
    (tmp_path / "val_images_256").mkdir()
    train_rows, val_rows = [], []
    for i, image in enumerate(images):
        label = int(labels[i]) + (i % 2) * 3  # 0-3, and 3-6 for odd samples
        if i < 18:
            folder = tmp_path / "google" / f"q{label:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.jpg")
            train_rows.append((f"google/q{label:04d}/{i}.jpg", label))
        else:
            Image.fromarray(image).save(tmp_path / "val_images_256" / f"val{i:06d}.JPEG")
            val_rows.append((f"val{i:06d}.JPEG", label))
    for name, rows in (("train_filelist_google.txt", train_rows), ("val_filelist.txt", val_rows)):
        (tmp_path / "info" / name).write_text("".join(f"{p} {y}\n" for p, y in rows))
    data = keras_sanm.data.load_webvision(str(tmp_path), num_classes=4, image_size=(16, 16))
    kept = [y for _, y in train_rows if y < 4]
    np.testing.assert_array_equal(data.noisy_train, kept)
    np.testing.assert_array_equal(data.y_test, [y for _, y in val_rows if y < 4])
    assert data.x_train.shape == (len(kept), 16, 16, 3) and data.num_classes == 4
    assert all(p.startswith(str(tmp_path / "google")) for p in data.x_train.paths)
    model = keras_sanm.wrap(small_cnn((16, 16, 3), 4), method="ce", sanm=False, seed=0)
    model.fit(data.x_train, data.noisy_train, batch_size=4, epochs=1, verbose=0,
              validation_data=(data.x_test, data.y_test))
    with pytest.raises(FileNotFoundError, match="val_filelist.txt"):
        (tmp_path / "info" / "val_filelist.txt").unlink()
        keras_sanm.data.load_webvision(str(tmp_path), num_classes=4)
