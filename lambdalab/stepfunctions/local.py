"""Turn on moto's executing Step Functions interpreter in this process and point its Lambda tasks at our gateway."""

from __future__ import annotations

import logging
import os

from lambdalab.clock import Clock
from lambdalab.stepfunctions import patches

LOG = logging.getLogger(__name__)

# moto's interpreter sends its service calls (Lambda tasks included) to http://localhost:$MOTO_PORT.
ENV_MOTO_PORT = "MOTO_PORT"


def enable(gateway_port: int, xray_daemon_address: str | None, *, epoch: Clock) -> None:
    """Executions run for real (`execute_state_machine`), their Lambda tasks reach our Lambda service through the
    gateway, and the patches in `patches` are installed. moto runs in this process, so its config is set directly
    (the same switch as POST /moto-api/config). One local cloud per process: MOTO_PORT is process-wide, and so are
    the execution traces, which stamp their segments with the local cloud's `epoch` clock."""
    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    previous = os.environ.get(ENV_MOTO_PORT)
    if previous and previous != str(gateway_port):
        LOG.warning("MOTO_PORT was %s; Step Functions tasks now go to the gateway on %s", previous, gateway_port)
    os.environ[ENV_MOTO_PORT] = str(gateway_port)
    patches.install()
    patches.traces.use(epoch, xray_daemon_address)
    LOG.debug("Step Functions executes for real; tasks call localhost:%s", gateway_port)
