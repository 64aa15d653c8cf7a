"""Model bundles: what runs, the A/B slots, and uploading a signed update.

An upload goes through the same update agent as an OTA job from MQTT: signature,
hashes, compatibility, the health gate on the running pipeline, rollback.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from appliance.web.admission import MAX_UPLOAD
from appliance.web.common import optional
from ota.errors import AgentError

log = logging.getLogger(__name__)

bp = Blueprint("models", __name__)

# Only here and only logged in (admission.py: the server refuses a bigger body from
# anyone else before reading it); the upload streams to a temporary file as it comes.
MAX_BUNDLE = MAX_UPLOAD
GOOD = {"installed", "already_installed"}
MAX_FIGURES = 6  # accuracy lines shown per bundle; the manifest has them all


@bp.get("/models")
def page() -> str:
    return render_template("models.html", page="models")


@bp.get("/api/models")
def listing() -> ResponseReturnValue:
    updates = optional("updates")
    models_dir = optional("models_dir")
    inference = optional("inference")
    choices = getattr(inference, "choices", {})
    return jsonify(
        updates_enabled=updates is not None,
        dir=str(models_dir) if models_dir else None,
        backend=getattr(inference, "name", None),
        bundles=_bundles(Path(models_dir), choices) if models_dir else [],
        agent=_agent(updates) if updates is not None else None,
    )


def _agent(updates: Any) -> dict[str, Any]:
    """The daemon's update status plus what each A/B slot holds (the agent's own view)."""
    status = dict(updates.status())
    try:
        status["slots"] = updates.agent.status()["slots"]
    except (AttributeError, AgentError, OSError, ValueError, KeyError):
        status["slots"] = {}
    return status


def _runs(choice: dict[str, Any] | None) -> str:
    """What runs and why: "int8 (fp32 4.1 ms, int8 3.2 ms)", "fp32 (int8 refused: ...)"."""
    if not choice:
        return "–"
    why = [f"{p} {ms} ms" for p, ms in choice.get("ms", {}).items()]
    why += [f"{p} refused: {reason}" for p, reason in choice.get("refused", {}).items()]
    return f"{choice['precision']} ({', '.join(why)})" if why else str(choice["precision"])


def _bundles(root: Path, choices: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for manifest_path in sorted(root.glob("*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            name = manifest_path.parent.name
            out.append({"name": name, "version": "?", "accuracy": [], "runs": "–"})
            continue
        out.append(
            {
                "name": manifest.get("name", manifest_path.parent.name),
                "version": str(manifest.get("version", "?")),
                "accuracy": _figures(manifest.get("accuracy", {}))[:MAX_FIGURES],
                "runs": _runs(choices.get(manifest.get("name", manifest_path.parent.name))),
            }
        )
    return out


def _figures(accuracy: Any) -> list[str]:
    """One line per accuracy record: its headline figure and whether it passed its gate
    (the manifest keeps the details: samples, tolerances, settings)."""
    if not isinstance(accuracy, dict):
        return []
    lines = []
    for group, record in accuracy.items():
        if not isinstance(record, dict):
            lines.append(f"{group}: {_num(record)}")
            continue
        text = group
        if "metric" in record and "value" in record:
            text += f" {record['metric']} = {_num(record['value'])}"
            if "threshold" in record:
                text += f" (limit {_num(record['threshold'])})"
        passed = record.get("passed")
        verdict = "passed" if passed is True else "FAILED" if passed is False else None
        lines.append(f"{text}: {verdict}" if verdict else text)
    return lines


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@bp.post("/api/models")
def upload() -> ResponseReturnValue:
    updates = optional("updates")
    if updates is None:
        return jsonify(errors=["model updates are off (set ota.enabled and restart)"]), 503
    request.max_content_length = MAX_BUNDLE
    upload = request.files.get("bundle")
    if upload is None or not upload.filename:
        return jsonify(errors=["bundle: no file sent (form field 'bundle')"]), 400
    work = Path(tempfile.mkdtemp(prefix="web-upload-"))
    try:
        path = work / "upload.bundle"  # never the client's file name: it is not ours to trust
        upload.save(path)
        log.info("web: installing an uploaded bundle (%d bytes)", path.stat().st_size)
        try:
            status = updates.install(str(path))
        except AgentError as exc:
            return jsonify(errors=[str(exc)]), 409
    finally:
        shutil.rmtree(work, ignore_errors=True)
    job = status.get("job") or {}
    result = job.get("result")
    body = {"result": result, "reason": job.get("reason"), "agent": status}
    if result in GOOD:
        return jsonify(body)
    body["errors"] = [f"update {result}: {job.get('reason') or 'no reason given'}"]
    return jsonify(body), 422
