"""The full X-Ray reader path against moto in server mode, in process: PutTraceSegments, then `lambdalab traces`."""

from __future__ import annotations

import argparse
import io
import json
import random
import time
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambdalab.traces import cli
from lambdalab.traces.synthetic import Call, Ids, lambda_documents, step_functions_document

pytestmark = pytest.mark.integration

REGION = "us-east-1"


@pytest.fixture
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the OS picks a free one
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto's backends live in the process, not the server: start each test from an empty X-Ray
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        yield url
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch, tmp_path):
    """boto3 pointed at moto by AWS_ENDPOINT_URL alone, with fake credentials and no host config."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    return moto_url


def put_workload(seed: int, now: float) -> dict[str, int]:
    """Put a random mix of traced invocations a few minutes ago; return how many cold starts each function had."""
    rng = random.Random(seed)
    ids = Ids(random.Random(seed + 1))
    client = boto3.client("xray", region_name=REGION)
    cold: dict[str, int] = {}
    documents: list[str] = []
    t = now - 600.0
    for n in range(40):
        function = rng.choice(["lab-Alpha", "lab-Beta"])
        kind = rng.choice(["cold", "warm", "warm", "throttled", "provisioned"])
        docs = lambda_documents(
            Call(function, t, kind, qualifier="live", init_s=rng.uniform(0.1, 0.5), request_id=f"r{n}"), ids
        )
        if kind == "cold":
            cold[function] = cold.get(function, 0) + 1
        documents.extend(json.dumps(d) for d in docs)
        t += rng.uniform(0.5, 3.0)
    # a Map execution: four items in one trace, two of them cold
    trace_id = ids.trace(t)
    map_docs = [step_functions_document(trace_id, "lab-Map", "exec-1", start=t, end=t + 2.0, ids=ids)]
    for n, kind in enumerate(["cold", "cold", "warm", "warm"]):
        call = Call("lab-MapItem", t + 0.1 + n * 0.3, kind, init_s=0.25, trace_id=trace_id, request_id=f"m{n}")
        map_docs.extend(lambda_documents(call, ids))
    cold["lab-MapItem"] = 2
    rng.shuffle(map_docs)  # documents arrive in any order
    documents.extend(json.dumps(d) for d in map_docs)
    for offset in range(0, len(documents), 20):
        answer = client.put_trace_segments(TraceSegmentDocuments=documents[offset : offset + 20])
        assert answer["UnprocessedTraceSegments"] == []
    return cold


def run(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = io.StringIO()
    assert cli.run(parser.parse_args([*argv, "--json"]), stdout=out) == 0
    return json.loads(out.getvalue())


def test_report_finds_exactly_the_cold_starts_put_in(aws_env):
    expected = put_workload(seed=42, now=time.time())
    report = run("--since", "30m")
    found: dict[str, int] = {}
    for function in report["functions"]:
        if function["cold_starts"]:
            found[function["function"]] = found.get(function["function"], 0) + function["cold_starts"]
    assert found == expected
    assert report["source"]["kind"] == "xray" and report["source"]["detail"] == aws_env
    assert report["problems"]["count"] == 0
    [execution] = report["executions"]
    assert [item["start_kind"] for item in execution["items"]] == ["cold", "cold", "warm", "warm"]


def test_function_filter_works_although_moto_refuses_filter_expressions(aws_env):
    expected = put_workload(seed=7, now=time.time())
    report = run("--since", "30m", "--function", "lab-Beta")
    assert {f["function"] for f in report["functions"]} == {"lab-Beta"}
    assert sum(f["cold_starts"] for f in report["functions"]) == expected.get("lab-Beta", 0)
    assert any("client-side" in note for note in report["notes"])


def test_a_window_before_the_traces_finds_nothing(aws_env):
    put_workload(seed=3, now=time.time())
    report = run("--start", "2020-01-01T00:00:00Z", "--end", "2020-01-01T01:00:00Z")
    assert report["functions"] == [] and report["totals"]["traces"] == 0
