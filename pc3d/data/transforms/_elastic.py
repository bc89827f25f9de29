"""Numba kernels behind :class:`ElasticDistortion`."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _blur_axis(a: np.ndarray, axis: int) -> np.ndarray:
    nx, ny, nz, c = a.shape
    out = np.empty_like(a)
    third = np.float32(1.0 / 3.0)
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                for ch in range(c):
                    s = a[i, j, k, ch]
                    if axis == 0:
                        if i > 0:
                            s += a[i - 1, j, k, ch]
                        if i < nx - 1:
                            s += a[i + 1, j, k, ch]
                    elif axis == 1:
                        if j > 0:
                            s += a[i, j - 1, k, ch]
                        if j < ny - 1:
                            s += a[i, j + 1, k, ch]
                    else:
                        if k > 0:
                            s += a[i, j, k - 1, ch]
                        if k < nz - 1:
                            s += a[i, j, k + 1, ch]
                    out[i, j, k, ch] = s * third
    return out


def blur_noise(noise: np.ndarray) -> np.ndarray:
    """Twice: 3-tap box blur along x, y, z with zero padding (``scipy.ndimage.convolve`` mode constant)."""
    for _ in range(2):
        for axis in range(3):
            noise = _blur_axis(noise, axis)
    return noise


@numba.njit(cache=True)
def _trilinear_add(coord, noise, origin, step, magnitude):
    nx, ny, nz, _ = noise.shape
    for p in range(coord.shape[0]):
        fx = (coord[p, 0] - origin[0]) / step
        fy = (coord[p, 1] - origin[1]) / step
        fz = (coord[p, 2] - origin[2]) / step
        ix, iy, iz = int(np.floor(fx)), int(np.floor(fy)), int(np.floor(fz))
        tx, ty, tz = fx - ix, fy - iy, fz - iz
        acc0 = 0.0
        acc1 = 0.0
        acc2 = 0.0
        for dx in range(2):
            wx = tx if dx else 1.0 - tx
            x = ix + dx
            if x < 0 or x >= nx:
                continue
            for dy in range(2):
                wy = ty if dy else 1.0 - ty
                y = iy + dy
                if y < 0 or y >= ny:
                    continue
                for dz in range(2):
                    wz = tz if dz else 1.0 - tz
                    z = iz + dz
                    if z < 0 or z >= nz:
                        continue
                    w = wx * wy * wz
                    acc0 += w * noise[x, y, z, 0]
                    acc1 += w * noise[x, y, z, 1]
                    acc2 += w * noise[x, y, z, 2]
        coord[p, 0] += acc0 * magnitude
        coord[p, 1] += acc1 * magnitude
        coord[p, 2] += acc2 * magnitude


def trilinear_add(
    coord: np.ndarray, noise: np.ndarray, origin: np.ndarray, step: float, magnitude: float
) -> None:
    """In place: ``coord (N,3) += magnitude * trilinear(noise (X,Y,Z,3))`` on the grid ``origin + step * ijk``."""
    _trilinear_add(coord, noise, np.asarray(origin, np.float64), float(step), float(magnitude))
