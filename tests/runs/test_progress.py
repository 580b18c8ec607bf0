"""Progress written to a log is whole lines, one every tenth; a terminal gets tqdm's bar."""

import io

from tqdm import tqdm

from iwtheory.runs.progress import LineProgress, progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_line_every_tenth_and_no_carriage_returns():
    out = io.StringIO()
    with progress(200, "study/none [30 models on cpu]", "epochs", file=out) as bar:
        for _ in range(200):
            bar.update(1)
    text = out.getvalue()
    assert "\r" not in text
    lines = text.strip().split("\n")
    assert len(lines) == 10 and lines[0].startswith("study/none [30 models on cpu]: 20/200 epochs (10%)")
    assert lines[-1].startswith("study/none [30 models on cpu]: 200/200 epochs (100%)")


def test_a_resumed_run_counts_from_where_it_was_and_small_totals_work():
    out = io.StringIO()
    bar = LineProgress(10, "x", "runs", initial=7, file=out)
    for _ in range(3):
        bar.update(1)
    bar.close()
    bar.close()  # the last line is printed once
    lines = [ln.split(",")[0] for ln in out.getvalue().strip().split("\n")]
    assert lines == ["x: 8/10 runs (80%)", "x: 9/10 runs (90%)", "x: 10/10 runs (100%)"]


def test_a_terminal_gets_a_bar_and_disabled_gets_nothing():
    assert isinstance(progress(5, "x", file=Tty()), tqdm)
    out = io.StringIO()
    with progress(5, "x", enabled=False, file=out) as bar:
        bar.update(5)
    assert out.getvalue() == ""
