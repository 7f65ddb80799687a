"""The scripts are valid bash, pass shellcheck, and do what they say against a stand-in AWS CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.sam import ROOT

SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
FAKES = Path(__file__).parent / "fakes"
BIN = Path(sys.executable).parent


def test_the_expected_scripts_exist():
    names = {p.name for p in SCRIPTS}
    assert {
        "lib.sh",
        "invoke.sh",
        "send-messages.sh",
        "start-execution.sh",
        "set-concurrency.sh",
        "load-test.sh",
        "delete-stack.sh",
    } <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_is_strict(script: Path):
    result = subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    text = script.read_text(encoding="utf-8")
    if script.name != "lib.sh":
        assert "set -euo pipefail" in text
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_scripts_pass_shellcheck():
    result = subprocess.run(
        [str(BIN / "shellcheck"), "-x", *[str(p) for p in SCRIPTS]],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose `aws` is the stand-in in tests/stack/fakes (jq and coreutils come from the system)."""
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed; the scripts need it")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(FAKES / "aws", bin_dir / "aws")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FAKE_"))}
    env.update(
        {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_LOG": str(tmp_path / "calls.log"),
            "FAKE_ENV_LOG": str(tmp_path / "env.log"),
            "FAKE_STATE": str(tmp_path),
        }
    )
    return env


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args], check=False, capture_output=True, text=True, env=env, timeout=60
    )


def test_invoke_counts_throttles_and_cold_starts(fake_env: dict[str, str], tmp_path: Path):
    # GIVEN a stack whose base function throttles every 4th call and has 3 cold environments
    fake_env.update(
        FAKE_OUTPUT_ConcurrencyTestFunctionName="lab-base", FAKE_THROTTLE_EVERY="4", FAKE_COLD="3", COUNT="10"
    )
    fake_env["PARALLEL"] = "3"
    # WHEN ten calls run
    result = _run("invoke.sh", fake_env, "base")
    # THEN the summary shows 8 answered, 2 throttled, 3 cold starts, and calls went to the alias
    assert result.returncode == 0, result.stderr
    assert "status codes:     200 x8, 429 x2" in result.stdout
    assert "throttled (429):  2" in result.stdout
    assert "cold starts:      3 of 8 answered" in result.stdout
    calls = (tmp_path / "calls.log").read_text().splitlines()
    invokes = [c for c in calls if c.startswith("lambda invoke")]
    assert len(invokes) == 10
    assert all("--function-name lab-base --qualifier live --invocation-type RequestResponse" in c for c in invokes)
    # No CLI-side retries, so every throttle is visible.
    env_lines = (tmp_path / "env.log").read_text().splitlines()
    assert len(env_lines) >= 10 and set(env_lines) == {"AWS_MAX_ATTEMPTS=1"}


def test_invoke_event_type_reports_202(fake_env: dict[str, str]):
    fake_env.update(FAKE_OUTPUT_ProvisionedConcurrencyTestFunctionName="lab-pc", COUNT="4", TYPE="Event")
    result = _run("invoke.sh", fake_env, "provisioned")
    assert result.returncode == 0, result.stderr
    assert "status codes:     202 x4" in result.stdout
    assert "cold starts" not in result.stdout


def test_invoke_rejects_a_bad_type(fake_env: dict[str, str]):
    fake_env["TYPE"] = "DryRun"
    result = _run("invoke.sh", fake_env)
    assert result.returncode != 0
    assert "TYPE must be RequestResponse or Event" in result.stderr


def test_missing_stack_is_a_clear_error(fake_env: dict[str, str]):
    fake_env["FAKE_NO_STACK"] = "1"
    result = _run("invoke.sh", fake_env)
    assert result.returncode != 0
    assert "cannot read stack 'lambda-concurrency-lab'" in result.stderr


def test_missing_output_is_a_clear_error(fake_env: dict[str, str]):
    result = _run("send-messages.sh", fake_env)
    assert result.returncode != 0
    assert "has no output 'WorkQueueUrl'" in result.stderr


def test_send_messages_uses_batches_of_ten_and_marks_failures(fake_env: dict[str, str], tmp_path: Path):
    sqs_log = tmp_path / "sqs.log"
    fake_env.update(
        FAKE_OUTPUT_WorkQueueUrl="https://sqs.example/q",
        FAKE_OUTPUT_QueueConsumerFunctionName="lab-queue",
        FAKE_SQS_LOG=str(sqs_log),
        COUNT="23",
        FAIL_EVERY="5",
        SLEEP="0.5",
    )
    result = _run("send-messages.sh", fake_env)
    assert result.returncode == 0, result.stderr
    assert "sent 23 of 23 messages" in result.stdout
    batches = [json.loads(line) for line in sqs_log.read_text().splitlines()]
    assert [len(b) for b in batches] == [10, 10, 3]
    bodies = [json.loads(entry["MessageBody"]) for batch in batches for entry in batch]
    assert [b["n"] for b in bodies] == list(range(1, 24))
    assert [b["n"] for b in bodies if b["fail"]] == [5, 10, 15, 20]
    assert {b["sleep"] for b in bodies} == {0.5}


def test_start_execution_waits_and_prints_per_item_durations(fake_env: dict[str, str], tmp_path: Path):
    items = [
        {"cold_start": True, "environment_id": "aaaaaaaa-1", "init_duration_ms": 5000.4, "handler_duration_ms": 3000.2,
         "initialization_type": "on-demand"},
        {"cold_start": False, "environment_id": "aaaaaaaa-1", "init_duration_ms": 5000.4, "handler_duration_ms": 3000.0,
         "initialization_type": "on-demand"},
        {"cold_start": True, "environment_id": "bbbbbbbb-2", "init_duration_ms": 5000.0, "handler_duration_ms": 3001.0,
         "initialization_type": "provisioned-concurrency"},
    ]  # fmt: skip
    description = {
        "status": "SUCCEEDED",
        "startDate": "2026-11-22T06:40:00.100000+00:00",
        "stopDate": "2026-11-22T06:40:08.350000+00:00",
        "output": json.dumps(items),
    }
    (tmp_path / "desc.json").write_text(json.dumps(description))
    fake_env.update(
        FAKE_OUTPUT_BaseStateMachineArn="arn:sm", FAKE_DESCRIPTION=str(tmp_path / "desc.json"), POLL="1", TIMEOUT="20"
    )
    result = _run("start-execution.sh", fake_env, "base")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status: SUCCEEDED" in out
    assert "execution took 8.250 s" in out
    # The on-demand cold start pays INIT; the provisioned one ran INIT before the traffic.
    assert "cold starts: 1 of 3; environments: 2" in out
    assert "per-item total ms: min 3000 / avg 4667 / max 8001" in out


def test_start_execution_gives_up_at_its_deadline(fake_env: dict[str, str], tmp_path: Path):
    (tmp_path / "desc.json").write_text(json.dumps({"status": "RUNNING"}))
    fake_env.update(
        FAKE_OUTPUT_ProvisionedStateMachineArn="arn:sm",
        FAKE_DESCRIPTION=str(tmp_path / "desc.json"),
        POLL="1",
        TIMEOUT="2",
    )
    result = _run("start-execution.sh", fake_env, "provisioned")
    assert result.returncode != 0
    assert "still RUNNING after 2s" in result.stderr


def test_start_execution_reports_a_failed_run(fake_env: dict[str, str], tmp_path: Path):
    (tmp_path / "desc.json").write_text(
        json.dumps({"status": "FAILED", "error": "Lambda.TooManyRequestsException", "cause": "Rate Exceeded."})
    )
    fake_env.update(FAKE_OUTPUT_BaseDistributedStateMachineArn="arn:sm", FAKE_DESCRIPTION=str(tmp_path / "desc.json"))
    fake_env["POLL"] = "1"
    result = _run("start-execution.sh", fake_env, "base-distributed")
    assert result.returncode == 1
    assert "Lambda.TooManyRequestsException" in result.stderr


def test_load_test_without_artillery_explains_and_exits_2(fake_env: dict[str, str], tmp_path: Path):
    # A PATH with the basics but no npx.
    bare = tmp_path / "bare"
    bare.mkdir()
    for tool in ("bash", "dirname", "basename", "cat", "env"):
        found = shutil.which(tool)
        assert found
        (bare / tool).symlink_to(found)
    fake_env["PATH"] = str(bare)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "load-test.sh"), "spike"],
        check=False,
        capture_output=True,
        text=True,
        env=fake_env,
        timeout=30,
    )
    assert result.returncode == 2
    assert "npm install" in result.stderr


def test_load_test_names_the_scenarios_it_has(fake_env: dict[str, str]):
    result = _run("load-test.sh", fake_env, "nope")
    assert result.returncode != 0
    assert "flash-sale" in result.stderr and "linear" in result.stderr and "spike" in result.stderr


def _phases(name: str) -> list[dict]:
    return yaml.safe_load((ROOT / "loadtests" / f"{name}.yaml").read_text(encoding="utf-8"))["config"]["phases"]


def test_spike_profile_warms_up_then_spikes_120s_with_240s_drops():
    phases = _phases("spike")
    assert phases[0]["name"] == "warm-up"
    spikes = [p for p in phases if p["name"].startswith("spike")]
    drops = [p for p in phases if p["name"] == "drop"]
    assert [p["arrivalRate"] for p in spikes] == [30, 60, 90, 120]
    assert all(p["duration"] == 120 for p in spikes)
    assert len(drops) == len(spikes) and all(p["duration"] == 240 for p in drops)


def test_linear_profile_ramps_1_to_75_over_ten_minutes():
    ramp, sustain, cool = _phases("linear")
    assert (ramp["arrivalRate"], ramp["rampTo"], ramp["duration"]) == (1, 75, 600)
    assert sustain["arrivalRate"] == 75
    assert cool["rampTo"] < cool["arrivalRate"]


def test_flash_sale_profile_goes_5_20_100_5():
    assert [p["arrivalRate"] for p in _phases("flash-sale")] == [5, 20, 100, 5]


def test_set_reserved_concurrency(fake_env: dict[str, str], tmp_path: Path):
    fake_env["FAKE_OUTPUT_ConcurrencyTestFunctionName"] = "lab-base"
    result = _run("set-concurrency.sh", fake_env, "reserved", "base", "5")
    assert result.returncode == 0, result.stderr
    assert "lab-base: reserved concurrency 5" in result.stdout
    calls = (tmp_path / "calls.log").read_text()
    assert "lambda put-function-concurrency --function-name lab-base --reserved-concurrent-executions 5" in calls


def test_set_provisioned_concurrency_waits_for_ready(fake_env: dict[str, str], tmp_path: Path):
    fake_env.update(FAKE_OUTPUT_ProvisionedConcurrencyTestFunctionName="lab-pc", FAKE_PC_POLLS="2", POLL="1")
    result = _run("set-concurrency.sh", fake_env, "provisioned", "provisioned", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("lab-pc:live: IN_PROGRESS")
    assert lines[-1] == "lab-pc:live: READY (5 of 5 ready)"
    calls = (tmp_path / "calls.log").read_text()
    assert "--qualifier live --provisioned-concurrent-executions 5" in calls


def test_set_provisioned_concurrency_reports_failure(fake_env: dict[str, str]):
    fake_env.update(FAKE_OUTPUT_ProvisionedConcurrencyTestFunctionName="lab-pc", FAKE_PC_FAIL="quota", POLL="1")
    result = _run("set-concurrency.sh", fake_env, "provisioned", "provisioned", "5")
    assert result.returncode != 0
    assert "provisioned concurrency failed: quota" in result.stderr


def test_set_provisioned_concurrency_gives_up_at_its_deadline(fake_env: dict[str, str]):
    fake_env.update(
        FAKE_OUTPUT_ProvisionedConcurrencyTestFunctionName="lab-pc", FAKE_PC_POLLS="100", POLL="1", WAIT_TIMEOUT="2"
    )
    result = _run("set-concurrency.sh", fake_env, "provisioned", "provisioned", "5")
    assert result.returncode != 0
    assert "still IN_PROGRESS after 2s" in result.stderr


def test_set_concurrency_rejects_bad_values(fake_env: dict[str, str]):
    result = _run("set-concurrency.sh", fake_env, "reserved", "base", "lots")
    assert result.returncode != 0
    assert "N must be a whole number or 'none'" in result.stderr


def test_delete_stack_needs_confirmation(fake_env: dict[str, str], tmp_path: Path):
    result = subprocess.run(
        [str(ROOT / "scripts" / "delete-stack.sh")],
        check=False,
        input="some-other-stack\n",
        capture_output=True,
        text=True,
        env=fake_env,
        timeout=30,
    )
    assert result.returncode != 0
    assert "not confirmed; nothing deleted" in result.stderr
    assert not (tmp_path / "deleting").exists()


def test_delete_stack_waits_then_removes_function_log_groups(fake_env: dict[str, str], tmp_path: Path):
    fake_env.update(
        FAKE_OUTPUT_ConcurrencyTestFunctionName="lab-base",
        FAKE_OUTPUT_QueueConsumerFunctionName="lab-queue",
        POLL="1",
    )
    result = _run("delete-stack.sh", fake_env, "--yes")
    assert result.returncode == 0, result.stderr
    assert "stack lambda-concurrency-lab deleted" in result.stdout
    deleted = (tmp_path / "deleted-log-groups").read_text().splitlines()
    assert deleted == ["/aws/lambda/lab-base", "/aws/lambda/lab-queue"]


@pytest.mark.parametrize(
    "printed",
    ["1795330833.349", "2026-11-22T07:00:33.349Z", "2026-11-22T07:00:33.349000+00:00"],
)
def test_timestamps_from_either_aws_cli_version_become_milliseconds(printed: str):
    # CLI v1 prints epoch seconds by default, v2 ISO 8601: start-execution.sh must read both.
    result = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/lib.sh" && epoch_ms "$1"', "_", printed],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "1795330833349"
