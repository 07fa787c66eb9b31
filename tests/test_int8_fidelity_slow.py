"""Heavy (pytest -m slow): the default int8 conversion of lite0, as users get it, judged on the
acceptance-sized set of inputs it never calibrated on: 500 crops (seed 2026, 10-100 % of the
area) of the nine default-set photos and 100 crops of three photos outside every calibration set.
``python benchmarks/int8_recipes.py`` measures the same for every recipe and lite0-2."""
from __future__ import annotations

import numpy as np
import pytest

from calibration import fidelity_set
from converters.tflite import convert
from edge import EdgeClassifier
from edge.evaluate import agreement_summary, output_quantization
from edge.variants import preprocess_spec

pytestmark = pytest.mark.slow


def test_lite0_default_int8_on_600_crops_never_calibrated_on(lite0_imagenet):
    data, report = convert(lite0_imagenet, "int8")  # the defaults users get
    fset = fidelity_set(preprocess_spec("lite0"), n_default=500, n_heldout=100)
    ref = lite0_imagenet.predict(fset.pixels.astype(np.float32), verbose=0, batch_size=16)
    with EdgeClassifier(data, top_k=5) as clf:
        q = np.stack([clf.scores(img) for img in fset.pixels])
    s = agreement_summary(ref, q, output_quantization(data))
    held = fset.groups["held-out photos"]
    unseen = agreement_summary(ref[held], q[held], output_quantization(data))
    print(f"{fset.description}: strict {s.agree:.2%}, ties {s.agree_ties:.2%}, confident "
          f"{s.confident_agree:.2%} of {s.confident}, in top-5 {s.ref_in_top5:.2%}; held-out photos "
          f"strict {unseen.agree:.2%}; recipe {report.recipe.recipe} {report.recipe.seconds:.0f} s")
    assert s.ref_in_top5 >= 0.995
    assert s.agree >= 0.94 and s.agree_ties >= 0.95
    assert unseen.agree >= 0.85
