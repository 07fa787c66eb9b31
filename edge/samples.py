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


#: Photos of the same wheels that are NOT in the default calibration set: int8 agreement is
#: measured on them (and on crops of the nine above drawn with another seed).
_HELDOUT_PHOTOS = (
    ("astronaut", "skimage", "data/astronaut.png", ()),
    ("clock_motion", "skimage", "data/clock_motion.png", (409, 892)),  # analog clock, wall clock
    ("coins", "skimage", "data/coins.png", ()),
)
#: Far from ImageNet (telescope, fundus camera, microscope): a stress set, reported apart.
_OOD_PHOTOS = (
    ("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg", ()),
    ("retina", "skimage", "data/retina.jpg", ()),
    ("ihc", "skimage", "data/ihc.png", ()),
)


def _package_dir(package: str) -> str | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def sample_photos(which: str = "default") -> list[SamplePhoto]:
    """The shipped photos that are installed here (install the ``samples`` extra for all).

    ``which``: 'default' (the nine of the default calibration set and the demos), 'heldout'
    (three photos never calibrated on by default), or 'ood' (three far-from-ImageNet images).
    """
    table = {"default": _PHOTOS, "heldout": _HELDOUT_PHOTOS, "ood": _OOD_PHOTOS}
    if which not in table:
        raise ValueError(f"which must be one of {', '.join(table)}, got {which!r}")
    out = []
    for name, package, rel, classes in table[which]:
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
