"""No lambdalab module uses another lambdalab module's private names: a name with a leading underscore is its
module's own. Three ways to reach across are caught, statically (ast):

* ``from lambdalab.x import _name``;
* ``module._name`` where ``module`` is a lambdalab module imported here;
* ``anything._name`` (not ``self``/``cls``) where ``_name`` is defined nowhere in this module but in another
  lambdalab module (a function, class, constant, attribute or field).

Third-party internals a module patches on purpose (moto, botocore, awslambdaric) are allowed below, each with why.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import lambdalab

PACKAGE = Path(lambdalab.__file__).parent

# (module path relative to lambdalab/, private name): why it is not a reach into another lambdalab module.
ALLOWED = {
    ("awsclients.py", "_session"): "boto3's Session._session (its botocore session), not lambdalab's",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, assignments, attributes it sets, dataclass fields."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if _private(n)}


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def reaches(modules: dict[str, ast.Module]) -> list[str]:
    defined = {path: _defined(tree) for path, tree in modules.items()}
    owners: dict[str, set[str]] = defaultdict(set)
    for path, names in defined.items():
        for name in names:
            owners[name].add(path)
    found: list[str] = []
    for path, tree in modules.items():
        lambdalab_modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lambdalab"):
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
                    lambdalab_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("lambdalab"):
                        lambdalab_modules.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _private(node.attr):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if (path, node.attr) in ALLOWED:
                continue
            via_module = isinstance(node.value, ast.Name) and node.value.id in lambdalab_modules
            elsewhere = node.attr not in defined[path] and owners.get(node.attr, set()) - {path}
            if via_module or elsewhere:
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    assert reaches(_modules()) == []


def test_every_allowed_entry_is_still_needed() -> None:
    modules = _modules()
    for path, name in ALLOWED:
        uses = [n for n in ast.walk(modules[path]) if isinstance(n, ast.Attribute) and n.attr == name]
        assert uses, f"{path} no longer uses {name}: drop it from ALLOWED"


def test_the_check_sees_each_way_of_reaching_across() -> None:
    owner = ast.parse("_SECRET = 1\nclass Box:\n    def __init__(self):\n        self._inner = 2\n")
    user = ast.parse(
        "from lambdalab.owner import _SECRET\n"
        "from lambdalab import owner\n"
        "value = owner._SECRET\n"
        "def peek(box):\n    return box._inner\n"
        "class Own:\n    def __init__(self):\n        self._mine = 1\n    def m(self, other):\n"
        "        return other._mine\n"
    )
    found = reaches({"owner.py": owner, "user.py": user})
    assert found == [
        "user.py:1: from lambdalab.owner import _SECRET",
        "user.py:3: owner._SECRET",
        "user.py:5: box._inner",
    ]  # other._mine is this module's own name: allowed
