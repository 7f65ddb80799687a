"""Which interpreter runs a python3.X runtime: the runtime's own version when installed, else the lab's, said once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lambdalab.awslambda.runtime import interpreters
from lambdalab.awslambda.runtime.interpreters import UnsupportedRuntime, find_interpreter, runtime_version


@pytest.fixture(autouse=True)
def fresh_cache():
    find_interpreter.cache_clear()
    yield
    find_interpreter.cache_clear()


@pytest.mark.parametrize("runtime", ["python3", "python2.7", "nodejs20.x", "python3.x", ""])
def test_only_python3_minor_runtimes_are_python_runtimes(runtime: str) -> None:
    with pytest.raises(UnsupportedRuntime, match="is not a Python runtime"):
        runtime_version(runtime)


def test_an_explicit_interpreter_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    monkeypatch.setenv(f"LAMBDALAB_PYTHON{minor.replace('.', '_')}", sys.executable)
    found = find_interpreter(f"python{minor}")
    assert found.executable == Path(sys.executable).resolve()
    assert found.version[:2] == sys.version_info[:2] and not found.fallback and found.note() is None


def test_a_runtime_not_installed_falls_back_to_the_labs_python_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN no pyenv and nothing on PATH for python3.99
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_interpreter("python3.99")
    # THEN the lab's interpreter runs it, and the deploy note names both versions
    assert found.fallback and found.executable == Path(sys.executable)
    note = found.note()
    assert note is not None
    assert "python3.99 is not installed on this machine" in note
    assert f"run on Python {sys.version_info[0]}.{sys.version_info[1]}" in note


def test_a_candidate_of_the_wrong_version_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN a "python3.99" on PATH that is really the lab's Python (a shim pointing elsewhere)
    shim = tmp_path / "python3.99"
    shim.symlink_to(sys.executable)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert interpreters._candidates(3, 99) == [shim]
    # THEN it is not taken for 3.99
    assert find_interpreter("python3.99").fallback
