"""The camera's microphone: WAV I/O, resampling, noise removal and its evaluation."""
