"""Kill the update agent with SIGKILL hundreds of times and check it never bricks.

Run by tests/ota/test_crash.py as ``python crash_driver.py CONFIG.json``; prints one
JSON summary on stdout. The driver imports everything once and then forks a fresh
child process for every agent run (a fork server: interpreter start-up on a busy
machine would otherwise dominate). A child builds a new ``Agent`` from what is on
disk, installs or resumes, and is killed by a real SIGKILL, either

- by itself, at the N-th durable checkpoint (``ota.fsio.checkpoint``) while the job is
  in a chosen phase: reproducible points spread over every phase, or
- by the driver, after a random delay: points between checkpoints too.

After every child the driver checks the invariant on disk: ``active`` points at a
slot whose every bundle passes ``verify_bundle`` and whose versions are exactly the
old set or exactly the new set; the high-water marks are the old or the new version
and never go down. A child that exits normally must have finished its job: installed
(healthy update) or rolled back (an update whose health gate fails).
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from appliance.runtime.bundle import verify_bundle
from ota import fsio
from ota.agent import Agent
from ota.compat import Device, compare_versions
from ota.health import hash_gate
from ota.signing import load_private_key, load_public_key, sign
from tests.ota.helpers import BUNDLE, make_bundle

PHASE_WEIGHTS = {
    "download": 4,
    "verify": 1,
    "install": 3,
    "activate": 2,
    "health": 1,
    "commit": 1,
    "rollback": 1,
}
ORDER = ["download", "verify", "install", "activate", "health", "commit", "rollback"]


def read_state(root: Path) -> dict[str, Any]:
    return json.loads((root / "state.json").read_text())


def active_versions(root: Path) -> dict[str, str]:
    slot = root / "active"
    return {
        b.name: json.loads((b / "manifest.json").read_text())["version"]
        for b in sorted(slot.iterdir())
    }


def check_invariant(root: Path, old: dict[str, str], new: dict[str, str]) -> list[str]:
    try:
        target = os.readlink(root / "active")
        if target not in ("slots/a", "slots/b"):
            return [f"active -> {target!r}"]
        problems = [p for b in sorted((root / "active").iterdir()) for p in verify_bundle(b)]
        versions = active_versions(root)
    except (OSError, ValueError, KeyError) as exc:
        return [f"active slot unreadable: {exc!r}"]
    if versions not in (old, new):
        problems.append(f"active slot holds {versions}, neither old {old} nor new {new}")
    return problems


def run_child(
    cfg: dict[str, Any],
    job: dict[str, Any],
    first: bool,
    target: str | None,
    n: int,
    report_fd: int,
) -> None:
    """The agent process: never returns."""
    code = 0
    try:
        keys = [load_public_key(Path(cfg["public_key"]))]

        def gate(slot: Path) -> list[str]:
            problems = hash_gate(slot)
            return problems if job["healthy"] else [*problems, "simulated: daemon unhealthy"]

        agent = Agent(Path(cfg["root"]), keys, Device(cfg["board"], cfg["runtimes"]), gate)
        counts: Counter[str] = Counter()

        def hook(what: str) -> None:
            phase = agent.phase
            counts[phase] += 1
            if target is None:
                return
            # The N-th checkpoint of the target phase, or the first one after it when
            # this run (a resumed download, say) has fewer than N there.
            past = phase in ORDER and ORDER.index(phase) > ORDER.index(target)
            if (phase == target and counts[phase] >= n) or past:
                os.kill(os.getpid(), signal.SIGKILL)

        fsio.set_checkpoint_hook(hook)
        if first:
            agent.install(job["source"], job_id=job["id"])
        else:
            agent.resume()
        os.write(report_fd, json.dumps(counts).encode())
    except BaseException:
        traceback.print_exc()
        code = 3
    finally:
        os._exit(code)


def make_job(cfg: dict[str, Any], index: int) -> dict[str, Any]:
    """Job ``index``: a new signed version; every fourth one fails its health gate;
    two in three are fetched over HTTP, the rest from a local path."""
    version = f"0.10.21-{index + 12}"
    work = Path(cfg["work"])
    bundle = make_bundle(work / "src", version, generation=index + 2)
    update = sign(
        bundle, load_private_key(Path(cfg["private_key"])), work / "updates" / f"{version}.bundle"
    )
    source = f"{cfg['url']}/{update.name}" if index % 3 != 2 else str(update)
    return {
        "id": f"job{index}",
        "bundle": BUNDLE,
        "version": version,
        "source": source,
        "healthy": index % 4 != 3,
    }


def main(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    root = Path(cfg["root"])
    (Path(cfg["work"]) / "updates").mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg["seed"])
    calib: dict[str, int] = {}  # checkpoints seen per phase in an uninterrupted run
    job_seconds = 0.5
    kills, completions, jobs_run = 0, 0, 0
    by_phase: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    violations: list[str] = []
    results: Counter[str] = Counter()
    high_water_seen: dict[str, str] = {}
    started = time.monotonic()
    for index in range(cfg["max_jobs"]):
        if kills >= cfg["kills"] or time.monotonic() - started > cfg["deadline_s"]:
            break
        job = make_job(cfg, index)
        jobs_run += 1
        old = active_versions(root)
        new = {**old, job["bundle"]: job["version"]}
        expect_new = job["healthy"]
        old_hw = read_state(root)["high_water"].get(job["bundle"])
        job_kills = 0
        while True:
            state = read_state(root)
            record = state["job"]
            first = record is None or record["id"] != job["id"]
            phase = "download" if first else record["state"]
            may_kill = bool(calib) and job_kills < cfg["max_kills_per_job"]
            target, n, timed = None, 0, False
            if may_kill and rng.random() < cfg["timed_fraction"]:
                timed = True
            elif may_kill:
                rest = ORDER[ORDER.index(phase) :] if phase in ORDER else []
                later = [p for p in rest if calib.get(p)]
                if later:
                    target = rng.choices(later, [PHASE_WEIGHTS[p] for p in later])[0]
                    n = rng.randint(1, calib[target])
            read_fd, write_fd = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                run_child(cfg, job, first, target, n, write_fd)
            os.close(write_fd)
            if timed:
                time.sleep(rng.uniform(0, job_seconds))
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            report = os.read(read_fd, 65536)
            os.close(read_fd)
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            problems = check_invariant(root, old, new)
            state = read_state(root)
            for name, version in state["high_water"].items():
                if name in high_water_seen and compare_versions(version, high_water_seen[name]) < 0:
                    problems.append(f"high-water mark of {name} went down to {version}")
                high_water_seen[name] = version
            hw = state["high_water"].get(job["bundle"])
            if hw not in (old_hw, job["version"] if expect_new else old_hw):
                problems.append(f"high-water mark {hw}: neither {old_hw} nor {job['version']}")
            if killed:
                kills += 1
                job_kills += 1
                kinds["timed" if timed else "checkpoint"] += 1
                record = state["job"]
                mine = record is not None and record["id"] == job["id"]
                by_phase[record["state"] if mine else "before-job"] += 1
            elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                completions += 1
                if not calib:
                    job_seconds = time.monotonic() - t0
                for phase_name, count in json.loads(report or b"{}").items():
                    calib[phase_name] = max(calib.get(phase_name, 0), count)
                record = state["job"]
                if record is None or record["id"] != job["id"]:
                    problems.append("child exited without creating its job")
                else:
                    results[str(record["result"])] += 1
                    want = ("done", "installed") if expect_new else ("rolled_back", "rolled_back")
                    if (record["state"], record["result"]) != want:
                        problems.append(
                            f"job {job['id']} ended {record['state']}/"
                            f"{record['result']}: {record['reason']}"
                        )
                    if check_invariant(root, *((new, new) if expect_new else (old, old))):
                        problems.append(f"job {job['id']}: wrong final slot")
                    hw = state["high_water"].get(job["bundle"])
                    if hw != (job["version"] if expect_new else old[job["bundle"]]):
                        problems.append(f"job {job['id']}: high-water mark {hw}")
            else:
                problems.append(f"child ended with status {status:#x}")
            violations += [
                f"job {job['id']} after {'kill' if killed else 'exit'}: {p}" for p in problems
            ]
            if not killed:
                break
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = {
        "cpu_s": {
            "driver": round(usage_self.ru_utime + usage_self.ru_stime, 2),
            "agents": round(usage_children.ru_utime + usage_children.ru_stime, 2),
        },
        "kills": kills,
        "jobs": jobs_run,
        "completions": completions,
        "by_phase": dict(by_phase),
        "kinds": dict(kinds),
        "results": dict(results),
        "calibration": calib,
        "violations": violations[:50],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
