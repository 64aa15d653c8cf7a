"""Recipes for the keypoint face codec: the expression basis learned from tracked clips."""
