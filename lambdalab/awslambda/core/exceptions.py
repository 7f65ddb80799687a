"""Lambda API errors in AWS's shapes: the HTTP status, `x-amzn-ErrorType`, and the modelled body members."""

from __future__ import annotations

from typing import Any


class LambdaApiError(Exception):
    """An error the Lambda API returns. botocore reads the code from `x-amzn-ErrorType` and members from the body."""

    status = 400
    code = "ServiceException"
    kind = "User"
    message_key = "Message"  # AWS's model spells it "message" for some errors and "Message" for others

    def __init__(self, message: str, **members: Any) -> None:
        super().__init__(message)
        self.message = message
        self.members = members
        self.headers: dict[str, str] = {}
        self.request_id: str | None = None  # the Lambda request id of a refused invoke (throttled, local error)

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, self.message_key: self.message, **self.members}


class ResourceNotFoundException(LambdaApiError):
    status = 404
    code = "ResourceNotFoundException"


class ResourceConflictException(LambdaApiError):
    status = 409
    code = "ResourceConflictException"


class InvalidParameterValueException(LambdaApiError):
    status = 400
    code = "InvalidParameterValueException"


class InvalidRequestContentException(LambdaApiError):
    status = 400
    code = "InvalidRequestContentException"


class RequestTooLargeException(LambdaApiError):
    status = 413
    code = "RequestTooLargeException"


class ProvisionedConcurrencyConfigNotFoundException(LambdaApiError):
    status = 404
    code = "ProvisionedConcurrencyConfigNotFoundException"


class UnsupportedMediaTypeException(LambdaApiError):
    status = 415
    code = "UnsupportedMediaTypeException"


class ServiceException(LambdaApiError):
    status = 500
    code = "ServiceException"
    kind = "Service"


class LocalCapacityException(LambdaApiError):
    """Not an AWS error: this machine could not run the call (no fork, no socket, the local cloud stopping) even
    after waiting. On AWS the call would have run; the code and the message say so, so a client never mistakes it for
    Lambda's behaviour. 503, so SDKs retry it as a transient error."""

    status = 503
    code = "LambdalabLocalCapacityException"
    kind = "Service"


class TooManyRequestsException(LambdaApiError):
    """429 with `Reason` and the `Retry-After` header botocore maps to `retryAfterSeconds`."""

    status = 429
    code = "TooManyRequestsException"
    message_key = "message"

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__("Rate Exceeded.", Reason=reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.headers["Retry-After"] = str(max(1, round(retry_after_s)))


class UnknownOperationError(LambdaApiError):
    """A path/method the local Lambda API does not serve (AWS answers an unknown operation with 404)."""

    status = 404
    code = "UnknownOperationException"
