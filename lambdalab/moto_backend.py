"""moto in server mode, in this process: every AWS service but Lambda (and CloudFormation's read API) is moto's."""

from __future__ import annotations

import logging

from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from lambdalab.constants import DEFAULT_HOST

LOG = logging.getLogger(__name__)


class MotoBackend:
    """A ThreadedMotoServer on an internal 127.0.0.1 port; the gateway proxies to it."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._started = False

    def start(self) -> None:
        # IAM knows AWS's managed policies (moto's bundled copy, 0.14 s to load once), so attaching
        # AWSLambdaBasicExecutionRole & co. works and `aws iam list-attached-role-policies` answers as on AWS.
        from moto.core.config import default_user_config

        default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True
        # werkzeug logs every request at INFO; the local cloud's own output stays readable without it.
        logging.getLogger("werkzeug").setLevel(max(logging.WARNING, logging.getLogger().level))
        self._server.start()
        self._started = True
        LOG.debug("moto listening on %s", self.url)

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.get_host_and_port()[1]

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False
