"""No damaged record and no command line gives a traceback: the reports (`claims`, `tables`, `figures`) on a
sweep whose files were overwritten with junk, cut, given foreign lines or stray neighbours, and `import-gpu` on
an OUT folder of random names and contents, either build what they can (exit 0) or end in one line,
`iwtheory: error: ...`, exit 2; and every sub-command's arguments, valid or not, do the same."""

import io
import json
import shutil
import tarfile

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iwtheory import cli

from .conftest import TINY, run_cli, toml

def examples(n: int) -> int:
    """``n`` examples in the suite; FUZZ_EXAMPLES=300 for a longer hunt by hand."""
    return int(os.environ.get("FUZZ_EXAMPLES", n))


FILES = ["metrics.jsonl", "summary.json", "config.json", "done", "features/epoch_00004.npz"]
JUNK = st.one_of(st.binary(max_size=64), st.text(max_size=40).map(str.encode),
                 st.sampled_from([b"", b"{}", b"[]", b"null", b"NaN", b'{"epoch": Infinity}', b"\xff\xfe",
                                  b'{"config_hash": "0000000000000000"}\n']))
VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=10),
                  st.lists(st.integers(-3, 3), max_size=3), st.sampled_from(["\\input{/etc/passwd}", "a_b%c&d"]))
MUTATION = st.one_of(
    st.tuples(st.just("overwrite"), st.sampled_from(FILES), JUNK),
    st.tuples(st.just("cut"), st.sampled_from(FILES), st.integers(0, 4000)),
    st.tuples(st.just("append"), st.sampled_from(["metrics.jsonl"]), st.dictionaries(
        st.sampled_from(["epoch", "config_hash", "model", "frac_pos_test", "loss", "train_acc", "x"]), VALUE,
        max_size=4)),
    st.tuples(st.just("config"), st.sampled_from(["name", "weights", "seed", "weight", "regime", "dataset",
                                                   "batch_size", "hidden", "epochs", "data_fingerprint"]), VALUE),
    st.tuples(st.just("delete"), st.sampled_from(FILES), st.none()),
    st.tuples(st.just("rename"), st.just("config.json"), st.one_of(st.text(max_size=16), st.sampled_from(
        ["../../escaped", "/abs/x", "\\input{/etc/hostname}", "a b%c", ".hidden"]))),
    st.tuples(st.just("stray"), st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and "\0" not in s
                                                                          and s not in (".", "..")), JUNK))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.toml").write_text(toml(TINY))
    run_cli(["train", root / "tiny.toml", "--out", root / "runs", "--no-progress"], check=True)
    return root / "runs"


def damage(runs, mutations, pick):
    dirs = sorted(p for p in runs.iterdir() if p.is_dir() and len(p.name) == 16)
    for (kind, name, arg), k in zip(mutations, pick):
        d = dirs[k % len(dirs)]
        f = d / name
        if kind == "overwrite":
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(arg)
        elif kind == "cut" and f.exists():
            f.write_bytes(f.read_bytes()[:arg])
        elif kind == "append":
            with open(d / name, "a") as fh:
                fh.write(json.dumps(arg) + "\n")
        elif kind == "config":
            try:
                cfg = json.loads((d / "config.json").read_bytes())
            except (OSError, ValueError):  # already junk or gone: nothing to edit
                continue
            if isinstance(cfg, dict):
                cfg[name] = arg
                (d / "config.json").write_text(json.dumps(cfg))
        elif kind == "delete" and f.exists():
            f.unlink()
        elif kind == "rename":  # the run's experiment name, everywhere the records hold it
            rename(d, arg)
        elif kind == "stray":
            try:
                (runs / name).mkdir(exist_ok=True)
                (runs / name / "config.json").write_bytes(arg)
            except OSError:  # a name this file system refuses is not the reports' business
                pass


def rename(d, name):
    for fn in ("config.json", "summary.json"):
        try:
            r = json.loads((d / fn).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict):
            (d / fn).write_text(json.dumps({**r, "experiment": name}))
    try:
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return
    (d / "metrics.jsonl").write_text("".join(json.dumps({**r, "experiment": name} if isinstance(r, dict) else r)
                                             + "\n" for r in rows))


def one_line_or_ok(rc, err, argv):
    if rc != 0:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert rc == 2 and last.startswith("iwtheory: error:") and "error: unexpected" not in last, (argv, err[-2000:])
        assert "Traceback" not in err, (argv, err[-2000:])


@pytest.fixture
def no_repo_paths(tmp_path, monkeypatch):
    """Defaults that point into the repository (paper/, results/gpu) point into a temporary folder instead."""
    from iwtheory import pipeline

    monkeypatch.chdir(tmp_path)  # a default `--runs runs` reads an empty folder here, not the repository's
    monkeypatch.setattr(cli, "PAPER", tmp_path / "paper")
    monkeypatch.setattr(pipeline, "GPU_RESULTS", tmp_path / "results" / "gpu")


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), pick=st.lists(st.integers(0, 3), min_size=3,
                                                                           max_size=3),
       command=st.sampled_from(["claims", "tables", "figures"]))
def test_damaged_records_give_no_traceback(sweep, tmp_path, no_repo_paths, capsys, mutations, pick, command):
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sweep, work / "runs")
    damage(work / "runs", mutations, pick)
    argv = [command, "--runs", str(work / "runs"), "--out", str(work / "paper"), "--no-gpu-results"]
    rc = cli.main(argv)
    one_line_or_ok(rc, capsys.readouterr().err, (argv, mutations))
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(work)]
    assert not outside, outside  # nothing written beside the folders the command names


def test_record_names_cannot_place_figures_elsewhere(sweep, tmp_path, no_repo_paths):
    shutil.copytree(sweep, tmp_path / "w" / "runs")
    for d in (tmp_path / "w" / "runs").iterdir():
        if d.is_dir() and len(d.name) == 16:
            rename(d, "../../../escaped")
    assert cli.main(["figures", "--runs", str(tmp_path / "w" / "runs"), "--out", str(tmp_path / "w" / "fig"),
                     "--no-gpu-results"]) == 0
    made = sorted(p.name for p in (tmp_path / "w" / "fig").iterdir())
    assert made and all(".." not in n and "/" not in n for n in made), made
    assert not list(tmp_path.rglob("escaped*")) or all(p.is_relative_to(tmp_path / "w" / "fig")
                                                        for p in tmp_path.rglob("escaped*"))


def test_the_damage_reaches_the_readers(sweep, tmp_path, no_repo_paths, capsys):
    """The fuzz above is not vacuous: one junk metrics file is an error naming it, and the undamaged sweep
    builds its tables."""
    shutil.copytree(sweep, tmp_path / "runs")
    assert cli.main(["tables", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "p"),
                     "--no-gpu-results"]) == 0
    damage(tmp_path / "runs", [("overwrite", "metrics.jsonl", b"\xff\xfe{{")], [0])
    rc = cli.main(["tables", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "p"), "--no-gpu-results"])
    err = capsys.readouterr().err
    assert rc == 2 and "metrics.jsonl" in err, err


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=20)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions=st.one_of(JUNK, st.dictionaries(st.sampled_from(["date", "gpu", "dry_run", "x"]), VALUE)
                          .map(lambda d: json.dumps(d).encode())),
       members=st.lists(st.tuples(NAMES, st.binary(max_size=32)), max_size=4),
       archive=st.sampled_from(["tar", "junk", "none"]))
def test_any_import_folder_gives_no_traceback(tmp_path, no_repo_paths, capsys, versions, members, archive):
    src = tmp_path / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(tmp_path / "dest", ignore_errors=True)
    src.mkdir()
    (src / "versions.json").write_bytes(versions)
    if archive == "tar":
        with tarfile.open(src / "records.tar.gz", "w:gz") as tar:
            for name, body in members:
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    elif archive == "junk":
        (src / "records.tar.gz").write_bytes(b"".join(b for _, b in members))
    rc = cli.main(["import-gpu", str(src), "--dest", str(tmp_path / "dest")])
    one_line_or_ok(rc, capsys.readouterr().err, (versions, members))
    inside = tmp_path / "dest"
    for p in tmp_path.rglob("*"):  # nothing written outside src and dest
        assert p == tmp_path / "paper" or p.is_relative_to(src) or p.is_relative_to(inside), p
    if rc != 0 and inside.exists():
        assert not any(inside.iterdir())  # nothing half-written left behind


FLAGS = ["--runs", "--out", "--set", "--quick", "--regime", "--device", "--data-dir", "--no-gpu-results", "--dest",
         "--check", "--snapshot", "--paper", "--no-progress", "--started-at"]
TOKENS = st.one_of(st.sampled_from(FLAGS), st.text(max_size=12), st.sampled_from(
    ["CONFIG", "MISSING", "epochs=0", "lrs=[1e300]", "weights=[-1]", "hidden=[0]", "cuda:7", "none", "-1", "nan"]))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["theory", "train", "figures", "tables", "claims", "import-gpu", "readme",
                                "reproduce", "timings"]),
       tokens=st.lists(TOKENS, max_size=6))
def test_no_command_line_gives_a_traceback(tmp_path, no_repo_paths, monkeypatch, capsys, command, tokens):
    """Every sub-command with any arguments; the long jobs (training, reproduce, timings) stop where they would
    start computing, since the fuzz is about arguments."""
    from iwtheory import pipeline
    from iwtheory.runs import theory, train

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(toml({**TINY, "epochs": 1}))
    monkeypatch.setattr(train, "run_group", lambda *a, **k: [])
    monkeypatch.setattr(theory, "run_cell", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "reproduce", lambda *a, **k: {"runs": {}, "pdf": None})
    monkeypatch.setattr(pipeline, "measure_quick", lambda *a, **k: tmp_path / "t" / "timings.json")
    argv = [command] + [str(cfg) if t == "CONFIG" else str(tmp_path / "missing") if t == "MISSING" else t
                        for t in tokens]
    rc = cli.main(argv)
    one_line_or_ok(rc, capsys.readouterr().err, argv)
