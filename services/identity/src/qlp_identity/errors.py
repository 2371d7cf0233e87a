"""Domain errors, as problem documents with stable types."""

from __future__ import annotations

from qlp_kit.problems import Problem


def invalid_credentials() -> Problem:
    return Problem(
        401, "Unauthenticated", "e-mail or password is wrong", type_="invalid-credentials"
    )


def invalid_token(detail: str = "token is not valid") -> Problem:
    return Problem(401, "Unauthenticated", detail, type_="invalid-token")


def refresh_reused() -> Problem:
    return Problem(
        401,
        "Unauthenticated",
        "refresh token was already used; every session of this login was revoked",
        type_="refresh-token-reused",
    )


def locked(retry_after_s: int) -> Problem:
    return Problem(
        429,
        "Too many failed sign-in attempts",
        "the account is temporarily locked",
        type_="account-locked",
        headers={"Retry-After": str(retry_after_s)},
        retry_after_s=retry_after_s,
    )


def attempts_in_flight() -> Problem:
    return Problem(
        429,
        "Too many sign-in attempts",
        "too many sign-in attempts at once; try again shortly",
        type_="login-throttled",
        headers={"Retry-After": "1"},
        retry_after_s=1,
    )


def invalid(detail: str, type_: str = "validation-error") -> Problem:
    return Problem(422, "Request is not valid", detail, type_=type_)


def conflict(detail: str, type_: str = "conflict") -> Problem:
    return Problem(409, "Conflict", detail, type_=type_)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"{what} not found")
