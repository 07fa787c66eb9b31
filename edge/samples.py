"""Real photos shipped inside wheels (scikit-image, matplotlib, scikit-learn), for demos,
tests and the default calibration set, with the ImageNet classes a good model finds in them.

The packages are located, never imported (importing them is slow and not needed to read a file).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplePhoto:
    name: str
    path: str
    #: ImageNet-1k indices any of which is a right answer for this photo.
    classes: tuple[int, ...]


# (name, package, path inside the package, right ImageNet classes)
_PHOTOS = (
    ("chelsea", "skimage", "data/chelsea.png", (281, 282, 285)),  # tabby, tiger cat, Egyptian cat
    ("coffee", "skimage", "data/coffee.png", (967, 968)),  # espresso, cup
    ("rocket", "skimage", "data/rocket.jpg", (657, 744)),  # missile, projectile
    ("motorcycle_left", "skimage", "data/motorcycle_left.png", (665, 670)),  # moped, scooter
    ("motorcycle_right", "skimage", "data/motorcycle_right.png", (665, 670)),
    ("camera", "skimage", "data/camera.png", (872,)),  # tripod
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (652, 400, 834)),
    ("china", "sklearn", "datasets/images/china.jpg", (698,)),  # palace
    ("flower", "sklearn", "datasets/images/flower.jpg", (985,)),  # daisy
)


def _package_dir(package: str) -> str | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def sample_photos() -> list[SamplePhoto]:
    """The shipped photos that are installed here (install the ``samples`` extra for all nine)."""
    out = []
    for name, package, rel, classes in _PHOTOS:
        root = _package_dir(package)
        if root is None:
            continue
        path = os.path.join(root, *rel.split("/"))
        if os.path.isfile(path):
            out.append(SamplePhoto(name, path, classes))
    return out


def sample_photo(name: str) -> SamplePhoto:
    """One shipped photo by name.

    Raises:
        LookupError: the photo's package is not installed, or the name is unknown.
    """
    for p in sample_photos():
        if p.name == name:
            return p
    known = ", ".join(n for n, *_ in _PHOTOS)
    raise LookupError(f"sample photo {name!r} not found (known: {known}; "
                      "install scikit-image, matplotlib and scikit-learn to have them all)")
