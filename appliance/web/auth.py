"""The page's one account: a salted scrypt hash of its password, kept beside the config.

There is no default password. Until one is set, the daemon logs a one-time setup code
(on the console, where only someone at the device or its journal sees it) and the page
asks for that code with the new password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from appliance.config.store import write_atomic

log = logging.getLogger(__name__)

# scrypt, RFC 7914 recommended interactive cost: ~32 MiB and ~0.1 s a guess, which is
# what makes an offline attack on a stolen file slow. Stored per hash so it can grow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # scrypt hashes anything; a megabyte password is only a DoS
# No 0/O, 1/I/L: the code is read off a console and typed by hand.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def auth_path(config_path: Path | None) -> Path | None:
    """Where the password hash lives: beside the config file (one backup, one reset)."""
    if config_path is None:
        return None
    return config_path.with_name(config_path.stem + ".auth.json")


def hash_password(password: str, n: int = SCRYPT_N) -> dict[str, Any]:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return {
        "scheme": "scrypt",
        "n": n,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(),
        "hash": base64.b64encode(digest).decode(),
    }


def checked_record(record: Any) -> dict[str, Any]:
    """A scrypt record made elsewhere (provisioning over MQTT), checked before it is
    trusted: ValueError says what is wrong with it."""
    if not isinstance(record, dict) or record.get("scheme") != "scrypt":
        raise ValueError('expected {"scheme": "scrypt", "n", "r", "p", "salt", "hash"}')
    try:
        n, r, p = int(record["n"]), int(record["r"]), int(record["p"])
        salt = base64.b64decode(record["salt"], validate=True)
        digest = base64.b64decode(record["hash"], validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"scrypt record: {exc}") from None
    if n < 2**14 or n > 2**20 or n & (n - 1) or not 1 <= r <= 16 or not 1 <= p <= 4:
        raise ValueError("scrypt record: n must be a power of two in 2^14..2^20, r 1..16, p 1..4")
    if len(salt) < 16 or len(digest) != 32:
        raise ValueError("scrypt record: a salt of at least 16 bytes and a 32-byte hash")
    return {"scheme": "scrypt", "n": n, "r": r, "p": p, "salt": record["salt"],
            "hash": record["hash"]}  # fmt: skip


def check_password(password: str, record: dict[str, Any]) -> bool:
    try:
        salt = base64.b64decode(record["salt"])
        expected = base64.b64decode(record["hash"])
        digest = _scrypt(password, salt, int(record["n"]), int(record["r"]), int(record["p"]))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32
    )


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"at most {MAX_PASSWORD} characters"
    return None


class AuthStore:
    """The password record (file mode 0600) and, while there is none, the setup code.

    ``path`` None keeps it in memory: a daemon without a config file forgets its
    password at exit, as it forgets its settings.
    """

    def __init__(self, path: Path | None, scrypt_n: int = SCRYPT_N) -> None:
        self.path = path
        self.scrypt_n = scrypt_n
        self._lock = threading.Lock()
        self._record: dict[str, Any] | None = self._load()
        self.setup_code: str | None = None
        if self._record is None:
            self.new_setup_code()

    @property
    def provisioned(self) -> bool:
        return self._record is not None

    def _load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.exists():
            return None
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))["password"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable is not "no password": refusing every login beats reopening
            # setup to whoever reaches the page first. A factory reset clears it.
            log.error(
                "web: cannot read %s (%s); logins refused until a factory reset", self.path, exc
            )
            return {"scheme": "broken"}
        return dict(record)

    def new_setup_code(self) -> str:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
        self.setup_code = f"{code[:4]}-{code[4:8]}-{code[8:]}"
        log.warning(
            "web page setup code: %s (open the page and enter it to set the password)",
            self.setup_code,
            extra={"secret": True},  # the console's, never the web page's log view
        )
        return self.setup_code

    def check_setup_code(self, code: str) -> bool:
        if self.setup_code is None:
            return False
        expected = self.setup_code.replace("-", "")
        # Typed by hand from a console: case, spaces and dashes do not matter.
        given = "".join(c for c in code.upper() if c.isalnum())
        return hmac.compare_digest(given.encode(), expected.encode())

    def verify(self, password: str) -> bool:
        record = self._record
        if record is None or len(password) > MAX_PASSWORD:
            return False
        return check_password(password, record)

    def set_password(self, password: str) -> None:
        """Also the provisioning entry point (e.g. from MQTT): ValueError if too weak."""
        problem = password_problem(password)
        if problem:
            raise ValueError(f"password: {problem}")
        self.set_record(hash_password(password, self.scrypt_n))

    def set_record(self, record: dict[str, Any]) -> None:
        """Install a hash made elsewhere (provisioning never sends the password itself)."""
        with self._lock:
            if self.path is not None:
                write_atomic(self.path, json.dumps({"version": 1, "password": record}, indent=2))
            self._record = record
            self.setup_code = None
        log.info("web: password set")

    def reset(self) -> None:
        """Factory reset: forget the password; a new setup code is logged."""
        with self._lock:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            self._record = None
        self.new_setup_code()
