"""Capacity units, burst and throttling of the DynamoDB capacity meter, on a virtual clock."""

from __future__ import annotations

import pytest

from lambdalab.clock import VirtualClock
from lambdalab.dynamodb.meter import BillingMode, CapacityMeter, Kind, Use
from lambdalab.dynamodb.units import item_size, read_units, write_units


def provisioned_table(name: str = "t", read: int = 5, write: int = 5, gsi: dict[str, int] | None = None) -> dict:
    description: dict = {
        "TableName": name,
        "ProvisionedThroughput": {"ReadCapacityUnits": read, "WriteCapacityUnits": write},
    }
    if gsi:
        description["GlobalSecondaryIndexes"] = [
            {"IndexName": n, "ProvisionedThroughput": {"ReadCapacityUnits": u, "WriteCapacityUnits": u}}
            for n, u in gsi.items()
        ]
    return description


def test_item_size_counts_names_and_values() -> None:
    item = {"id": {"S": "abc"}, "n": {"N": "12345"}, "ok": {"BOOL": True}, "b": {"B": "AAEC"}}
    # id(2)+abc(3) + n(1)+ceil(5/2)+1=4 + ok(2)+1 + b(1)+3 bytes
    assert item_size(item) == 5 + 5 + 3 + 4
    nested = {"m": {"M": {"k": {"S": "v"}}}, "l": {"L": [{"S": "ab"}]}}
    assert item_size(nested) == (1 + 3 + 1 + 1 + 1) + (1 + 3 + 1 + 2)


@pytest.mark.parametrize(
    ("size", "consistent", "transactional", "units"),
    [(0, True, False, 1.0), (4096, True, False, 1.0), (4097, True, False, 2.0), (4097, False, False, 1.0),
     (100, False, False, 0.5), (5000, True, True, 4.0)],
)  # fmt: skip
def test_read_units(size: int, consistent: bool, transactional: bool, units: float) -> None:
    assert read_units(size, consistent=consistent, transactional=transactional) == units


@pytest.mark.parametrize(
    ("size", "transactional", "units"), [(1, False, 1.0), (1024, False, 1.0), (1025, False, 2.0), (3000, True, 6.0)]
)
def test_write_units(size: int, transactional: bool, units: float) -> None:
    assert write_units(size, transactional=transactional) == units


def test_burst_then_throttle_then_refill() -> None:
    # GIVEN a 5 WCU table with 300 s of burst (1500 units), full at creation
    clock = VirtualClock(1019.5)  # the next second is in the next period
    meter = CapacityMeter(clock, time_scale=1.0)
    meter.set_table(provisioned_table(write=5))
    write = [Use(None, Kind.WRITE, 1.0)]
    # WHEN 1500 one-unit writes arrive at once, all are admitted; the 1501st is throttled
    for _ in range(1500):
        assert meter.admit("t", write).admitted
        meter.charge("t", write)
    refused = meter.admit("t", write)
    assert not refused.admitted and refused.throttled == ((None, Kind.WRITE),)
    # THEN one second later exactly 5 more fit
    clock.advance(1.0)
    admitted = 0
    while meter.admit("t", write).admitted:
        meter.charge("t", write)
        admitted += 1
    assert admitted == 5
    stat = meter.period_stat("t", Kind.WRITE, meter.period_index())
    assert stat.consumed == 5.0 and stat.throttle_events == 1
    first = meter.period_stat("t", Kind.WRITE, meter.period_index(1019.5))
    assert first.consumed == 1500.0 and first.throttle_events == 1


def test_burst_is_capped_at_300_seconds_and_scaled_by_time_scale() -> None:
    clock = VirtualClock(0.0)
    meter = CapacityMeter(clock, time_scale=0.05)  # 15 s of burst
    meter.set_table(provisioned_table(read=4))
    clock.advance(10_000.0)
    assert meter.tokens("t", Kind.READ) == pytest.approx(60.0)


def test_debt_after_a_large_item_blocks_until_refilled() -> None:
    clock = VirtualClock(0.0)
    meter = CapacityMeter(clock, time_scale=1.0, burst_s=1.0)  # bucket of 2 units
    meter.set_table(provisioned_table(write=2))
    big = [Use(None, Kind.WRITE, 10.0)]
    assert meter.admit("t", big).admitted  # a full bucket admits an item larger than itself
    meter.charge("t", big)
    assert meter.tokens("t", Kind.WRITE) == -8.0
    assert not meter.admit("t", [Use(None, Kind.WRITE, 1.0)]).admitted
    clock.advance(4.5)  # back to +1
    assert meter.admit("t", [Use(None, Kind.WRITE, 1.0)]).admitted


def test_update_table_changes_the_rate_keeping_the_credit() -> None:
    clock = VirtualClock(0.0)
    meter = CapacityMeter(clock, time_scale=1.0, burst_s=10.0)
    meter.set_table(provisioned_table(write=1))
    meter.charge("t", [Use(None, Kind.WRITE, 10.0)])
    meter.set_table(provisioned_table(write=4))
    assert meter.provisioned("t", Kind.WRITE) == 4.0
    clock.advance(1.0)
    assert meter.tokens("t", Kind.WRITE) == 4.0


def test_gsi_has_its_own_bucket_and_throttles_the_table_write() -> None:
    clock = VirtualClock(0.0)
    meter = CapacityMeter(clock, time_scale=1.0, burst_s=1.0)
    meter.set_table(provisioned_table(write=100, gsi={"by_sku": 1}))
    uses = [Use(None, Kind.WRITE, 1.0), Use("by_sku", Kind.WRITE, 1.0)]
    assert meter.admit("t", uses).admitted
    meter.charge("t", uses)
    refused = meter.admit("t", uses)
    assert refused.throttled == (("by_sku", Kind.WRITE),)
    assert meter.period_stat("t", Kind.WRITE, 0, "by_sku").throttle_events == 1
    assert meter.period_stat("t", Kind.WRITE, 0).throttle_events == 0


def test_on_demand_accepts_double_the_previous_peak() -> None:
    clock = VirtualClock(0.0)
    meter = CapacityMeter(clock)
    meter.set_table({"TableName": "od", "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}})
    table = meter.table("od")
    assert table is not None and table.mode is BillingMode.PAY_PER_REQUEST
    # the initial previous peak is 2,000 write units per second: 4,000 at once, not 4,001
    assert meter.admit("od", [Use(None, Kind.WRITE, 4000.0)]).admitted
    meter.charge("od", [Use(None, Kind.WRITE, 4000.0)])
    assert not meter.admit("od", [Use(None, Kind.WRITE, 1.0)]).admitted
    # the next second: the peak is now 4,000, so 8,000 fit
    clock.advance(1.0)
    assert meter.admit("od", [Use(None, Kind.WRITE, 8000.0)]).admitted
    assert not meter.admit("od", [Use(None, Kind.WRITE, 8001.0)]).admitted


def test_flush_emits_zeros_for_idle_periods_and_throttles() -> None:
    clock = VirtualClock(0.0)
    meter = CapacityMeter(clock, time_scale=0.05, burst_s=0.0)  # 3 s periods, no burst
    meter.set_table(provisioned_table(write=1))
    assert not meter.admit("t", [Use(None, Kind.WRITE, 1.0)]).admitted  # empty bucket
    clock.advance(6.5)
    datums = meter.flush()
    names = {(d["MetricName"], d["Timestamp"].timestamp(), d["Value"]) for d in datums}
    assert ("WriteThrottleEvents", 0.0, 1.0) in names
    assert ("ThrottledRequests", 0.0, 1.0) in names
    assert ("ConsumedWriteCapacityUnits", 3.0, 0.0) in names
    assert ("ProvisionedWriteCapacityUnits", 3.0, 1.0) in names
    assert all(d["Dimensions"][0] == {"Name": "TableName", "Value": "t"} for d in datums)
    assert meter.flush() == []  # each period once


def test_unknown_table_is_not_metered() -> None:
    meter = CapacityMeter(VirtualClock(0.0))
    assert meter.admit("nope", [Use(None, Kind.READ, 1.0)]).admitted
    with pytest.raises(ValueError, match="time_scale"):
        CapacityMeter(VirtualClock(0.0), time_scale=0)
