"""`load_image_folder`: a folder of images with a labels CSV."""

import numpy as np
import pytest
from PIL import Image

from keras_sanm.data import load_image_folder


def write_folder(root, sizes=((20, 24),) * 5, labels=("cat", "dog", "cat", "bird", "dog")):
    rng = np.random.default_rng(0)
    arrays = []
    (root / "sub").mkdir(parents=True, exist_ok=True)
    lines = ["filename,label"]
    for i, ((h, w), label) in enumerate(zip(sizes, labels)):
        array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        name = f"sub/img_{i}.png" if i % 2 else f"img_{i}.png"
        Image.fromarray(array).save(root / name)
        arrays.append(array)
        lines.append(f"{name},{label}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return arrays


def test_loads_images_and_labels_in_csv_order(tmp_path):
    arrays = write_folder(tmp_path)
    data = load_image_folder(str(tmp_path))
    assert data.images.shape == (5, 20, 24, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[3], arrays[3])
    assert data.class_names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(data.labels, [1, 2, 1, 0, 2])
    assert data.files[1] == "sub/img_1.png"
    fixed = load_image_folder(str(tmp_path), class_names=["dog", "cat", "bird"])
    np.testing.assert_array_equal(fixed.labels, [1, 0, 1, 2, 0])
    resized = load_image_folder(str(tmp_path), image_size=(8, 10))
    assert resized.images.shape == (5, 8, 10, 3)


def test_integer_labels_and_errors(tmp_path):
    write_folder(tmp_path, labels=("2", "0", "2", "1", "0"))
    data = load_image_folder(str(tmp_path))
    np.testing.assert_array_equal(data.labels, [2, 0, 2, 1, 0])
    assert data.class_names == ["0", "1", "2"]
    with pytest.raises(ValueError, match="not in class_names"):
        load_image_folder(str(tmp_path), class_names=["0", "1"])
    with pytest.raises(FileNotFoundError, match="No labels file"):
        load_image_folder(str(tmp_path), "other.csv")
    with pytest.raises(FileNotFoundError, match="No image folder"):
        load_image_folder(str(tmp_path / "missing"))


def test_bad_folders_say_what_is_wrong(tmp_path):
    write_folder(tmp_path, sizes=((20, 24),) * 4 + ((16, 16),))
    with pytest.raises(ValueError, match="pass image_size"):
        load_image_folder(str(tmp_path))
    (tmp_path / "labels.csv").write_text("file,class\nimg_0.png,cat\n")
    with pytest.raises(ValueError, match="filename"):
        load_image_folder(str(tmp_path))
    (tmp_path / "labels.csv").write_text("filename,label\nimg_0.png,cat\nimg_9.png,dog\n")
    with pytest.raises(FileNotFoundError, match="img_9.png"):
        load_image_folder(str(tmp_path))
    (tmp_path / "labels.csv").write_text("filename,label\nimg_0.png,cat\nimg_0.png,dog\n")
    with pytest.raises(ValueError, match="twice"):
        load_image_folder(str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "labels.csv").write_text("filename,label\nbroken.png,cat\n")
    with pytest.raises(ValueError, match="Cannot read"):
        load_image_folder(str(tmp_path))
    (tmp_path / "labels.csv").write_text("filename,label\nimg_0.png,cat\n")
    with pytest.warns(UserWarning, match="5 image"):
        data = load_image_folder(str(tmp_path))
    assert len(data.labels) == 1
