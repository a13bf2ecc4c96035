"""Artifact writers: every format is made from the same built component tree."""
