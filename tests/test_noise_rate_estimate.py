"""CDR's noise_rate and Co-teaching's forget_rate default to an estimate from the model."""

import logging
import warnings

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.methods.coteaching.trainers import forget_rate_at
from keras_sanm.training.callbacks import NoiseRateEstimate

from conftest import learnable_problem, small_cnn

# method -> (rate attribute, option name)
RATES = {"cdr": ("noise_rate", "noise_rate"), "coteaching": ("final_forget_rate", "forget_rate")}


def noisy_problem(n=200, rate=0.3):
    x, y = learnable_problem(n)
    return x, keras_sanm.data.inject_noise(y, 4, "sym", rate, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [False, True])
@pytest.mark.parametrize("method", sorted(RATES))
def test_missing_rate_is_estimated_after_two_epochs_and_reported(method, sanm, capsys, caplog,
                                                                  monkeypatch, tmp_path):
    caplog.set_level(logging.INFO, logger="keras_sanm")
    attribute, option = RATES[method]
    x, noisy = noisy_problem()
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    # The rule: the share of samples whose clean probability is below 0.5.
    calls = []

    def quality(source):
        calls.append(len(source.labels))
        return np.where(np.arange(len(source.labels)) % 20 < 7, 0.2, 0.9).astype("float32")

    monkeypatch.setattr(model, "training_label_quality", quality)
    history = model.fit(x, noisy, batch_size=32, epochs=4, verbose=0).history
    assert calls == [200]  # once, after the second epoch
    assert getattr(model, attribute) == pytest.approx(0.35)
    # Reported through the package's logger (printed only by a verbose fit).
    assert f"{option}=0.350: estimated after epoch 2" in caplog.text
    assert capsys.readouterr().out == ""
    if method == "cdr":
        assert float(model.noise_rate_value) == pytest.approx(0.35)
    else:  # no sample dropped before the estimate, then the reference schedule
        np.testing.assert_allclose(history["forget_rate"],
                                   [0.0, 0.0, forget_rate_at(2, 0.35), forget_rate_at(3, 0.35)])
    # The estimate is the model's setting from now on: saved, and not estimated again.
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config()[option] == pytest.approx(0.35)
    model.fit(x, noisy, batch_size=32, epochs=1, verbose=0)
    assert calls == [200]


def test_estimate_follows_the_actual_noise():
    """Without patching: two networks trained two epochs find about the planted share."""
    x, noisy = noisy_problem(n=256, rate=0.3)
    model = keras_sanm.wrap(small_cnn(), method="coteaching", sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, noisy, batch_size=32, epochs=2, verbose=0)
    assert 0.15 <= model.final_forget_rate <= 0.5, model.final_forget_rate


def test_resumed_run_keeps_the_estimate():
    rates = []
    callback = NoiseRateEstimate(None, 2, "noise_rate", lambda: rates[-1] if rates else None,
                                 rates.append)
    assert float(callback.get_state()["rate"]) == -1.0
    callback.set_state({"rate": -1.0})
    assert rates == []
    callback.set_state({"rate": 0.4})
    assert rates == [0.4] and float(callback.get_state()["rate"]) == pytest.approx(0.4)


def test_estimate_from_a_model_near_chance_comes_with_a_warning():
    class Model:
        num_classes = 10

        def training_label_quality(self, source):
            return np.full(100, 0.2, np.float32)

    rates = []
    callback = NoiseRateEstimate(None, 1, "noise_rate", lambda: rates[-1] if rates else None,
                                 rates.append)
    callback.set_model(Model())
    with pytest.warns(UserWarning, match="noise_rate=0.900 is unreliable"):
        callback.on_epoch_end(0, {"accuracy": 0.12})
    assert rates == [0.9]  # capped
    rates.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_epoch_end(0, {"accuracy": 0.6})
    assert rates == [0.9]
