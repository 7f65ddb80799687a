"""A function's import path: code folder, requirements installed as `sam build` would, layers newest first."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from lambdalab.awslambda.runtime.builds import (
    BuildError,
    function_artifact,
    layer_paths,
    requirements_of,
    sam_build_output,
)
from lambdalab.awslambda.runtime.interpreters import find_interpreter

HOST = find_interpreter(f"python{sys.version_info[0]}.{sys.version_info[1]}")


def test_requirements_that_ask_for_nothing_are_none(tmp_path: Path) -> None:
    assert requirements_of(tmp_path) is None
    (tmp_path / "requirements.txt").write_text("# nothing\n\n   \n")
    assert requirements_of(tmp_path) is None
    (tmp_path / "requirements.txt").write_text("# one\nsix==1.17.0\n")
    assert requirements_of(tmp_path) == "# one\nsix==1.17.0\n"


def test_sam_build_output_is_used_only_when_newer_than_the_code(tmp_path: Path) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "app.py").write_text("x = 1\n")
    built = tmp_path / ".aws-sam" / "build" / "Fn"
    built.mkdir(parents=True)
    (built / "app.py").write_text("x = 1\n")
    old = time.time() - 100
    os.utime(code / "app.py", (old, old))
    os.utime(code, (old, old))
    assert sam_build_output(code, "Fn", tmp_path) == built
    assert sam_build_output(code, "Other", tmp_path) is None
    assert sam_build_output(code, None, tmp_path) is None
    (code / "app.py").write_text("x = 2\n")  # edited after the build: the folder wins
    assert sam_build_output(code, "Fn", tmp_path) is None


def test_layers_come_newest_first_site_packages_before_python(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    site = Path("python") / "lib" / f"python{HOST.minor}" / "site-packages"
    for layer in (first, second):
        (layer / site).mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    assert layer_paths([first, tmp_path / "empty", second], HOST) == [
        second / site, first / site, second / "python", first / "python",
    ]  # fmt: skip


@pytest.mark.slow
def test_requirements_are_installed_once_and_come_after_the_code(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAMBDALAB_CACHE_DIR", str(tmp_path / "cache"))
    code = tmp_path / "src"
    code.mkdir()
    (code / "requirements.txt").write_text("six==1.17.0\n")
    artifact = function_artifact(code, HOST, name="fn")
    assert artifact.task_root == code
    (deps,) = artifact.paths
    assert (deps / "six.py").is_file()
    again = function_artifact(code, HOST, name="fn")  # cached: no second install
    assert again.paths == (deps,)


@pytest.mark.slow
def test_a_requirement_that_cannot_be_installed_names_the_function_and_pip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAMBDALAB_CACHE_DIR", str(tmp_path / "cache"))
    code = tmp_path / "src"
    code.mkdir()
    (code / "requirements.txt").write_text("this-package-does-not-exist-lambdalab==0.0.1\n")
    with pytest.raises(BuildError, match=r"function orders: pip could not install requirements.txt: .*"):
        function_artifact(code, HOST, name="orders")
    left = [p.name for p in (tmp_path / "cache" / "builds").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # nothing half-built is left
