"""A normalisation *site*: one norm in a model or checkpoint, with where it sits and what it is.

Shared by the two readers: ``find_norms`` (an instantiated model) and ``scan`` (a
checkpoint's tensors, no model).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args

from deadir.norms import NormSpec

Role = Literal["final", "block-input", "block-output", "attention-qk", "embedding", "other"]
Stack = Literal["decoder", "encoder", "vision", "text", "audio", ""]
ROLES: tuple[str, ...] = get_args(Role)
STACKS: tuple[str, ...] = get_args(Stack)


@dataclasses.dataclass(frozen=True, eq=False)
class Site:
    """One normalisation layer.

    Attributes:
        path: module path in the model ("model.layers.3.input_layernorm"), or for a
            checkpoint the tensor-name prefix of its weight ("blk.3.attn_norm").
        spec: the norm as data (kind, γ, β, ε, weight offset, groups).
        role: "final" (the last norm before the head), "block-input" (pre-LN norms and
            the first norm of a block), "block-output" (post-LN norms, post-attention /
            post-MLP norms), "attention-qk" (q/k norms), "embedding" (embedding norm), "other".
        stack: which tower it belongs to: "decoder", "encoder", "vision", "text", "audio" or "".
        block: the block index, or None outside blocks.
        class_name: the module class (or "checkpoint tensor").
        probed: True when the kind was found by probing (classify_norm), not from the table.
    """

    path: str
    spec: NormSpec
    role: Role
    stack: Stack = ""
    block: int | None = None
    class_name: str = ""
    probed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (without the weight vectors)."""
        return {
            "path": self.path,
            "kind": self.spec.kind,
            "d": self.spec.size,
            "eps": self.spec.eps,
            "weight_offset": self.spec.weight_offset,
            "has_bias": self.spec.bias is not None,
            "groups": self.spec.groups,
            "role": self.role,
            "stack": self.stack,
            "block": self.block,
            "class_name": self.class_name,
            "probed": self.probed,
        }
