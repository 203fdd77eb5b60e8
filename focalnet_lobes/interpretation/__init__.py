"""Interpretation: maps, masks, their metrics, and the methods trained after the fact.

* :mod:`.interpret`: every interpreter (by-design maps, controls, gradients) and the
  maps -> masks step;
* :mod:`.metrics`: FID-I, FA, FF, AI, AD, AG, sparsity, complexity per clip;
* :mod:`.evaluation`: the one evaluator (interpreter -> maps -> quantile masks ->
  per-clip metrics), the overlap test, listenable examples;
* :mod:`.stats`: bootstrap confidence intervals and paired tests (SciPy);
* :mod:`.comparison`: tables and paired differences between methods;
* :mod:`.piq`, :mod:`.lmac`, :mod:`.posthoc`: post-hoc interpreters trained on a
  frozen classifier, and what their training recipes share.
"""
