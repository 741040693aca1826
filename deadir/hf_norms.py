"""The Hugging Face ``transformers`` normalisation classes deadir reads, as data.

Most LayerNorm families (GPT-2, OPT, GPT-NeoX/Pythia, BLOOM, Falcon, Phi, BERT,
RoBERTa, MPNet, ViT, CLIP, Whisper) use ``torch.nn.LayerNorm`` directly and need no
entry: :meth:`NormSpec.from_module` already reads it. The RMSNorm families each
define their own class; this table records, for each one, what its ``forward`` really
computes (read from transformers 5.23's ``modeling_*.py``):

================================  =========  ===============  ==========  =====  ==========================
class                             kind       eps attribute    scale       bias   note
================================  =========  ===============  ==========  =====  ==========================
LlamaRMSNorm                      rmsnorm    variance_epsilon w           no
MistralRMSNorm                    rmsnorm    variance_epsilon w           no
MixtralRMSNorm                    rmsnorm    variance_epsilon w           no
Qwen2RMSNorm                      rmsnorm    variance_epsilon w           no
Qwen2MoeRMSNorm                   rmsnorm    variance_epsilon w           no
Qwen3RMSNorm                      rmsnorm    variance_epsilon w           no     also q_norm/k_norm (head dim)
Qwen3MoeRMSNorm                   rmsnorm    variance_epsilon w           no
Phi3RMSNorm                       rmsnorm    variance_epsilon w           no
Olmo2RMSNorm                      rmsnorm    variance_epsilon w           no     q_norm/k_norm over all heads
T5LayerNorm                       rmsnorm    variance_epsilon w           no     named LayerNorm, does NOT centre
GemmaRMSNorm                      rmsnorm    eps              1 + w       no     weight initialised to 0
Gemma2RMSNorm                     rmsnorm    eps              1 + w       no
Gemma3RMSNorm                     rmsnorm    eps              1 + w       no
GraniteRMSNorm                    rmsnorm    variance_epsilon w           no
CohereLayerNorm                   layernorm  variance_epsilon w           no     centres; no β (llama.cpp: command-r)
DebertaLayerNorm                  layernorm  variance_epsilon w           yes    DeBERTa (v1)
OlmoLayerNorm                     layernorm  (fixed 1e-5)     none        no     F.layer_norm without affine
NoNorm (MobileBERT)               affine-only (none)          w           yes    y = w⊙x + b: no normalisation
================================  =========  ===============  ==========  =====  ==========================

Every entry is tested against the real module's forward (tests/test_hf_norms.py),
with a random γ and a distinctive ε so a wrong kind, offset or ε attribute fails.
Importing this module does not import ``transformers``: the table is keyed by
qualified class name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deadir.errors import InputShapeError
from deadir.norms import NormKind, NormSpec, _dtype_name, _param, register_norm_class


@dataclasses.dataclass(frozen=True)
class HFNormEntry:
    """How to read one Hugging Face norm class.

    Attributes:
        qualified_name: ``module.qualname`` of the class in transformers.
        kind: what ``forward`` computes ("rmsnorm" or "layernorm").
        eps_attr: the attribute holding ε, or None when ε is fixed in the code.
        fixed_eps: ε used when ``eps_attr`` is None.
        weight_offset: 1.0 for Gemma's (1 + w) scaling, else 0.0.
        has_weight: whether the class can carry a learned scale ``weight``.
        has_bias: whether the class carries a learned shift ``bias`` (read as β).
    """

    qualified_name: str
    kind: NormKind
    eps_attr: str | None = "variance_epsilon"
    fixed_eps: float = 0.0
    weight_offset: float = 0.0
    has_weight: bool = True
    has_bias: bool = False

    @property
    def class_name(self) -> str:
        """The bare class name (``LlamaRMSNorm``)."""
        return self.qualified_name.rsplit(".", 1)[1]

    def read(self, module: Any) -> NormSpec:
        """Read ``module`` (an instance of this class) into a NormSpec (weights in float64).

        Raises:
            InputShapeError: the weight is not a vector, or ε/normalised size cannot be read.
        """
        weight = None
        if self.has_weight and getattr(module, "weight", None) is not None:
            w = module.weight
            if getattr(w, "ndim", 1) != 1:
                raise InputShapeError(
                    f"{self.class_name}.weight: expected a vector, got shape {tuple(w.shape)}; "
                    "deadir reads norms with one scale per channel of the last axis"
                )
            weight = _param(module, "weight")
        if self.eps_attr is None:
            eps = self.fixed_eps
        else:
            value = getattr(module, self.eps_attr, None)
            if value is None:
                raise InputShapeError(f"{self.class_name}: has no ε attribute {self.eps_attr!r}")
            eps = float(value)
        d = None
        if weight is None:
            shape = getattr(module, "normalized_shape", None)
            if shape is None:
                raise InputShapeError(f"{self.class_name}: no weight and no normalised size to read d from")
            dims = (shape,) if isinstance(shape, int) else tuple(shape)
            if len(dims) != 1:
                raise InputShapeError(f"{self.class_name}: normalised shape {dims} has more than one dimension")
            d = int(dims[0])
        bias = _param(module, "bias") if self.has_bias else None
        return NormSpec(
            self.kind, weight, bias, eps, weight_offset=self.weight_offset, d=d,
            dtype=_dtype_name(module), source=self.class_name,
        )


def _m(family: str, cls: str) -> str:
    return f"transformers.models.{family}.modeling_{family}.{cls}"


HF_NORM_TABLE: tuple[HFNormEntry, ...] = (
    HFNormEntry(_m("llama", "LlamaRMSNorm"), "rmsnorm"),
    HFNormEntry(_m("mistral", "MistralRMSNorm"), "rmsnorm"),
    HFNormEntry(_m("mixtral", "MixtralRMSNorm"), "rmsnorm"),
    HFNormEntry(_m("qwen2", "Qwen2RMSNorm"), "rmsnorm"),
    HFNormEntry(_m("qwen2_moe", "Qwen2MoeRMSNorm"), "rmsnorm"),
    HFNormEntry(_m("qwen3", "Qwen3RMSNorm"), "rmsnorm"),
    HFNormEntry(_m("qwen3_moe", "Qwen3MoeRMSNorm"), "rmsnorm"),
    HFNormEntry(_m("phi3", "Phi3RMSNorm"), "rmsnorm"),
    HFNormEntry(_m("olmo2", "Olmo2RMSNorm"), "rmsnorm"),
    HFNormEntry(_m("t5", "T5LayerNorm"), "rmsnorm"),
    HFNormEntry(_m("gemma", "GemmaRMSNorm"), "rmsnorm", eps_attr="eps", weight_offset=1.0),
    HFNormEntry(_m("gemma2", "Gemma2RMSNorm"), "rmsnorm", eps_attr="eps", weight_offset=1.0),
    HFNormEntry(_m("gemma3", "Gemma3RMSNorm"), "rmsnorm", eps_attr="eps", weight_offset=1.0),
    HFNormEntry(_m("granite", "GraniteRMSNorm"), "rmsnorm"),
    HFNormEntry(_m("cohere", "CohereLayerNorm"), "layernorm"),
    HFNormEntry(_m("deberta", "DebertaLayerNorm"), "layernorm", has_bias=True),
    HFNormEntry(_m("olmo", "OlmoLayerNorm"), "layernorm", eps_attr=None, fixed_eps=1e-5, has_weight=False),
    HFNormEntry(_m("mobilebert", "NoNorm"), "affine-only", eps_attr=None, fixed_eps=0.0, has_bias=True),
)
"""Every Hugging Face norm class deadir reads by table (see the module docstring)."""

for _entry in HF_NORM_TABLE:
    register_norm_class(_entry.qualified_name, _entry.read)
