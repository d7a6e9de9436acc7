"""API errors rendered as metav1.Status, the shape every Kubernetes client parses."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error that becomes a ``kind: Status`` response with the given HTTP code and reason."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        kind: str | None = None,
        group: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = {}
        if name is not None:
            self.details["name"] = name
        if group:
            self.details["group"] = group
        if kind is not None:
            self.details["kind"] = kind

    def status(self) -> dict[str, Any]:
        """The Status object exactly as the apiserver writes it."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            out["details"] = self.details
        out["code"] = self.code
        return out


def not_found(plural: str, name: str, group: str = "") -> APIError:
    """404 with the apiserver's text: ``services "x" not found``."""
    res = f"{plural}.{group}" if group else plural
    return APIError(404, "NotFound", f'{res} "{name}" not found', name=name, kind=plural, group=group)


def already_exists(plural: str, name: str, group: str = "") -> APIError:
    """409 AlreadyExists as on a duplicate create."""
    res = f"{plural}.{group}" if group else plural
    return APIError(409, "AlreadyExists", f'{res} "{name}" already exists', name=name, kind=plural,
                    group=group)


def conflict(plural: str, name: str, group: str = "") -> APIError:
    """409 Conflict as on an update with a stale resourceVersion."""
    res = f"{plural}.{group}" if group else plural
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        name=name,
        kind=plural,
        group=group,
    )


def expired(message: str) -> APIError:
    """410 Gone / Expired, what watch and list say for a compacted resourceVersion."""
    return APIError(410, "Expired", message)


def bad_request(message: str) -> APIError:
    """400 BadRequest."""
    return APIError(400, "BadRequest", message)


def invalid(kind: str, name: str, message: str, group: str = "") -> APIError:
    """422 Invalid, the validation failure."""
    return APIError(422, "Invalid", f'{kind} "{name}" is invalid: {message}', name=name, kind=kind,
                    group=group)
