"""Fuzz the theory and inside runners: any key of their configs with any value (huge, tiny, negative, non-finite,
strings, lists, tables) trains or ends in one named error line, exit code 2: never a traceback, never the
last-resort "unexpected" line, never a hang (a time bound per example)."""

import dataclasses
import json
import signal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from iwtheory import cli
from iwtheory.runs.inside import InsideConfig
from iwtheory.runs.theory import TheoryConfig

from .conftest import toml

pytestmark = pytest.mark.slow
SCALARS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 1e-320, 1e-300, 1e300, 1.8e308, 2**31, 10**9, 10**400]),
                    st.text(max_size=6), st.booleans())
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))
THEORY = {"name": "t", "dataset": "soudry_toy", "data": {"n_random": 6}, "weights": [1.0, 4.0],
          "losses": ["exponential"], "methods": ["gd"], "steps": 50, "n_records": 5, "t_max": 1e6}
INSIDE = {"name": "i", "data": {"n_per_class": 5, "seed": 0}, "weights": [1.0, 4.0], "seeds": [0],
          "hidden": [4], "t_max": 1e4, "n_records": 4, "max_steps": 300, "n_test": 10, "noise_count": 5,
          "check_t": 5.0}
# long by design, not hung: a valid request for more work than a fuzz example may take
BUDGET = {"steps": 10**4, "max_steps": 10**4, "n_records": 200, "t_max": 1e300}
SECONDS = 60


class Hang(Exception):
    pass


def run_bounded(argv):
    def alarm(*_):
        raise Hang(f"{argv} ran past {SECONDS} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(SECONDS)
    try:
        return cli.main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fuzz(runner, base, cls, tmp_path, capsys, sets):
    for k, v in sets:
        top = BUDGET.get(k)
        assume(not (top is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v > top))
    p = tmp_path / "c.toml"
    p.write_text(toml(base))
    argv = [runner, str(p), "--out", str(tmp_path / "runs"), "--no-progress"]
    for k, v in sets:
        argv += ["--set", f"{k}={json.dumps(v) if not isinstance(v, dict) else toml_inline(v)}"]
    rc = run_bounded(argv)
    err = capsys.readouterr().err.strip()
    if rc != 0:
        lines = [ln for ln in err.splitlines() if ln.startswith("iwtheory: error:")]
        assert rc == 2 and len(lines) == 1 and "unexpected" not in lines[0], (argv, err[-2000:])


def toml_inline(d: dict) -> str:
    return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in d.items()) + "}"


@pytest.mark.parametrize("runner,base,cls", [("theory", THEORY, TheoryConfig), ("inside", INSIDE, InsideConfig)])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.filter_too_much])
@given(draw=st.data())
def test_no_runner_gives_a_traceback(tmp_path, capsys, runner, base, cls, draw):
    keys = [f.name for f in dataclasses.fields(cls) if f.name not in ("name", "description")]
    sets = draw.draw(st.lists(st.tuples(st.sampled_from(keys), VALUES), min_size=1, max_size=2))
    fuzz(runner, base, cls, tmp_path, capsys, sets)


@pytest.mark.parametrize("runner,base,key,value", [
    ("theory", THEORY, "weights", [1e-320]), ("theory", THEORY, "lr", 1e-320), ("theory", THEORY, "lr", 1.8e308),
    ("theory", {**THEORY, "losses": ["polynomial"], "methods": ["flow"]}, "poly_alpha", 1e-300),
    ("theory", {**THEORY, "losses": ["polynomial"], "methods": ["flow"]}, "poly_alpha", 1e20),
    ("theory", THEORY, "n_records", 10**12), ("theory", THEORY, "widths", [10**9]),
    ("theory", {**THEORY, "dataset": "gaussian_mixture", "data": {}}, "data", {"n": 10**9}),
    ("inside", INSIDE, "eta", 1e-300), ("inside", INSIDE, "check_lr", 1e-300), ("inside", INSIDE, "data", {"x": 1}),
    ("inside", INSIDE, "data", {"n_per_class": "many"}),
])
def test_the_audits_inputs_end_in_one_named_line_or_run(tmp_path, capsys, runner, base, key, value):
    p = tmp_path / "c.toml"
    p.write_text(toml(base))
    v = toml_inline(value) if isinstance(value, dict) else json.dumps(value)
    rc = run_bounded([runner, str(p), "--out", str(tmp_path / "runs"), "--no-progress", "--set", f"{key}={v}"])
    err = capsys.readouterr().err.strip()
    if rc != 0:
        lines = [ln for ln in err.splitlines() if ln.startswith("iwtheory: error:")]
        assert rc == 2 and len(lines) == 1 and "unexpected" not in lines[0], err[-2000:]
