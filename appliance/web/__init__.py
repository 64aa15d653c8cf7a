"""The daemon's web side: the live picture, status and configuration API (Flask)."""

from appliance.web.app import DaemonView, create_app
from appliance.web.server import WebServer

__all__ = ["DaemonView", "WebServer", "create_app"]
