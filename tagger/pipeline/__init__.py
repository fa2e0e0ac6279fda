"""``tagger run``: pipeline files of stages (spec, command), skip logic (stamps) and the runner."""
