"""What moto lacks answers as AWS answers an unknown or unsupported operation, in the protocol of the service.

moto raises NotImplementedError for an action it does not implement (and for some parameters of actions it does);
its server then answers an HTML "500 Internal Server Error" page, which no SDK can parse (the AWS CLI reports
"Unable to parse response"). `install()` makes moto answer such a request with status 501 and a marker header; the
gateway turns it (and any other HTML error page from moto) into the error body the client's protocol expects:

* JSON protocols (an `X-Amz-Target` header): `{"__type": "UnknownOperationException", "message": ...}`;
* query protocols (an `Action` parameter): `<ErrorResponse><Error><Code>InvalidAction</Code>...`;
* REST-XML (S3): `<Error><Code>NotImplemented</Code>...` (S3's own 501 code);
* REST-JSON: the `x-amzn-ErrorType: UnknownOperationException` header and `{"message": ...}`.

Status 501 is kept: botocore does not retry it (it retries 500, 502, 503 and 504), so the caller sees the error at
once. A moto crash on an implemented action becomes `InternalFailure` (500) in the same shapes.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any
from xml.sax.saxutils import escape

LOG = logging.getLogger(__name__)

NOT_IMPLEMENTED_HEADER = "x-lambdalab-not-implemented"
_REST_XML_SERVICES = frozenset({"s3", "s3control", "cloudfront", "route53"})
_lock = threading.Lock()
_installed = False


def install() -> None:
    """Make moto's request dispatch answer 501 + marker for NotImplementedError (idempotent, process-wide)."""
    global _installed  # noqa: PLW0603 - one process-wide patch of a third-party module
    with _lock:
        if _installed:
            return
        from moto.core.responses import BaseResponse

        original = BaseResponse._dispatch

        def _dispatch(self: Any, request: Any, full_url: str | None = None, headers: Any = None) -> Any:
            try:
                return original(self, request, full_url, headers)
            except NotImplementedError as exc:
                detail = str(exc) or "not implemented"
                LOG.warning("moto does not implement this request: %s", detail)
                return 501, {NOT_IMPLEMENTED_HEADER: detail.replace("\n", " ")[:300]}, ""

        BaseResponse._dispatch = _dispatch  # type: ignore[method-assign]
        _installed = True


def protocol_of(service: str | None, headers: Any, query: Any, form: Any) -> str:
    """ "json", "query", "rest-xml" or "rest-json", from what the request carries."""
    if headers.get("X-Amz-Target"):
        return "json"
    if query.get("Action") or (form and form.get("Action")):
        return "query"
    if service in _REST_XML_SERVICES:
        return "rest-xml"
    return "rest-json"


def error_response(
    protocol: str, *, not_implemented: bool, message: str, content_type: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of an AWS-shaped error for a request moto could not answer."""
    request_id = str(uuid.uuid4())
    status = 501 if not_implemented else 500
    if protocol == "json":
        code = "UnknownOperationException" if not_implemented else "InternalFailure"
        body = json.dumps({"__type": code, "message": message}).encode()
        return (
            status,
            {"Content-Type": content_type or "application/x-amz-json-1.0", "x-amzn-RequestId": request_id},
            body,
        )
    if protocol == "query":
        code = "InvalidAction" if not_implemented else "InternalFailure"
        kind = "Sender" if not_implemented else "Receiver"
        xml = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, xml.encode()
    if protocol == "rest-xml":
        code = "NotImplemented" if not_implemented else "InternalError"
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message>'
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, xml.encode()
    code = "UnknownOperationException" if not_implemented else "InternalFailure"
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id}
    return status, headers, json.dumps({"message": message}).encode()
