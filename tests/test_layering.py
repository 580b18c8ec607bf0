"""The package's import rules: cli -> pipeline -> report -> runs -> (nets | compare -> theory).

Read from the source (every import statement, function-level ones too), so a lazy import that
breaks a rule fails here as surely as a top-level one."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "iwtheory"
# what each part may import from the package (besides itself)
ALLOWED = {
    "theory": set(),
    "compare": {"theory"},
    "nets": {"theory"},
    "runs": {"theory", "compare", "nets"},
    "report": {"theory", "compare", "nets", "runs"},
    "pipeline": {"theory", "compare", "nets", "runs", "report"},
    "cli": {"theory", "compare", "nets", "runs", "report", "pipeline"},
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
