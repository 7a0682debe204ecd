"""The natural compressor (``natural``), the worked example of docs/extending.md: values by
hand, its bit count, and its certified rate against the bound of its docstring. The
contract tests (tests/test_compressors.py) run it too, through EXAMPLE_SPECS."""

import numpy as np
import pytest

from stflow import certify, make_compressor
from stflow.compressors import EXAMPLE_SPECS


def test_values_by_hand():
    c = make_compressor("natural", 6)
    z = np.array([3.0, -0.7, 0.0, 1.5, 2.0**-1074, -1e300])
    # round(log2): 1.585 -> 2, -0.515 -> -1, 0.585 -> 1, smallest subnormal stays, 996.6 -> 997
    want = [4.0, -0.5, 0.0, 2.0, 2.0**-1074, -(2.0**997)]
    assert c(z, 0.0).tolist() == want
    assert np.array_equal(c.decode(c.encode(z[None, :], 0.0), 0.0)[0], want)


def test_bits_and_the_sparse_composition():
    assert make_compressor("natural", 10).bits_per_message() == 130  # 10 * (1 + 12)
    # top-k then natural: 3 indices of ceil(log2 10) = 4 bits, 3 entries of 13 bits
    c = make_compressor("topk:k=3|natural", 10)
    assert c.bits_per_message() == 3 * 4 + 3 * 13
    z = np.array([[0.1, -5.0, 0.0, 2.9, 0.3, 0.0, 0.0, 1.1, 0.0, 0.0]])
    out = c.decode_array(c.encode_array(z, 0.0), 0.0)
    assert out.tolist() == [[0.0, -4.0, 0.0, 4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]


def test_certified_rate_is_above_the_bound():
    cert = certify(make_compressor("natural", 8))
    assert cert.spatio_temporal and cert.rate >= 1 / np.sqrt(2) - 1e-9
    assert cert.linear_bound == pytest.approx(np.sqrt(2), rel=5e-3)
    assert "natural" in EXAMPLE_SPECS
