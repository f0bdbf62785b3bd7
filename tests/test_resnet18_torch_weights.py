"""The SANM code's post-activation ResNet-18: a PyTorch state dict of its layout
loads into `backbones.ResNet18` and both networks then compute the same."""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import backbones

torch = pytest.importorskip("torch")
nn = torch.nn


class TorchBasicBlock(nn.Module):
    """The reference's post-activation block, with its module names."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return torch.relu(out)


class TorchResNet18(nn.Module):
    """Encoder with the reference's names: conv1, bn1, layer1-4 (no max-pool on CIFAR)."""

    def __init__(self, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for s, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2))):
            blocks = []
            for b in range(2):
                blocks.append(TorchBasicBlock(cin, width * mult, stride if b == 0 else 1))
                cin = width * mult
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        for s in range(1, 5):
            out = getattr(self, f"layer{s}")(out)
        return out  # the feature map, after the last ReLU


class TorchSupCE(nn.Module):
    """encoder + fc (+ a projection head a self-supervised checkpoint carries)."""

    def __init__(self, width, classes):
        super().__init__()
        self.encoder = TorchResNet18(width)
        self.fc = nn.Linear(8 * width, classes)
        self.head = nn.Linear(8 * width, 16)

    def forward(self, x):
        feature_map = self.encoder(x)
        return feature_map, self.fc(feature_map.mean(dim=(2, 3)))


def random_reference(width, classes, seed=0):
    torch.manual_seed(seed)
    net = TorchSupCE(width, classes)
    with torch.no_grad():  # non-trivial batch-norm statistics and affine parameters
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def outputs(model, images):
    features = keras.Model(model.input, [model.get_layer("feature_map").output, model.output])
    return [keras.ops.convert_to_numpy(t) for t in features(images, training=False)]


@pytest.mark.parametrize("width", [4, 8])
def test_a_reference_checkpoint_loads_and_both_networks_agree(tmp_path, width):
    reference = random_reference(width, 10)
    # The official checkpoints' layout: {"model": state dict saved from DataParallel}.
    path = tmp_path / "ckpt_cifar10_resnet18.pth"
    torch.save({"model": {f"module.{k}": v for k, v in reference.state_dict().items()},
                "epoch": 500}, path)
    model = backbones.ResNet18(10, (32, 32, 3), width=width)
    report = backbones.load_torch_resnet18_weights(model, str(path))
    assert report["kept"] == [] and "logits" in report["loaded"]
    assert report["ignored"] == ["head.bias", "head.weight"]
    images = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype("float32")
    feature_map, logits = outputs(model, images)
    with torch.no_grad():
        their_map, their_logits = reference(torch.tensor(images.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(feature_map, their_map.numpy().transpose(0, 2, 3, 1),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, their_logits.numpy(), rtol=1e-4, atol=1e-4)
    # The check can fail: the outputs are far from zero and the map is post-ReLU.
    assert np.abs(their_logits.numpy()).max() > 1e-2 and feature_map.min() >= 0.0
    assert (feature_map == 0).mean() > 0.05


def test_an_encoder_only_state_dict_keeps_the_classifier_and_bad_ones_are_refused():
    reference = random_reference(4, 10)
    encoder_only = {k: v for k, v in reference.state_dict().items() if k.startswith("encoder.")}
    model = backbones.ResNet18(10, (32, 32, 3), width=4)
    before = keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    report = backbones.load_torch_resnet18_weights(model, encoder_only)
    assert report["kept"] == ["logits"] and report["ignored"] == []
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("logits").kernel),
                                  before)
    with pytest.raises(ValueError, match="shapes"):  # another width
        backbones.load_torch_resnet18_weights(backbones.ResNet18(10, width=8), encoder_only)
    with pytest.raises(ValueError, match="shapes"):  # another class count
        backbones.load_torch_resnet18_weights(backbones.ResNet18(100, width=4),
                                              reference.state_dict())
    partial = {k: v for k, v in encoder_only.items() if "layer4" not in k}
    with pytest.raises(ValueError, match="no tensors for"):
        backbones.load_torch_resnet18_weights(model, partial)
    with pytest.raises(ValueError, match="state dict"):
        backbones.load_torch_resnet18_weights(model, [1, 2])


@pytest.mark.only_backend("torch", reason="Keras' own layers (the conversion above is checked "
                          "on every backend); wrap's path is tested per backend elsewhere")
def test_resnet18_wraps_trains_a_step_saves_and_loads(tmp_path):
    model = keras_sanm.wrap(backbones.ResNet18(4, (32, 32, 3), width=4), seed=0)
    model.compile()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 32, 32, 3)).astype("uint8"), rng.integers(0, 4, 32)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    # SANM found the feature map (the decoder reconstructs from it).
    assert history.history["reconstruction_loss"][-1] > 0
    model.save(tmp_path / "m.keras")
    loaded = keras_sanm.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert backbones.get("resnet18", 4, (32, 32, 3), width=4).name == "resnet18"
