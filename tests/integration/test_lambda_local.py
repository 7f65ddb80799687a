"""The local Lambda service end to end: a real `lambdalab up`, driven by the AWS CLI and boto3."""

from __future__ import annotations

import base64
import io
import json
import re
import statistics
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.cloud import RunningCloud, local_cloud

pytestmark = pytest.mark.integration

LAB = Path(__file__).parent / "lab" / "template.yaml"
STACK = "lambdalab-it"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cloud")
    with local_cloud(LAB, tmp, extra=["--stack-name", STACK, "--time-scale", "0.01"]) as running:
        yield running


@pytest.fixture(scope="module")
def names(cloud: RunningCloud) -> dict[str, str]:
    return cloud.outputs(STACK)


def invoke(cloud: RunningCloud, name: str, payload: dict, **kwargs):
    response = cloud.client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
    response["Body"] = json.loads(response["Payload"].read() or b"null")
    return response


def overlap(records: list[dict]) -> int:
    """The most invocations that ran at the same moment, from their start/end times."""
    edges = []
    for r in records:
        edges += [(r["invoke_start"], 1), (r["invoke_end"], -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_cold_then_warm_with_the_aws_cli(cloud: RunningCloud, names: dict[str, str], tmp_path: Path) -> None:
    # GIVEN a function nobody has called yet
    name = names["ProbeName"]
    out = tmp_path / "out.json"
    # WHEN the AWS CLI invokes it twice with LogType=Tail
    first = json.loads(
        cloud.aws(
            "lambda", "invoke", "--function-name", name, "--log-type", "Tail", "--payload", '{"print": "hi"}', str(out)
        ).stdout
    )
    first_body = json.loads(out.read_text())
    second = json.loads(cloud.aws("lambda", "invoke", "--function-name", name, "--log-type", "Tail", str(out)).stdout)
    second_body = json.loads(out.read_text())
    # THEN the first ran INIT (Init Duration in REPORT) and the second reused the same environment
    first_log = base64.b64decode(first["LogResult"]).decode()
    second_log = base64.b64decode(second["LogResult"]).decode()
    assert first["StatusCode"] == 200 and first["ExecutedVersion"] == "$LATEST"
    assert "hi\n" in first_log
    assert "REPORT RequestId:" in first_log and "Init Duration:" in first_log
    assert "REPORT RequestId:" in second_log and "Init Duration:" not in second_log
    assert first_body["cold_start"] is True and second_body["cold_start"] is False
    assert first_body["environment_id"] == second_body["environment_id"]
    assert first_body["initialization_type"] == "on-demand"
    assert first_body["greeting"] == "hello"
    # AND the run directory says cold, then warm, with the INIT sleep (0.3 s) counted as Init Duration
    records = cloud.wait_records(lambda rs: sum(r["function_name"] == name for r in rs) >= 2, what="2 probe records")
    records = [r for r in records if r["function_name"] == name]
    assert [r["start_kind"] for r in records[:2]] == ["cold", "warm"]
    assert records[0]["init_duration_s"] >= 0.3
    assert records[1]["init_duration_s"] is None


def test_environment_has_reserved_variables_and_nothing_of_the_host(cloud: RunningCloud, names: dict) -> None:
    body = invoke(cloud, names["ProbeName"], {"env": True})["Body"]
    keys = set(body["env_keys"])
    for reserved in (
        "_HANDLER",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_REGION",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
    ):
        assert reserved in keys, reserved
    assert "LAMBDALAB_HOST_SECRET" not in keys
    assert body["access_key"] == "AKIALAMBDALABLOCAL00"
    assert body["cwd"].endswith("functions/probe")


def test_reserved_concurrency_5_gives_5_successes_and_5_throttles(cloud: RunningCloud, names: dict) -> None:
    # GIVEN a function with reserved concurrency 5 (from the template)
    name = names["LimitedName"]
    client = cloud.client("lambda")
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5

    def call(_: int):
        try:
            return client.invoke(FunctionName=name, Payload=b'{"sleep": 1.5}')["StatusCode"], None
        except ClientError as exc:
            return exc.response["Error"]["Code"], exc.response

    # WHEN 10 synchronous calls arrive at once
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(call, range(10)))
    # THEN exactly 5 ran and 5 got 429 with the reserved-concurrency reason
    codes = [code for code, _ in results]
    assert codes.count(200) == 5, codes
    throttles = [resp for code, resp in results if code == "TooManyRequestsException"]
    assert len(throttles) == 5
    for resp in throttles:
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert resp["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert int(resp["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1


def test_async_calls_all_processed_never_above_reserved(cloud: RunningCloud, names: dict) -> None:
    # GIVEN reserved concurrency 5
    name = names["LimitedName"]
    client = cloud.client("lambda")
    # WHEN 10 asynchronous calls arrive at once
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(
                lambda i: client.invoke(
                    FunctionName=name, InvocationType="Event", Payload=json.dumps({"sleep": 0.5, "n": i}).encode()
                )["StatusCode"],
                range(10),
            )
        )
    # THEN all 10 are accepted with 202 ...
    assert statuses == [202] * 10

    def done(records: list[dict]) -> bool:
        ok = [
            r
            for r in records
            if r["function_name"] == name and r["invocation_type"] == "Event" and r["outcome"] == "success"
        ]
        return len(ok) >= 10

    records = cloud.wait_records(done, timeout=60, what="10 async successes")
    ok = [
        r
        for r in records
        if r["function_name"] == name and r["invocation_type"] == "Event" and r["outcome"] == "success"
    ]
    # ... all 10 are processed exactly once, and never more than 5 ran at once
    assert len(ok) == 10
    assert len({r["request_id"] for r in ok}) == 10
    assert overlap(ok) <= 5


def _log_events(cloud: RunningCloud, group: str) -> dict[str, list[str]]:
    """Every stream of a log group with its messages in order, read with boto3 as a user would."""
    logs = cloud.client("logs")
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    return {
        s["logStreamName"]: [
            e["message"]
            for e in logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True)[
                "events"
            ]
        ]
        for s in streams
    }


def test_function_logs_one_stream_per_environment(cloud: RunningCloud, names: dict, tmp_path: Path) -> None:
    # GIVEN reserved concurrency 5
    name = names["LimitedName"]
    group = f"/aws/lambda/{name}"

    # WHEN the AWS CLI sends 10 asynchronous calls at once, each printing its number
    def send(i: int) -> None:
        payload = json.dumps({"sleep": 0.5, "print": f"call {i} of the batch"})
        cloud.aws(
            "lambda",
            "invoke",
            "--function-name",
            name,
            "--invocation-type",
            "Event",
            "--payload",
            payload,
            str(tmp_path / f"{i}.json"),
        )

    def async_ok(records: list[dict]) -> int:
        return sum(
            r["function_name"] == name and r["invocation_type"] == "Event" and r["outcome"] == "success"
            for r in records
        )

    expected = async_ok(cloud.records()) + 10
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(send, range(10)))

    def ran(records: list[dict]) -> list[dict]:
        return [r for r in records if r["function_name"] == name and r["environment_id"] is not None]

    records = ran(cloud.wait_records(lambda rs: async_ok(rs) >= expected, timeout=60, what="10 async successes"))
    deadline = time.monotonic() + 10
    streams = _log_events(cloud, group)
    while sum(m.startswith("REPORT ") for ms in streams.values() for m in ms) < len(records):
        assert time.monotonic() < deadline, f"{len(records)} invocations ran, REPORT lines: {streams}"
        time.sleep(0.1)
        streams = _log_events(cloud, group)
    # THEN the log group has one stream per execution environment, named as Lambda names it
    assert len(streams) == len({r["environment_id"] for r in records})
    for stream, messages in streams.items():
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", stream), stream
        # ... each begins with INIT_START, has START/END/REPORT per invocation, Init Duration on the first only
        assert messages[0].startswith("INIT_START Runtime Version: python:"), messages
        reports = [m for m in messages if m.startswith("REPORT RequestId: ")]
        starts = [m for m in messages if m.startswith("START RequestId: ")]
        assert len(reports) == len(starts) >= 1
        assert "Init Duration: " in reports[0]
        assert not any("Init Duration: " in m for m in reports[1:])
    # ... the function's prints are there, each exactly once
    printed = [m for ms in streams.values() for m in ms if "of the batch" in m]
    assert sorted(printed) == sorted(f"call {i} of the batch\n" for i in range(10))
    assert sum(len([m for m in ms if m.startswith("REPORT ")]) for ms in streams.values()) == len(records)
    # AND the CLI's filter-log-events and the README's Logs Insights cold-start query count the same
    filtered = json.loads(
        cloud.aws(
            "logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", '"REPORT RequestId"'
        ).stdout
    )["events"]
    assert len(filtered) == len(records)
    logs = cloud.client("logs")
    query = logs.start_query(
        logGroupName=group,
        startTime=0,
        endTime=int(time.time()) + 60,
        queryString='filter @type = "REPORT" | stats count(@initDuration) as cold',
    )["queryId"]
    result = logs.get_query_results(queryId=query)
    while result["status"] in ("Scheduled", "Running"):
        time.sleep(0.05)
        result = logs.get_query_results(queryId=query)
    cold = sum(r["start_kind"] == "cold" for r in records)
    assert result["status"] == "Complete"
    assert result["results"] == [[{"field": "cold", "value": str(cold)}]]


def test_provisioned_alias_is_warm_then_spills_over(cloud: RunningCloud, names: dict) -> None:
    name = names["ProvisionedName"]
    client = cloud.client("lambda")
    # GIVEN provisioned concurrency 2 on the alias, READY before traffic
    config = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert config["RequestedProvisionedConcurrentExecutions"] == 2
    cloud.wait_records(
        lambda _: client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] == "READY",
        timeout=30,
        what="provisioned READY",
    )
    # WHEN 2 calls run at once, they hit the provisioned environments: no INIT, init type provisioned-concurrency
    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(lambda _: invoke(cloud, name, {"sleep": 0.5}, Qualifier="live")["Body"], range(2)))
    assert all(b["initialization_type"] == "provisioned-concurrency" for b in bodies)
    assert all(b["function_version"] == "1" for b in bodies)
    # WHEN 4 run at once, 2 spill over to on-demand environments
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: invoke(cloud, name, {"sleep": 1.0}, Qualifier="live")["Body"], range(4)))
    kinds = sorted(b["initialization_type"] for b in bodies)
    assert kinds == ["on-demand", "on-demand", "provisioned-concurrency", "provisioned-concurrency"]
    records = cloud.wait_records(
        lambda rs: sum(r["function_name"] == name for r in rs) >= 6, what="6 records of the provisioned function"
    )
    records = [r for r in records if r["function_name"] == name]
    assert sum(r["spillover"] for r in records) == 2
    assert sum(r["start_kind"] == "provisioned" for r in records) == 4


def test_function_error_is_unhandled_with_its_type(cloud: RunningCloud, names: dict) -> None:
    response = invoke(cloud, names["FaultsName"], {"fault": "raise"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert response["Body"]["errorType"] == "PaymentDeclined"
    assert response["Body"]["errorMessage"] == "card 4242 declined"


@pytest.mark.parametrize("fault", ["exit", "kill"])
def test_crash_is_runtime_exit_error_and_service_keeps_serving(cloud: RunningCloud, names: dict, fault: str) -> None:
    response = invoke(cloud, names["FaultsName"], {"fault": fault})
    assert response["FunctionError"] == "Unhandled"
    assert response["Body"]["errorType"] == "Runtime.ExitError"
    after = invoke(cloud, names["FaultsName"], {})
    assert after["Body"] == {"fault": None}


def test_timeout_kills_the_environment_and_next_call_is_cold(cloud: RunningCloud, names: dict) -> None:
    name = names["FaultsName"]
    response = invoke(cloud, name, {"fault": "hang"})
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in response["Body"]["errorMessage"]
    after = invoke(cloud, name, {})["ResponseMetadata"]["RequestId"]
    records = cloud.wait_records(
        lambda rs: any(r["request_id"] == after for r in rs), what="the call after the timeout"
    )
    records = [r for r in records if r["function_name"] == name]
    timed_out = [i for i, r in enumerate(records) if r["outcome"] == "timeout"]
    assert timed_out and records[timed_out[-1] + 1]["start_kind"] == "cold"


def test_import_error_is_reported_as_init_error(cloud: RunningCloud, names: dict) -> None:
    response = invoke(cloud, names["BadImportName"], {})
    assert response["FunctionError"] == "Unhandled"
    assert response["Body"]["errorType"] == "Runtime.ImportModuleError"
    assert "module_that_does_not_exist" in response["Body"]["errorMessage"]


def test_payload_that_is_not_json_is_rejected(cloud: RunningCloud, names: dict) -> None:
    with pytest.raises(ClientError) as caught:
        cloud.client("lambda").invoke(FunctionName=names["ProbeName"], Payload=b"{not json")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_payload_over_the_limit_is_rejected(cloud: RunningCloud, names: dict) -> None:
    big = json.dumps({"data": "x" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(ClientError) as caught:
        cloud.client("lambda").invoke(FunctionName=names["ProbeName"], Payload=big)
    assert caught.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_unknown_function_is_not_found(cloud: RunningCloud) -> None:
    result = cloud.aws("lambda", "invoke", "--function-name", "no-such-function", "/dev/null", check=False)
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr


def test_reserved_that_leaves_less_than_100_unreserved_is_refused(cloud: RunningCloud, names: dict) -> None:
    client = cloud.client("lambda")
    with pytest.raises(ClientError) as caught:
        client.put_function_concurrency(FunctionName=names["ProbeName"], ReservedConcurrentExecutions=990)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "100" in caught.value.response["Error"]["Message"]
    # nothing changed
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName=names["ProbeName"])


def test_provisioned_above_reserved_is_refused(cloud: RunningCloud, names: dict) -> None:
    client = cloud.client("lambda")
    with pytest.raises(ClientError) as caught:
        client.put_provisioned_concurrency_config(
            FunctionName=names["ProvisionedName"], Qualifier="live", ProvisionedConcurrentExecutions=11
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    config = client.get_provisioned_concurrency_config(FunctionName=names["ProvisionedName"], Qualifier="live")
    assert config["RequestedProvisionedConcurrentExecutions"] == 2


def test_put_function_concurrency_with_the_cli_and_account_settings(cloud: RunningCloud, names: dict) -> None:
    name = names["ProbeName"]
    cloud.aws("lambda", "put-function-concurrency", "--function-name", name, "--reserved-concurrent-executions", "7")
    got = json.loads(cloud.aws("lambda", "get-function-concurrency", "--function-name", name).stdout)
    assert got == {"ReservedConcurrentExecutions": 7}
    settings = json.loads(cloud.aws("lambda", "get-account-settings").stdout)
    # 1000 - Limited 5 - Provisioned 10 - Probe 7
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 1000 - 5 - 10 - 7
    cloud.aws("lambda", "delete-function-concurrency", "--function-name", name)
    # an empty answer: the AWS CLI prints nothing
    assert cloud.aws("lambda", "get-function-concurrency", "--function-name", name).stdout.strip() == ""


def test_functions_versions_and_aliases_are_listed(cloud: RunningCloud, names: dict) -> None:
    client = cloud.client("lambda")
    listed = {f["FunctionName"] for f in client.list_functions()["Functions"]}
    assert set(names[k] for k in ("ProbeName", "LimitedName", "ProvisionedName", "FaultsName")) <= listed
    aliases = client.list_aliases(FunctionName=names["ProvisionedName"])["Aliases"]
    assert [(a["Name"], a["FunctionVersion"]) for a in aliases] == [("live", "1")]
    versions = [
        v["Version"] for v in client.list_versions_by_function(FunctionName=names["ProvisionedName"])["Versions"]
    ]
    assert versions == ["$LATEST", "1"]
    function = client.get_function(FunctionName=names["ProvisionedName"])
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 10
    assert function["Configuration"]["TracingConfig"]["Mode"] == "Active"


def test_memory_over_the_limit_kills_the_environment(cloud: RunningCloud, names: dict) -> None:
    response = invoke(cloud, names["FaultsName"], {"fault": "memory"})
    assert response["FunctionError"] == "Unhandled"
    assert response["Body"]["errorType"] == "Runtime.OutOfMemory"
    assert invoke(cloud, names["FaultsName"], {})["Body"] == {"fault": None}


def test_response_over_6_mb_is_a_function_error(cloud: RunningCloud, names: dict) -> None:
    response = invoke(cloud, names["FaultsName"], {"fault": "big"})
    assert response["FunctionError"] == "Unhandled"
    assert response["Body"]["errorType"] == "Function.ResponseSizeTooLarge"


@pytest.mark.parametrize(
    ("path", "body", "member", "minimum"),
    [
        ("/2017-10-31/functions/{name}/concurrency", {"ReservedConcurrentExecutions": -1}, "reserved", 0),
        (
            "/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=live",
            {"ProvisionedConcurrentExecutions": 0},
            "provisioned",
            1,
        ),
    ],
)
def test_concurrency_below_the_minimum_is_a_validation_error(
    cloud: RunningCloud, names: dict, path: str, body: dict, member: str, minimum: int
) -> None:
    # botocore refuses these before sending; a raw request shows what the API itself answers
    request = urllib.request.Request(
        cloud.url + path.format(name=names["ProvisionedName"]), data=json.dumps(body).encode(), method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert caught.value.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    message = json.loads(caught.value.read())["Message"]
    assert f"at '{member}ConcurrentExecutions'" in message
    assert f"greater than or equal to {minimum}" in message
    config = cloud.client("lambda").get_provisioned_concurrency_config(
        FunctionName=names["ProvisionedName"], Qualifier="live"
    )
    assert config["RequestedProvisionedConcurrentExecutions"] == 2  # nothing changed


STORM_HANDLER = """import boto3

dynamodb = boto3.client("dynamodb")  # built at INIT, as most functions do


def lambda_handler(event, context):
    return {"region": dynamodb.meta.region_name}
"""


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def test_cold_start_storm_of_a_boto3_function_fails_nothing_and_keeps_its_init(cloud: RunningCloud) -> None:
    # GIVEN a function that builds a boto3 client at INIT, and its INIT measured alone, one cold start at a time
    lam = cloud.client("lambda", read_timeout=120)
    name = "storm-boto3"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role="arn:aws:iam::123456789012:role/storm",
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip(STORM_HANDLER)},
        MemorySize=256,
        Timeout=30,
    )
    for i in range(3):
        lam.update_function_configuration(FunctionName=name, Description=f"alone {i}")  # idle environments retire
        assert "FunctionError" not in lam.invoke(FunctionName=name, Payload=b"{}")
    # WHEN 30 calls arrive at once on a fresh version of the configuration (30 cold starts together)
    lam.update_function_configuration(FunctionName=name, Description="storm")
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda _: lam.invoke(FunctionName=name, Payload=b"{}"), range(30)))
    ids = {a["ResponseMetadata"]["RequestId"] for a in answers}
    # THEN every call succeeded: nothing failed for a reason of this machine, nothing was called a Lambda error
    assert [(a["StatusCode"], a.get("FunctionError")) for a in answers] == [(200, None)] * 30
    assert all(json.loads(a["Payload"].read()) == {"region": "us-east-1"} for a in answers)
    records = cloud.wait_records(
        lambda rs: len(ids & {r["request_id"] for r in rs}) == 30, timeout=30, what="the storm's 30 records"
    )
    mine = [r for r in records if r["function_name"] == name]
    storm = [r for r in mine if r["request_id"] in ids]
    assert {r["outcome"] for r in storm} == {"success"}
    assert not [r for r in mine if r.get("error_type") in ("ServiceException", "Runtime.ExitError")]
    # AND the INIT each cold start reports stays within 25 % of the INIT measured alone (waits for this machine's
    # CPU are counted apart, in init_local_wait_s, never in the INIT duration)
    alone = [r["init_duration_s"] for r in mine if r["request_id"] not in ids and r["start_kind"] == "cold"]
    stormed = [r["init_duration_s"] for r in storm if r["start_kind"] == "cold"]
    assert len(alone) == 3 and len(stormed) >= 20, (alone, [r["start_kind"] for r in storm])
    ratio = statistics.median(stormed) / statistics.median(alone)
    assert 0.75 <= ratio <= 1.25, (ratio, alone, stormed)
