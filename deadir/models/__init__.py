"""Instantiated models: their norm sites, loading and random init, and the inputs they read.

* :mod:`deadir.models.sites`: :class:`Site`, :func:`find_norms`, :func:`final_norm` (over the
  architecture records of :mod:`deadir.arch`).
* :mod:`deadir.models.loading`: :func:`load_model`, :func:`random_init_like`,
  :func:`tiny_config`, :func:`random_model`.
* :mod:`deadir.models.inputs`: :func:`make_inputs` (the default input distribution per modality).
* :mod:`deadir.models.corpus`: the shipped English text those inputs tokenise.
"""

from __future__ import annotations

from deadir.models.loading import LoadedModel, load_model, random_init_like, random_model, tiny_config
from deadir.models.sites import Site, final_norm, find_norms, sites_table, spec_from_probe

__all__ = [
    "LoadedModel",
    "Site",
    "final_norm",
    "find_norms",
    "load_model",
    "random_init_like",
    "random_model",
    "sites_table",
    "spec_from_probe",
    "tiny_config",
]
