"""Logs Insights: the queries serverless engineers run for cold starts and latency, and AWS's errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalab.clock import EpochClock
from lambdalab.logs import formats, insights
from lambdalab.logs.query import QuerySyntaxError, parse
from lambdalab.logs.store import LogStore

GROUP = "/aws/lambda/fn"


def run(store: LogStore, text: str, groups: list[str] | None = None) -> list[dict[str, str]]:
    result = insights.run(parse(text), store.search(groups or [GROUP]), account_id="123456789012")
    return [{c["field"]: c["value"] for c in row} for row in result.rows]


@pytest.fixture
def store() -> LogStore:
    s = LogStore("us-east-1", "123456789012", epoch=EpochClock())
    t = 1_700_000_000_000
    for env, cold_ms in (("a", 512.25), ("b", 498.75)):
        stream = f"2026/11/22/[$LATEST]{env * 32}"
        events = [(t, formats.init_start_text(formats.Runtime.local("python3.13", "us-east-1")))]
        for i in range(3):
            rid = f"{env}-{i}"
            t += 1000
            events += [
                (t, formats.start_text(rid, "$LATEST")),
                (t + 1, json.dumps({"message": "batch processed", "messages": 10 - i, "environment_id": env}) + "\n"),
                (t + 2, formats.end_text(rid)),
                (
                    t + 2,
                    formats.report_text(
                        formats.Report(
                            rid,
                            100.0 * (i + 1),
                            100 * (i + 1),
                            128,
                            60 + i,
                            init_duration_ms=cold_ms if i == 0 else None,
                        )
                    ),
                ),
            ]
        s.append(GROUP, stream, events, create=True)
    return s


def test_readme_cold_start_query(store: LogStore) -> None:
    rows = run(store, 'filter @type = "REPORT" | stats count(@initDuration) as coldStarts, count(*) as invocations')
    assert rows == [{"coldStarts": "2", "invocations": "6"}]


def test_cold_start_latency_by_stream(store: LogStore) -> None:
    rows = run(
        store,
        "filter @type = 'REPORT' and ispresent(@initDuration) "
        "| stats avg(@initDuration), max(@initDuration), min(@initDuration) by @logStream | sort @logStream asc",
    )
    assert [r["avg(@initDuration)"] for r in rows] == ["512.25", "498.75"]


def test_percentiles_sum_and_memory(store: LogStore) -> None:
    rows = run(
        store,
        'filter @type = "REPORT" | stats pct(@duration, 50) as p50, pct(@duration, 99) as p99, sum(@billedDuration) '
        "as billed, max(@maxMemoryUsed / 1000 / 1000) as mb, max(@memorySize / 1000 / 1000) as size",
    )
    assert rows == [{"p50": "200", "p99": "300", "billed": "1200", "mb": "62", "size": "128"}]


def test_readme_batch_query(store: LogStore) -> None:
    rows = run(
        store, 'filter message = "batch processed" | stats sum(messages) by environment_id | sort environment_id'
    )
    assert rows == [{"environment_id": "b", "sum(messages)": "27"}, {"environment_id": "a", "sum(messages)": "27"}]


def test_fields_sort_limit_and_ptr(store: LogStore) -> None:
    rows = run(
        store, "fields @timestamp, @requestId, @duration | filter @type = 'REPORT' | sort @duration desc | limit 2"
    )
    assert [r["@duration"] for r in rows] == ["300", "300"]
    assert all(set(r) == {"@timestamp", "@requestId", "@duration", "@ptr"} for r in rows)
    assert rows[0]["@timestamp"].startswith("2023-11-14 22:")


def test_parse_glob_and_regex(store: LogStore) -> None:
    rows = run(store, 'filter @message like /^REPORT/ | parse @message "Duration: * ms" as d | display d | limit 1')
    assert rows[0]["d"] in {"100.00", "200.00", "300.00"}
    rows = run(store, r"parse @message /Max Memory Used: (?<mem>\d+) MB/ | filter ispresent(mem) | stats max(mem) as m")
    assert rows == [{"m": "62"}]


def test_bin_and_count_distinct(store: LogStore) -> None:
    rows = run(store, "filter @type = 'START' | stats count(*) as n, count_distinct(@logStream) as envs by bin(1h)")
    assert rows and sum(int(r["n"]) for r in rows) == 6
    assert all(r["bin(1h)"].endswith(":00:00.000") for r in rows)


def test_comparisons_and_logic(store: LogStore) -> None:
    rows = run(
        store, "filter @duration >= 200 and not (@requestId like 'b-') | fields @requestId | sort @requestId asc"
    )
    assert [r["@requestId"] for r in rows] == ["a-1", "a-2"]
    rows = run(
        store, "filter @requestId in ['a-0', 'b-2'] or @requestId =~ /^x/ | fields @requestId, @type | sort @requestId"
    )
    assert sorted((r["@requestId"], r["@type"]) for r in rows) == sorted(
        (rid, kind) for rid in ("a-0", "b-2") for kind in ("START", "END", "REPORT")
    )
    assert next(r["@requestId"] for r in rows) == "b-2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "stats",
        "filter @a = ",
        "fields @a |",
        "limit 0",
        "sort @a sideways",
        "bogus @a",
        "stats @duration",
        "parse @m 'a * b' as x, y",
    ],
)
def test_malformed_queries(text: str) -> None:
    with pytest.raises(QuerySyntaxError):
        query = parse(text)
        insights.run(query, [], account_id="1")


def test_syntax_errors_name_the_position() -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        parse("fields @message | filter @a = = 1")
    assert raised.value.message == "unexpected symbol found = at line 1 and position 30"
    assert (raised.value.start, raised.value.end) == (30, 31)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=50), st.integers(1, 100))
def test_pct_is_a_value_of_the_data_with_enough_below_it(values: list[float], q: int) -> None:
    result = insights.nearest_rank(sorted(values), q)
    assert result in values
    assert sum(v <= result for v in values) >= q / 100 * len(values)
