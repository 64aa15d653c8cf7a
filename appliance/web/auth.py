"""The page's one account: a salted scrypt hash of its password, kept beside the config.

There is no default password. Until one is set, the daemon logs a one-time setup code
(on the console, where only someone at the device or its journal sees it) and the page
asks for that code with the new password.
"""

from __future__ import annotations

import base64
import binascii
import errno
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
from appliance.untrusted import load_json, preview

log = logging.getLogger(__name__)

# scrypt, RFC 7914 recommended interactive cost: ~32 MiB and ~0.1 s a guess, which is
# what makes an offline attack on a stolen file slow. Stored per hash so it can grow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# What a record may ask of the camera per login, wherever it comes from (MQTT, the file):
# scrypt needs 128·n·r bytes and time in proportion to n·r·p. Past these a record either
# cannot be verified at all (n=2^20, r=8 needs 1 GiB) or makes each guess a denial of
# service (~1 GB and 4 s); twice the default memory and four times its work is plenty.
MAX_SCRYPT_MEMORY = 64 * 1024 * 1024
MAX_SCRYPT_WORK = 4 * SCRYPT_N * SCRYPT_R * SCRYPT_P
MIN_SCRYPT_N = 2**14  # below it a record from outside is too cheap to guess against
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


class PasswordNotSaved(ValueError):
    """The new password could not be written (a full disk, say): the old one stays.
    A ValueError, so the MQTT command answers it like a refused record."""


def scrypt_cost_problem(n: int, r: int, p: int) -> str | None:
    """Why these scrypt parameters are more than the camera will spend on a login."""
    if n < 2 or n & (n - 1) or not 1 <= r <= 16 or not 1 <= p <= 4:
        return "n must be a power of two, r 1..16, p 1..4"
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        return (
            f"n={n}, r={r} needs {128 * n * r >> 20} MiB per login; "
            f"at most {MAX_SCRYPT_MEMORY >> 20} MiB (128·n·r)"
        )
    if n * r * p > MAX_SCRYPT_WORK:
        return f"n·r·p = {n * r * p}: at most {MAX_SCRYPT_WORK} (4× the default's work)"
    return None


def checked_record(record: Any, min_n: int = MIN_SCRYPT_N) -> dict[str, Any]:
    """A scrypt record made elsewhere (provisioning over MQTT, the file), checked before
    it is trusted: ValueError says what is wrong with it. ``min_n``: the cheapest hash
    taken (a record from outside must not be quick to guess against)."""
    if not isinstance(record, dict) or record.get("scheme") != "scrypt":
        raise ValueError('expected {"scheme": "scrypt", "n", "r", "p", "salt", "hash"}')
    try:
        n, r, p = int(record["n"]), int(record["r"]), int(record["p"])
        salt = base64.b64decode(record["salt"], validate=True)
        digest = base64.b64decode(record["hash"], validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"scrypt record: {preview(str(exc))}") from None
    if n < min_n or n & (n - 1):
        raise ValueError(f"scrypt record: n must be a power of two, at least {min_n}")
    problem = scrypt_cost_problem(n, r, p)
    if problem:
        raise ValueError(f"scrypt record: {problem}")
    if len(salt) < 16 or len(digest) != 32:
        raise ValueError("scrypt record: a salt of at least 16 bytes and a 32-byte hash")
    return {"scheme": "scrypt", "n": n, "r": r, "p": p, "salt": record["salt"],
            "hash": record["hash"]}  # fmt: skip


def check_password(password: str, record: dict[str, Any]) -> bool:
    try:
        salt = base64.b64decode(record["salt"])
        expected = base64.b64decode(record["hash"])
        n, r, p = int(record["n"]), int(record["r"]), int(record["p"])
        if scrypt_cost_problem(n, r, p):  # never a gigabyte for one guess
            return False
        digest = _scrypt(password, salt, n, r, p)
    except (KeyError, ValueError, TypeError, MemoryError):
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
        problem = scrypt_cost_problem(scrypt_n, SCRYPT_R, SCRYPT_P)
        if problem:
            raise ValueError(f"scrypt_n: {problem}")
        self.path = path
        self.scrypt_n = scrypt_n
        self._lock = threading.Lock()
        # Signs known-device cookies (devices.py). Random, kept with the record and new
        # with every password: the record's hash crosses the broker (fleet
        # web-password), so a key derived from it could be minted by whoever saw it.
        self._device_key = secrets.token_bytes(32)
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
            text = self.path.read_text(encoding="utf-8")
            document = load_json(text, max_bytes=64 * 1024, max_depth=4, what=str(self.path))
            # Any n (tests hash with a cheap one), but never more than a login may cost.
            record = checked_record(document["password"], min_n=2)
            key = base64.b64decode(str(document.get("device_key", "")), validate=True)
            if len(key) == 32:  # else (a file from before): a fresh key, cookies re-issued
                self._device_key = key
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            # Unreadable is not "no password": refusing every login beats reopening
            # setup to whoever reaches the page first. A factory reset clears it.
            log.error(
                "web: cannot read %s (%s); logins refused until a factory reset", self.path, exc
            )
            return {"scheme": "broken"}
        return record

    def device_key(self) -> bytes | None:
        """The key known-device cookies are signed with (devices.py): random, replaced
        with every new password, so that voids every earlier cookie; None without one."""
        record = self._record
        if record is None or record.get("scheme") != "scrypt":
            return None
        return self._device_key

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
        """Install a hash made elsewhere (provisioning never sends the password itself).
        ValueError if the record asks too much of a login; PasswordNotSaved (a
        ValueError too) if it cannot be written: either way the old password stays."""
        problem = scrypt_cost_problem(int(record["n"]), int(record["r"]), int(record["p"]))
        if problem:
            raise ValueError(f"scrypt record: {problem}")
        key = secrets.token_bytes(32)
        with self._lock:
            if self.path is not None:
                stored = {"version": 1, "password": record,
                          "device_key": base64.b64encode(key).decode()}  # fmt: skip
                try:
                    write_atomic(self.path, json.dumps(stored, indent=2))
                except OSError as exc:
                    raise PasswordNotSaved(_not_saved(exc)) from None
            self._record, self._device_key = record, key
            self.setup_code = None
        log.info("web: password set")

    def reset(self) -> None:
        """Factory reset: forget the password; a new setup code is logged."""
        with self._lock:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            self._record = None
        self.new_setup_code()


def _not_saved(exc: OSError) -> str:
    why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    log.error("web: the new password could not be saved: %s", exc)
    return f"the new password could not be saved ({why}); the old one still works"
