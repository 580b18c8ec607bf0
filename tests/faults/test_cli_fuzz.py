"""No input gives a traceback: `iwtheory train CONFIG --set KEY=VALUE ...` with keys of the schema and values of
every kind (huge, tiny, negative, non-finite, strings, lists) either trains (here: builds its data and its stack
of models) or ends in one line, `iwtheory: error: ...`, exit code 2."""

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iwtheory import cli
from iwtheory.runs import train
from iwtheory.runs.train import TrainConfig

from .conftest import TINY, toml

built: list[int] = []  # stacks the fuzz got as far as building (valid inputs)
KEYS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("name", "device", "data_dir", "download")]
SCALARS = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 1e-320, 1e300, 2**31, 10**9]), st.text(max_size=8), st.booleans())
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))


def fake_group(cfgs, out, members, device, task=None, **kw):
    """Build what training would allocate (the task and the stack of models), then stop: the fuzz is about
    inputs, not about training for as long as a valid input asks."""
    from iwtheory.nets.engine import Stack

    cfg = cfgs[members[0][0]]
    cells = cfg.cells()
    settings, ms = train.engine_setup(cfg, [cells[k] for _, k in members], task)
    Stack(ms, task, settings, device)
    built.append(len(ms))
    return []


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(toml({**TINY, "epochs": 1, "eval_dense": 1}))
    return p


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_no_set_gives_a_traceback(config, tmp_path, monkeypatch, capsys, sets):
    monkeypatch.setattr(train, "run_group", fake_group)
    argv = ["train", str(config), "--out", str(tmp_path / "runs"), "--no-progress"]
    for k, v in sets:
        argv += ["--set", f"{k}={json.dumps(v)}"]
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip()
    if rc != 0:
        assert rc == 2 and err.startswith("iwtheory: error:") and "\n" not in err and "error: unexpected" not in err, \
            (argv, err)


def test_the_fuzz_reaches_valid_inputs_too(config, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "run_group", fake_group)
    built.clear()
    assert cli.main(["train", str(config), "--out", str(tmp_path / "r"), "--set", "lrs=[0.5]"]) == 0
    assert built == [2, 2]  # four models in stacks of max_models = 2
