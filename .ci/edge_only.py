"""CI check: in a venv without TensorFlow, EdgeClassifier labels the shipped photos right, and
`efficientnet-classify DIR -r --output rows.csv` classifies a folder of them."""
import csv
import os
import shutil
import sys
import tempfile

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

from edge.cli import classify_main  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    for i, p in enumerate(photos):
        folder = os.path.join(tmp, "photos", "sub" if i % 2 else "")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(p.path, folder)
    rows_path = os.path.join(tmp, "rows.csv")
    rc = classify_main([model, os.path.join(tmp, "photos"), "-r", "--output", rows_path,
                        "--top-k", "5", "--no-progress"])
    rows = list(csv.DictReader(open(rows_path)))
    folder_ok = rc == 0 and len(rows) == len(photos) and all(r["label_1"] for r in rows)
    print(f"{'ok ' if folder_ok else 'BAD'} efficientnet-classify DIR -r: {len(rows)} rows, exit {rc}")
    if not folder_ok:
        bad.append("folder CLI")
assert "tensorflow" not in sys.modules, "edge imported tensorflow"
print(f"{len(photos) + 1 - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
