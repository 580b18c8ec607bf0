"""The paper's layout check reads LaTeX's own log lines."""

from iwtheory.report.layout import layout_faults

LOG = r"""
Overfull \hbox (175.3pt too wide) in paragraph at lines 212--215
Overfull \hbox (0.8pt too wide) in paragraph at lines 90--91
Underfull \hbox (badness 10000) in paragraph at lines 12--14
Overfull \vbox (12.0pt too high) has occurred while \output is active
LaTeX Warning: Float too large for page by 44.1pt on input line 230.
LaTeX Warning: Float too large for page by 1.2pt on input line 231.
"""


def test_faults_are_the_large_boxes_and_floats_only():
    faults = layout_faults(LOG)
    assert len(faults) == 3
    assert faults[0].startswith("overfull hbox, 175.3 pt too wide in paragraph at lines 212--215")
    assert faults[1].startswith("overfull vbox, 12 pt too high")
    assert "44.1pt" in faults[2]
    assert layout_faults(LOG, tolerance_pt=200.0) == []
    assert layout_faults("") == []
