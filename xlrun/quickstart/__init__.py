"""The offline quickstart: a generated multilingual parallel corpus and a tiny encoder.

:mod:`xlrun.quickstart.corpus` generates the training and evaluation data,
:mod:`xlrun.quickstart.dataset` exposes it as the ``quickstart`` evaluation dataset, and
:mod:`xlrun.quickstart.tiny_model` builds the ``quickstart:tiny`` encoder and tokenizer.
"""
