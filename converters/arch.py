"""EfficientNet architecture as data: block strings, one config dataclass, Lite as overrides.

Pure Python (no TensorFlow), so reports and tests can reason about shapes without building.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from edge.variants import Variant, get_variant

#: tensorflow/tpu block strings: r=repeats k=kernel s=strides e=expand i=in o=out se=ratio.
DEFAULT_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)


@dataclass(frozen=True)
class BlockArgs:
    """One stage of MBConv blocks, before width/depth scaling."""

    repeats: int
    kernel_size: int
    strides: int
    expand_ratio: int
    filters_in: int
    filters_out: int
    se_ratio: float = 0.0
    id_skip: bool = True


_TOKEN = re.compile(r"^(r|k|s|e|i|o|se|noskip)(\d*\.?\d*)$")


def decode_block(text: str) -> BlockArgs:
    """Decode one tensorflow/tpu block string such as ``r2_k3_s22_e6_i16_o24_se0.25``.

    Raises:
        ValueError: a malformed or missing token, named in the message.
    """
    fields: dict[str, str] = {}
    for token in text.split("_"):
        m = _TOKEN.match(token)
        if not m or (m.group(1) != "noskip" and not m.group(2)):
            raise ValueError(f"bad token {token!r} in block string {text!r}")
        fields[m.group(1)] = m.group(2)
    for key in ("r", "k", "s", "e", "i", "o"):
        if key not in fields:
            raise ValueError(f"block string {text!r} lacks the {key!r} token")
    s = fields["s"]
    if len(s) == 2 and s[0] != s[1]:
        raise ValueError(f"bad token 's{s}' in {text!r}: only square strides are supported")
    return BlockArgs(
        repeats=int(fields["r"]), kernel_size=int(fields["k"]), strides=int(s[0]),
        expand_ratio=int(fields["e"]), filters_in=int(fields["i"]), filters_out=int(fields["o"]),
        se_ratio=float(fields.get("se", 0) or 0), id_skip="noskip" not in fields)


@dataclass(frozen=True)
class ModelConfig:
    """Everything the builder needs; B and Lite differ only in the overrides below."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    blocks: tuple[str, ...] = DEFAULT_BLOCKS
    activation: str = "swish"
    use_se: bool = True
    fix_stem_head: bool = False
    drop_connect_rate: float = 0.2
    depth_divisor: int = 8
    stem_filters: int = 32
    head_filters: int = 1280

    def round_filters(self, filters: int) -> int:
        """Scale channels by ``width``: nearest multiple of 8, never losing more than 10 %."""
        filters *= self.width
        d = self.depth_divisor
        new = max(d, int(filters + d / 2) // d * d)
        if new < 0.9 * filters:
            new += d
        return int(new)

    def round_repeats(self, repeats: int) -> int:
        return int(math.ceil(self.depth * repeats))

    @property
    def stem_channels(self) -> int:
        return self.stem_filters if self.fix_stem_head else self.round_filters(self.stem_filters)

    @property
    def head_channels(self) -> int:
        return self.head_filters if self.fix_stem_head else self.round_filters(self.head_filters)

    def stages(self) -> list[BlockArgs]:
        """Scaled stages: filters rounded, repeats rounded, SE dropped when ``use_se`` is off."""
        decoded = [decode_block(b) for b in self.blocks]
        out = []
        for i, b in enumerate(decoded):
            first_or_last = i in (0, len(decoded) - 1)
            repeats = b.repeats if (self.fix_stem_head and first_or_last) else self.round_repeats(b.repeats)
            filters_in = self.stem_channels if i == 0 else self.round_filters(b.filters_in)
            out.append(replace(
                b, repeats=repeats, filters_in=filters_in,
                filters_out=self.round_filters(b.filters_out),
                se_ratio=b.se_ratio if self.use_se else 0.0))
        return out


def model_config(name: str) -> ModelConfig:
    """The config of a named variant (``b0``…``b7``, ``lite0``…``lite4``).

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    v: Variant = get_variant(name)
    cfg = ModelConfig(v.name, v.width, v.depth, v.resolution, v.dropout)
    if v.family == "lite":
        cfg = replace(
            cfg,
            activation="relu6",  # relu6 for easier quantization (tensorflow/tpu lite builder)
            use_se=False,  # squeeze-excite is not well supported on many lite devices
            fix_stem_head=True,  # stem 32 / head 1280 and first/last stage repeats not scaled:
            # keeps the heavy ends of the model small when scaling up
        )
    return cfg
