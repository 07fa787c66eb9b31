"""int8 recovery recipes: transformations of the float Keras model, driven by calibration data,
applied before the TFLite converter quantises it (AIMET / MCT style, one table, composable);
``range-mse`` (:data:`CALIBRATED_STEPS`) works on the calibrated TFLite model instead.

A recipe is a ``+``-joined sequence of step names, e.g. ``"gptq+bias-tune"``; ``"ptq"`` is plain
post-training quantisation (no step). Mixed precision is separate: ``keep_float``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable

import numpy as np


class RecipeStep(str, Enum):
    """One recovery step (names shared by the API and ``efficientnet-convert --recipe``)."""

    GPTQ = "gptq"  # data-aware rounding of the BN-folded weights onto the converter's int8 grid
    BIAS_CORRECTION = "bias-correction"  # shift biases by the mean output error of int8 weights
    BIAS_TUNE = "bias-tune"  # fine-tune biases against the float model's outputs (distillation)
    QAT = "qat"  # quantisation-aware fine-tuning (tfmot on tf_keras), distilled from the float model
    RANGE_MSE = "range-mse"  # after calibration: conv output ranges by least int8 error, not min/max


#: Steps that work on the calibrated TFLite model (converters.recipes.ranges), not on Keras.
CALIBRATED_STEPS = frozenset({RecipeStep.RANGE_MSE})
#: Steps that change only the weights (no activation quantisation): the ones a dynamic-range
#: model (int8 weights, float activations) can take.
WEIGHT_STEPS = frozenset({RecipeStep.GPTQ, RecipeStep.BIAS_CORRECTION, RecipeStep.BIAS_TUNE})


#: Plain post-training quantisation: no recovery step.
PTQ = "ptq"
#: The default: the best recipe that converts lite0 within 3 minutes on 2 cores (README's table,
#: ``python benchmarks/int8_recipes.py``). Bias tuning on top is more accurate on the calibration
#: photos but less on others (it overfits a few hundred images), so it is opt-in. range-mse
#: adds 1.5 pt (lite2) and 0.5 pt (lite1) of top-1 agreement for seconds; on lite0 it is level.
DEFAULT_RECIPE = "gptq+bias-correction+range-mse"


class RecipeError(ValueError):
    """An unknown or malformed recipe name; the message lists the valid steps."""


def parse_recipe(text: str | None) -> tuple[RecipeStep, ...]:
    """``"gptq+bias-tune"`` → ``(RecipeStep.GPTQ, RecipeStep.BIAS_TUNE)``; ``"ptq"`` → ``()``.

    ``None`` means the default recipe.

    Raises:
        RecipeError: an unknown step, or a step given twice.
    """
    text = DEFAULT_RECIPE if text is None else str(text).strip().lower()
    if text in (PTQ, "none", ""):
        return ()
    steps = []
    valid = ", ".join([PTQ] + [s.value for s in RecipeStep])
    for part in text.split("+"):
        try:
            step = RecipeStep(part.strip())
        except ValueError:
            raise RecipeError(f"unknown recipe step {part.strip()!r} in {text!r}; valid: {valid}, "
                              "joined with '+'") from None
        if step is RecipeStep.QAT:
            _check_qat_installed()
        if step in steps:
            raise RecipeError(f"recipe step {step.value!r} given twice in {text!r}")
        steps.append(step)
    return tuple(steps)


def parse_dynamic_recipe(text: str) -> tuple[RecipeStep, ...]:
    """:func:`parse_recipe` for dynamic-range models: weight steps only (``"ptq"``: none).

    Raises:
        RecipeError: an unknown step, or one that works on activation ranges (int8 only).
    """
    steps = parse_recipe(text)
    bad = [s.value for s in steps if s not in WEIGHT_STEPS]
    if bad:
        ok = ", ".join(s.value for s in RecipeStep if s in WEIGHT_STEPS)
        raise RecipeError(f"recipe step {', '.join(bad)} quantises activations, which a "
                          f"dynamic-range model keeps in float: use --int8, or steps from {ok}")
    return steps


def _check_qat_installed() -> None:
    """``qat`` runs tfmot on tf_keras: say so up front (before any training) if either is missing."""
    import importlib.util  # noqa: PLC0415

    missing = [pkg for pkg, mod in (("tensorflow-model-optimization", "tensorflow_model_optimization"),
                                    ("tf-keras", "tf_keras")) if importlib.util.find_spec(mod) is None]
    if missing:
        raise RecipeError(f"recipe step 'qat' needs {' and '.join(missing)}: "
                          "pip install 'efficientnet-edge[convert]'")


@dataclass
class RecipeReport:
    """What a recipe did and what it cost."""

    recipe: str
    seconds: float = 0.0
    images: int = 0  # calibration images the recipe used
    steps: list[dict] = field(default_factory=list)  # per step: name, seconds, what it changed
    keep_float: list[str] = field(default_factory=list)  # Keras layers left in float

    def to_dict(self) -> dict:
        return asdict(self)


#: Calibration images a recipe uses at most: for bias tuning, and (the first STATS_IMAGES) for
#: the layer statistics of rounding and bias correction.
RECIPE_IMAGES = 256
STATS_IMAGES = 128


def float_outputs(model: Any, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """``model``'s outputs on ``x`` in batches (float32): the targets of the distilling steps."""
    return np.concatenate([np.asarray(model(x[i:i + batch], training=False))
                           for i in range(0, len(x), batch)]).astype(np.float32)


def recipe_name(steps: Iterable[RecipeStep]) -> str:
    """The canonical name of a set of steps: in :class:`RecipeStep` order (the order they run),
    ``"ptq"`` for none."""
    steps = set(steps)
    return "+".join(s.value for s in RecipeStep if s in steps) or PTQ


def apply_recipe(net: Any, reference: Any, inputs: np.ndarray, steps: Iterable[RecipeStep],
                 seed: int = 0, progress: Callable[[Iterable], Iterable] | None = None,
                 skip: Iterable[str] = ()) -> RecipeReport:
    """Apply recovery ``steps`` to ``net`` in place, before it is converted to int8.

    Args:
        net: the Keras model that will be converted (modified in place).
        reference: the float model it came from: same layers and weights, never modified. Its
            outputs and activations are the targets.
        inputs: calibration inputs in the models' input domain (N×H×W×3 float32); at most
            :data:`RECIPE_IMAGES` are used.
        steps: from :func:`parse_recipe`, applied in the order of :class:`RecipeStep`.
        skip: Keras layers left as they are (those that stay float in the int8 model).

    Returns:
        what each step did and cost.
    """
    from . import bias, folding, gptq, stats  # noqa: PLC0415 - TensorFlow-heavy

    steps, skip = set(steps) - CALIBRATED_STEPS, set(skip)
    t0 = time.perf_counter()
    x = np.asarray(inputs, dtype=np.float32)[:RECIPE_IMAGES]
    report = RecipeReport(recipe_name(steps), images=len(x))
    layers = folding.quant_layers(net)
    if steps & {RecipeStep.GPTQ, RecipeStep.BIAS_CORRECTION}:
        t = time.perf_counter()
        moved, shifts = [], []

        def fix(q: folding.QuantLayer, st: stats.LayerStats) -> None:
            if q.name in skip:
                return
            now = folding.read_folded(net, q).rows
            ref_rows = folding.read_folded(reference, q).rows
            if RecipeStep.GPTQ in steps:
                # round towards the float layer's output given the int8 inputs it now sees
                target = gptq.asymmetric_target(ref_rows, st, q.kind == "depthwise")
                rounded = (gptq.gptq_depthwise(target, st.hessian) if q.kind == "depthwise"
                           else gptq.gptq_rows(target, st.hessian))
            else:
                rounded = folding.round_to_grid(now)
            shift = None
            if RecipeStep.BIAS_CORRECTION in steps:
                shift = bias.correction_shift(q, ref_rows, rounded, st)
                shifts.append(float(np.sqrt(np.mean(shift ** 2))))
            moved.append(float(np.sqrt(np.mean((rounded - now) ** 2))))
            folding.write_folded(net, q, rounded, shift)

        stats.sequential(reference, net, x[:STATS_IMAGES], fix, seed=seed, progress=progress)
        for step in (RecipeStep.GPTQ, RecipeStep.BIAS_CORRECTION):
            if step in steps:
                info = {"step": step.value, "layers": len(layers)}
                if step is RecipeStep.BIAS_CORRECTION:
                    info["rms_bias_shift"] = float(np.mean(shifts))
                report.steps.append(info)
        report.steps[-1]["seconds"] = round(time.perf_counter() - t, 2)
    elif RecipeStep.BIAS_TUNE in steps:
        for q in layers:  # bias tuning trains against int8-grid weights
            if q.name in skip:
                continue
            folding.write_folded(net, q, folding.round_to_grid(folding.read_folded(net, q).rows))
    if RecipeStep.BIAS_TUNE in steps:
        t = time.perf_counter()
        history = bias.tune_biases(net, x, float_outputs(reference, x), seed=seed, progress=progress)
        report.steps.append({"step": RecipeStep.BIAS_TUNE.value, "epochs": len(history),
                             "kl_first_epoch": round(history[0], 6), "kl_last_epoch": round(history[-1], 6),
                             "seconds": round(time.perf_counter() - t, 2)})
    if RecipeStep.QAT in steps:
        from .qat import qat_finetune  # noqa: PLC0415 - starts a tf_keras worker process

        report.steps.append(qat_finetune(net, reference, x, skip=skip, seed=seed, progress=progress))
    report.seconds = round(time.perf_counter() - t0, 2)
    return report


__all__ = ["RecipeStep", "CALIBRATED_STEPS", "WEIGHT_STEPS", "PTQ", "DEFAULT_RECIPE", "RecipeError",
           "parse_recipe", "parse_dynamic_recipe", "RecipeReport", "apply_recipe", "recipe_name",
           "RECIPE_IMAGES"]
