"""Heavy: int8 vs float on 540 random crops and flips of the shipped photos (pytest -m slow)."""
from __future__ import annotations

import numpy as np
import pytest

from calibration import default_calibration
from converters.tflite import convert
from edge import EdgeClassifier
from edge.variants import preprocess_spec

pytestmark = pytest.mark.slow


def test_lite0_int8_fidelity_on_540_real_photo_crops(lite0_imagenet):
    data, report = convert(lite0_imagenet, "int8")  # the defaults users get
    x = default_calibration(preprocess_spec("lite0"), 540, seed=1, warn=False)
    ref = lite0_imagenet.predict(x.astype(np.float32), verbose=0, batch_size=32)
    with EdgeClassifier(data, top_k=5) as clf:
        q = np.stack([clf.scores(img) for img in x])
    f1 = ref.argmax(1)
    in_top5 = (np.argsort(-q, 1)[:, :5] == f1[:, None]).any(1)
    agree = q.argmax(1) == f1
    confident = ref.max(1) >= 0.5
    print(f"top-1 agreement {agree.mean():.2%}, float top-1 in int8 top-5 {in_top5.mean():.2%}, "
          f"agreement where float p>=0.5: {agree[confident].mean():.2%} of {confident.sum()}")
    assert in_top5.mean() >= 0.99
    assert agree[confident].all()
    assert agree.mean() >= 0.92
