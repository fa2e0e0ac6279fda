"""The stages behind the CLI commands, as library functions."""
