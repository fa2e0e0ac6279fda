"""``python -m tagger.cli``: the same as the ``tagger`` command."""

from tagger.cli import main

main(prog_name="tagger")
