"""Start a real `lambdalab up` in a subprocess on a free 127.0.0.1 port, and drive it with the AWS CLI and boto3."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import psutil
from botocore.config import Config

from lambdalab import constants

BIN = Path(sys.executable).parent
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LOADER = botocore.loaders.create_loader()
_LIBC = ctypes.CDLL(None)  # loaded here: the child between fork and exec only calls into it


@dataclass
class RunningCloud:
    url: str
    process: subprocess.Popen[str]
    run_dir: Path | None
    stderr_lines: list[str] = field(default_factory=list)
    descendants: set[int] = field(default_factory=set)

    def stderr_through(self, marker: str, timeout: float = 30.0) -> list[str]:
        """stderr's lines once one containing `marker` arrived: `ready` comes on stdout, and the thread that reads
        stderr may not have read what was printed before it yet (seen in CI under load)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = "".join(self.stderr_lines).splitlines()
            if any(marker in line for line in lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} not on stderr within {timeout} s: {lines[-20:]}")
            time.sleep(0.05)

    @property
    def env(self) -> dict[str, str]:
        """A clean environment for the AWS CLI: the local endpoint and fake credentials, nothing of the host's AWS."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.url,
            AWS_ACCESS_KEY_ID=constants.FAKE_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=constants.FAKE_SECRET_ACCESS_KEY,
            AWS_SESSION_TOKEN=constants.FAKE_SESSION_TOKEN,
            AWS_REGION=constants.DEFAULT_REGION,
            AWS_DEFAULT_REGION=constants.DEFAULT_REGION,
            AWS_PAGER="",
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    def client(self, service: str, retries: int = 1, read_timeout: int = 60) -> Any:
        session = boto3.session.Session()
        session._session.register_component("data_loader", _LOADER)  # parse botocore's JSON once, not per client
        return session.client(
            service,
            endpoint_url=self.url,
            region_name=constants.DEFAULT_REGION,
            aws_access_key_id=constants.FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=constants.FAKE_SECRET_ACCESS_KEY,
            aws_session_token=constants.FAKE_SESSION_TOKEN,
            config=Config(
                retries={"total_max_attempts": retries, "mode": "standard"},
                read_timeout=read_timeout,
                max_pool_connections=64,
            ),
        )

    def aws(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real AWS CLI against the local cloud."""
        result = subprocess.run(
            [str(BIN / "aws"), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def deploy(
        self, template: Path, stack_name: str | None = None, overrides: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """`lambdalab deploy`: another template into this cloud; its answer (stack summary, resources, outputs)."""
        from lambdalab.deploy.remote import deploy_remote

        return deploy_remote(self.url, template, stack_name=stack_name, overrides=overrides)

    def outputs(self, stack: str) -> dict[str, str]:
        described = self.client("cloudformation").describe_stacks(StackName=stack)
        return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}

    def records(self) -> list[dict[str, Any]]:
        assert self.run_dir is not None
        path = self.run_dir / "invocations.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_records(self, predicate: Any, timeout: float = 30.0, what: str = "records") -> list[dict[str, Any]]:
        """Poll the run directory until predicate(records) holds; fail naming what was awaited."""
        deadline = time.monotonic() + timeout
        records = self.records()
        while time.monotonic() < deadline:
            records = self.records()
            if predicate(records):
                return records
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; have {len(records)} records")

    def snapshot_descendants(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.descendants |= {p.pid for p in psutil.Process(self.process.pid).children(recursive=True)}


def terminate_with_parent() -> None:
    """In the child before exec: SIGTERM it if pytest dies (killed by a timeout, say), so `lambdalab up` shuts down
    its environments instead of running on as an orphan."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def local_cloud(
    template: Path | None, tmp: Path, extra: Sequence[str] = (), ready_timeout: float = 120.0
) -> Iterator[RunningCloud]:
    """`lambdalab up --port 0` in a subprocess; yields once it printed `ready <url>`; Ctrl-C (SIGINT) on exit, then
    asserts it exited cleanly and left no process behind."""
    args = [str(BIN / "lambdalab"), "up", "--port", "0", "--run-root", str(tmp / "runs"), *extra]
    args += ["--template", str(template)] if template is not None else ["--no-template"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["LAMBDALAB_HOST_SECRET"] = "must-not-leak"  # the environments must never see the host's variables
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp,
        start_new_session=True,
        preexec_fn=terminate_with_parent,  # noqa: PLW1509 -- one prctl call, no lock taken, libc loaded already
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr_lines: list[str] = []

    def pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)
        if stream is process.stdout:
            lines.put(None)

    threading.Thread(target=pump, args=(process.stdout, lines.put), daemon=True).start()
    threading.Thread(target=pump, args=(process.stderr, stderr_lines.append), daemon=True).start()
    url = None
    run_dir = None
    deadline = time.monotonic() + ready_timeout
    while url is None or run_dir is None:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.1, remaining))
        except queue.Empty:
            line = ""
        if line is None or remaining <= 0:
            process.kill()
            process.wait(10)
            raise AssertionError(f"lambdalab up did not become ready: {''.join(stderr_lines)[-4000:]}")
        if line.startswith("ready "):
            url = line.split()[1]
        elif line.startswith("# run directory: "):
            run_dir = Path(line.split(": ", 1)[1].strip())
            if not run_dir.is_absolute():
                run_dir = tmp / run_dir
    cloud = RunningCloud(url=url, process=process, run_dir=run_dir, stderr_lines=stderr_lines)
    try:
        yield cloud
    finally:
        cloud.snapshot_descendants()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            raise AssertionError("lambdalab up did not stop within 60 s of Ctrl-C") from None
        leftovers = [pid for pid in cloud.descendants if psutil.pid_exists(pid) and _alive(pid)]
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert code == 0, f"lambdalab up exited {code}: {''.join(stderr_lines)[-4000:]}"
        assert not leftovers, f"processes left behind after Ctrl-C: {leftovers}"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
