"""One configuration schema, shared by the config file, the web API and MQTT."""

from appliance.config.errors import ConfigError
from appliance.config.manager import ConfigManager
from appliance.config.schema import Config
from appliance.config.store import dump_config, load_config, parse_config, save_config

__all__ = [
    "Config",
    "ConfigError",
    "ConfigManager",
    "dump_config",
    "load_config",
    "parse_config",
    "save_config",
]
