"""The interpreter's task clients call the endpoint `enable` is given (the gateway), not moto's localhost:$MOTO_PORT,
and no environment variable is set for it."""

from __future__ import annotations

import os

from lambdalab.clock import VirtualClock
from lambdalab.stepfunctions import patches
from lambdalab.stepfunctions.local import enable


def test_every_task_client_calls_the_given_endpoint_and_no_moto_port_is_set() -> None:
    from moto.core.config import default_user_config
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sqs
    from moto.stepfunctions.parser.asl.utils import boto_client

    before = os.environ.get("MOTO_PORT")
    config_before = dict(default_user_config.get("stepfunctions", {}))
    traces_before = (patches.traces._epoch, patches.traces.daemon_address)
    epoch = VirtualClock(1_800_000_000.0)
    enable("http://127.0.0.1:1111", None, epoch=epoch)
    try:
        for module in (lambda_eval_utils, state_task_service_sqs, boto_client):
            assert module.boto_client_for("us-east-1", "sqs").meta.endpoint_url == "http://127.0.0.1:1111"
        lambda_client = lambda_eval_utils.boto_client_for("us-east-1", "lambda")
        assert lambda_client.meta.endpoint_url == "http://127.0.0.1:1111"
        assert lambda_eval_utils.boto_client_for("us-east-1", "lambda") is lambda_client  # one per Region
        assert os.environ.get("MOTO_PORT") == before
        enable("http://127.0.0.1:2222", None, epoch=epoch)  # the next local cloud in this process
        assert lambda_eval_utils.boto_client_for("us-east-1", "lambda").meta.endpoint_url == "http://127.0.0.1:2222"
    finally:  # the rest of this process sees moto as it was: its own clients, executions not run
        patches.task_endpoint.url = None
        patches.task_endpoint.lambda_clients = {}
        default_user_config["stepfunctions"] = config_before
        patches.traces._epoch, patches.traces.daemon_address = traces_before
