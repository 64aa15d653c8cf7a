"""Keypoint face codec: landmarks to a few bytes per frame and back."""
