"""A user-defined compressor loaded as `py:FILE:ATTR` is certified and runs in a flow."""

from pathlib import Path

import pytest

from stflow.certify import certify
from stflow.compressors import make_compressor
from stflow.config import resolve_config, run_config
from stflow.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_compressor.py"


def test_example_user_compressor_certified_at_rate_one_half():
    comp = make_compressor(f"py:{EXAMPLE}:make:tau=0.01", 10)
    assert comp.linear and comp.bits_per_message() == 640
    cert = certify(comp)
    # each coordinate is active half of the time: ||z|| decays at rate 1/2
    assert cert.spatio_temporal
    assert cert.rate == pytest.approx(0.5, rel=0.05)


def test_user_compressor_in_observer_flow():
    cfg = resolve_config({
        "problem": {"agents": 6, "dim": 4},
        "compressor": {"spec": f"py:{EXAMPLE}:make"},
        "solver": {"horizon": 30.0, "record_every": 1000},
    })
    run, sol = run_config(cfg)
    assert sol.converged, sol.message
    assert sol.bits_per_agent == 30000 * 64 * 4


def test_unknown_attr_is_input_error():
    with pytest.raises(InputError, match="no_such_factory"):
        make_compressor(f"py:{EXAMPLE}:no_such_factory", 4)
