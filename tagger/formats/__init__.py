"""Corpus readers and writers, one per format."""
