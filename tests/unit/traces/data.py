"""The committed trace documents in tests/data/traces, loaded through one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

DATA = Path(__file__).resolve().parents[2] / "data" / "traces"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def data_dir() -> Path:
    return DATA


class StubSession:
    """A boto3 session whose clients are stubbed; every client handed out is the one registered for its service."""

    def __init__(self) -> None:
        self.clients = {}
        self.stubs = {}

    def stub(self, service: str) -> Stubber:
        client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
        self.clients[service] = client
        self.stubs[service] = Stubber(client)
        self.stubs[service].activate()
        return self.stubs[service]

    def client(self, service: str, **_kwargs):
        return self.clients[service]
