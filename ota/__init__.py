"""Over-the-air model updates that never brick a camera.

A model update travels as one signed file (``name-version.bundle``: a tar archive of a
model bundle plus an ed25519 ``signature``, see :mod:`ota.signing`). On the device the
update agent (:mod:`ota.agent`) downloads it, verifies it, installs it into the inactive
one of two complete slots of bundles, switches an atomic ``active`` pointer, runs a
health gate and either commits or rolls back. Every step is persisted before its side
effects, so a power cut or a SIGKILL at any instant leaves the camera on a complete,
verified set of models, and the next start finishes the job.

The on-disk layout is described in :mod:`ota.layout`; the command line in :mod:`ota.cli`.
Nothing is imported here, so ``import ota.agent`` stays light.
"""
