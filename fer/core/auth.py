"""Signing in to a shared dashboard: who a visitor is, hashed secrets compared in constant time, and a
brake on guessing them.

Passwords and tokens are stored only as scrypt hashes (`fer dashboard --hash-password` prints one);
`verify_secret` compares in constant time, and `Throttle` makes a key wait after a few failures, so a
password cannot be guessed at network speed. An `Actor` is who does something: the role decides what
`fer.jobs.actions` lets it do, and its identity goes into the audit log.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Dict, List

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1  # 16 MiB and ~50 ms per check: cheap to use, dear to guess


@dataclass(frozen=True)
class Actor:
    """Who acts: an identity (user name, e-mail address, "local token", "cli") and a role."""

    identity: str
    role: str  # viewer or operator

    @property
    def is_operator(self) -> bool:
        """Whether this actor may launch, cancel, edit and delete."""
        return self.role == "operator"


def hash_secret(secret: str) -> str:
    """A salted scrypt hash of a password or token, as the settings file stores it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` matches the stored hash (constant-time; a malformed hash never matches)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or int(n) > 2 ** 20:
            return False
        computed = hashlib.scrypt(secret.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                  dklen=len(bytes.fromhex(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def new_token() -> str:
    """A fresh random token for one start of the dashboard (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the start token."""
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


class Throttle:
    """At most `attempts` failed sign-ins per key (a user name, or "token") within `window_s`; then it waits."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0) -> None:
        self.attempts, self.window_s = attempts, window_s
        self._failures: Dict[str, List[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: str, now: float | None = None) -> float:
        """Seconds `key` must wait before its next try (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
            self._failures[key] = recent
            return 0.0 if len(recent) < self.attempts else self.window_s - (now - recent[0])

    def failed(self, key: str, now: float | None = None) -> None:
        """Count a failed try."""
        with self._lock:
            self._failures.setdefault(key, []).append(time.monotonic() if now is None else now)

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key that signed in."""
        with self._lock:
            self._failures.pop(key, None)
