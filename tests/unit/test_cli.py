"""The `lambdalab` command line: exports, and clear errors for bad flags and files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambdalab import cli

LAMBDALAB = [sys.executable, "-m", "lambdalab"]


def test_env_prints_exports_for_eval(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env", "--port", "4599"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4599" in out
    assert "export AWS_ACCESS_KEY_ID=AKIALAMBDALABLOCAL00" in out
    assert "export AWS_REGION=us-east-1" in out


def test_env_port_from_the_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAMBDALAB_PORT", "4700")
    cli.main(["env"])
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4700" in capsys.readouterr().out
    monkeypatch.setenv("LAMBDALAB_PORT", "port")
    assert cli.main(["env"]) == 2
    assert "LAMBDALAB_PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--template", "nope.yaml"], "error: template nope.yaml not found"),
        (["up", "--port", "70000"], "is not a port number"),
        (["up", "--time-scale", "-1"], "must be greater than 0"),
        (["up", "--no-template", "--account-concurrency", "50"], "--account-concurrency must be at least 100"),
    ],
)
def test_bad_flags_and_files_give_one_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([*LAMBDALAB, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
