"""``python -m tools.hostile``: every boundary's attacks in turn (docs/security.md).

Each part starts the real program it attacks (the daemon, ``appliance receive``,
``appliance ota``, Mosquitto) and prints one line per attack: what happened, the peak
RSS over idle and the time. Exit status 1 if any part missed its target.
"""

from __future__ import annotations

import sys

from tools.hostile import codec, mqtt, ota, web

PARTS = {"web": web.main, "mqtt": mqtt.main, "ota": ota.main, "codec": codec.main}


def main(argv: list[str]) -> int:
    chosen = argv or list(PARTS)
    unknown = [name for name in chosen if name not in PARTS]
    if unknown:
        print(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        print(f"== {name}", flush=True)
        run = PARTS[name]
        code = run([])
        if code:
            failed.append(name)
    if failed:
        print(f"missed their targets: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
