"""Scoring: a directory of images through the exported SavedModel, one row each."""
