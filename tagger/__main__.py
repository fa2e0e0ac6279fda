"""``python -m tagger`` (and ``torchrun -m tagger``): the same as the ``tagger`` command."""

from tagger.cli import main

main(prog_name="tagger")
