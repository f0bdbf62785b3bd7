"""SANM is one branch added the same way to every method."""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import methods
from keras_sanm.sanm.branch import SANMBranch

from conftest import small_cnn, small_data_options

OPTIONS = {name: small_data_options(name, 32, 16) for name in methods.names()}


@pytest.mark.parametrize("name", methods.names())
def test_every_sanm_class_is_the_plain_method_plus_the_branch(name):
    plain_class, sanm_class = methods.get(name).trainers()
    assert issubclass(sanm_class, SANMBranch)
    # SANM(CDR) is SANM(CE) with CDR's update rule; every other SANM(X) derives from X.
    base = methods.get("ce").trainers()[0] if name == "cdr" else plain_class
    assert issubclass(sanm_class, base)


@pytest.mark.parametrize("name", methods.names())
def test_one_decoder_per_network_in_its_networks_optimizer_group(name):
    model = keras_sanm.wrap(small_cnn(), method=name, seed=0, **OPTIONS[name])
    plain = keras_sanm.wrap(small_cnn(), method=name, sanm=False, seed=0, **OPTIONS[name])
    networks = model.network_list()
    assert len(model.decoders) == len(networks) == len(plain.network_list())
    assert not getattr(plain, "decoders", [])
    assert model.noisy_mask is not None and getattr(plain, "noisy_mask", None) is None
    for network, decoder in zip(networks, model.decoders):
        # The decoder takes network k's feature map and returns an image.
        features = network(np.zeros((2, 16, 16, 3), "float32"))[0]
        assert tuple(decoder(features).shape) == (2, 16, 16, 3)
    model.compile()
    if len(networks) == 2:
        groups = model.optimizer.groups
        for k in (0, 1):
            group = {id(v) for v in groups[k]}
            assert all(id(v) in group for v in model.decoders[k].trainable_variables)
            assert not any(id(v) in group for v in model.decoders[1 - k].trainable_variables)


def test_the_branch_options_are_checked_and_saved():
    with pytest.raises(ValueError, match="reconstruction_weight"):
        keras_sanm.wrap(small_cnn(), method="ce", reconstruction_weight=-1.0)
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", num_samples=32,
                            reconstruction_weight=0.5, clip_negative_targets=True,
                            mask_config={"anchor": "center", "seed": 7})
    config = model.get_config()
    assert config["reconstruction_weight"] == 0.5 and config["clip_negative_targets"]
    assert config["mask_config"]["anchor"] == "center" and "name" not in config["mask_config"]
    clone = type(model).from_config(config)
    assert clone.noisy_mask.get_config()["anchor"] == "center"
    assert [d.name for d in clone.decoders] == ["decoder_1", "decoder_2"]
    assert keras.ops.convert_to_numpy(clone.noisy_mask.seed_generator.state).shape == (2,)


@pytest.mark.parametrize("name", methods.names())
def test_sanm_refits_label_quality_unless_the_method_estimates_it(name):
    from keras_sanm.training.callbacks import LabelQualityUpdate

    plain_class, sanm_class = methods.get(name).trainers()
    model = keras_sanm.wrap(small_cnn(), method=name, seed=0, **OPTIONS[name])
    plain = keras_sanm.wrap(small_cnn(), method=name, sanm=False, seed=0, **OPTIONS[name])
    # DivideMix's co-divide split and SSR's neighbour selection give every
    # sample's label quality each epoch.
    expected = name not in ("dividemix", "ssr")
    assert model.refits_label_quality is expected and plain.refits_label_quality is False
    x = np.zeros((32, 16, 16, 3), "float32")
    data = model.training_data(x, np.arange(32) % 4, 16)
    model.compile()
    refits = [c for c in model.method_callbacks(data) if isinstance(c, LabelQualityUpdate)]
    assert len(refits) == int(expected)


@pytest.mark.parametrize("name", methods.names())
def test_mask_aspect_sets_the_box_shape_of_every_sanm_method(name):
    model = keras_sanm.wrap(small_cnn(), method=name, seed=0, mask_aspect="fixed:1.0",
                            **OPTIONS[name])
    assert model.noisy_mask.aspect_range == (1.0, 1.0)
    clone = type(model).from_config(model.get_config())  # saved with the model
    assert clone.noisy_mask.aspect_range == (1.0, 1.0)
    default = keras_sanm.wrap(small_cnn(), method=name, seed=0, **OPTIONS[name])
    assert default.noisy_mask.aspect_range == (0.8, 1.25)


def test_mask_aspect_is_checked_and_given_once():
    with pytest.raises(ValueError, match="mask aspect"):
        keras_sanm.wrap(small_cnn(), method="ce", mask_aspect="round")
    with pytest.raises(ValueError, match="once"):
        keras_sanm.wrap(small_cnn(), method="ce", mask_aspect=1.0,
                        mask_config={"aspect_range": (0.5, 2.0)})
    with pytest.raises((TypeError, ValueError), match="mask_aspect"):
        keras_sanm.wrap(small_cnn(), method="ce", sanm=False, mask_aspect=1.0)
