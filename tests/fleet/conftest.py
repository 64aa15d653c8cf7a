"""A real Mosquitto for the fleet tests, configured by the documented files
(docs/broker/): TLS with client certificates, a cameras' listener (its own users,
per-device ACLs, client id bound to the user) and an operators' listener, persistence on."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.fleet.bench import free_port, wait_for_port

CAMERAS = ("cam1", "cam2")
OPERATORS = ("operator",)
USERS = (*OPERATORS, *CAMERAS)
PREFIX = "appliance"
BROKER_DOCS = Path(__file__).resolve().parents[2] / "docs" / "broker"


def _key_and_cert(name: str, issuer=None, ca: bool = False, server: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = (subject, key) if issuer is None else issuer
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _write_pem(folder: Path, name: str, key, cert) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(key_path, 0o600)
    return key_path, cert_path


@dataclass
class Broker:
    folder: Path
    port: int  # the cameras' listener
    operator_port: int
    ca: Path
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        """Where cameras connect."""
        return f"mqtts://127.0.0.1:{self.port}"

    @property
    def operator_uri(self) -> str:
        return f"mqtts://127.0.0.1:{self.operator_port}"

    def password(self, user: str) -> str:
        return f"{user}-secret"

    def cert(self, user: str) -> tuple[Path, Path]:
        return self.folder / f"{user}.pem", self.folder / f"{user}.key"

    def start(self) -> None:
        with open(self.folder / "broker.log", "ab") as log:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(self.folder / "mosquitto.conf")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        if not (wait_for_port(self.port) and wait_for_port(self.operator_port)):
            log = (self.folder / "broker.log").read_text()
            raise RuntimeError(f"mosquitto did not start: {log}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)


def make_broker(folder: Path) -> Broker:
    """Keys, certificates, users and the documented config in ``folder``; not started."""
    ca_key, ca_cert = _key_and_cert("test CA", ca=True)
    _write_pem(folder, "ca", ca_key, ca_cert)
    server_key, server_cert = _key_and_cert("localhost", (ca_cert.subject, ca_key), server=True)
    _write_pem(folder, "server", server_key, server_cert)
    for user in USERS:
        key, cert = _key_and_cert(user, (ca_cert.subject, ca_key))
        _write_pem(folder, user, key, cert)
    for group, users in (("devices", CAMERAS), ("operators", OPERATORS)):
        passwd = folder / f"{group}.passwd"
        for user in users:
            flag = ["-c"] if not passwd.exists() else []
            subprocess.run(
                ["mosquitto_passwd", *flag, "-b", str(passwd), user, f"{user}-secret"],
                check=True,
                capture_output=True,
            )
        os.chmod(passwd, 0o600)
        shutil.copy(BROKER_DOCS / f"{group}.acl", folder / f"{group}.acl")
        os.chmod(folder / f"{group}.acl", 0o600)
    port, operator_port = free_port(), free_port()
    (folder / "data").mkdir()
    run_as = "user root\n" if os.geteuid() == 0 else ""  # else it drops to "mosquitto"
    template = string.Template((BROKER_DOCS / "mosquitto.conf").read_text())
    (folder / "mosquitto.conf").write_text(
        run_as
        + template.substitute(
            data=folder / "data",
            host="127.0.0.1",
            device_port=port,
            operator_port=operator_port,
            devices_passwd=folder / "devices.passwd",
            devices_acl=folder / "devices.acl",
            operators_passwd=folder / "operators.passwd",
            operators_acl=folder / "operators.acl",
            ca=folder / "ca.pem",
            cert=folder / "server.pem",
            key=folder / "server.key",
        )
    )
    return Broker(folder, port, operator_port, folder / "ca.pem")


@pytest.fixture
def broker(tmp_path: Path):
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        message = "mosquitto is not installed (tests/system-deps.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    b = make_broker(tmp_path)
    b.start()
    yield b
    b.stop()
