"""Two synchronous calls at once against reserved concurrency 1: one runs, one gets AWS's 429 with its reason."""

import json
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError


def check(stack) -> None:
    client = stack.client("lambda")
    name = stack.name_of("SlowFunction")

    def call(_: int) -> str:
        try:
            client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 1.0}).encode())
            return "ok"
        except ClientError as exc:
            error = exc.response["Error"]
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429, exc.response
            return f"{error['Code']}:{exc.response.get('Reason')}"

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = sorted(pool.map(call, range(3)))
    assert outcomes.count("ok") == 1, outcomes
    assert outcomes.count("TooManyRequestsException:ReservedFunctionConcurrentInvocationLimitExceeded") == 2, outcomes
