"""Which files the web page and the fleet may name: an allow-list of directories.

The config file is written by whoever administers the device, so it may point anywhere.
A change that arrives from outside (the web page, MQTT) may only name files inside the
directories set aside for them, or a logged-in user could point ``fleet.password_file``
at any readable file and ``fleet.broker`` at their own server and be sent its contents.

- secrets (the broker password, TLS key and certificates): only from the device's
  secret store, ``$APPLIANCE_SECRETS_DIR`` (default /etc/appliance/secrets);
- media (a background picture, a clip to play): ``$APPLIANCE_MEDIA_DIR`` (default
  /var/lib/appliance/media); several directories may be given, separated by ``:``;
- where the update agent keeps its slots and trusted keys (``ota.root``): the config
  file only;
- where the broker password goes (``fleet.broker``, ``fleet.username``,
  ``fleet.ca_file``): from outside only while no password file is set, or the page
  could keep the stored password and send it to a broker of its choosing.

The check is on the resolved path (symbolic links followed), and its answer is the
same whether the file exists or not, so it cannot be used to probe the file system.
Only changed values are checked: what the config file set keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.config.errors import ConfigError
from appliance.config.schema import Config

SECRETS_DEFAULT = "/etc/appliance/secrets"
MEDIA_DEFAULT = "/var/lib/appliance/media"

# Where a change comes from when it is not the device's own config file or code.
OUTSIDE_ORIGINS = frozenset({"web", "mqtt"})

SECRET_FIELDS = ("fleet.password_file", "fleet.ca_file", "fleet.cert_file", "fleet.key_file")
LOCAL_ONLY_FIELDS = ("ota.root",)
# Where the password is sent, and whom that end is trusted to be.
DESTINATION_FIELDS = ("fleet.broker", "fleet.username", "fleet.ca_file")


def _directories(variable: str, default: str) -> tuple[Path, ...]:
    text = os.environ.get(variable) or default
    return tuple(Path(os.path.realpath(part)) for part in text.split(":") if part)


@dataclass(frozen=True)
class PathPolicy:
    secrets: tuple[Path, ...]
    media: tuple[Path, ...]

    @classmethod
    def from_environment(cls) -> PathPolicy:
        return cls(
            _directories("APPLIANCE_SECRETS_DIR", SECRETS_DEFAULT),
            _directories("APPLIANCE_MEDIA_DIR", MEDIA_DEFAULT),
        )

    def check(self, old: Config, new: Config, origin: str) -> None:
        """Raise ConfigError naming every changed path outside its allowed directories."""
        if origin.split(" ")[0] not in OUTSIDE_ORIGINS:
            return
        errors = []
        for field, before, after, allowed in self._named_files(old, new):
            if after == before or not after:
                continue
            if allowed is None:
                errors.append(f"{field}: set only in the config file on the device")
            elif not _inside(after, allowed):
                where = ", ".join(str(d) for d in allowed)
                errors.append(
                    f"{field}: the web page and the fleet may name files in {where} only "
                    "(other paths: the config file on the device)"
                )
        if new.fleet.password_file:
            for field in DESTINATION_FIELDS:
                if _value(old, field) != _value(new, field):
                    errors.append(
                        f"{field}: set only in the config file on the device while "
                        "fleet.password_file is set (the password would go there)"
                    )
        if errors:
            raise ConfigError(errors, origin)

    def _named_files(
        self, old: Config, new: Config
    ) -> Iterator[tuple[str, str, str, tuple[Path, ...] | None]]:
        for field in SECRET_FIELDS:
            yield field, _value(old, field), _value(new, field), self.secrets
        for field in LOCAL_ONLY_FIELDS:
            yield field, _value(old, field), _value(new, field), None
        yield "background.image", old.background.image, new.background.image, self.media
        yield "source.uri", _file(old.source.uri), _file(new.source.uri), self.media
        known = {_file(uri) for uri in old.source.fallback}
        for index, uri in enumerate(new.source.fallback):
            path = _file(uri)
            yield f"source.fallback[{index}]", path if path in known else "", path, self.media


def _value(config: Config, field: str) -> str:
    section, name = field.split(".")
    return str(getattr(getattr(config, section), name))


def _file(uri: str) -> str:
    """The path of a ``file://`` source ("" for any other)."""
    return uri.removeprefix("file://") if uri.startswith("file://") else ""


def _inside(path: str, directories: tuple[Path, ...]) -> bool:
    resolved = Path(os.path.realpath(path))
    return any(resolved.is_relative_to(directory) for directory in directories)
