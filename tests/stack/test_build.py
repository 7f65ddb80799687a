"""`sam build` packages every function of the template for python3.13, offline."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sam import ROOT, load_template

PYENV_VERSIONS = "3.11.7:3.13.0"


def _python313_env() -> dict[str, str] | None:
    """An environment in which `python3.13` runs, or None when this machine has none."""
    env = dict(os.environ)
    env.setdefault("PYENV_VERSION", PYENV_VERSIONS)
    env.update({"SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    env.pop("AWS_PROFILE", None)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    python = shutil.which("python3.13", path=env["PATH"])
    if python is None:
        return None
    probe = subprocess.run([python, "--version"], check=False, capture_output=True, text=True, env=env, timeout=30)
    return env if probe.returncode == 0 else None


@pytest.mark.slow
def test_sam_build_packages_every_function(tmp_path: Path):
    env = _python313_env()
    if env is None:
        pytest.skip("python3.13 is not available here (sam build needs the runtime's Python to resolve packages)")
    build_dir = tmp_path / "build"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "sam"),
            "build",
            "--template-file",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(build_dir),
            "--region",
            "us-east-1",
            "--no-cached",
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    functions = [
        logical_id for logical_id, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    ]
    for logical_id in functions:
        assert (build_dir / logical_id / "app.py").is_file(), f"{logical_id} was not built"
    assert (build_dir / "template.yaml").is_file()
