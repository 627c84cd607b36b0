"""Old names of the two paper quantities that moved from ``rlobj.ops.vocab`` beside their terms.

Lp-Reg's proxy log-probability and SIREN's nucleus entropy are paper math, so they live in
``rlobj.terms`` now (:mod:`rlobj.terms.regularizers.lp_reg_proxy`,
:mod:`rlobj.terms.regularizers.siren_entropy`), as :class:`~rlobj.ops.vocab.protocol.VocabQuery`
implementations. Code written against the old
places (``from rlobj.ops.vocab import ProxyLogProb``, ``view.proxy_logp(...)``,
``view.top_p_entropy(...)``) keeps working through this table, with a
:class:`DeprecationWarning` naming the new place. The lookup is by module path at call time, so
the ops layer still imports nothing from the terms layer (DESIGN.md section 1).
"""

import importlib
import warnings

__all__ = ["MOVED", "moved"]

#: old name -> (new module, name there)
MOVED = {
    "ProxyLogProb": ("rlobj.terms.regularizers.lp_reg_proxy", "ProxyLogProb"),
    "proxy_logp": ("rlobj.terms.regularizers.lp_reg_proxy", "proxy_logp"),
    "TopPEntropy": ("rlobj.terms.regularizers.siren_entropy", "TopPEntropy"),
    "top_p_entropy": ("rlobj.terms.regularizers.siren_entropy", "top_p_entropy"),
}


def moved(name: str, old: str):
    """The object ``name`` at its new place; warns that ``old`` is deprecated."""
    module, attribute = MOVED[name]
    warnings.warn(f"{old} moved: use {module}.{attribute} (the rlobj.ops.vocab name will be removed)",
                  DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(module), attribute)
