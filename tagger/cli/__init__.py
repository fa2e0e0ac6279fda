"""Command-line interface: thin click commands over the library functions.

``stages`` holds prepare, train, evaluate, annotate and run; ``auxiliary`` the classify and
generate groups; ``common`` what they share. Options that are fields of an options dataclass
are generated from its field metadata (:func:`tagger.options.click_options`).
"""

import click

from tagger import __version__
from tagger.cli import auxiliary, serving, stages
from tagger.cli.common import TaggerGroup
from tagger.cli.export import export


@click.group(cls=TaggerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagger")
def main() -> None:
    """Sequence labeling with a BiLSTM-CRF: prepare → train → evaluate → annotate."""


for _command in (*stages.COMMANDS, export, serving.serve, auxiliary.classify, auxiliary.generate):
    main.add_command(_command)
