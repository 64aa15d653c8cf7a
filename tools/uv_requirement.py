"""Print uv's pinned requirement line, with the hash of every wheel, from pylock.toml.

The Makefile installs uv with plain ``pip --require-hashes`` from this line, then lets
uv install the rest of the lock: the lock stays the one place where a version or a hash
is written. Stdlib only (it runs before the venv has anything in it).
"""

import sys
import tomllib
from pathlib import Path

lock = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "pylock.toml").read_text())
uv = next((p for p in lock["packages"] if p["name"] == "uv"), None)
if uv is None:
    sys.exit("pylock.toml has no uv: add it to [dependency-groups] tools and run `make lock`")
hashes = [w["hashes"]["sha256"] for w in uv.get("wheels", [])]
print(f"uv=={uv['version']} " + " ".join(f"--hash=sha256:{h}" for h in hashes))
