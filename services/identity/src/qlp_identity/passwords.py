"""Passwords (argon2id), the password policy and e-mail normalization. Pure code."""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256

# The most common passwords of public breach corpora (lower-cased), the ones that are
# 12 characters or longer or become so with a trivial suffix. Checked case-insensitively.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789abc",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwerty123456",
        "qwertyuiopas",
        "asdfghjkl123",
        "password1234",
        "password12345",
        "password123!",
        "passw0rd1234",
        "p@ssw0rd1234",
        "p@ssword1234",
        "password!123",
        "iloveyou1234",
        "welcome12345",
        "welcome@1234",
        "letmein12345",
        "admin1234567",
        "administrator",
        "administrator1",
        "changeme1234",
        "football1234",
        "baseball1234",
        "monkey123456",
        "dragon123456",
        "sunshine1234",
        "princess1234",
        "trustno11234",
        "abc123456789",
        "abcdefghijkl",
        "abcd12345678",
        "aa1234567890",
        "000000000000",
        "111111111111",
        "123123123123",
        "qazwsxedcrfv",
        "zaq12wsxcde3",
        "1q2w3e4r5t6y7u",
        "superman1234",
        "starwars1234",
        "whatever1234",
        "q1w2e3r4t5y6",
        "michael12345",
        "jennifer1234",
        "correcthorsebatterystaple",
    }
)

_EMAIL = re.compile(
    r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


class PolicyError(ValueError):
    """A password or e-mail that the policy rejects (the message says why)."""


def normalize_email(raw: str) -> str:
    """Trim, lower-case and validate an e-mail address."""
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email) or ".." in email.split("@", 1)[0]:
        raise PolicyError("not a valid e-mail address")
    local = email.split("@", 1)[0]
    if local.startswith(".") or local.endswith("."):
        raise PolicyError("not a valid e-mail address")
    return email


def character_classes(password: str) -> int:
    classes = 0
    classes += any(c.islower() for c in password)
    classes += any(c.isupper() for c in password)
    classes += any(c.isdigit() for c in password)
    classes += any(not c.isalnum() for c in password)
    return classes


def check_password_policy(password: str, email: str | None = None) -> None:
    """Raise :class:`PolicyError` unless the password is acceptable."""
    if len(password) < MIN_LENGTH:
        raise PolicyError(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PolicyError(f"password must be at most {MAX_LENGTH} characters")
    if character_classes(password) < 2:
        raise PolicyError(
            "password must mix at least two kinds of characters "
            "(lower case, upper case, digits, symbols)"
        )
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        raise PolicyError("password is too common")
    if len(set(password)) <= 2:
        raise PolicyError("password repeats too few characters")
    if email:
        local = email.split("@", 1)[0].lower()
        if len(local) >= 4 and local in lowered:
            raise PolicyError("password must not contain the e-mail address")


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


class Passwords:
    """argon2id hashing; hashes carry their parameters, so changing them later only
    affects new hashes (``needs_rehash`` tells when to upgrade on login)."""

    def __init__(self, params: Argon2Params) -> None:
        self.hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        # Verified against for unknown e-mails so their timing matches real ones.
        self._dummy = self.hasher.hash("dummy password for unknown users")

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash or self._dummy, password) and bool(stored_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False
