"""``tagger evaluate``: score a tagger model on gold data, analyse its errors, write a report.

:func:`tagger.commands.evaluate.run.evaluate` reads gold data (any corpus file ``tagger prepare``
reads, or a prepared directory and split), tags it with the model and returns the figures as a
dict; with ``out`` it also writes::

    metrics.json        every figure below
    predictions.conll   token, gold, predicted (space separated; IOB2 for entity tasks)
    report.md           tables and the plots
    per_type_f1.png     F1 per entity type (per label for plain tasks)
    confusion.png       gold type x predicted type (labels for plain tasks)
    learning_curve.png  loss and dev score per epoch from the model's metrics.jsonl

Gold tags in IOB1, IOB2 or BIOES are converted to the model's scheme first (conversion reads
chunks like conlleval, so gold is always well formed after it). Modules:

    gold.py      reading gold data (corpus file or prepared split), format options, gold schemes
    scoring.py   strict (seqeval) and conlleval entity figures, label figures
    errors.py    error analysis: entity error kinds, confusions, top errors with examples
    oov.py       accuracy on out-of-vocabulary words, recall of entities with them
    curve.py     the learning curve from the model's metrics.jsonl
    outputs.py   predictions.conll and the other files
    plots.py     the PNG plots
    report.py    report.md and the summary table the CLI prints
    run.py       evaluate(): load, read, predict, score, write
"""
