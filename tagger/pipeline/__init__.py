"""``tagger run``: pipeline files of stages, skip logic and the runner."""
