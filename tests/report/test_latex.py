"""Strings bound for LaTeX are escaped: specials print as themselves and no command runs."""

import shutil
import subprocess

import pytest

from iwtheory.report.latex import escape

HOSTILE = [r"\input{/etc/passwd}", r"\write18{touch pwned}", r"\openin5=/etc/hostname", "runs_quick",
           "iwtheory reproduce --out runs_quick", "50% & #1 $x^2$ {a} ~b", "a|b<c>d"]


def test_no_backslash_command_survives():
    for s in HOSTILE:
        e = escape(s)
        # every backslash in the output starts one of the escapes, never the input's own command
        assert "\\input" not in e and "\\write" not in e and "\\openin" not in e
        assert "--" not in e  # no en-dash ligature in a command line


@pytest.mark.latex
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex (CI installs TeX)")
def test_escaped_text_typesets_as_itself(tmp_path):
    body = "\n\n".join(escape(s) for s in HOSTILE)
    (tmp_path / "t.tex").write_text("\\documentclass{article}\\usepackage[T1]{fontenc}\\begin{document}\n"
                                    + body + "\n\\end{document}\n")
    r = subprocess.run(["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    assert not (tmp_path / "pwned").exists()
    if shutil.which("pdftotext"):
        subprocess.run(["pdftotext", "t.pdf"], cwd=tmp_path, check=True, timeout=60)
        text = (tmp_path / "t.txt").read_text()
        assert "\\input{/etc/passwd}" in text and "runs_quick" in text and "--out" in text


def test_record_names_become_labels_that_mean_nothing_to_latex():
    from iwtheory.report.latex import plot_label

    assert plot_label("l2 wd=0.001") == "l2 wd=0.001" and plot_label("poly1_sub") == "poly1 sub"
    for s in HOSTILE:
        lab = plot_label(s)
        assert not set(lab) & set("\\{}$&#^_%~")
    assert plot_label("\\\\") == "?" and len(plot_label("x" * 500)) == 60


def _entry(text: str) -> dict:
    return {"id": "C1", "statement": text, "statistic": f"|Delta| on S_in {text}", "value": 0.5, "se": 0.1,
            "n_seeds": 10, "rule": f"mean >= 0.1 {text}", "verdict": "fails",
            "premise": {"statement": text, "met": False, "value": 0.2, "measure": text},
            "details": {"missing": text, "verdict_before_premise": "fails"},
            "threshold": {"parameter": text, "stable_range": [0.0, 1.0], "value": 0.1}}


def test_claim_text_from_the_records_runs_no_command():
    from iwtheory.report.claims import claims_detail, claims_discussion, claims_table

    for s in HOSTILE:
        entries = [_entry(s)]
        for tex in (claims_detail(entries), claims_discussion(entries), claims_table(entries)):
            assert "\\input" not in tex and "\\write18" not in tex and "\\openin" not in tex, tex
    # the rule's own symbols still typeset as math
    assert "$S_{\\mathrm{in}}$" in claims_detail([_entry("x")]) and "$\\geq$" in claims_detail([_entry("x")])


def test_the_loss_table_without_the_loss_study_has_no_columns_of_dashes():
    import pandas as pd

    from iwtheory.report.tables import losses_table

    th = pd.DataFrame([{"loss": "logistic", "limit": "max margin", "final_to_limit": 1e-3, "final_to_hat": 1e-3,
                        "rate": -1.0, "K_pred": 0.1},
                       {"loss": "vs_softmax", "limit": "max margin", "final_to_limit": 2e-3, "final_to_hat": 2e-3,
                        "rate": -1.0, "K_pred": 0.1}])
    tex = losses_table(th, pd.DataFrame())
    assert "late" not in tex and "---" not in tex and "make losses" in tex
    assert "vs\\_softmax" in tex and "vs_softmax" not in tex  # names escaped for LaTeX
    net = pd.DataFrame([{"regime": "logistic", "loss": "logistic", "late_effect": 0.1, "late_se": 0.01,
                         "n_seeds": 3, "balanced_acc": 0.9, "balanced_se": 0.01, "feature_angle": 0.2,
                         "feature_separable": 1.0, "premise_met": False, "separated": 2, "nets": 9}])
    tex = losses_table(th, net)
    assert "late $\\Delta$, balanced" in tex and "$^\\dagger$" in tex  # a premise not met is marked
