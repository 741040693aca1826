"""JSON from untrusted files: a nesting-depth check that runs before ``json.loads`` (which recurses)."""

from __future__ import annotations

__all__ = ["json_depth_ok"]


def json_depth_ok(text: str, limit: int) -> bool:
    """Whether the JSON text nests arrays/objects at most ``limit`` deep (iterative: no recursion)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True
