"""Turn on moto's executing Step Functions interpreter in this process and point its tasks at our gateway."""

from __future__ import annotations

import logging

from lambdalab.clock import Clock
from lambdalab.stepfunctions import patches

LOG = logging.getLogger(__name__)


def enable(task_endpoint_url: str, xray_daemon_address: str | None, *, epoch: Clock) -> None:
    """Executions run for real (`execute_state_machine`), their tasks (Lambda and every other service) call
    `task_endpoint_url` (the gateway, so Lambda tasks reach our Lambda service), and the patches in `patches` are
    installed. moto runs in this process, so its config is set directly (the same switch as POST /moto-api/config).
    No environment variable: moto's own default (`localhost:$MOTO_PORT`) is never used. The interpreter is one per
    process, and so are the execution traces, which stamp their segments with the local cloud's `epoch` clock."""
    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    patches.install(task_endpoint_url)
    patches.traces.use(epoch, xray_daemon_address)
    LOG.debug("Step Functions executes for real; tasks call %s", task_endpoint_url)
