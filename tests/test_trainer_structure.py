"""The trainers are composed, not stacked: a short MRO of classes that each derive from
`NoisyLabelTrainer`, `compile` and `fit` defined once, the input pipeline, the
label-quality estimator and the backend step held as objects, and no class calling a
method that only a sibling class defines."""

import ast
import inspect
import textwrap

import keras
import pytest

import keras_sanm
from keras_sanm import methods
from keras_sanm.backend import TrainStep
from keras_sanm.training.input import InputPipeline
from keras_sanm.training.label_quality import LabelQualityEstimator
from keras_sanm.training.trainer import NoisyLabelTrainer

from conftest import small_cnn, small_data_options

# The most package classes a trainer's MRO may hold (SANM(X) on a two-network
# method that trains in turns: SANM(X), SANMBranch, X, AlternatingTrainer,
# TwoNetworkTrainer, NoisyLabelTrainer).
MOST_PACKAGE_CLASSES = 6

TRAINER_CLASSES = [cls for name in methods.names() for cls in methods.get(name).trainers()]
pytestmark = pytest.mark.only_backend(
    "jax", reason="class structure does not depend on the backend; the objects test runs on all")


def package_classes(cls) -> list[type]:
    return [k for k in cls.__mro__ if k.__module__.startswith("keras_sanm")]


@pytest.mark.parametrize("cls", TRAINER_CLASSES, ids=lambda c: c.__name__)
def test_each_trainer_has_a_short_mro_of_trainer_classes(cls):
    own = package_classes(cls)
    assert len(own) <= MOST_PACKAGE_CLASSES, [k.__name__ for k in own]
    # No free-standing mixin: every class of the package in the MRO is a trainer
    # itself, so what it calls on `self` is defined by it or its own bases.
    assert all(issubclass(k, NoisyLabelTrainer) for k in own), [k.__name__ for k in own]
    assert own[-1] is NoisyLabelTrainer
    assert cls.__mro__[len(own)] is keras.Model


@pytest.mark.parametrize("name", ["compile", "fit", "get_config", "from_config",
                                  "save_own_variables", "load_own_variables", "train_step"])
def test_compile_fit_and_the_keras_hooks_are_defined_once(name):
    for cls in TRAINER_CLASSES:
        defining = [k.__name__ for k in package_classes(cls) if name in vars(k)]
        if name in ("get_config", "from_config"):
            # Method classes add their own options to the config, through super().
            assert defining[-1] == "NoisyLabelTrainer", (cls.__name__, defining)
        else:
            assert defining == ["NoisyLabelTrainer"], (cls.__name__, defining)


def self_method_calls(cls) -> set[str]:
    """Names `n` of every `self.n(...)` call in the functions `cls` itself defines."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return {node.func.attr for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"}


def self_assignments(cls) -> set[str]:
    """Attributes every class of `cls`'s MRO assigns on `self` (layers, callables)."""
    names = set()
    for k in package_classes(cls):
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(k)))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
    return names


@pytest.mark.parametrize("cls", TRAINER_CLASSES, ids=lambda c: c.__name__)
def test_no_class_calls_a_method_only_a_sibling_defines(cls):
    for k in package_classes(cls):
        assigned = self_assignments(k)
        missing = sorted(n for n in self_method_calls(k)
                         if not hasattr(k, n) and n not in assigned)
        assert not missing, f"{k.__name__} calls {missing}, which neither it nor its bases define"


@pytest.mark.only_backend("jax", "torch", "tensorflow", reason="every backend")
@pytest.mark.parametrize("name", methods.names())
def test_a_wrapped_model_holds_its_parts_as_objects(name):
    model = keras_sanm.wrap(small_cnn(), method=name, seed=0, **small_data_options(name, 32, 16))
    assert isinstance(model.backend_step, TrainStep) and model.backend_step.model is model
    assert isinstance(model.input_pipeline, InputPipeline) and model.input_pipeline.model is model
    assert isinstance(model.label_quality_estimator, LabelQualityEstimator)
    # The parts are not Keras state: the saved weights are the model's alone.
    paths = {v.path for v in model.variables}
    assert not any("pipeline" in p or "estimator" in p or "backend_step" in p for p in paths)
