"""Model reference parsing: [provider:]name, property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hanzo_cli.errors import HanzoError
from hanzo_cli.refs import ModelRef, parse_ref

PREFIXES = {"ollama", "huggingface", "hf", "lmstudio", "local"}

name_chars = st.characters(min_codepoint=33, max_codepoint=126)
names = st.text(name_chars, min_size=1, max_size=60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("qwen3-embedding-8b", ModelRef(None, "qwen3-embedding-8b")),
        ("dengcao/Qwen3-Embedding-8B:Q5_K_M", ModelRef(None, "dengcao/Qwen3-Embedding-8B:Q5_K_M")),
        ("hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0", ModelRef("hf", "Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0")),
        ("HF:org/repo", ModelRef("hf", "org/repo")),
        ("ollama:all-minilm:latest", ModelRef("ollama", "all-minilm:latest")),
        ("127.0.0.1:5000/team/qwen3-embed:q8", ModelRef(None, "127.0.0.1:5000/team/qwen3-embed:q8")),
        ("hf.co/org/repo:Q4_K_M", ModelRef(None, "hf.co/org/repo:Q4_K_M")),
        ("  local:minilm  ", ModelRef("local", "minilm")),
        ("unknownprovider:x", ModelRef(None, "unknownprovider:x")),
    ],
)
def test_examples(text: str, expected: ModelRef) -> None:
    assert parse_ref(text, PREFIXES) == expected


@pytest.mark.parametrize("text", ["", "   ", "a b", "hf:", "x\x00y", "tab\there", "a" * 2000])
def test_rejects(text: str) -> None:
    with pytest.raises(HanzoError):
        parse_ref(text, PREFIXES)


@given(st.sampled_from(sorted(PREFIXES)), names)
def test_provider_prefix_round_trips(prefix: str, name: str) -> None:
    ref = parse_ref(f"{prefix}:{name}", PREFIXES)
    assert ref == ModelRef(prefix, name)
    assert parse_ref(str(ref), PREFIXES) == ref


@given(names)
def test_never_crashes_and_is_stable(text: str) -> None:
    try:
        ref = parse_ref(text, PREFIXES)
    except HanzoError:
        return
    # The provider, if any, is a known prefix; the rest is passed through unchanged.
    assert ref.provider is None or ref.provider in PREFIXES
    assert str(ref).lower() == text.strip().lower() or ref.provider is not None
    assert parse_ref(str(ref), PREFIXES) == ref


@given(names.filter(lambda s: ":" not in s))
def test_bare_names_have_no_provider(name: str) -> None:
    assert parse_ref(name, PREFIXES).provider is None
