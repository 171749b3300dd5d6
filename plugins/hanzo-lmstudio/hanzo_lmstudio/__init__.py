"""hanzo's LM Studio provider: ``hanzo model:pull --provider lmstudio org/repo:QUANT``.

Only the hook lives here; the provider's modules (and httpx) are imported when it is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hanzo_cli.api import hookimpl

if TYPE_CHECKING:
    from hanzo_cli.api import Provider


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    from hanzo_lmstudio.provider import LMStudioProvider

    register(LMStudioProvider())
