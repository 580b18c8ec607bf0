"""The package's import rules: cli -> pipeline -> report -> (runs -> nets | compare) -> theory, and the catalogue
(pure data) beneath them all; runs never imports compare, and only the analysis reads run files in report.

Read from the source (every import statement, function-level ones too), so a lazy import that
breaks a rule fails here as surely as a top-level one."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "iwtheory"
# what each part may import from the package (besides itself)
ALLOWED = {
    "catalogue": set(),
    "theory": set(),
    "compare": {"theory", "catalogue"},
    "nets": {"theory"},
    "runs": {"theory", "nets", "catalogue"},  # plumbing: runs and records, no statistics (compare)
    "report": {"theory", "compare", "nets", "runs", "catalogue"},
    "study": {"theory", "compare", "nets", "runs", "report", "catalogue"},  # the Python entry point of a user's study
    "pipeline": {"theory", "compare", "nets", "runs", "report", "catalogue"},
    "cli": {"theory", "compare", "nets", "runs", "report", "pipeline", "catalogue"},
}


def part_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for n in names:
            if n.startswith("iwtheory."):
                out.add(n.split(".")[1])
    return out


MODULES = sorted(p for p in PKG.rglob("*.py") if part_of(p) in ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_follow_the_layering(path):
    part = part_of(path)
    bad = imported_parts(path) - ALLOWED[part] - {part}
    assert not bad, f"{path.relative_to(PKG)} ({part}) imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((PKG / "compare").glob("*.py")), ids=lambda p: p.name)
def test_compare_does_no_file_io(path):
    tree = ast.parse(path.read_text())
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    attrs = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not ({"open"} & calls) and not ({"read_text", "read_bytes", "glob", "load"} & attrs - {"load"})
    assert not ({"pathlib", "json", "os", "io"} & mods), f"{path.name} imports file modules {mods}"


def test_no_two_parts_import_each_other():
    edges = {(part_of(p), q) for p in MODULES for q in imported_parts(p) if q != part_of(p)}
    cycles = sorted((a, b) for a, b in edges if (b, a) in edges)
    assert not cycles, cycles


def test_legal_names_are_owned_once():
    """Loss, model, precision, dataset and weight-normalisation names are spelled out in one module each."""
    from iwtheory.nets.names import DATASETS, MODELS, PRECISIONS, WEIGHT_NORMS
    from iwtheory.theory.losses import LOSSES

    groups = [(PKG / "theory" / "losses.py", LOSSES)] + [(PKG / "nets" / "names.py", g)
                                                         for g in (MODELS, PRECISIONS, WEIGHT_NORMS, DATASETS)]
    for path in MODULES:
        text = path.read_text()
        for owner, names in groups:
            spelled = "(" + ", ".join(f'"{n}"' for n in names[:2]) + ","
            assert path == owner or spelled not in text, \
                f"{path.relative_to(PKG)} spells out legal names {spelled} ...) owned by {owner.name}"


# what reads run files: the record readers of runs, and the checks that open files
READERS = {"load", "load_summaries", "read_json", "read_jsonl", "read_features", "feature_files", "run_dirs",
           "read_text", "read_bytes", "open", "glob", "rglob", "iterdir"}
# report modules that may read: the analysis (records, once), the README writer (the committed snapshot and
# configs), the macro reader of the README test, and the PDF's layout check (LaTeX's log)
REPORT_READERS = {"analysis.py", "readme.py", "macros.py", "layout.py"}


@pytest.mark.parametrize("path", sorted((PKG / "report").glob("*.py")), ids=lambda p: p.name)
def test_report_reads_run_files_only_in_the_analysis(path):
    """Figures, tables, numbers and claims format what ``analyse`` computed; they never open a run's files."""
    if path.name in REPORT_READERS:
        return
    tree = ast.parse(path.read_text())
    called = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                and n.module.startswith("iwtheory.runs") for a in n.names}
    assert not (READERS & called), f"report/{path.name} reads files: {sorted(READERS & called)}"
    assert not (READERS & imported), f"report/{path.name} imports record readers: {sorted(READERS & imported)}"
