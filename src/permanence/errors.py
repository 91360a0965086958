"""Domain errors. Each is a noun, carries an HTTP status for the web layer, and its message
never contains personal data (it may be shown to users and written to logs)."""

from __future__ import annotations


class PermanenceError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PermanenceError):
    status_code = 404
    code = "not_found"


class PermissionDenied(PermanenceError):
    status_code = 403
    code = "forbidden"


class NotAuthenticated(PermanenceError):
    status_code = 401
    code = "not_authenticated"


class ValidationFailed(PermanenceError):
    status_code = 422
    code = "invalid"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]

    def __str__(self) -> str:
        extra = [p for p in self.problems if p != self.message]
        return f"{self.message}: {'; '.join(extra)}" if extra else self.message


class BadRequest(PermanenceError):
    """The request cannot be read at all: broken encoding, malformed syntax."""

    status_code = 400
    code = "bad_request"


class PayloadTooLarge(PermanenceError):
    status_code = 413
    code = "too_large"


class UnsupportedMediaType(PermanenceError):
    status_code = 415
    code = "unsupported_media_type"


class Conflict(PermanenceError):
    status_code = 409
    code = "conflict"


class ConfigurationError(PermanenceError):
    status_code = 500
    code = "configuration"


class KeyUnavailable(PermanenceError):
    """A data key was destroyed (erasure) or never existed: the sealed value cannot be opened."""

    status_code = 410
    code = "key_unavailable"


class IntegrityFailure(PermanenceError):
    """A sealed value or a stored file failed authentication: tampered with, or moved."""

    status_code = 500
    code = "integrity"


class InternalError(PermanenceError):
    """A bug: what the client is told (the traceback goes to the log, not to them)."""

    status_code = 500
    code = "internal"
