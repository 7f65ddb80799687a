"""Run one conformance project: deploy its template into a running local cloud, then check its expectation.

A project is a folder under tests/conformance/projects/ with a template (template.yaml or template.json), its code,
and `expect.yaml` (see README.md for every key); a `check.py` with `def check(stack: Stack) -> None` adds steps that
need code. Everything goes through what a user has: `lambdalab deploy`, the CloudFormation API, boto3.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lambdalab import constants
from lambdalab.errors import UserError
from tests.support.cloud import RunningCloud

PROJECTS = Path(__file__).resolve().parent / "projects"
XFAIL_DEPENDENCIES = "needs function dependencies/layers in the runtime (lead, issue 12.3)"
_STEP_KEYS = {
    "invoke", "send_messages", "wait_invocations", "wait_queue", "start_execution", "http", "get_item", "wait_items",
    "put_item", "concurrency", "provisioned", "role_policies", "describe_function", "sleep", "publish", "put_events",
    "put_object", "put_records", "receive_messages", "call",
}  # fmt: skip


@dataclass
class Project:
    path: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def template(self) -> Path:
        given = self.spec.get("template")
        if given:
            return self.path / str(given)
        for candidate in ("template.yaml", "template.yml", "template.json"):
            if (self.path / candidate).is_file():
                return self.path / candidate
        raise AssertionError(f"{self.path}: no template.yaml or template.json")

    @property
    def stack_name(self) -> str:
        return str(self.spec.get("stack") or f"conf-{self.name.replace('_', '-')}")

    @property
    def xfail(self) -> str | None:
        reason = self.spec.get("xfail")
        return str(reason) if reason else None


def discover(root: Path = PROJECTS) -> list[Project]:
    projects = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        expect = folder / "expect.yaml"
        if not expect.is_file():
            raise AssertionError(f"{folder} has no expect.yaml (see tests/conformance/README.md)")
        spec = yaml.safe_load(expect.read_text(encoding="utf-8")) or {}
        known = {
            "description",
            "pattern",
            "stack",
            "template",
            "parameters",
            "deploy",
            "steps",
            "xfail",
            "before",
            "zip",
        }
        unknown = set(spec) - known
        if unknown:
            raise AssertionError(f"{expect}: unknown keys {sorted(unknown)}")
        projects.append(Project(folder, spec))
    return projects


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy (and return it); fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def contains(actual: Any, expected: Any) -> bool:
    """`expected` is a subset of `actual`: every key of a mapping, every item of a list in order and length."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(contains, actual, expected))
    return bool(actual == expected)


@dataclass
class Stack:
    """A deployed project, and the steps its expectation can take."""

    cloud: RunningCloud
    project: Project
    answer: dict[str, Any]
    _clients: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    received: dict[str, list[Any]] = field(default_factory=dict)  # queue ref → bodies `receive_messages` took, in order

    # --- names ----------------------------------------------------------------------------------------------

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.answer.get("outputs") or {})

    def physical(self, logical_id: str) -> str:
        resource = (self.answer.get("resources") or {}).get(logical_id)
        if resource is None or resource.get("physical_id") is None:
            raise AssertionError(f"{self.project.name}: no created resource {logical_id!r}")
        return str(resource["physical_id"])

    def name_of(self, ref: str) -> str:
        """A logical id (its physical id), `LogicalId.Attribute` (as Fn::GetAtt), `Outputs.Key`, or a literal name."""
        resources = self.answer.get("resources") or {}
        if ref.startswith("Outputs."):
            return self.outputs[ref.removeprefix("Outputs.")]
        if ref in resources:
            return self.physical(ref)
        logical_id, _, attribute = ref.partition(".")
        if attribute and logical_id in resources:
            return str(resources[logical_id]["attributes"][attribute])
        return ref

    def substitute(self, value: Any) -> Any:
        """`${Outputs.Key}`, `${LogicalId}` (its physical id), `${AWS::Region}`, `${AWS::AccountId}` and
        `${AWS::StackName}` in strings."""
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        if not isinstance(value, str):
            return value

        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "AWS::Region":
                return constants.DEFAULT_REGION
            if key == "AWS::AccountId":
                return constants.DEFAULT_ACCOUNT_ID
            if key == "AWS::StackName":
                return self.project.stack_name
            return self.name_of(key)

        return re.sub(r"\$\{([^}]+)\}", one, value)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.cloud.client(service, retries=1, read_timeout=120)
        return self._clients[service]

    def records(self, function: str) -> list[dict[str, Any]]:
        name = self.name_of(function)
        return [r for r in self.cloud.records() if r.get("function_name") == name and r["invocation_type"] != "DryRun"]

    # --- steps ----------------------------------------------------------------------------------------------

    def invoke(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {"FunctionName": self.name_of(spec["function"])}
        if "qualifier" in spec:
            kwargs["Qualifier"] = str(spec["qualifier"])
        kwargs["InvocationType"] = spec.get("type", "RequestResponse")
        kwargs["Payload"] = json.dumps(self.substitute(spec.get("payload", {}))).encode()
        response = self.client("lambda").invoke(**kwargs)
        body = response["Payload"].read()
        status = expect.get("status", 202 if kwargs["InvocationType"] == "Event" else 200)
        assert response["StatusCode"] == status, (response["StatusCode"], body)
        if kwargs["InvocationType"] == "Event":
            return
        payload = json.loads(body) if body else None
        if "error_type" in expect:
            assert response.get("FunctionError") is not None, f"no function error: {payload}"
            assert payload.get("errorType") == expect["error_type"], payload
            return
        assert response.get("FunctionError") is None, payload
        if "payload" in expect:
            assert payload == self.substitute(expect["payload"]), payload
        if "payload_contains" in expect:
            assert contains(payload, self.substitute(expect["payload_contains"])), payload

    def send_messages(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        url = self.name_of(spec["queue"])
        bodies = spec.get("bodies") or [
            json.dumps(self.substitute(spec.get("body", {"n": "{i}"}))).replace("{i}", str(i))
            for i in range(int(spec.get("count", 1)))
        ]
        sqs = self.client("sqs")
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(i), "MessageBody": body if isinstance(body, str) else json.dumps(body)}
                for i, body in enumerate(bodies[start : start + 10])
            ]
            if spec.get("group"):
                for entry in entries:
                    entry["MessageGroupId"] = str(spec["group"])
                    entry["MessageDeduplicationId"] = f"{time.time_ns()}-{entry['Id']}"
            answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
            assert not answer.get("Failed"), answer

    def wait_invocations(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        count, outcome, kind = int(spec["count"]), spec.get("outcome"), spec.get("type")

        def matching() -> list[dict[str, Any]]:
            found = self.records(spec["function"])
            return [
                r
                for r in found
                if (outcome is None or r["outcome"] == outcome) and (kind is None or r["invocation_type"] == kind)
            ]

        wait_until(lambda: len(matching()) >= count, float(spec.get("within", 30)), f"{count} invocations of {spec}")
        if spec.get("exactly", True):
            time.sleep(float(spec.get("settle", 0.5)))
            assert len(matching()) == count, f"{len(matching())} invocations of {spec['function']}, expected {count}"

    def wait_queue(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        url = self.name_of(spec["queue"])
        wanted = int(spec["messages"])

        def depth() -> bool:
            attributes = self.client("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            total = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
            return total == wanted

        wait_until(depth, float(spec.get("within", 30)), f"{wanted} messages in {spec['queue']}")

    def start_execution(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        states = self.client("stepfunctions")
        arn = self.name_of(spec["state_machine"])
        started = states.start_execution(stateMachineArn=arn, input=json.dumps(self.substitute(spec.get("input", {}))))
        described = wait_until(
            lambda: (d := states.describe_execution(executionArn=started["executionArn"]))["status"] != "RUNNING" and d,
            float(spec.get("within", 60)),
            f"execution of {spec['state_machine']}",
            interval=0.2,
        )
        detail = {k: described.get(k) for k in ("status", "output", "error", "cause")}
        assert described["status"] == expect.get("status", "SUCCEEDED"), detail
        output = json.loads(described["output"]) if described.get("output") else None
        if "output" in expect:
            assert output == self.substitute(expect["output"]), output
        if "output_contains" in expect:
            assert contains(output, self.substitute(expect["output_contains"])), output
        if "error" in expect:
            assert described.get("error") == expect["error"], detail

    def http(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        url = self.substitute(spec["url"])
        data = json.dumps(self.substitute(spec["body"])).encode() if "body" in spec else None
        headers = {"Content-Type": "application/json"}
        headers.update({str(k): str(v) for k, v in (spec.get("headers") or {}).items()})
        request = urllib.request.Request(url, data=data, method=spec.get("method", "GET"), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, body, answered = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, body, answered = exc.code, exc.read(), exc.headers
        assert status == expect.get("status", 200), (status, body[:500], self._recent_failures())
        for name, value in self.substitute(expect.get("headers_contain") or {}).items():
            assert answered.get(name) == str(value), (name, dict(answered.items()))
        if "json" in expect:
            assert json.loads(body) == self.substitute(expect["json"]), body
        if "json_contains" in expect:
            assert contains(json.loads(body), self.substitute(expect["json_contains"])), body

    def _recent_failures(self) -> list[dict[str, Any]]:
        """What the run records say about this stack's last failed invocations: why an answer was a 5xx."""
        keep = ("function_name", "outcome", "error_type", "error_message", "start_kind", "duration_s", "local_wait_s")
        failed = [
            {k: r.get(k) for k in keep}
            for r in self.cloud.records()
            if str(r.get("function_name", "")).startswith(self.project.stack_name) and r.get("outcome") != "success"
        ]
        return failed[-3:]

    def put_item(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        self.client("dynamodb").put_item(TableName=self.name_of(spec["table"]), Item=spec["item"])

    def get_item(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        found = self.client("dynamodb").get_item(TableName=self.name_of(spec["table"]), Key=spec["key"]).get("Item")
        assert contains(found, expect.get("item")), found

    def wait_items(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        table = self.name_of(spec["table"])
        wanted = int(spec["count"])
        wait_until(
            lambda: self.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"] == wanted,
            float(spec.get("within", 30)),
            f"{wanted} items in {spec['table']}",
        )

    def concurrency(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        answer = self.client("lambda").get_function_concurrency(FunctionName=self.name_of(spec["function"]))
        assert answer.get("ReservedConcurrentExecutions") == spec.get("reserved"), answer

    def provisioned(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        lam = self.client("lambda")
        name, qualifier = self.name_of(spec["function"]), str(spec["qualifier"])

        def ready() -> dict[str, Any] | None:
            config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
            return config if config["Status"] == spec.get("status", "READY") else None

        config = wait_until(ready, float(spec.get("within", 30)), f"provisioned concurrency of {name}:{qualifier}")
        assert config["RequestedProvisionedConcurrentExecutions"] == int(spec["requested"]), config

    def describe_function(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        kwargs = {"FunctionName": self.name_of(spec["function"])}
        if "qualifier" in spec:
            kwargs["Qualifier"] = str(spec["qualifier"])
        configuration = self.client("lambda").get_function_configuration(**kwargs)
        assert contains(configuration, self.substitute(expect.get("configuration", {}))), configuration

    def role_policies(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        """The role's inline and attached policies, as IAM records them (IAM is not enforced locally)."""
        iam = self.client("iam")
        role = self.name_of(spec["role"])
        inline = {
            name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        }
        attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
        actions = set()
        for document in inline.values():
            statements = document.get("Statement", [])
            for statement in [statements] if isinstance(statements, dict) else statements:  # one statement, or a list
                action = statement.get("Action", [])
                actions.update([action] if isinstance(action, str) else action)
        for wanted in expect.get("actions", []):
            assert wanted in actions, f"{wanted} not in the inline policies of {role}: {sorted(actions)}"
        for wanted in self.substitute(expect.get("attached", [])):
            assert any(arn.endswith(wanted) for arn in attached), f"{wanted} not attached to {role}: {attached}"
        for document in inline.values():
            assert document.get("Version") in (None, "2012-10-17", "2008-10-17"), document

    def publish(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        """SNS Publish; `attributes` values are strings (String), numbers (Number), lists (String.Array) or the
        API's own {DataType, StringValue}."""
        message = self.substitute(spec["message"])
        kwargs: dict[str, Any] = {
            "TopicArn": self.name_of(spec["topic"]),
            "Message": message if isinstance(message, str) else json.dumps(message),
        }
        if "subject" in spec:
            kwargs["Subject"] = str(spec["subject"])
        attributes = {}
        for name, value in (spec.get("attributes") or {}).items():
            if isinstance(value, dict):
                attributes[name] = value
            elif isinstance(value, bool) or not isinstance(value, int | float | list):
                attributes[name] = {"DataType": "String", "StringValue": str(value)}
            elif isinstance(value, list):
                attributes[name] = {"DataType": "String.Array", "StringValue": json.dumps(value)}
            else:
                attributes[name] = {"DataType": "Number", "StringValue": str(value)}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        answer = self.client("sns").publish(**kwargs)
        assert answer.get("MessageId"), answer

    def put_events(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        """EventBridge PutEvents; each entry {bus, source, detail_type, detail (a mapping is sent as JSON)}."""
        entries = []
        for entry in spec["entries"]:
            detail = self.substitute(entry.get("detail", {}))
            one = {
                "Source": str(entry["source"]),
                "DetailType": str(entry["detail_type"]),
                "Detail": detail if isinstance(detail, str) else json.dumps(detail),
            }
            if "bus" in entry:
                one["EventBusName"] = self.name_of(entry["bus"])
            entries.append(one)
        answer = self.client("events").put_events(Entries=entries)
        assert answer.get("FailedEntryCount", 0) == 0, answer

    def put_object(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        self.client("s3").put_object(
            Bucket=self.name_of(spec["bucket"]), Key=str(spec["key"]), Body=str(spec.get("body", "")).encode()
        )

    def put_records(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        """Kinesis PutRecords: `records` [{partition_key, data}], or `count` records whose `data` (a mapping is sent
        as JSON) and `partition_key` may hold {i} (0, 1, ...); `partition_keys` [..] deals keys out in turn."""
        records = spec.get("records") or []
        if not records:
            keys = spec.get("partition_keys") or [spec.get("partition_key", "key-{i}")]
            records = [
                {"partition_key": str(keys[i % len(keys)]), "data": spec.get("data", {"n": "{i}"}), "i": i}
                for i in range(int(spec["count"]))
            ]
        entries = []
        for record in records:
            data = self.substitute(record["data"])
            text = data if isinstance(data, str) else json.dumps(data)
            number = str(record.get("i", ""))
            entries.append(
                {
                    "PartitionKey": str(record["partition_key"]).replace("{i}", number),
                    "Data": text.replace("{i}", number).encode(),
                }
            )
        kinesis = self.client("kinesis")
        for start in range(0, len(entries), 500):
            answer = kinesis.put_records(StreamName=self.name_of(spec["stream"]), Records=entries[start : start + 500])
            assert answer.get("FailedRecordCount", 0) == 0, answer

    def receive_messages(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        """Receive (and delete) messages from a queue until `count` bodies (default: as many as expected), or
        `records` items of the bodies' `Records` lists, arrived; then, unless `exactly: false`, keep receiving for
        `settle` seconds and fail if more came. Bodies are parsed as JSON when they are JSON, kept in arrival order
        (a FIFO queue keeps the order they were sent in) and added to `stack.received[queue]`."""
        url = self.name_of(spec["queue"])
        sqs = self.client("sqs")
        got: list[Any] = []
        exactly = spec.get("exactly", True)

        def records_in(bodies: list[Any]) -> list[Any]:
            return [r for b in bodies if isinstance(b, dict) for r in b.get("Records") or []]

        if "records" in spec:
            wanted = int(spec["records"])
            what = f"{wanted} records in {spec['queue']}"

            def arrived() -> int:
                return len(records_in(got))
        else:
            listed = expect.get("bodies", expect.get("bodies_contain"))
            wanted = int(spec.get("count", len(listed) if listed is not None else 1))
            what = f"{wanted} messages in {spec['queue']}"

            def arrived() -> int:
                return len(got)

        def take(wait_s: int) -> None:
            answer = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s, VisibilityTimeout=60
            )
            messages = answer.get("Messages") or []
            for message in messages:
                try:
                    got.append(json.loads(message["Body"]))
                except ValueError:
                    got.append(message["Body"])
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )

        try:
            wait_until(lambda: take(1) or arrived() >= wanted, float(spec.get("within", 30)), what, interval=0)
            if exactly:
                settle_until = time.monotonic() + float(spec.get("settle", 1.0))
                while time.monotonic() < settle_until:
                    take(0)
                    time.sleep(0.1)
                assert arrived() == wanted, f"{arrived()} arrived in {spec['queue']}, expected {wanted}: {got}"
        finally:
            self.received.setdefault(spec["queue"], []).extend(got)
        bodies = got if exactly or "records" in spec else got[:wanted]
        records = records_in(got)
        if "bodies" in expect:
            assert bodies == self.substitute(expect["bodies"]), bodies
        if "bodies_contain" in expect:
            assert contains(bodies, self.substitute(expect["bodies_contain"])), bodies
        if "records" in expect:
            assert records == self.substitute(expect["records"]), records
        if "records_contain" in expect:
            assert contains(records, self.substitute(expect["records_contain"])), records

    def call(self, spec: dict[str, Any], expect: dict[str, Any]) -> None:
        """Any boto3 operation: {service, operation (boto3's snake_case name), params}."""
        client = self.client(str(spec["service"]))
        answer = getattr(client, str(spec["operation"]))(**self.substitute(spec.get("params") or {}))
        answer.pop("ResponseMetadata", None)
        if "response_contains" in expect:
            assert contains(answer, self.substitute(expect["response_contains"])), answer

    def sleep(self, spec: Any, expect: dict[str, Any]) -> None:
        time.sleep(float(spec))


def check_deploy(project: Project, answer: dict[str, Any], substitute: Callable[[Any], Any]) -> None:
    """The `deploy` section: which resources were created, not supported or skipped, and the warnings."""
    spec = project.spec.get("deploy") or {}
    resources = answer["resources"]
    by_status: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        by_status.setdefault(resource["status"], []).append(logical_id)
    not_supported = sorted(by_status.get("NOT_SUPPORTED", []))
    skipped = sorted(by_status.get("SKIPPED", []))
    assert not_supported == sorted(spec.get("not_supported", [])), (not_supported, answer["warnings"])
    assert skipped == sorted(spec.get("skipped", [])), (skipped, answer["warnings"])
    if "created" in spec:
        assert len(by_status.get("CREATE_COMPLETE", [])) == int(spec["created"]), sorted(by_status["CREATE_COMPLETE"])
    for wanted in spec.get("warnings", []):
        assert any(wanted in warning for warning in answer["warnings"]), (wanted, answer["warnings"])
    if spec.get("no_warnings"):
        assert answer["warnings"] == [], answer["warnings"]
    assert len(answer["warnings"]) == len(set(answer["warnings"])), answer["warnings"]  # each said once
    for key, value in substitute(spec.get("outputs") or {}).items():
        actual = answer["outputs"].get(key)
        if isinstance(value, dict) and "matches" in value:
            assert actual is not None and re.fullmatch(value["matches"], actual), (key, actual)
        else:
            assert actual == str(value), (key, actual)


def _prepare_copy(project: Project, workdir: Path) -> Project:
    """The project copied to a scratch folder (deploys never write into the repository), with its `zip` archives
    built: `zip: {from: src, to: build/app.zip}` packs a folder as `sam build` + a CI step would."""
    copy = workdir / project.name
    shutil.copytree(project.path, copy)
    for archive in project.spec.get("zip") or []:
        source, target = copy / archive["from"], copy / archive["to"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as package:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    package.write(path, path.relative_to(source).as_posix())
    return Project(copy, project.spec)


def run_project(cloud: RunningCloud, project: Project, workdir: Path) -> Stack | None:
    """Deploy the project (after its `before` stacks), check its deploy expectation, run its steps and check.py."""
    project = _prepare_copy(project, workdir)
    for before in project.spec.get("before") or []:
        cloud.deploy(project.path / before["template"], stack_name=before["stack"])
    overrides = {str(k): str(v) for k, v in (project.spec.get("parameters") or {}).items()}
    expected_error = (project.spec.get("deploy") or {}).get("error")
    try:
        answer = cloud.deploy(project.template, stack_name=project.stack_name, overrides=overrides)
    except UserError as exc:
        if expected_error is None:
            raise AssertionError(f"{project.name}: deploy failed: {exc}") from None
        assert expected_error in str(exc), str(exc)
        return None
    assert expected_error is None, f"{project.name}: expected the deploy to fail with {expected_error!r}"
    stack = Stack(cloud, project, answer)
    check_deploy(project, answer, stack.substitute)
    for index, step in enumerate(project.spec.get("steps") or []):
        keys = set(step) - {"expect"}
        assert len(keys) == 1 and keys <= _STEP_KEYS, (
            f"{project.name}: step {index} must be one of {sorted(_STEP_KEYS)}"
        )
        (action,) = keys
        try:
            getattr(stack, action)(step[action], step.get("expect") or {})
        except AssertionError as exc:
            raise AssertionError(f"{project.name}: step {index} ({action}): {exc}") from None
    check_file = project.path / "check.py"
    if check_file.is_file():
        spec = importlib.util.spec_from_file_location(f"conformance_{project.name}", check_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.check(stack)
    return stack
