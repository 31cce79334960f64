"""Seeded acquisition corruptions of 2-D images and 3-D volumes: the imaging pseudo-sites.

A scanner, protocol or reconstruction setting changes how the same anatomy looks; a
model trained at one site meets another site's images.  With one public copy of each
MedMNIST set there are no real sites, so the imaging tasks make *pseudo-sites*: the same
images under one documented corruption each, applied to every image of every official
split alike.  Meta-train on some corruptions, adapt from K images to an unseen one.

Every corruption maps images in [0, 1] (shape ``(n, height, width)``, or ``(n, depth,
height, width)`` for volumes, float32) to images in [0, 1] of the same shape, image by
image (no statistic crosses images, so a held-out image never moves another's pixels);
the 3-D versions act the same way along every spatial axis (a blur in three
directions, 2 x 2 x 2 blocks for the resolution).  The one random corruption (speckle)
draws its noise from a generator the caller seeds.  The strengths are named constants, chosen so
that the images stay readable by eye but their intensity statistics move as much as a
change of device does (halved contrast, a gamma of 2, a one-pixel blur at 28 px):

==============  ============================================================================
name            what it does
==============  ============================================================================
``none``        the image as published
``blur``        Gaussian blur, sigma ``BLUR_SIGMA_PX`` (1 px), edges reflected (a softer
                reconstruction kernel)
``contrast``    contrast scaled by ``CONTRAST_FACTOR`` (0.5) about each image's mean
                (a narrower window)
``gamma``       intensities raised to ``GAMMA`` (2.0): darker mid-tones (another display /
                detector response curve)
``speckle``     multiplicative Gaussian noise, x (1 + ``SPECKLE_SD`` n), n ~ N(0, 1),
                SD 0.25, clipped to [0, 1] (ultrasound speckle, quantum noise)
``resolution``  2x2 block mean then nearest-neighbour back up (``RESOLUTION_FACTOR`` 2):
                half the resolution of the detector
==============  ============================================================================

On binary masks (AdrenalMNIST3D's shapes: values 0 and 1) ``gamma`` changes nothing
(0 and 1 are fixed points of x ** 2), so a 3-D setting should not use it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from metamed.errors import MetamedValueError, unknown_name

__all__ = [
    "BLUR_SIGMA_PX",
    "CONTRAST_FACTOR",
    "CORRUPTIONS",
    "GAMMA",
    "RESOLUTION_FACTOR",
    "SPECKLE_SD",
    "corrupt",
]

#: Standard deviation of the Gaussian blur, in pixels of the 28-px image.
BLUR_SIGMA_PX = 1.0
#: Contrast multiplier about each image's own mean intensity.
CONTRAST_FACTOR = 0.5
#: Exponent of the intensity curve (> 1 darkens mid-tones).
GAMMA = 2.0
#: Standard deviation of the multiplicative speckle noise.
SPECKLE_SD = 0.25
#: Block size of the downsampling (2: 28 px -> 14 px -> 28 px).
RESOLUTION_FACTOR = 2


def _none(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images


def _blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # sigma 0 on the image axis: each image is blurred on its own.
    sigma = (0.0, *[BLUR_SIGMA_PX] * (images.ndim - 1))
    return gaussian_filter(images, sigma=sigma, mode="reflect")


def _contrast(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mean = images.mean(axis=tuple(range(1, images.ndim)), keepdims=True)
    return mean + CONTRAST_FACTOR * (images - mean)


def _gamma(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images**GAMMA


def _speckle(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(images.shape, dtype=np.float32)
    return images * (1.0 + SPECKLE_SD * noise)


def _resolution(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = RESOLUTION_FACTOR
    n, *sizes = images.shape
    if any(size % f for size in sizes):
        raise MetamedValueError(
            f"resolution corruption: image size {'x'.join(map(str, sizes))} is not a "
            f"multiple of {f}."
        )
    blocks = [part for size in sizes for part in (size // f, f)]  # (n, h/f, f, w/f, f, ...)
    low = images.reshape(n, *blocks).mean(axis=tuple(range(2, 2 * len(sizes) + 1, 2)))
    for axis in range(1, len(sizes) + 1):
        low = np.repeat(low, f, axis=axis)
    return low


#: Corruption name -> function(images, rng) -> images (before clipping to [0, 1]).
CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "none": _none,
    "blur": _blur,
    "contrast": _contrast,
    "gamma": _gamma,
    "speckle": _speckle,
    "resolution": _resolution,
}


def corrupt(images: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """``images`` (n, height, width) or (n, depth, height, width) in [0, 1] under
    corruption ``name``, as float32.

    Parameters
    ----------
    images : ndarray of shape (n, height, width) or (n, depth, height, width)
        Intensities in [0, 1].
    name : str
        One of :data:`CORRUPTIONS` ("did you mean" otherwise).
    rng : numpy.random.Generator
        Source of the speckle noise (unused by the deterministic corruptions).

    Returns
    -------
    ndarray of float32, same shape, values in [0, 1]
    """
    if name not in CORRUPTIONS:
        raise unknown_name("corruption", name, CORRUPTIONS)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim not in (3, 4):
        raise MetamedValueError(
            "corrupt: images must have shape (n, height, width) or (n, depth, height, "
            f"width), got {images.shape}."
        )
    out = CORRUPTIONS[name](images, rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
