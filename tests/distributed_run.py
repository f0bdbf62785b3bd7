"""Trains tiny models on one device and on two, for tests/test_distribution.py.

Run as a script in a fresh process, because virtual devices must exist
before the backend starts: two XLA host devices (JAX), two logical CPU
devices (TensorFlow), or two gloo processes (PyTorch). For each method it
trains once on one device and once data-parallel on two, from the same
seeds, and writes `<out>/<method>_{single,multi}.npz` with every model
weight (per-sample ELR+ targets included) and the epoch logs.

TensorFlow and PyTorch run the step per replica. SANM's per-sample draws
(box sizes, fills) are made for the global batch and sliced per replica, so
they equal the one-device run's; mixup's permutation, however, mixes rows
within a replica's slice. With `--deterministic` mixup is the identity, so
the comparison checks the data-parallel machinery itself (batch split,
gradient averaging, gathered per-sample state, statistics, SANM's draws).

Usage: python tests/distributed_run.py OUT_DIR METHOD [METHOD ...] [--deterministic]
(prints, per method, the largest single- vs two-device weight and log differences)
"""

import json
import os
import sys

BACKEND = os.environ.get("KERAS_BACKEND", "jax")
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    )

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SAMPLES, BATCH, EPOCHS = 64, 16, 2
METHOD_OPTIONS = {
    "ce": {"method": "ce", "sanm": True},
    # Probes of where a difference comes from: no SANM, SANM without the decoder's term.
    "ce_plain": {"method": "ce", "sanm": False},
    "ce_no_decoder": {"method": "ce", "sanm": True, "reconstruction_weight": 0.0},
    "elr_plus": {"method": "elr_plus", "sanm": False, "num_samples": SAMPLES, "ema_step": 0},
    "dividemix": {"method": "dividemix", "sanm": False, "warmup_epochs": 1, "batch_size": 8},
}


def network(batch_norm: bool):
    """A small CNN; batch-norm synchronised over replicas where the backend can."""
    import keras
    from keras import layers

    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    if batch_norm:
        x = layers.BatchNormalization(name="bn2", synchronized=BACKEND == "tensorflow")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(4, name="logits")(x))


def train(method: str, deterministic: bool, batch_norm: bool):
    """`(weights, history)` of a short fit; the distribution is set by the caller."""
    import keras

    import keras_sanm

    from conftest import learnable_problem

    if deterministic:
        from keras import ops

        import keras_sanm.methods.elr_plus.trainers as elr_plus

        def identity_mix(inputs, targets, alpha, seed):
            return inputs, targets, ops.ones(()), ops.arange(inputs.shape[0])

        elr_plus.mix = identity_mix
    keras.utils.set_random_seed(0)
    x, y = learnable_problem(SAMPLES)
    options = dict(METHOD_OPTIONS[method])
    model = keras_sanm.wrap(network(batch_norm), seed=0, **options)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), weight_decay=5e-4)
    batch = None if method == "dividemix" else BATCH
    history = model.fit(x, y, batch_size=batch, epochs=EPOCHS, verbose=0)
    weights = {f"w{i}": keras.ops.convert_to_numpy(w) for i, w in enumerate(model.weights)}
    return weights, history.history


def save(path, weights, history):
    np.savez(path, history=json.dumps(history), **weights)


def run_jax(out, methods, deterministic):
    import keras

    import keras_sanm.distribution

    for method in methods:
        save(f"{out}/{method}_single.npz", *train(method, deterministic, True))
    keras_sanm.distribution.data_parallel()
    assert keras_sanm.distribution.replica_count() == 2
    for method in methods:
        save(f"{out}/{method}_multi.npz", *train(method, deterministic, True))
    keras.distribution.set_distribution(None)


def run_tensorflow(out, methods, deterministic):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_sanm.distribution

    for method in methods:
        save(f"{out}/{method}_single.npz", *train(method, deterministic, True))
    for method in methods:
        with keras_sanm.distribution.data_parallel(["/cpu:0", "/cpu:1"]):
            assert keras_sanm.distribution.replica_count() == 2
            result = train(method, deterministic, True)
        save(f"{out}/{method}_multi.npz", *result)


def _torch_worker(rank, out, methods, deterministic, port):
    import torch

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      RANK=str(rank), WORLD_SIZE="2")
    import keras_sanm.distribution

    keras_sanm.distribution.data_parallel()
    assert keras_sanm.distribution.replica_count() == 2
    for method in methods:
        # Every process saves: the test checks they hold the same model.
        save(f"{out}/{method}_multi_rank{rank}.npz", *train(method, deterministic, False))
    torch.distributed.destroy_process_group()


def run_torch(out, methods, deterministic):
    import shutil
    import socket

    import torch.multiprocessing as mp

    for method in methods:
        save(f"{out}/{method}_single.npz", *train(method, deterministic, False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_torch_worker, args=(out, methods, deterministic, port), nprocs=2)
    for method in methods:
        shutil.copy(f"{out}/{method}_multi_rank0.npz", f"{out}/{method}_multi.npz")


def differences(out, method) -> dict:
    """Largest absolute single- vs two-device difference of the weights and of the logs."""
    single, multi = np.load(f"{out}/{method}_single.npz"), np.load(f"{out}/{method}_multi.npz")
    weights = max(float(np.max(np.abs(single[k] - multi[k])))
                  for k in single.files if k != "history" and single[k].size)
    logs_1, logs_2 = (json.loads(str(f["history"])) for f in (single, multi))
    logs = max(abs(a - b) for name in logs_1 for a, b in zip(logs_1[name], logs_2[name])
               if a == a)
    return {"weights": weights, "logs": logs, "loss_single": logs_1["loss"],
            "loss_multi": logs_2["loss"]}


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    out_dir, method_names = arguments[0], arguments[1:]
    runner = {"jax": run_jax, "tensorflow": run_tensorflow, "torch": run_torch}[BACKEND]
    runner(out_dir, method_names, "--deterministic" in flags)
    for name in method_names:
        print(BACKEND, name, json.dumps(differences(out_dir, name)))
