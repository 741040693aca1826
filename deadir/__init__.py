"""deadir: algebraic dead directions of normalisation layers.

In a LayerNorm the vector γ⁻¹ is an exact kernel vector of the centred covariance of
the outputs, for every input; RMSNorm has none. deadir proves this, fuzzes it, reads
it off checkpoints from γ alone and verifies it with a forward pass.
"""

from __future__ import annotations

from deadir import (
    scan,  # the callable module: deadir.scan(path) and deadir.scan.compare_to_baseline(...)
    verify,  # the callable package (deadir/verify/__init__.py): deadir.verify(model, inputs)
)
from deadir.bound import KernelErrorBound, kernel_error_bound, unit_roundoff
from deadir.classify import NormClass, classify_norm
from deadir.covariance import CovarianceAccumulator
from deadir.direction import dead_channels, effective_scale, inverse_scale_direction, live_fraction
from deadir.errors import (
    CheckpointError,
    DeadirError,
    DegenerateScaleError,
    InputShapeError,
    UnknownNormError,
)
from deadir.fisher import (
    DeadDirection,
    FisherReport,
    dead_parameter_directions,
    directional_fisher,
    fisher_report,
    function_change,
)
from deadir.kernel import KernelReport, measure_kernel, projection_std
from deadir.models import final_norm, find_norms, random_init_like
from deadir.models.inputs import make_inputs
from deadir.models.sites import Site
from deadir.norms import NormSpec, known_norm_classes, register_norm_class
from deadir.scan import ScanReport, ScanSite
from deadir.verify import VerifyReport, verify_against_init

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CovarianceAccumulator",
    "DeadDirection",
    "DeadirError",
    "DegenerateScaleError",
    "FisherReport",
    "InputShapeError",
    "KernelErrorBound",
    "KernelReport",
    "NormClass",
    "NormSpec",
    "ScanReport",
    "ScanSite",
    "Site",
    "UnknownNormError",
    "VerifyReport",
    "__version__",
    "classify_norm",
    "dead_channels",
    "dead_parameter_directions",
    "directional_fisher",
    "effective_scale",
    "final_norm",
    "find_norms",
    "fisher_report",
    "function_change",
    "inverse_scale_direction",
    "kernel_error_bound",
    "known_norm_classes",
    "live_fraction",
    "make_inputs",
    "measure_kernel",
    "projection_std",
    "random_init_like",
    "register_norm_class",
    "scan",
    "unit_roundoff",
    "verify",
    "verify_against_init",
]
