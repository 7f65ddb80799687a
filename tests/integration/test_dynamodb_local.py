"""DynamoDB capacity on a live local cloud: a 5 WCU table throttles a burst once its burst credit is spent, boto3 sees
ProvisionedThroughputExceededException, CloudWatch gets the throttle metrics, and target tracking scales it out."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.cloud import RunningCloud, local_cloud

pytestmark = pytest.mark.integration

STACK_DIR = Path(__file__).parent / "capacity"
STACK = "capacity"
TIME_SCALE = "0.05"  # 3 s metric periods, 15 s of burst
PERIOD_S = 3.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    tmp = tmp_path_factory.mktemp("dynamodb")
    with local_cloud(STACK_DIR / "template.yaml", tmp, extra=["--stack-name", STACK, "--time-scale", TIME_SCALE]) as c:
        yield c


def _put(ddb: object, table: str, i: int) -> str:
    try:
        ddb.put_item(TableName=table, Item={"id": {"S": f"item-{i}"}, "pad": {"S": "x" * 900}})  # type: ignore[attr-defined]
        return "ok"
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def test_burst_throttles_then_target_tracking_scales_out(cloud: RunningCloud) -> None:
    table = cloud.outputs(STACK)["TableName"]
    ddb = cloud.client("dynamodb", retries=1)  # no retries: every throttle is seen
    # GIVEN a 5 WCU table: 15 s (scaled 300 s) of burst = 75 write units, each ~0.9 KB item costs 1 unit
    described = ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]
    assert described["WriteCapacityUnits"] == 5
    # WHEN 12 s of writes far above 5 per second
    outcomes: list[str] = []
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        i = 0
        while time.monotonic() - started < 12.0:
            outcomes += list(pool.map(lambda n: _put(ddb, table, n), range(i, i + 32)))
            i += 32
    elapsed = time.monotonic() - started
    ok = outcomes.count("ok")
    throttled = outcomes.count("ProvisionedThroughputExceededException")
    # THEN the burst credit and the refill pass, the rest is throttled (the table may already scale out meanwhile)
    assert ok + throttled == len(outcomes), set(outcomes)
    assert throttled > 0
    assert ok >= 75 + 5 * int(elapsed) - 5, (ok, elapsed)
    assert ok <= 75 + 100 * elapsed, (ok, elapsed)  # never more than the maximum capacity allows
    # AND target tracking scales the table out (2 periods above 70%, evaluated within ~1 period of their end)
    deadline = time.monotonic() + 8 * PERIOD_S
    capacity = 5
    while time.monotonic() < deadline and capacity == 5:
        capacity = ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"]
        time.sleep(0.3)
    assert capacity > 5, "the table was not scaled out within 8 periods"
    activities = json.loads(
        cloud.aws("application-autoscaling", "describe-scaling-activities", "--service-namespace", "dynamodb").stdout
    )["ScalingActivities"]
    assert activities, "no scaling activity recorded"
    newest = activities[-1]  # the first activity: 5 → more
    assert newest["ResourceId"] == f"table/{table}"
    assert newest["ScalableDimension"] == "dynamodb:table:WriteCapacityUnits"
    assert newest["StatusCode"] == "Successful"
    assert newest["Description"].startswith("Setting write capacity units to ")
    assert "compressed" in json.loads(newest["Details"])["local"]


def test_throttle_metrics_reach_cloudwatch(cloud: RunningCloud) -> None:
    table = cloud.outputs(STACK)["TableName"]
    ddb = cloud.client("dynamodb", retries=1)
    outcomes = [_put(ddb, table, 10_000 + n) for n in range(400)]  # sequential: enough to exceed any capacity ≤ 100
    cloudwatch = cloud.client("cloudwatch")
    end = datetime.now(UTC) + timedelta(seconds=10)
    start = end - timedelta(minutes=10)

    def total(metric: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName=metric, Dimensions=[{"Name": "TableName", "Value": table}],
            StartTime=start, EndTime=end, Period=600, Statistics=["Sum"],
        )["Datapoints"]  # fmt: skip
        return sum(p["Sum"] for p in points)

    deadline = time.monotonic() + 4 * PERIOD_S
    while time.monotonic() < deadline and total("ConsumedWriteCapacityUnits") < outcomes.count("ok"):
        time.sleep(0.5)
    assert total("ConsumedWriteCapacityUnits") >= outcomes.count("ok")
    assert total("WriteThrottleEvents") >= 1
    assert total("ThrottledRequests") >= 1


def test_throttle_is_the_aws_error_shape_and_boto3_retries_it(cloud: RunningCloud) -> None:
    table = cloud.outputs(STACK)["TableName"]
    ddb = cloud.client("dynamodb", retries=1)
    # a throttled write is a 400 with the AWS JSON error shape botocore parses
    error: ClientError | None = None
    for n in range(2000):
        try:
            ddb.put_item(TableName=table, Item={"id": {"S": f"t-{n}"}})
        except ClientError as exc:
            error = exc
            break
    assert error is not None, "no throttle within 2000 writes"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert "provisioned throughput" in error.response["Error"]["Message"]
    # boto3's standard retry mode treats it as retryable: with retries the call eventually succeeds
    retrying = cloud.client("dynamodb", retries=10)
    result = retrying.put_item(TableName=table, Item={"id": {"S": "after-retries"}})
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_update_item_and_delete_item_keep_the_client_response(cloud: RunningCloud) -> None:
    table = cloud.outputs(STACK)["OnDemandTableName"]
    ddb = cloud.client("dynamodb", retries=5)
    ddb.put_item(TableName=table, Item={"id": {"S": "u"}, "n": {"N": "1"}})
    updated = ddb.update_item(
        TableName=table, Key={"id": {"S": "u"}}, UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )  # fmt: skip
    assert "Attributes" not in updated  # the lab asked moto for the item to size it, and removed it again
    asked = ddb.update_item(
        TableName=table, Key={"id": {"S": "u"}}, UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW",
    )  # fmt: skip
    assert asked["Attributes"] == {"n": {"N": "3"}}
    deleted = ddb.delete_item(TableName=table, Key={"id": {"S": "u"}})
    assert "Attributes" not in deleted
    assert ddb.get_item(TableName=table, Key={"id": {"S": "u"}}).get("Item") is None


def test_unknown_table_is_moto_s_resource_not_found(cloud: RunningCloud) -> None:
    ddb = cloud.client("dynamodb")
    with pytest.raises(ClientError) as info:
        ddb.put_item(TableName="no-such-table", Item={"id": {"S": "x"}})
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_describe_scaling_activities_validates_like_aws(cloud: RunningCloud) -> None:
    result = cloud.aws(
        "application-autoscaling", "describe-scaling-activities", "--service-namespace", "dynamodb",
        "--max-results", "51", check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "ValidationException" in result.stderr
