"""Write-only secrets on replace: a client that read `{"set": true}` may send it back.

Walking the incoming document next to the stored one, each mask is swapped for the
stored value at the same path, so an operator can edit a backend's timeout without
knowing (or re-sending) its API key. Pure.
"""

from __future__ import annotations

from typing import Any

from common.config import SECRET_MASK
from common.errors import FieldError, ValidationFailed


def restore_masked(incoming: Any, stored: Any, path: str = "") -> Any:
    if incoming == SECRET_MASK:
        if stored is None or stored == SECRET_MASK or isinstance(stored, dict | list):
            raise ValidationFailed(
                "a secret has no stored value to keep",
                [
                    FieldError(
                        path or "$",
                        'send the secret itself; {"set": true} only keeps an existing one',
                    )
                ],
            )
        return stored
    if isinstance(incoming, dict):
        base = stored if isinstance(stored, dict) else {}
        return {
            k: restore_masked(v, base.get(k), f"{path}.{k}" if path else k)
            for k, v in incoming.items()
        }
    if isinstance(incoming, list):
        base_list = stored if isinstance(stored, list) else []
        return [
            restore_masked(v, base_list[i] if i < len(base_list) else None, f"{path}.{i}")
            for i, v in enumerate(incoming)
        ]
    return incoming
