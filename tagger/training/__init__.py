"""The one training loop of every model kind (tagger, classifier, language model).

* :mod:`~tagger.training.loop`: the epoch loop, a generator of epoch results that a model kind
  plugs into through a :class:`~tagger.training.loop.Task`;
* :mod:`~tagger.training.setup`: device and seeding;
* :mod:`~tagger.training.optim`: optimisers and learning-rate schedules;
* :mod:`~tagger.training.ema`: the exponential moving average of the weights;
* :mod:`~tagger.training.checkpoint`: one safetensors checkpoint per run, nothing unpickled;
* :mod:`~tagger.training.rundir`: the output directory of a run (metrics.jsonl, summary, best weights);
* :mod:`~tagger.training.resume`: which options a resumed run takes from the command line;
* :mod:`~tagger.training.batches`: seeded length-bucketed batches;
* :mod:`~tagger.training.progress`: the progress bar.
"""
