"""The template passes cfn-lint (no errors, no warnings) and `sam validate --lint`, offline."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    env.pop("AWS_PROFILE", None)
    return env


def test_cfn_lint_reports_no_errors_and_no_warnings():
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "parseable", "--", "template.yaml"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=_offline_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_sam_validate_lint_passes():
    result = subprocess.run(
        [str(BIN / "sam"), "validate", "--lint", "--region", "us-east-1", "--template-file", "template.yaml"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=_offline_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr
