"""Imports run one way (docs/architecture.md): `model` imports none of the other packages; `actors` may
import `model`; `cluster` imports `actors` and `model`; `serve` imports `model` and `actors`; `evaluation`
imports `actors`, `model` and `cluster`, and only the CLI package `finmm` imports it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "actors", "cluster", "serve", "evaluation", "finmm")
ALLOWED = {
    "model": set(),
    "actors": {"model"},
    "cluster": {"actors", "model"},
    "serve": {"actors", "model"},
    "evaluation": {"actors", "model", "cluster"},
    "finmm": {"actors", "model", "cluster", "serve", "evaluation"},
}


def first_party_imports(path: Path) -> set[tuple[str, int]]:
    """(top-level first-party package, line) for every import in one module, function-local ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in PACKAGES}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_layering_allows(package):
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for target, line in sorted(first_party_imports(path))
             if target != package and target not in ALLOWED[package]]
    allowed = sorted(ALLOWED[package]) or "none of the others"
    assert not wrong, f"{package} may import only {allowed}:\n" + "\n".join(wrong)


def test_the_checker_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from serve.api import app\n    import evaluation.report\n")
    assert first_party_imports(module) == {("serve", 2), ("evaluation", 3)}
