"""The local CloudWatch Logs on a virtual epoch clock: creation and ingestion times, PutLogEvents' 14-day / 2-hour
window, an Insights query's createTime and a new environment stream's date all come from the clock it is given —
exact, and independent of when the test runs."""

from __future__ import annotations

from datetime import UTC, datetime

from lambdalab.clock import Clocks
from lambdalab.logs.api import LogsApi
from lambdalab.logs.function import FunctionInfo, FunctionLogs, LoggingConfig
from lambdalab.logs.store import LogStore
from lambdalab.logs.writer import LogWriter

START_S = datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC).timestamp()
START_MS = int(START_S * 1000)
DAY_MS = 86_400_000


def test_creation_and_ingestion_times_are_the_clocks() -> None:
    clock, clocks = Clocks.virtual(start_epoch=START_S)
    store = LogStore("us-east-1", "123456789012", epoch=clocks.epoch)
    group = store.create_group("/app")
    clock.advance(1.5)
    stream = store.create_stream("/app", "one")
    clock.advance(2.0)
    store.append("/app", "one", [(START_MS - 10, "early"), (START_MS, "on time")], create=False)
    assert group.creation_time == START_MS
    assert stream.creation_time == START_MS + 1_500
    assert [(e.timestamp, e.ingestion) for e in stream.events] == [
        (START_MS - 10, START_MS + 3_500),
        (START_MS, START_MS + 3_500),
    ]
    assert stream.last_ingestion == START_MS + 3_500


def test_put_log_events_window_moves_with_the_clock() -> None:
    clock, clocks = Clocks.virtual(start_epoch=START_S)
    store = LogStore("us-east-1", "123456789012", epoch=clocks.epoch)
    api = LogsApi(store, epoch=clocks.epoch)
    try:
        api.do_CreateLogGroup({"logGroupName": "/app"})
        api.do_CreateLogStream({"logGroupName": "/app", "logStreamName": "one"})
        oldest = START_MS - 14 * DAY_MS

        def put(*stamps: int) -> dict:
            return api.do_PutLogEvents(
                {
                    "logGroupName": "/app",
                    "logStreamName": "one",
                    "logEvents": [{"timestamp": t, "message": str(t)} for t in stamps],
                }
            )

        assert "rejectedLogEventsInfo" not in put(oldest)  # exactly 14 days old: still accepted
        assert put(oldest - 1)["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
        assert put(START_MS + 2 * 3_600_000 + 1)["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 0}
        clock.advance(0.001)  # one millisecond later the same event is too old
        assert put(oldest)["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
        query = api.queries.start(["/app"], START_MS - DAY_MS, START_MS, "fields @message", 10)
        assert query.create_time == START_MS + 1
    finally:
        api.close()


def test_a_new_environment_stream_is_named_by_the_clocks_date() -> None:
    clock, clocks = Clocks.virtual(start_epoch=START_S)
    writer = LogWriter(LogStore("us-east-1", "123456789012", epoch=clocks.epoch))
    logs = FunctionLogs(writer, region="us-east-1", account_id="123456789012", epoch=clocks.epoch)
    info = FunctionInfo("fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", "python3.13", 128, LoggingConfig())
    before = logs.environment(info, version="$LATEST", init_type="on-demand", token="a" * 32)
    clock.advance(1.0)  # past midnight UTC
    after = logs.environment(info, version="$LATEST", init_type="on-demand", token="a" * 32)
    assert (before.stream, after.stream) == ("2026/11/22/[$LATEST]" + "a" * 32, "2026/11/23/[$LATEST]" + "a" * 32)
