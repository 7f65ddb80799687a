"""Fixtures for handler tests: each test imports the function's app.py fresh, as a new execution environment would."""

import importlib.util
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"

LoadFunction = Callable[..., ModuleType]


@pytest.fixture
def load_function(monkeypatch: pytest.MonkeyPatch) -> LoadFunction:
    """Import functions/<name>/app.py as a brand-new module (a new INIT) with the given environment variables."""
    loaded: list[str] = []

    def load(name: str, **env: str) -> ModuleType:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        module_name = f"lab_function_{name}_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS_DIR / name / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        loaded.append(module_name)
        monkeypatch.setattr(sys, "dont_write_bytecode", True)  # keep functions/ free of __pycache__ (it is deployed)
        spec.loader.exec_module(module)
        return module

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)
