"""The first-party plugins, and the ``hanzo-cli`` extra (and distribution) that installs each.

A user who asks for something a missing first-party plugin provides is told the exact command to
install it; ``hanzo plugins:install ollama`` maps the short name to its distribution.
"""

from __future__ import annotations

#: Short plugin name -> (extra of hanzo-cli, distribution name).
FIRST_PARTY: dict[str, tuple[str, str]] = {
    "ollama": ("ollama", "hanzo-ollama"),
    "huggingface": ("huggingface", "hanzo-huggingface"),
    "lmstudio": ("lmstudio", "hanzo-lmstudio"),
    "llamacpp": ("llamacpp", "hanzo-llamacpp"),
    "ctransformers": ("ctransformers", "hanzo-ctransformers"),
    "mistralrs": ("mistralrs", "hanzo-mistralrs"),
}

#: What a missing plugin would have provided -> the short plugin name.
PROVIDED_BY: dict[tuple[str, str], str] = {
    ("provider", "ollama"): "ollama",
    ("provider", "huggingface"): "huggingface",
    ("provider", "hf"): "huggingface",
    ("provider", "lmstudio"): "lmstudio",
    ("provider", "lms"): "lmstudio",
    ("runtime", "llamacpp"): "llamacpp",
    ("runtime", "ctransformers"): "ctransformers",
    ("runtime", "mistralrs"): "mistralrs",
    ("command", "model:push"): "ollama",
}


def install_command(plugin: str) -> str:
    """``pip install 'hanzo-cli[ollama]'`` for a first-party plugin's short name."""
    extra = FIRST_PARTY[plugin][0]
    return f"pip install 'hanzo-cli[{extra}]'"


def missing_plugin_hint(kind: str, name: str) -> str:
    """``"; install it with: pip install 'hanzo-cli[x]'"`` for known plugins, else ``""``."""
    plugin = PROVIDED_BY.get((kind, name.lower()))
    if plugin is None:
        return ""
    return f"; install it with: {install_command(plugin)}"


def known_provider_prefixes() -> set[str]:
    """Provider names and prefixes of first-party plugins, installed or not."""
    return {name for (kind, name) in PROVIDED_BY if kind == "provider"}
