"""Compressors: the contract every entry of EXAMPLE_SPECS must meet, hand-computed values,
exact wire bytes and bit counts, and the spec parser's errors."""

import math
import struct

import numpy as np
import pytest

from stflow.compressors import (
    COMPRESSOR_DOCS,
    EXAMPLE_SPECS,
    Compressor,
    _pack_uint,
    _unpack_uint,
    compressor_names,
    make_compressor,
)
from stflow.errors import InputError

DIMS = (3, 7, 10)
TIMES = (0.0, 0.3, 1.2345, 17.0)


def _params(stage):
    name, _, args = stage.partition(":")
    keys = dict(COMPRESSOR_DOCS[name])
    params = {k: v[0] for k, v in keys.items()}
    for item in filter(None, args.split(",")):
        k, _, v = item.partition("=")
        params[k] = type(params[k])(v) if not isinstance(params[k], str) else v
    return name, params


def expected_bits(spec, d):
    """SPEC section 6, recomputed independently of the library."""
    idx = math.ceil(math.log2(d)) if d > 1 else 0
    stages = [_params(s) for s in spec.split("|")]
    if len(stages) == 2:
        (a, pa), (b, pb) = stages
        if a in ("topk", "randk") and b in ("quantize", "identity"):
            k = pa["k"]
            head = k * idx if a == "topk" else 0
            if b == "quantize":
                return head + (12 if pb["scale"] == "pow2" else 64) + k * pb["bits"]
            return head + 64 * k
        return expected_bits(spec.split("|")[1], d)
    name, p = stages[0]
    return {
        "identity": 64 * d,
        "topk": p.get("k", 0) * (idx + 64),
        "quantize": (12 if p.get("scale") == "pow2" else 64) + d * p.get("bits", 0),
        "scalarize": 64,
        "sign": 64 + d,
        "randk": 64 * p.get("k", 0),
        "fixedquant": 64 * d,
        "natural": 13 * d,
    }[name]


def _samples(d, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((12, d)) * 10.0 ** rng.uniform(-6, 6, (12, 1))
    Z[0] = 0.0
    Z[1] = 1.0  # all ties
    Z[2, : d // 2] = 0.0
    Z[3] = np.round(Z[3] * 4) / 4 / 1e-6  # exact halves: rounding ties in the quantizers
    Z[4] = np.where(np.arange(d) % 2 == 0, 0.5, -0.5)
    return Z


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("spec", EXAMPLE_SPECS)
def test_contract(spec, d):
    c = make_compressor(spec, d)
    assert isinstance(c, Compressor) and c.dim == d
    Z = _samples(d)
    assert make_compressor(c.spec, d).spec == c.spec  # canonical spec round-trips
    assert c.bits_per_message() == expected_bits(spec, d)
    nbytes = math.ceil(expected_bits(spec, d) / 8)
    for t in TIMES:
        C = c(Z, t)
        assert C.shape == Z.shape
        one = c(Z[5], t)
        assert one.shape == (d,)
        np.testing.assert_allclose(one, C[5], rtol=1e-12, atol=0)
        ratio = np.linalg.norm(C, axis=1) <= c.linear_bound * np.linalg.norm(Z, axis=1) * (
            1 + 1e-12
        )
        assert ratio.all(), (spec, t)
        msgs = c.encode(Z, t)
        assert len(msgs) == Z.shape[0]
        assert all(isinstance(m, bytes) and len(m) == nbytes for m in msgs)
        D = c.decode(msgs, t)
        assert D.shape == Z.shape and np.array_equal(D, C), (spec, t)
        # whole-array wire format: the same bytes in one (N, nbytes) uint8 array
        buf = c.encode_array(Z, t)
        assert buf.dtype == np.uint8 and buf.shape == (Z.shape[0], nbytes)
        assert buf.tobytes() == b"".join(msgs)
        assert np.array_equal(c.decode_array(buf, t), C), (spec, t)
        assert c.decode_array(buf[:0], t).shape == (0, d)
    assert c.describe() == {
        "spec": c.spec,
        "linear": c.linear,
        "bits_per_message": expected_bits(spec, d),
        "linear_bound": c.linear_bound,
    }


@pytest.mark.parametrize("spec", EXAMPLE_SPECS)
def test_linear_flag_means_superposition(spec):
    d = 7
    c = make_compressor(spec, d)
    rng = np.random.default_rng(3)
    z1, z2 = rng.standard_normal((2, 4, d))
    mixed = c(2.5 * z1 - 0.7 * z2, 0.42)
    superposed = 2.5 * c(z1, 0.42) - 0.7 * c(z2, 0.42)
    if c.linear:
        np.testing.assert_allclose(mixed, superposed, rtol=1e-12, atol=1e-12)
    else:  # every nonlinear example really is nonlinear on generic data
        assert not np.allclose(mixed, superposed, rtol=1e-9, atol=1e-9)


def test_topk_ties_go_to_lower_index():
    c = make_compressor("topk:k=1", 3)
    assert c(np.array([1.0, -1.0, 1.0]), 0.0).tolist() == [1.0, 0.0, 0.0]
    assert c(np.array([-2.0, 2.0, 1.0]), 0.0).tolist() == [-2.0, 0.0, 0.0]
    c2 = make_compressor("topk:k=2", 4)
    assert c2(np.array([1.0, 3.0, 1.0, 1.0]), 0.0).tolist() == [1.0, 3.0, 0.0, 0.0]
    assert c2(np.zeros(4), 0.0).tolist() == [0.0] * 4


def test_topk_wire_bytes():
    c = make_compressor("topk:k=2", 4)  # indices 1 and 3 in 2 bits, then 5.0 and -7.0
    (msg,) = c.encode(np.array([[0.0, 5.0, 0.0, -7.0]]), 0.0)
    assert c.bits_per_message() == 2 * (2 + 64) and len(msg) == 17
    bits = np.unpackbits(np.frombuffer(msg, dtype=np.uint8))
    assert bits[:4].tolist() == [0, 1, 1, 1]
    floats = np.packbits(bits[4:132]).tobytes()
    assert floats == struct.pack("<2d", 5.0, -7.0)
    assert bits[132:].sum() == 0  # padding only at the end


def test_quantize_by_hand_and_wire_bytes():
    c = make_compressor("quantize:bits=3", 3)  # s = 3, m = 1: rint([1.5, -3, 0.75]) = [2, -3, 1]
    z = np.array([0.5, -1.0, 0.25])
    assert c(z, 0.0).tolist() == [2.0 / 3.0, -1.0, 1.0 / 3.0]
    (msg,) = c.encode(z, 0.0)
    assert c.bits_per_message() == 73 and len(msg) == 10
    assert msg[:8] == struct.pack("<d", 1.0)
    # levels + s = [5, 0, 4] -> 101 000 100, then 7 bits of padding
    assert msg[8:] == bytes([0b10100010, 0b00000000])
    assert make_compressor("quantize:bits=2", 2)(np.array([0.5, 1.0]), 0.0).tolist() == [0.0, 1.0]
    assert make_compressor("quantize", 3)(np.zeros(3), 0.0).tolist() == [0.0, 0.0, 0.0]


def test_sign_with_zero_entry_and_bytes():
    c = make_compressor("sign", 4)
    z = np.array([2.0, 0.0, -1.0, 1.0])  # ||z||_1 / d = 1, sgn(0) = +1
    assert c(z, 0.0).tolist() == [1.0, 1.0, -1.0, 1.0]
    (msg,) = c.encode(z, 0.0)
    assert msg == struct.pack("<d", 1.0) + bytes([0b11010000])


def test_cyclic_index_at_exact_window_boundaries():
    c = make_compressor("scalarize:basis=cyclic,tau=0.1", 4)
    assert int(np.argmax(c.phi(0.3))) == 3  # 0.3 / 0.1 = 2.9999999999999996
    for k in range(60):
        assert int(np.argmax(c.phi(k * 0.1))) == k % 4
    assert c(np.array([1.0, 2.0, 3.0, 4.0]), 0.3).tolist() == [0.0, 0.0, 0.0, 4.0]
    assert c.period == pytest.approx(0.4)


def test_scalarizer_bases():
    d = 5
    rnd = make_compressor("scalarize:basis=random,seed=3,tau=0.5", d)
    assert np.linalg.norm(rnd.phi(0.2)) == pytest.approx(1.0)
    assert np.array_equal(rnd.phi(0.2), rnd.phi(0.4))
    assert not np.array_equal(rnd.phi(0.2), rnd.phi(0.6))
    const = make_compressor("scalarize:basis=constant", d)
    np.testing.assert_allclose(const.phi(3.0), np.full(d, d**-0.5))
    assert const.period == math.inf
    # sinusoid: the average of phi phi^T over one period 1/f is I / d (persistent excitation)
    sin = make_compressor("scalarize:basis=sinusoid,freq=2.0", d)
    ts = np.arange(4000) / 4000 / 2.0
    gram = np.mean([np.outer(sin.phi(t), sin.phi(t)) for t in ts], axis=0)
    np.testing.assert_allclose(gram, np.eye(d) / d, atol=1e-12)
    assert max(np.linalg.norm(sin.phi(t)) ** 2 for t in ts) <= sin.linear_bound


def test_randk_shared_seed_windows():
    a = make_compressor("randk:k=2,seed=7,tau=0.1", 10)
    b = make_compressor("randk:k=2,seed=7,tau=0.1", 10)
    assert np.array_equal(a.support(0.31), b.support(0.35))  # same seed, same window
    sets = {tuple(a.support(0.1 * w)) for w in range(20)}
    assert len(sets) > 5  # redrawn every window
    other = make_compressor("randk:k=2,seed=8,tau=0.1", 10)
    assert any(not np.array_equal(a.support(0.1 * w), other.support(0.1 * w)) for w in range(5))
    z = np.arange(1.0, 11.0)
    kept = a(z, 0.31)
    S = a.support(0.31)
    assert np.array_equal(np.flatnonzero(kept), S) and np.array_equal(kept[S], z[S])


def test_composition_bits_and_equivalence():
    c = make_compressor("topk:k=4|quantize:bits=4", 100)
    assert c.bits_per_message() == 4 * 7 + 64 + 4 * 4 == 108
    assert len(c.encode(np.arange(100.0), 0.0)[0]) == 14
    assert make_compressor("quantize:bits=4|topk:k=4", 100).bits_per_message() == 4 * (7 + 64)
    assert make_compressor("topk:k=2|sign", 10).bits_per_message() == 64 + 10
    assert make_compressor("randk:k=3|identity", 10).bits_per_message() == 3 * 64
    # the sparse message gives the same C as the generic definition B(A(z))
    z = np.array([0.1, -3.0, 0.2, 1.4, -0.05])
    c2 = make_compressor("topk:k=2|quantize:bits=3", 5)
    generic = make_compressor("quantize:bits=3", 5)(make_compressor("topk:k=2", 5)(z, 0), 0)
    assert np.array_equal(c2(z, 0.0), generic)
    assert np.array_equal(c2.decode(c2.encode(z, 0.0), 0.0)[0], generic)
    three = make_compressor("topk:k=3|quantize:bits=4|sign", 5)
    assert three.bits_per_message() == 64 + 5 and three.spec == "topk:k=3|quantize:bits=4|sign"


def test_single_dimension():
    c = make_compressor("topk:k=1", 1)
    assert c.bits_per_message() == 64
    msg = c.encode(np.array([[-2.5]]), 0.0)
    assert msg == [struct.pack("<d", -2.5)]
    assert make_compressor("topk:k=1|quantize:bits=2", 1).bits_per_message() == 64 + 2


def test_bit_packing_helpers():
    vals = np.array([0, 5, 7, 1, 6])
    buf = _pack_uint(vals, 3)
    assert len(buf) == 2 and buf[0] == 0b00010111
    assert _unpack_uint(buf, 5, 3).tolist() == vals.tolist()
    assert _unpack_uint(b"\xff" + buf, 5, 3, bit_offset=8).tolist() == vals.tolist()


def test_decode_rejects_wrong_length():
    c = make_compressor("sign", 4)
    with pytest.raises(InputError, match="`messages` must be 9 bytes"):
        c.decode([b"\x00" * 8], 0.0)


def test_docs_cover_every_compressor_and_default():
    assert compressor_names() == tuple(COMPRESSOR_DOCS)
    for name, keys in COMPRESSOR_DOCS.items():
        c = make_compressor(name, 6)  # every default is valid
        for key, (default, description) in keys.items():
            # every key is in the canonical spec, except quantize's default scale=float64
            # (left out so that specs written before pow2 existed stay canonical)
            assert description and (f"{key}=" in c.spec) is ((name, key) != ("quantize", "scale"))
            assert make_compressor(f"{name}:{key}={default}", 6).spec == c.spec
    covered = {stage.partition(":")[0] for s in EXAMPLE_SPECS for stage in s.split("|")}
    assert covered == set(COMPRESSOR_DOCS)


@pytest.mark.parametrize(
    ("spec", "dim", "match"),
    [
        ("topk:k=12", 10, r"`k` must satisfy 1 <= k <= d \(got k=12, d=10\): lower k or raise"),
        ("topk:k=0", 10, "`k`"),
        ("randk:k=11", 10, "`k`"),
        ("quantize:bits=1", 10, "`bits` must satisfy 2 <= bits"),
        ("quantize:bits=four", 10, "`bits`.*integer"),
        ("topk:k=2.5", 10, "`k`"),
        ("fixedquant:step=0", 10, "`step` must be a finite number > 0"),
        ("fixedquant:step=-1", 10, "`step`"),
        ("scalarize:tau=nan", 10, "`tau`"),
        ("scalarize:basis=spiral", 10, "`basis`.*cyclic"),
        ("randk:seed=-1", 10, "`seed`"),
        ("bogus", 10, "unknown compressor 'bogus'.*topk"),
        ("topk:kk=2", 10, "no key `kk`.*valid keys: k"),
        ("sign:k=2", 10, "no key `k`"),
        ("topk:k", 10, "not key=value"),
        ("topk:k=1,k=2", 10, "twice"),
        ("topk|", 10, "empty stage"),
        ("", 10, "`spec`"),
        ("topk", 0, "`dim`"),
        ("py:no_such_module_xyz:make", 4, "module 'no_such_module_xyz' not found"),
        ("py:onlymodule", 4, "py:MODULE:ATTR"),
        ("py:missing/file.py:make", 4, "file 'missing/file.py' not found"),
    ],
)
def test_bad_specs(spec, dim, match):
    with pytest.raises(InputError, match=match):
        make_compressor(spec, dim)


def test_error_is_one_line():
    with pytest.raises(InputError) as info:
        make_compressor("topk:k=12", 10)
    assert str(info.value) == "`k` must satisfy 1 <= k <= d (got k=12, d=10): lower k or raise dim"


def test_shape_errors():
    c = make_compressor("identity", 3)
    with pytest.raises(InputError, match=r"`Z` must have shape \(N, d\)"):
        c(np.zeros((2, 4)), 0.0)
    with pytest.raises(InputError, match="`t` must be >= 0"):
        make_compressor("randk", 3)(np.zeros(3), -1.0)


USER_MODULE = """
import numpy as np
from stflow.compressors import Identity

def halve(dim, factor=0.5):
    def C(Z, t):
        return factor * np.asarray(Z)
    C.linear = True
    return C

def protocol(dim):
    return Identity(dim)

def broken(dim):
    raise RuntimeError("no luck")

def wrong_shape(dim):
    return lambda Z, t: np.zeros(3)

def not_callable(dim):
    return 42
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    path = tmp_path / "stflow_test_user_mod.py"
    path.write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


def test_user_defined_compressors(user_module):
    c = make_compressor("py:stflow_test_user_mod:halve:factor=0.25", 3)
    z = np.array([4.0, -8.0, 1.0])
    assert c(z, 0.0).tolist() == [1.0, -2.0, 0.25]
    assert c.linear and c.bits_per_message() == 192
    assert np.array_equal(c.decode(c.encode(z, 0.0), 0.0)[0], c(z, 0.0))
    by_path = make_compressor(f"py:{user_module}:halve", 3)
    assert by_path(z, 0.0).tolist() == [2.0, -4.0, 0.5]
    proto = make_compressor("py:stflow_test_user_mod:protocol", 3)
    assert proto.bits_per_message() == 192 and proto(z, 1.0).tolist() == z.tolist()
    comp = make_compressor("py:stflow_test_user_mod:halve|topk:k=1", 3)
    assert comp(z, 0.0).tolist() == [0.0, -4.0, 0.0]


@pytest.mark.parametrize(
    ("attr", "match"),
    [
        ("nothere", "has no attribute 'nothere'"),
        ("broken", r"raised RuntimeError at \S*stflow_test_user_mod.py:\d+ \(in broken\): no luck"),
        ("wrong_shape", r"shape \(3,\)"),
        ("not_callable", "returned int"),
    ],
)
def test_user_defined_failures(user_module, attr, match):
    with pytest.raises(InputError, match=match):
        make_compressor(f"py:stflow_test_user_mod:{attr}", 3)


def test_pow2_scale_by_hand_and_wire_bytes():
    c = make_compressor("quantize:bits=3,scale=pow2", 3)
    assert c.spec == "quantize:bits=3,scale=pow2" and c.bits_per_message() == 12 + 3 * 3
    # m = 0.75 -> e = 0 (2^0 >= 0.75 > 2^-1), m' = 1; s = 3: rint([1.5, -2.25, 0.75]) = [2, -2, 1]
    z = np.array([0.5, -0.75, 0.25])
    assert c(z, 0.0).tolist() == [2.0 / 3.0, -2.0 / 3.0, 1.0 / 3.0]
    (msg,) = c.encode(z, 0.0)
    # code e + 1075 = 1075 = 010000110011, then levels + s = [5, 1, 4] = 101 001 100, 3 pad bits
    assert msg == bytes([0b01000011, 0b00111010, 0b01100000])
    assert c.decode([msg], 0.0)[0].tolist() == c(z, 0.0).tolist()


@pytest.mark.parametrize(
    ("m", "code"),
    [
        (0.0, 0),  # code 0 means m = 0 (and C = 0)
        (0.5, 1074),  # an exact power of two: e = -1, m' = m
        (0.75, 1075),
        (3.0, 1077),  # 2^2 = 4 >= 3 > 2
        (5e-324, 1),  # the smallest subnormal: e = -1074
        (1e300, 2072),  # 2^997 >= 1e300 > 2^996
    ],
)
def test_pow2_exponent_codes(m, code):
    c = make_compressor("quantize:bits=4,scale=pow2", 2)
    z = np.array([m, -m / 3])
    bits = np.unpackbits(np.frombuffer(c.encode(z, 0.0)[0], dtype=np.uint8))
    assert int("".join(map(str, bits[:12])), 2) == code
    assert np.array_equal(c.decode(c.encode(z, 0.0), 0.0)[0], c(z, 0.0))
    if m == 0.5:  # m' = m: the same map as the float64 scale
        assert np.array_equal(c(z, 0.0), make_compressor("quantize:bits=4", 2)(z, 0.0))


def test_pow2_keeps_the_largest_entry_nonzero():
    # m <= m' < 2m, so |s z_j / m'| > s / 2 >= 1/2 at the largest entry: never rounded to 0
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((500, 9)) * 10.0 ** rng.uniform(-200, 200, (500, 1))
    c = make_compressor("quantize:bits=2,scale=pow2", 9)
    C = c(Z, 0.0)
    j = np.argmax(np.abs(Z), axis=1)
    rows = np.arange(500)
    assert np.all(C[rows, j] != 0) and np.all(np.sign(C[rows, j]) == np.sign(Z[rows, j]))
    assert make_compressor("topk:k=2|quantize:bits=4,scale=pow2", 10).bits_per_message() == (
        2 * 4 + 12 + 2 * 4
    )
    with pytest.raises(InputError, match="`scale` of quantize must be one of float64, pow2"):
        make_compressor("quantize:scale=pow3", 4)


def test_decode_array_rejects_a_wrong_buffer():
    c = make_compressor("topk:k=1", 4)
    with pytest.raises(InputError, match=r"`buf` must be a uint8 array of shape \(M, 9\)"):
        c.decode_array(np.zeros((2, 8), dtype=np.uint8), 0.0)
    with pytest.raises(InputError, match="got float64"):
        c.decode_array(np.zeros((2, 9)), 0.0)


def test_stage_count_is_capped():
    with pytest.raises(InputError, match="2000 stages, more than 32"):
        make_compressor("|".join(["topk:k=1"] * 2000), 4)
    assert make_compressor("|".join(["topk:k=1"] * 32), 4)(np.ones(4), 0).tolist() == [
        1.0,
        0.0,
        0.0,
        0.0,
    ]
