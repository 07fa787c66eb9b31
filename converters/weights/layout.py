"""Map the Keras model's weighted layers to the names other weight formats use.

Each weighted layer gets a :class:`Slot` (block index + role); a format is a small table from
role to its own tensor names. Arrays are always handed over in Keras layout.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_BLOCK = re.compile(r"^block(\d+)([a-z])_(.+)$")
_TOP = {"stem_conv": "stem_conv", "stem_bn": "stem_bn", "top_conv": "head_conv",
        "top_bn": "head_bn", "predictions": "fc"}


@dataclass(frozen=True)
class Slot:
    """A weighted layer: ``block`` is the flat block index (None for stem/head)."""

    layer: str
    role: str  # stem_conv, stem_bn, expand_conv, expand_bn, dwconv, bn, se_reduce, se_expand,
    # project_conv, project_bn, head_conv, head_bn, fc
    block: int | None
    expands: bool  # whether this layer's block has an expand conv (TF names depend on it)
    kind: str  # conv, dwconv, bn, dense


def _kind(role: str) -> str:
    if role.endswith("bn") or role == "bn":
        return "bn"
    return {"dwconv": "dwconv", "fc": "dense"}.get(role, "conv")


def slots(model: Any) -> list[Slot]:
    """The weighted layers of a model built by :mod:`converters.efficientnet`, in order."""
    names = [layer.name for layer in model.layers if layer.weights]
    prefixes: list[str] = []
    for n in names:
        m = _BLOCK.match(n)
        if m and m.group(0)[: -len(m.group(3))] not in prefixes:
            prefixes.append(m.group(0)[: -len(m.group(3))])
    expanding = {p for p in prefixes if f"{p}expand_conv" in names}
    out = []
    for n in names:
        m = _BLOCK.match(n)
        if m:
            prefix = n[: -len(m.group(3))]
            role = m.group(3)
            out.append(Slot(n, role, prefixes.index(prefix), prefix in expanding, _kind(role)))
        elif n in _TOP:
            out.append(Slot(n, _TOP[n], None, False, _kind(_TOP[n])))
    return out


# ---- lukemelas / efficientnet-lite-pytorch state dict names ------------------------------------
_LUKEMELAS = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head",
              "head_bn": "_bn1", "fc": "_fc", "expand_conv": "_expand_conv", "expand_bn": "_bn0",
              "dwconv": "_depthwise_conv", "bn": "_bn1", "se_reduce": "_se_reduce",
              "se_expand": "_se_expand", "project_conv": "_project_conv", "project_bn": "_bn2"}


def lukemelas_prefix(slot: Slot) -> str:
    base = _LUKEMELAS[slot.role]
    return base if slot.block is None else f"_blocks.{slot.block}.{base}"


# ---- official tensorflow/tpu checkpoint names ---------------------------------------------------
def tf_scope(slot: Slot) -> str:
    """Variable scope under the model name, e.g. ``blocks_3/tpu_batch_normalization_1``."""
    if slot.block is None:
        return {"stem_conv": "stem/conv2d", "stem_bn": "stem/tpu_batch_normalization",
                "head_conv": "head/conv2d", "head_bn": "head/tpu_batch_normalization",
                "fc": "head/dense"}[slot.role]
    if slot.expands:
        table = {"expand_conv": "conv2d", "expand_bn": "tpu_batch_normalization",
                 "dwconv": "depthwise_conv2d", "bn": "tpu_batch_normalization_1",
                 "project_conv": "conv2d_1", "project_bn": "tpu_batch_normalization_2"}
    else:
        table = {"dwconv": "depthwise_conv2d", "bn": "tpu_batch_normalization",
                 "project_conv": "conv2d", "project_bn": "tpu_batch_normalization_1"}
    table.update({"se_reduce": "se/conv2d", "se_expand": "se/conv2d_1"})
    return f"blocks_{slot.block}/{table[slot.role]}"


def tf_variable_names(slot: Slot, n_weights: int) -> list[str]:
    """TF variable names, in Keras weight order, for a slot with ``n_weights`` Keras weights."""
    scope = tf_scope(slot)
    if slot.kind == "bn":
        return [f"{scope}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")]
    kernel = "depthwise_kernel" if slot.kind == "dwconv" else "kernel"
    return [f"{scope}/{kernel}", f"{scope}/bias"][:n_weights]
