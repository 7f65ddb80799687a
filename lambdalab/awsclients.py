"""boto3 sessions and clients with the local cloud's fake credentials: nothing the lab runs may use the host's."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config
import botocore.loaders

from lambdalab import constants

# botocore's data loader (service models, endpoints, retry rules: JSON read from disk once, then cached), shared by
# every session made here. Each new session would otherwise parse those files again: ~0.08 s of CPU per client
# instead of ~0.02. The loader only reads files and caches what it parsed; sessions never change what it returns.
_LOADER = botocore.loaders.create_loader()


def local_session(region: str = constants.DEFAULT_REGION) -> Any:
    """A boto3 session holding only the documented fake credentials (never the host's profile or keys)."""
    session = boto3.session.Session(
        region_name=region,
        aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
        aws_session_token=constants.FAKE_SESSION_TOKEN,
    )
    session._session.register_component("data_loader", _LOADER)
    return session


# No gzip of request bodies (botocore compresses PutMetricData over 10 KB): pure CPU on loopback, and the gateway's
# aiohttp inflates a gzip body but forwards its Content-Encoding, so moto failed to inflate it again (a 500, retried
# for seconds: the DynamoDB process's large final PutMetricData held up every stop of a cloud with many tables).
_CONFIG = botocore.config.Config(disable_request_compression=True)


def local_client(service: str, endpoint_url: str, region: str = constants.DEFAULT_REGION) -> Any:
    """A client for one service of the local cloud (its own session: boto3 sessions are not shared across threads)."""
    return local_session(region).client(service, endpoint_url=endpoint_url, config=_CONFIG)
