"""The project's own x2 super-resolution network: data, training, export, evaluation.

Training needs PyTorch (``.venv-train``, ``make train-sr``); evaluation and the daemon
need only NumPy, OpenCV and ONNX Runtime.
"""
