"""Configs, run records, sweeps and launchers."""

from iwtheory.runs.records import load, load_summaries, missing_runs

__all__ = ["load", "load_summaries", "missing_runs"]
