"""The numerical ST certificate: verdicts on every example compressor, fitted rates against
the theory of SPEC section 3, L_c estimates against the proven bounds, bad input."""

import numpy as np
import pytest

from stflow.certify import Certificate, certify, initial_conditions
from stflow.compressors import EXAMPLE_SPECS, CallableCompressor, make_compressor
from stflow.errors import InputError

D = 10
NOT_ST = {"fixedquant:step=0.1", "scalarize:basis=constant"}


@pytest.fixture(scope="module")
def certificates():
    return {spec: certify(spec, D) for spec in EXAMPLE_SPECS}


@pytest.mark.parametrize("spec", EXAMPLE_SPECS)
def test_verdict_and_fields(certificates, spec):
    cert = certificates[spec]
    comp = make_compressor(spec, D)
    assert cert.spatio_temporal is (spec not in NOT_ST), cert.reason
    assert cert.spec == comp.spec and cert.dim == D and cert.linear is comp.linear
    assert cert.bits_per_message == comp.bits_per_message()
    # the estimated L_c never exceeds the proven bound, and is not a trivial 0
    assert 0.5 < cert.linear_bound <= comp.linear_bound * (1 + 1e-9)
    if cert.spatio_temporal:
        assert cert.rate > 0.05 and 1.0 <= cert.kappa < 2.5
        assert cert.reason.startswith("every one of") and "uniform in t0" in cert.reason
        # uniformity: every far start decays at least half as fast as the start at t0 = 0
        assert min(cert.start_rates[1:]) >= 0.5 * cert.start_rates[0] > 0
    else:
        assert cert.rate == 0.0 and cert.reason.startswith("rate 0")
    assert cert.start_times[0] == 0.0 and cert.start_times[-1] >= 1e3
    assert list(cert.to_dict()) == [
        "spec",
        "dim",
        "spatio_temporal",
        "rate",
        "kappa",
        "linear_bound",
        "linear",
        "bits_per_message",
        "reason",
        "start_times",
        "start_rates",
    ]
    assert len(cert.start_times) == len(cert.start_rates) == 4


@pytest.mark.parametrize(
    ("spec", "theory"),
    [
        ("topk:k=1", 1 / D),  # d||z||^2/dt <= -2k/d ||z||^2  ->  ||z|| rate >= k/d
        ("topk:k=3", 3 / D),
        ("sign", 1 / D),  # z^T C = ||z||_1^2 / d >= ||z||^2 / d
        ("quantize:bits=2", 1 / D),  # z^T C >= m^2 >= ||z||^2 / d
        ("topk:k=2|quantize:bits=4", 1 / D),  # the largest entry is kept exactly
    ],
)
def test_rate_at_least_theory(certificates, spec, theory):
    assert certificates[spec].rate >= 0.9 * theory


def test_identity_rate_is_one(certificates):
    assert certificates["identity"].rate == pytest.approx(1.0, rel=0.1)
    assert certificates["identity"].kappa == pytest.approx(1.0, abs=1e-9)


def test_topk_one_rate_is_tight(certificates):
    # all-equal magnitudes (the constant start) decay exactly at k/d: the bound is attained
    assert certificates["topk:k=1"].rate == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("spec", ["scalarize:basis=cyclic", "scalarize:basis=sinusoid"])
def test_scalarizer_rate_is_one_over_d(certificates, spec):
    # averaged flow: the mean of phi phi^T over a period is I/d
    assert certificates[spec].rate == pytest.approx(1 / D, rel=0.1)


def test_default_sinusoid_is_certified_too():
    assert certify("scalarize:basis=sinusoid", D).rate == pytest.approx(1 / D, rel=0.1)


def test_rejection_reasons(certificates):
    assert "dead zone" in certificates["fixedquant:step=0.1"].reason
    assert "persistently exciting" in certificates["scalarize:basis=constant"].reason


def test_dead_zone_only_shows_at_small_scale():
    # a step far below every trial's scale still stalls at the 1e-6 scale starts
    assert not certify("fixedquant:step=1e-9", 4).spatio_temporal


def test_user_callables():
    half = CallableCompressor(lambda Z, t: 0.5 * Z, 3, spec="py:half")
    cert = certify(half)
    assert cert.spatio_temporal and cert.rate == pytest.approx(0.5, rel=0.05)
    assert cert.linear_bound == pytest.approx(0.5)
    # a compressor that never moves the last coordinate is not ST
    blind = CallableCompressor(lambda Z, t: Z * np.array([1.0, 1.0, 0.0]), 3, spec="py:blind")
    cert = certify(blind)
    assert not cert.spatio_temporal and "C(z, t) = 0 at a nonzero z" in cert.reason
    # a flow that grows is rejected
    grow = CallableCompressor(lambda Z, t: -0.1 * Z, 3, spec="py:grow", linear_bound=0.1)
    assert not certify(grow).spatio_temporal


def test_deterministic_for_a_seed():
    assert certify("randk:k=2", 5, seed=3) == certify("randk:k=2", 5, seed=3)


def test_large_dimension_budget():
    cert = certify("topk:k=2", 200, max_steps=1000)
    assert cert.spatio_temporal and cert.rate >= 0.9 * 2 / 200
    assert "horizon cut" in cert.reason


def test_initial_conditions_cover_the_required_kinds():
    Z, labels = initial_conditions(6, np.random.default_rng(0), n_random=3)
    assert Z.shape == (len(labels), 6)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0)
    assert {"gaussian", "sparse", "constant", "alternating", "basis e_0", "basis e_5"} <= set(
        labels
    )


def test_bad_input():
    with pytest.raises(InputError, match="`dim` is needed"):
        certify("topk:k=2")
    with pytest.raises(InputError, match="`dim` must match"):
        certify(make_compressor("sign", 4), 5)
    with pytest.raises(InputError, match="`k` must satisfy"):
        certify("topk:k=11", 10)
    with pytest.raises(InputError, match="`horizon`"):
        certify("sign", 3, horizon=-1.0)
    with pytest.raises(InputError, match="`compressor`"):
        certify(42, 3)
    with pytest.raises(InputError, match="`n_trials`"):
        certify("sign", 3, n_trials=-2)


def test_certificate_is_frozen():
    cert = Certificate("identity", 1, True, 1.0, 1.0, 1.0, True, 64, "ok")
    with pytest.raises(AttributeError):
        cert.rate = 2.0  # type: ignore[misc]


FADING = """
import numpy as np

def inverse(dim):
    return lambda Z, t: Z / (1.0 + t)

def inverse_sqrt(dim):
    return lambda Z, t: Z / np.sqrt(1.0 + t)

def raises(dim):
    def C(Z, t):
        if t > 0.5:
            raise ValueError("boom at half time")
        return Z
    return C

def nan_after(dim):
    return lambda Z, t: Z * (np.nan if t > 0.3 else 1.0)

def shrinks_rows(dim):
    return lambda Z, t: Z if t < 0.2 else Z[:1]
"""


@pytest.fixture
def fading_file(tmp_path):
    path = tmp_path / "fading.py"
    path.write_text(FADING)
    return path


@pytest.mark.parametrize(
    ("attr", "rate_far"),
    [("inverse", 1 / 1001), ("inverse_sqrt", 1 / np.sqrt(1001))],  # C = z/(1+t): rate 1/(1+t)
)
def test_fading_rate_is_rejected(fading_file, attr, rate_far):
    cert = certify(f"py:{fading_file}:{attr}", 4)
    assert not cert.spatio_temporal and cert.rate == 0.0
    assert cert.reason.startswith("rate fades with t"), cert.reason
    assert cert.start_times[-1] == pytest.approx(1e3 + 0.37e-3)  # + 0.37 of the 1e-3 window
    # the window rate from t0 ~ 1000 is the flow's rate there, 1/(1+t) or 1/sqrt(1+t)
    assert cert.start_rates[-1] == pytest.approx(rate_far, rel=0.05)
    assert cert.start_rates[0] > 2 * cert.start_rates[-1]


def test_far_start_is_100_periods_of_a_slow_periodic_compressor():
    # cyclic, d = 4, tau = 5: period 20, so the latest start is past 100 periods = 2000
    # (here 10 windows of 50 periods: 10000; max_steps cuts the window to 5 periods)
    cert = certify("scalarize:basis=cyclic,tau=5.0", 4, max_steps=5000)
    assert cert.spatio_temporal, cert.reason
    assert cert.start_times[-1] >= 2000.0
    # averaged over the window (5 whole periods) the rate is 1/d at every start
    np.testing.assert_allclose(cert.start_rates, 0.25, rtol=0.25)


def test_time_invariant_rates_are_equal_at_every_start(certificates):
    rates = certificates["topk:k=1"].start_rates
    assert max(rates) - min(rates) < 1e-12 and rates[0] == pytest.approx(0.1, rel=0.2)


@pytest.mark.parametrize(
    ("attr", "match"),
    [
        ("raises", r"compressor `py:.*fading.py:raises` raised ValueError at "
                   r"\S*fading.py:\d+ \(in C\): boom at half time"),
        ("nan_after", r"returned NaN or inf for a finite input"),
        ("shrinks_rows", r"returned shape \(1, 4\) for input \(\d+, 4\)"),
    ],
)
def test_broken_user_compressor_is_one_input_error(fading_file, attr, match):
    with pytest.raises(InputError, match=match) as info:
        certify(f"py:{fading_file}:{attr}", 4)
    assert "\n" not in str(info.value)


def test_huge_dimension_is_refused_with_an_estimate():
    with pytest.raises(InputError, match=r"at d=100000000 needs about .* GB, above the limits"):
        certify("topk:k=2", 100_000_000)


def test_seed_must_be_nonnegative():
    with pytest.raises(InputError, match="`seed` must be an integer >= 0"):
        certify("sign", 3, seed=-1)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["topk:k=2", "--dim", "10", "--seed", "-1"], "--seed must be an integer >= 0"),
        (["topk:k=2", "--dim", "100000000"], r"needs about .* GB, above the limits"),
        (["|".join(["topk:k=1"] * 2000), "--dim", "10"], "2000 stages, more than 32"),
        (["topk:k=1|" * 2000, "--dim", "10"], "stages, more than 32"),
    ],
)
def test_cli_bad_certify_is_one_line_exit_2(capsys, argv, match):
    from stflow.cli import main

    assert main(["certify", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stflow: error: ")
    assert __import__("re").search(match, err), err


def test_cli_certify_json_has_the_uniformity_fields(capsys):
    import json

    from stflow.cli import main

    assert main(["certify", "topk:k=2", "--dim", "6", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spatio_temporal"] and out["start_times"][0] == 0.0
    assert out["start_times"][-1] >= 1e3 and min(out["start_rates"]) > 0.3  # k/d = 1/3


def test_progress_bar_on_stderr_only_when_asked(capsys):
    quiet = certify("topk:k=1", 4)
    assert capsys.readouterr().err == ""
    loud = certify("topk:k=1", 4, progress=True)
    err = capsys.readouterr().err
    assert "certify topk:k=1" in err and "step" in err
    assert loud == quiet  # the bar changes nothing else
