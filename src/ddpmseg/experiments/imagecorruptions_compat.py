"""The `imagecorruptions` package (1.1.2, unmaintained since 2020) run with today's numpy and
scikit-image: its own functions, given back the two names they lost.

- numpy 2 removed `np.float_`, the alias of float64 that `plasma_fractal` (fog) asks for;
- scikit-image replaced `gaussian(..., multichannel=True)` by `channel_axis=-1` (0.19) and
  then removed the old keyword; `gaussian_blur` and `glass_blur` pass it.

`corrupt` sets the package module's own globals `np` and `gaussian` to the shims below (numpy
and scikit-image themselves are untouched) and calls the package's `corrupt`: every other line
of every corruption, its constants and its random draws are the package's.
"""

import types

import numpy

CORRUPTIONS = 19  # 15 of ImageNet-C and the 4 extra ones (speckle_noise, gaussian_blur, spatter, saturate)


class _NumpyWithOldNames(types.ModuleType):
    """numpy, with the alias numpy 2 removed (`float_` = float64, as it was)."""

    float_ = numpy.float64

    def __getattr__(self, name):
        return getattr(numpy, name)


def _gaussian(image, sigma=1, multichannel=None, **options):
    """scikit-image's `gaussian`, taking the old `multichannel=True` as `channel_axis=-1`."""
    from skimage.filters import gaussian

    if multichannel:
        options["channel_axis"] = -1
    return gaussian(image, sigma=sigma, **options)


def _package():
    """The package's `corruptions` module, its `np` and `gaussian` globals set to the shims."""
    import imagecorruptions.corruptions as module

    if not isinstance(module.np, _NumpyWithOldNames):
        module.np = _NumpyWithOldNames("numpy")
        module.gaussian = _gaussian
    return module


def corrupt(image: numpy.ndarray, corruption: str, severity: int) -> numpy.ndarray:
    """The package's `corrupt(image, corruption_name=corruption, severity=severity)`: image (H, W, 3)
    uint8 -> (H, W, 3), float or uint8 depending on the corruption, drawing from numpy's global
    generator as the package does."""
    _package()
    from imagecorruptions import corrupt as package_corrupt

    return package_corrupt(image, corruption_name=corruption, severity=severity)


def plasma_fractal(mapsize: int, wibbledecay: float) -> numpy.ndarray:
    """The package's fog pattern: a (mapsize, mapsize) float64 map in [0, 1] (mapsize a power of 2)."""
    return _package().plasma_fractal(mapsize=mapsize, wibbledecay=wibbledecay)
