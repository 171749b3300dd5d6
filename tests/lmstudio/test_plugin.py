"""The plugin as hanzo loads it."""

from __future__ import annotations

import subprocess
import sys

from hanzo_lmstudio.provider import LMStudioProvider

from hanzo_cli.plugins import registry
from tests.helpers import hanzo_json


def test_registered_under_its_name_and_prefix() -> None:
    reg = registry()
    assert isinstance(reg.provider("lmstudio"), LMStudioProvider)
    assert reg.provider("lms") is reg.provider("lmstudio")
    plugins = {p["name"]: p for p in hanzo_json("plugins", "--json")}
    assert plugins["lmstudio"]["distribution"] == "hanzo-lmstudio"
    assert plugins["lmstudio"]["hooks"] == ["register_providers"]


def test_importing_the_plugin_is_cheap() -> None:
    """Only the hook is imported when hanzo starts; the provider, httpx and the Hub come later."""
    code = "import sys, hanzo_lmstudio\n"
    code += "print(sorted(m for m in sys.modules if m.startswith(('httpx', 'hanzo'))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['hanzo_cli', 'hanzo_cli.api', 'hanzo_cli.hookspecs', 'hanzo_lmstudio']"
