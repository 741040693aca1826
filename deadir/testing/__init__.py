"""deadir.testing: Hypothesis strategies, assertion helpers and a pytest plugin for norm implementations.

Run the whole pack on your own norm::

    from deadir.testing import run_pack
    report = run_pack(lambda d: MyLayerNorm(d), expect="mean-centring", dtype="float32")
    assert report.passed, report.render()

or from the shell (``deadir check-norm package.module:factory --expect mean-centring``), or
in pytest with the ``deadir_norm`` marker and the ``deadir_pack`` fixture (see
:mod:`deadir.testing.plugin`). Tolerances come from the T10 bound
(:func:`deadir.bound.kernel_error_bound`), never from a magic number.
"""

from __future__ import annotations

from deadir.testing.assertions import (
    Measurement,
    NormPropertyError,
    PreparedNorm,
    assert_matches_reference,
    assert_mean_centring_kernel,
    assert_no_kernel,
    assert_shift_invariant,
    check_hyperplane,
    check_kernel,
    check_no_kernel,
    check_reference,
    check_shift,
    forward_error_bound,
    prepare_norm,
    reference_spec_for,
)
from deadir.testing.pack import EXPECTATIONS, PROPERTIES, PackReport, PropertyOutcome, load_factory, run_pack
from deadir.testing.strategies import (
    activations,
    betas,
    dims,
    dtype_name,
    epsilons,
    gammas,
    round_to_dtype,
)

__all__ = [
    "EXPECTATIONS",
    "PROPERTIES",
    "Measurement",
    "NormPropertyError",
    "PackReport",
    "PreparedNorm",
    "PropertyOutcome",
    "activations",
    "assert_matches_reference",
    "assert_mean_centring_kernel",
    "assert_no_kernel",
    "assert_shift_invariant",
    "betas",
    "check_hyperplane",
    "check_kernel",
    "check_no_kernel",
    "check_reference",
    "check_shift",
    "dims",
    "dtype_name",
    "epsilons",
    "forward_error_bound",
    "gammas",
    "load_factory",
    "prepare_norm",
    "reference_spec_for",
    "round_to_dtype",
    "run_pack",
]
