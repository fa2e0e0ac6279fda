"""Command-line interface: thin click commands over the library functions.

``stages`` holds prepare, train, evaluate, annotate and run; ``auxiliary`` the classify and
generate groups; ``common`` what they share. Options that are fields of an options dataclass
are generated from its field metadata (:func:`tagger.options.click_options`).
"""

import os

# Our matrices are small: with OpenMP's default spin-waiting, two intra-op threads on a busy
# 2-core machine run up to 5x slower than one. Passive waiting removes that cliff. It must be
# set before torch initialises OpenMP, and importing the commands below imports torch, so it
# comes first; a value the user set wins. The program sets it, not the library: importing
# ``tagger`` leaves the environment alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from tagger import __version__  # noqa: E402
from tagger.cli import auxiliary, stages  # noqa: E402
from tagger.cli.common import TaggerGroup  # noqa: E402


@click.group(cls=TaggerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagger")
def main() -> None:
    """Sequence labeling with a BiLSTM-CRF: prepare → train → evaluate → annotate."""


for _command in (*stages.COMMANDS, auxiliary.classify, auxiliary.generate):
    main.add_command(_command)
