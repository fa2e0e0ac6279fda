"""Neural network modules: the CRF, the BiLSTM-CRF tagger, the classifier and language model."""
