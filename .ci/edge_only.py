"""CI check: in a venv without TensorFlow, EdgeClassifier labels the shipped photos right."""
import sys

import edge
from edge import EdgeClassifier
from edge.samples import sample_photos

model = sys.argv[1]
try:
    import tensorflow  # noqa: F401
    sys.exit("tensorflow is installed in this venv; the check needs a base-only install")
except ImportError:
    pass
photos = sample_photos()
assert len(photos) == 9, photos
bad = []
with EdgeClassifier(model, top_k=5) as clf:
    print(f"backend={clf.backend} delegate={clf.delegate}")
    for p in photos:
        cats = clf.predict(p.path)
        ok = {c.index for c in cats} & set(p.classes)
        print(f"{'ok ' if ok else 'BAD'} {p.name:18s} " + ", ".join(f"{c.label} {c.score:.2f}" for c in cats[:3]))
        if not ok:
            bad.append(p.name)
assert "tensorflow" not in sys.modules, "edge imported tensorflow"
print(f"{len(photos) - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
