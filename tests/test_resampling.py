"""Position tables resampled for other input sizes, against the definitions written out here.

MViT v1's spatial positions are resampled bicubically (Keys' cubic convolution, a = -0.75, as
torchvision and pytorchvideo do), its temporal ones and MViTv2's relative-position tables
linearly; both with half-pixel centres (align_corners=False) and clamped borders. The
expected values below come from those definitions, computed by hand, not from the code
under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvit_cli.models.positions import PositionalEmbedding, resize_table


def _source(out_len: int, in_len: int) -> np.ndarray:
    """Source coordinates of each output sample: half-pixel centres, align_corners=False."""
    return (np.arange(out_len) + 0.5) * in_len / out_len - 0.5


def linear_by_definition(table: np.ndarray, length: int) -> np.ndarray:
    """Rows of `table` (n, d) linearly interpolated to `length` rows."""
    n = table.shape[0]
    x = np.clip(_source(length, n), 0, n - 1)
    low = np.floor(x).astype(int)
    high = np.minimum(low + 1, n - 1)
    frac = (x - low)[:, None]
    return table[low] * (1 - frac) + table[high] * frac


def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def bicubic_axis(values: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Keys' cubic convolution along one axis, the 4 taps clamped at the borders."""
    n = values.shape[axis]
    x = _source(length, n)
    base = np.floor(x).astype(int)
    out = 0.0
    for tap in (-1, 0, 1, 2):
        index = np.clip(base + tap, 0, n - 1)
        weight = _cubic(x - (base + tap))
        shape = [1] * values.ndim
        shape[axis] = length
        out = out + np.take(values, index, axis=axis) * weight.reshape(shape)
    return out


@pytest.mark.parametrize("rows,length", [(15, 23), (15, 9), (7, 7), (3, 31), (31, 3)])
def test_relative_position_tables_resample_linearly(rows, length):
    table = np.random.default_rng(rows).standard_normal((rows, 5))
    got = resize_table(torch.from_numpy(table), length).numpy()
    np.testing.assert_allclose(got, linear_by_definition(table, length), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("grid,new_grid", [((8, 7, 7), (8, 10, 12)), ((4, 6, 6), (6, 4, 5)),
                                           ((8, 14, 14), (16, 14, 14))])
def test_v1_positions_resample_bicubically_in_space_and_linearly_in_time(grid, new_grid):
    torch.manual_seed(0)
    positions = PositionalEmbedding(4, grid, has_cls=False).double()
    t, h, w = grid
    spatial = positions.spatial.detach().numpy().T.reshape(4, h, w)
    spatial = bicubic_axis(bicubic_axis(spatial, new_grid[1], axis=1), new_grid[2], axis=2)
    spatial = spatial.reshape(4, -1).T
    temporal = positions.temporal.detach().numpy()
    if new_grid[0] != t:
        temporal = linear_by_definition(temporal, new_grid[0])
    expected = (temporal[:, None, :] + spatial[None, :, :]).reshape(-1, 4)
    with torch.no_grad():
        got = positions.grid_positions(new_grid).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
