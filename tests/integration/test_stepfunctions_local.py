"""Step Functions on the local cloud end to end: moto's interpreter runs the lab's state machines against our Lambda
service, through a real `lambdalab up`, driven by boto3, the AWS CLI and scripts/start-execution.sh."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.cloud import BIN, RunningCloud, local_cloud

pytestmark = pytest.mark.integration

STACK_DIR = Path(__file__).parent / "stepfunctions"
STACK = "lambdalab-sfn"
ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/lambdalab-sfn-test"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sfn")
    with local_cloud(STACK_DIR / "template.yaml", tmp, extra=["--stack-name", STACK, "--time-scale", "0.01"]) as c:
        yield c


@pytest.fixture(scope="module")
def outputs(cloud: RunningCloud) -> dict[str, str]:
    return cloud.outputs(STACK)


def run(cloud: RunningCloud, arn: str, payload: Any, timeout: float = 40.0, **kwargs: Any) -> dict[str, Any]:
    """Start an execution and wait (bounded) until it is no longer RUNNING."""
    sfn = cloud.client("stepfunctions")
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload), **kwargs)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=started["executionArn"])
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError(f"execution {started['executionArn']} still RUNNING after {timeout} s")


def entries(count: int, sleep: float) -> dict[str, Any]:
    return {"entries": [{"item": n, "sleep": sleep} for n in range(1, count + 1)]}


def records_of(cloud: RunningCloud, function: str, since: float, count: int) -> list[dict[str, Any]]:
    """The run records of `function` received since `since`, once `count` of them ran (bounded)."""

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["function_name"] == function and r["received_at"] >= since]

    records = cloud.wait_records(
        lambda rs: len([r for r in mine(rs) if r["start_kind"]]) >= count, what=f"{count} calls of {function}"
    )
    return mine(records)


def overlap(records: list[dict[str, Any]]) -> int:
    """The most invocations running at the same moment."""
    edges = []
    for r in records:
        if r["invoke_start"] is not None:
            edges += [(r["invoke_start"], 1), (r["invoke_end"], -1)]
    running = peak = 0
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak


def test_inline_map_runs_at_most_40_at_once_when_max_concurrency_is_0(
    cloud: RunningCloud, outputs: dict[str, str]
) -> None:
    # GIVEN the lab's inline-Map machine with MaxConcurrency 0 (no explicit limit) and 50 items of 1.5 s
    since = time.time()
    # WHEN it runs
    described = run(cloud, outputs["FanMachineArn"], entries(50, 1.5))
    # THEN it succeeds, every item invoked the alias, and never more than 40 ran at once (AWS's inline limit;
    # moto alone starts one thread per item, and all 50 would overlap)
    assert described["status"] == "SUCCEEDED", described
    assert len(json.loads(described["output"])) == 50
    records = records_of(cloud, outputs["WorkerName"], since, 50)
    assert {r["qualifier"] for r in records} == {"live"}
    assert 20 <= overlap(records) <= 40  # really parallel (40 on an idle machine), never past the limit
    assert len({r["environment_id"] for r in records}) <= 40


def test_max_concurrency_limits_the_map(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    since = time.time()
    described = run(cloud, outputs["CappedMachineArn"], entries(9, 0.3))
    assert described["status"] == "SUCCEEDED", described
    records = records_of(cloud, outputs["WorkerName"], since, 9)
    assert overlap(records) <= 3


def test_provisioned_alias_serves_every_call_without_init(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    # GIVEN an alias with provisioned concurrency 3 >= the Map's concurrency
    lam = cloud.client("lambda")
    deadline = time.monotonic() + 30
    while lam.get_provisioned_concurrency_config(FunctionName=outputs["WarmName"], Qualifier="live")["Status"] != (
        "READY"
    ):
        assert time.monotonic() < deadline, "provisioned concurrency not READY within 30 s"
        time.sleep(0.1)
    since = time.time()
    # WHEN the machine fans out 6 calls through the alias, 3 at a time
    described = run(cloud, outputs["WarmMachineArn"], entries(6, 0.2))
    # THEN no call had a cold start: the state machine reached the alias, where provisioned concurrency lives
    assert described["status"] == "SUCCEEDED", described
    records = records_of(cloud, outputs["WarmName"], since, 6)
    assert [r["start_kind"] for r in records] == ["provisioned"] * 6
    assert all(not item["cold_start"] or item["initialization_type"] == "provisioned-concurrency"
               for item in json.loads(described["output"]))  # fmt: skip


def test_distributed_map_respects_max_concurrency(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    since = time.time()
    described = run(cloud, outputs["DistributedMachineArn"], entries(10, 0.3))
    assert described["status"] == "SUCCEEDED", described
    assert len(json.loads(described["output"])) == 10
    records = records_of(cloud, outputs["WorkerName"], since, 10)
    assert overlap(records) <= 4
    history = cloud.client("stepfunctions").get_execution_history(executionArn=described["executionArn"])["events"]
    assert "MapRunStarted" in [e["type"] for e in history]


def test_a_throttled_call_is_retried_and_the_execution_succeeds(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    # GIVEN a function with reserved concurrency 1 and a Map that calls it 3 times at once, retrying throttles
    since = time.time()
    described = run(cloud, outputs["RetryMachineArn"], entries(3, 1.0))
    # THEN calls were throttled (429) and retried until all three ran
    assert described["status"] == "SUCCEEDED", described
    history = cloud.client("stepfunctions").get_execution_history(executionArn=described["executionArn"])["events"]
    failures = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert failures and {f["error"] for f in failures} == {"Lambda.TooManyRequestsException"}
    assert "Rate Exceeded." in failures[0]["cause"] and "Status Code: 429" in failures[0]["cause"]

    def mine(rs: list[dict]) -> list[dict]:
        return [r for r in rs if r["function_name"] == outputs["LimitedName"] and r["received_at"] >= since]

    # records reach the run directory within a flush interval of the execution's end
    records = mine(cloud.wait_records(lambda rs: len([r for r in mine(rs) if r["start_kind"]]) >= 3, what="3 runs"))
    assert len([r for r in records if r["start_kind"]]) == 3
    assert len([r for r in records if not r["start_kind"]]) == len(failures)


def test_catch_routes_a_throttle_to_its_handler(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    described = run(cloud, outputs["CatchMachineArn"], entries(3, 1.0))
    assert described["status"] == "SUCCEEDED", described
    results = json.loads(described["output"])
    caught = [r for r in results if "caught" in r]
    assert caught, results
    assert {c["caught"]["Error"] for c in caught} == {"Lambda.TooManyRequestsException"}


def test_task_timeout_fails_with_states_timeout(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    described = run(cloud, outputs["TimeoutMachineArn"], {})
    assert described["status"] == "FAILED", described
    assert described["error"] == "States.Timeout"


def test_execution_history_has_the_documented_events_in_order(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    # GIVEN Pass → Task (lambda:invoke) → Succeed
    described = run(cloud, outputs["HistoryMachineArn"], {})
    assert described["status"] == "SUCCEEDED", described
    events = cloud.client("stepfunctions").get_execution_history(executionArn=described["executionArn"])["events"]
    # THEN the history is the one the Step Functions docs show for such a definition
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    # as AWS records it, the first state's entry points back to 0, every later event to the one before it
    assert [e["previousEventId"] for e in events] == [0, 0, *range(2, len(events))]
    scheduled = next(e for e in events if e["type"] == "TaskScheduled")["taskScheduledEventDetails"]
    assert (scheduled["resourceType"], scheduled["resource"]) == ("lambda", "invoke")


def test_execution_and_its_invocations_share_one_trace(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    # GIVEN a machine with X-Ray tracing enabled
    since = time.time()
    described = run(cloud, outputs["FanMachineArn"], entries(3, 0.1))
    assert described["status"] == "SUCCEEDED", described
    records = records_of(cloud, outputs["WorkerName"], since, 3)
    # THEN every invocation joined one sampled trace, under a parent the state machine recorded
    assert len({r["trace_id"] for r in records}) == 1
    assert all(r["sampled"] and r["parent_id"] for r in records)
    trace_id = records[0]["trace_id"]
    xray = cloud.client("xray")
    deadline = time.monotonic() + 15
    origins: set[str] = set()
    parents: set[str] = set()
    lambda_parents: set[str] = set()
    while time.monotonic() < deadline:  # segments arrive one by one, off the invoke path: wait for all of them
        traces = xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
        documents = [json.loads(s["Document"]) for t in traces for s in t["Segments"]]
        origins = {d.get("origin", "") for d in documents}
        parents = {
            d["subsegments"][0]["id"] for d in documents if d.get("origin") == "AWS::StepFunctions::StateMachine"
        }
        lambda_parents = {d.get("parent_id") for d in documents if d.get("origin") == "AWS::Lambda"}
        lambdas = sum(d.get("origin") == "AWS::Lambda" for d in documents)
        if lambdas >= len(records) and lambda_parents <= parents:
            break
        time.sleep(0.2)
    assert {"AWS::StepFunctions::StateMachine", "AWS::Lambda"} <= origins
    assert lambda_parents and lambda_parents <= parents


def test_a_caller_trace_header_is_continued(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    since = time.time()
    root = "1-5f84c7a1-0123456789abcdef01234567"
    described = run(cloud, outputs["FanMachineArn"], entries(2, 0.1), traceHeader=f"Root={root};Sampled=1")
    assert described["status"] == "SUCCEEDED", described
    records = records_of(cloud, outputs["WorkerName"], since, 2)
    assert {r["trace_id"] for r in records} == {root}


def test_executions_get_uuid_names_and_bad_names_are_rejected(cloud: RunningCloud, outputs: dict[str, str]) -> None:
    sfn = cloud.client("stepfunctions")
    arn = outputs["HistoryMachineArn"]
    first = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    assert first != second
    name = first.rsplit(":", 1)[1]
    assert len(name) == 36 and name.count("-") == 4  # a UUID, as AWS generates
    for bad in ("has space", "a" * 81, "semi;colon", "slash/name", "star*"):
        with pytest.raises(ClientError) as caught:
            sfn.start_execution(stateMachineArn=arn, name=bad, input="{}")
        assert caught.value.response["Error"]["Code"] == "InvalidName", bad
    listed = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]}
    assert {first, second} <= listed


def test_an_invalid_definition_is_rejected_at_create_time(cloud: RunningCloud) -> None:
    definition = json.dumps(
        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke"}}}
    )
    result = cloud.aws(
        "stepfunctions", "create-state-machine", "--name", "broken", "--role-arn", ROLE, "--definition", definition,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "InvalidDefinition" in result.stderr
    assert "SCHEMA_VALIDATION_FAILED: These fields are required: [Next] at /States/A" in result.stderr
    names = [m["name"] for m in cloud.client("stepfunctions").list_state_machines()["stateMachines"]]
    assert "broken" not in names


def test_start_execution_script_runs_unchanged(cloud: RunningCloud, tmp_path: Path) -> None:
    # GIVEN the lab's own script and a payload of 4 entries
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(entries(4, 0.1)))
    # AWS CLI v1 prints JSON-protocol timestamps as epoch numbers (against AWS too), which the script's `date -d`
    # cannot read; v2 prints ISO 8601 by default. The documented setting gives v1 the same.
    config = tmp_path / "aws-config"
    config.write_text("[default]\ncli_timestamp_format = iso8601\n")
    env = {**cloud.env, "STACK_NAME": STACK, "POLL": "1", "TIMEOUT": "60", "AWS_CONFIG_FILE": str(config)}
    # WHEN it runs against the local endpoint (BaseStateMachineArn is the fan-out machine here)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "start-execution.sh"), "base", str(payload)],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    # THEN it reports the execution and one line per item
    assert result.returncode == 0, result.stderr
    assert "status: SUCCEEDED" in result.stdout
    assert "cold starts:" in result.stdout and "of 4" in result.stdout
    assert len([line for line in result.stdout.splitlines() if line[:1].isdigit()]) == 4


def test_lambdalab_up_rejects_a_template_whose_definition_is_invalid(tmp_path: Path) -> None:
    # GIVEN a template with a Task that has neither Next nor End
    template = STACK_DIR / "invalid" / "template.yaml"
    # WHEN it is deployed, THEN `lambdalab up` stops with AWS's finding and the resource that caused it
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lambdalab"), "up", "--port", "0", "--run-root", str(tmp_path / "runs"),
         "--template", str(template)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Resources.Broken" in result.stderr and "InvalidDefinition" in result.stderr
    assert "These fields are required: [Next] at /States/Invoke" in result.stderr
    assert "ready " not in result.stdout


def test_traces_after_a_map_execution_find_exactly_the_recorded_cold_starts(
    cloud: RunningCloud, outputs: dict[str, str]
) -> None:
    # GIVEN a traced Map execution of 9 items on a function with a 0.2 s INIT
    worker = outputs["WorkerName"]
    since = time.time()
    described = run(cloud, outputs["FanMachineArn"], entries(9, 0.2))
    assert described["status"] == "SUCCEEDED"
    records = records_of(cloud, worker, since, 9)
    trace_ids = {r["trace_id"] for r in records}
    assert len(trace_ids) == 1  # the execution and its invocations share one trace
    kinds = {r["request_id"]: r["start_kind"] for r in records}

    # WHEN lambdalab traces reads the local X-Ray (bounded wait: segments are forwarded every 0.5 s)
    def report() -> dict[str, Any]:
        result = subprocess.run(
            [str(BIN / "lambdalab"), "traces", "--json", "--since", "10m", "--function", worker],
            env=cloud.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(result.stdout)

    deadline = time.monotonic() + 30
    while True:
        got = report()
        mine = [i for i in got["invocations"] if i["trace_id"] in trace_ids]
        if len(mine) >= 9 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # THEN it finds the execution's 9 calls, each cold or warm exactly as the run records say
    assert len(mine) == 9
    assert {i["request_id"]: i["start_kind"] for i in mine} == kinds
