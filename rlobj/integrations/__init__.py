"""rlobj objectives inside the trainers people already run: TRL and verl (DESIGN.md section 6b).

* :mod:`rlobj.integrations.trl`: :class:`~rlobj.integrations.trl.RlobjGRPOTrainer`, a TRL
  ``GRPOTrainer`` whose advantages and loss come from any rlobj chain (``pip install rlobj[trl]``).
* :mod:`rlobj.integrations.verl`: :func:`~rlobj.integrations.verl.register`, which registers a
  chain as a verl policy loss and advantage estimator by name (``pip install rlobj[verl]``).

Nothing else in rlobj imports this package; each module imports its peer only when used.
"""

__all__: list[str] = []
