"""tf.distribute strategies for ``--strategy``, and which process writes the outputs."""
from __future__ import annotations

import json
import os
from typing import Any

from .options import Strategy, TrainingError


def _cluster_workers() -> int:
    """Workers (chief included) that TF_CONFIG names; 0 without TF_CONFIG."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError) as e:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {e}") from None
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def chief_by_tf_config() -> bool:
    """Whether TF_CONFIG makes this process the chief (true without TF_CONFIG): known before
    TensorFlow starts, so a non-chief worker never touches the output folder."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        config = json.loads(raw)
        task, cluster = config.get("task", {}), config.get("cluster", {})
    except (ValueError, AttributeError) as e:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {e}") from None
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and not cluster.get("chief")


def make_strategy(choice: Any) -> Any:
    """A ``tf.distribute.Strategy`` for a :class:`Strategy` (a Strategy object passes through).

    ``mirrored`` takes every local GPU; without GPUs, every logical CPU device (configure
    several with ``tf.config.set_logical_device_configuration``; one CPU is refused).
    ``multi-worker`` reads the cluster from ``TF_CONFIG``.

    Raises:
        TrainingError: ``multi-worker`` without TF_CONFIG, or ``mirrored`` with one device.
    """
    import tensorflow as tf  # noqa: PLC0415

    if isinstance(choice, tf.distribute.Strategy):
        return choice
    choice = Strategy(choice)
    workers = _cluster_workers()
    if choice is Strategy.AUTO:
        if workers > 1:
            choice = Strategy.MULTI_WORKER
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            choice = Strategy.MIRRORED
        else:
            choice = Strategy.ONE_DEVICE
    if choice is Strategy.ONE_DEVICE:
        return tf.distribute.get_strategy()
    if choice is Strategy.MULTI_WORKER:
        if workers < 1:
            raise TrainingError("--strategy multi-worker needs TF_CONFIG naming the cluster, e.g. "
                                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                                '"task": {"type": "worker", "index": 0}}')
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        raise TrainingError("--strategy mirrored needs at least 2 devices (GPUs, or logical CPU "
                            "devices set with tf.config.set_logical_device_configuration); this "
                            f"machine has {len(devices)}")
    return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy: Any) -> bool:
    """Whether this process writes checkpoints and outputs (always, except the non-chief
    workers of a multi-worker cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                    "chief" not in resolver.cluster_spec().as_dict())


def describe(strategy: Any) -> str:
    """``MirroredStrategy on 2 devices`` etc., for the report."""
    name = type(strategy).__name__
    if name.startswith("_Default"):
        return "one device (no tf.distribute strategy)"
    if getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        workers = _cluster_workers()
        return (f"MultiWorkerMirroredStrategy on {strategy.num_replicas_in_sync} replicas "
                f"({workers} workers)")
    return f"{name} on {strategy.num_replicas_in_sync} replicas"
