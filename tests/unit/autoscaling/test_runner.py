"""The executor against moto in process: targets and policies read from Application Auto Scaling, DynamoDB
utilisation from CloudWatch as the meter publishes it, exact periods → UpdateTable and a recorded activity."""

from __future__ import annotations

import boto3
from moto import mock_aws

from lambdalab.autoscaling.runner import ActivityStore, Autoscaler
from lambdalab.clock import VirtualClock
from lambdalab.dynamodb.meter import CapacityMeter, Kind, Use

PERIOD_S = 3.0  # time scale 0.05


async def test_two_periods_above_target_update_the_table_once() -> None:
    with mock_aws():
        await _scenario()


async def _scenario() -> None:
    # GIVEN a 5 WCU table with write target tracking at 70% in moto
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )  # fmt: skip
    aas = boto3.client("application-autoscaling", region_name="us-east-1")
    aas.register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId="table/t", ScalableDimension="dynamodb:table:WriteCapacityUnits",
        MinCapacity=5, MaxCapacity=100,
    )  # fmt: skip
    aas.put_scaling_policy(
        PolicyName="w", ServiceNamespace="dynamodb", ResourceId="table/t",
        ScalableDimension="dynamodb:table:WriteCapacityUnits", PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "DynamoDBWriteCapacityUtilization"},
        },
    )  # fmt: skip
    clock = VirtualClock(1_800_000_000.0)  # on a period boundary
    meter = CapacityMeter(clock, time_scale=0.05)
    meter.set_table(ddb.describe_table(TableName="t")["Table"])
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    store = ActivityStore()
    autoscaler = Autoscaler(
        clock, time_scale=0.05, aas=aas, cloudwatch=cloudwatch, dynamodb=ddb, lambda_service=None, store=store,
    )  # fmt: skip
    assert await autoscaler.step() == []  # picks up the policy; nothing due yet

    # WHEN two periods at 15 units per 3 s (100% of 5 WCU), then quiet ones; a step at the end of every period
    # (a period is evaluated 1.2 periods after it ended: P0 at the 3rd step, P1 at the 4th)
    acted = []
    for step, units in enumerate([15.0, 15.0, 0.0, 0.0, 0.0]):
        meter.charge("t", [Use(None, Kind.WRITE, units)])
        clock.advance(PERIOD_S)
        publish(meter, cloudwatch)  # in the cloud the DynamoDB process publishes twice a period
        acted += [(step, d.old_capacity, d.new_capacity) for d in await autoscaler.step()]
        meter.set_table(ddb.describe_table(TableName="t")["Table"])  # in the cloud the meter sees the UpdateTable
    # THEN one scale-out, on the second consecutive datapoint above 70%: ceil(5 * 100 / 70) = 8
    assert acted == [(3, 5, 8)]
    assert ddb.describe_table(TableName="t")["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"] == 8
    [activity] = store.query("dynamodb", "table/t", None)
    assert activity["Description"] == "Setting write capacity units to 8."
    assert activity["StatusCode"] == "Successful"
    assert "compressed to 3 s" in activity["Details"]


def publish(meter: CapacityMeter, cloudwatch) -> None:
    datums = meter.flush()
    for start in range(0, len(datums), 20):
        cloudwatch.put_metric_data(Namespace="AWS/DynamoDB", MetricData=datums[start : start + 20])


def test_a_sub_second_period_reads_a_whole_second_of_cloudwatch() -> None:
    # GIVEN time scale 0.01 (0.6 s periods) and a datapoint inside one period
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        clock = VirtualClock(1_800_000_000.0)
        autoscaler = Autoscaler(
            clock, time_scale=0.01, aas=boto3.client("application-autoscaling", region_name="us-east-1"),
            cloudwatch=cloudwatch, dynamodb=None, lambda_service=None, store=ActivityStore(),
        )  # fmt: skip
        period = 3_000_000_000  # 1,800,000,000.0 s to .6 s: one second on the wire
        dims = [{"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:live"}]
        cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": "ProvisionedConcurrencyUtilization",
                    "Dimensions": dims,
                    "Timestamp": 1_800_000_000.3,
                    "Value": 0.9,
                    "StorageResolution": 1,
                }
            ],
        )
        # WHEN the period is read (CloudWatch refuses a window that starts and ends in the same second)
        value = autoscaler._cloudwatch_value("AWS/Lambda", "ProvisionedConcurrencyUtilization", "Maximum", dims, period)
    # THEN the whole second around it is read instead of failing
    assert value == 0.9
