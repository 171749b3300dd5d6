"""LM Studio model names."""

from __future__ import annotations

import pytest
from hanzo_lmstudio.names import ModelName
from hanzo_lmstudio.provider import LMStudioProvider

from hanzo_cli.errors import HanzoError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen/Qwen3-Embedding-0.6B-GGUF", ModelName("Qwen", "Qwen3-Embedding-0.6B-GGUF")),
        ("Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0", ModelName("Qwen", "Qwen3-Embedding-0.6B-GGUF", quant="Q8_0")),
        (
            "lmstudio-community/Qwen3-4B-GGUF@q4_k_m",
            ModelName("lmstudio-community", "Qwen3-4B-GGUF", quant="q4_k_m"),
        ),
        ("org/repo/model-Q8_0.gguf", ModelName("org", "repo", file="model-Q8_0.gguf")),
        (
            "org/repo/Model-Q8_0-00001-of-00002.GGUF",
            ModelName("org", "repo", file="Model-Q8_0-00001-of-00002.GGUF"),
        ),
    ],
)
def test_parse(text: str, expected: ModelName) -> None:
    assert ModelName.parse(text) == expected
    assert LMStudioProvider().accepts(text)


@pytest.mark.parametrize(
    "text",
    [
        "justaname",
        "../repo",
        "org/..",
        "org/../x.gguf",
        "/etc/passwd",
        "org/repo/sub/file.gguf",
        "org/repo/file.txt",
        "org/repo/.hidden.gguf",
        "org/repo:",
        "org/repo:bad quant",
        "org/repo:../x",
        "org/re@po:Q8_0",
        "org\\evil/repo",
        "org/repo\x00:Q8_0",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(HanzoError):
        ModelName.parse(text)
    assert not LMStudioProvider().accepts(text)


def test_str_round_trips() -> None:
    for text in ("org/repo", "org/repo:Q8_0", "org/repo/file.gguf"):
        assert str(ModelName.parse(text)) == text
