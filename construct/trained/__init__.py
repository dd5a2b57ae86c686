"""Trained in-context learners beside the constructions (the paper's experiments).

``model`` (a GPT-2-style transformer in equinox), ``train`` (the training
command), ``predictors`` (one interface for the trained model, the compiled
networks and the closed forms), ``metrics`` (SPD, ILWD, bootstrap
intervals), ``probes`` (pooled probes per layer and k), ``experiments``
(the paper's four comparisons, in small), ``curve`` (a run's logged
learning curve and the law fitted to it) and ``figures`` (their pictures).
"""
