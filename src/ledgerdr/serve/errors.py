"""AWS's error shapes, as the two protocols render them.

A handler raises `AwsError(code, message, status)`; the application renders it as the protocol of the
API that was called: AWS JSON 1.0 (`{"__type", "message"}`) for the session API, REST-JSON
(`{"Message", ...}` and the `x-amzn-ErrorType` header) for the control plane. botocore reads the code
from either, so drivers see exactly the `ClientError` codes QLDB gives.
"""

from __future__ import annotations

from typing import Any


class AwsError(Exception):
    """An error the client is told about: QLDB's code, a message, the HTTP status, extra members."""

    def __init__(self, code: str, message: str, status: int = 400, **members: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.members = members


def bad_request(message: str) -> AwsError:
    return AwsError("BadRequestException", message, 400)


def invalid_parameter(message: str, parameter: str | None = None) -> AwsError:
    members = {"ParameterName": parameter} if parameter else {}
    return AwsError("InvalidParameterException", message, 400, **members)


def not_found(name: str, resource_type: str = "LEDGER") -> AwsError:
    return AwsError(
        "ResourceNotFoundException", f"{resource_type.title()} {name} does not exist", 404,
        ResourceType=resource_type, ResourceName=name,
    )


def internal_failure(request_id: str) -> AwsError:
    return AwsError("InternalFailure", f"internal error (request {request_id}); see the server's log", 500)
