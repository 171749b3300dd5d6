"""Which runtime runs a model: architecture, task, priority, --runtime and runtime.default."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from hanzo_cli import plugins
from hanzo_cli.config import set_setting
from hanzo_cli.embedding import select_runtime
from hanzo_cli.errors import HanzoError, MissingPluginError
from hanzo_cli.hookspecs import hookimpl
from hanzo_cli.plugins import registry
from hanzo_cli.runtimes import Runtime


def names() -> list[str]:
    return [r.name for r in registry().runtimes]


class FakeRuntime(Runtime):
    tasks = frozenset({"embed"})
    architectures = frozenset({"llama"})

    def __init__(self, name: str, priority: int) -> None:
        self.name, self.priority = name, priority  # type: ignore[misc]

    def available(self) -> bool:
        return True


class FakePlugin:
    def __init__(self, *runtimes: Runtime) -> None:
        self.runtimes = runtimes

    @hookimpl
    def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
        for runtime in self.runtimes:
            register(runtime)


def test_runtimes_are_ordered_by_priority_then_name_whatever_the_load_order(
    llama_cpp: None, ctransformers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert names() == ["llamacpp", "ctransformers"]
    assert select_runtime("llama", "embed").name == "llamacpp"
    assert select_runtime("qwen3", "rerank").name == "llamacpp"

    import hanzo_ctransformers
    import hanzo_llamacpp

    monkeypatch.setenv("HANZO_PLUGINS", "")
    plugins.reset_for_tests()
    plugins.load_plugins()
    plugins.pm.register(FakePlugin(FakeRuntime("zeta", 10), FakeRuntime("alpha", 10)), name="fakes")
    plugins.pm.register(hanzo_ctransformers, name="ctransformers")  # registered before llamacpp
    plugins.pm.register(hanzo_llamacpp, name="llamacpp")
    assert names() == ["alpha", "llamacpp", "zeta", "ctransformers"]
    assert select_runtime("llama", "embed").name == "alpha"


def test_runtime_default_setting_prefers_a_runtime_where_it_fits(
    llama_cpp: None, ctransformers: None
) -> None:
    set_setting("runtime.default", "ctransformers")
    assert select_runtime("llama", "embed").name == "ctransformers"
    assert select_runtime("qwen3", "embed").name == "llamacpp"  # ctransformers cannot run qwen3


def test_unknown_architecture_names_it_and_lists_what_each_runtime_supports(
    llama_cpp: None, ctransformers: None
) -> None:
    with pytest.raises(HanzoError) as caught:
        select_runtime("foobar", "embed")
    message = caught.value.message
    assert "architecture 'foobar'" in message
    assert "llamacpp: embed/rerank on 149 llama.cpp architectures (bert, gemma3, llama" in message
    assert "ctransformers: embed on llama" in message


def test_forcing_a_runtime_that_cannot_run_the_model(llama_cpp: None, ctransformers: None) -> None:
    with pytest.raises(HanzoError, match=r"runtime 'ctransformers' cannot rerank a qwen3-architecture model"):
        select_runtime("qwen3", "rerank", "ctransformers")
    with pytest.raises(HanzoError, match=r"unknown runtime 'nope' \(installed: llamacpp, ctransformers\)"):
        select_runtime("bert", "embed", "nope")


def test_a_runtime_whose_library_is_missing_names_the_extra(
    llama_cpp: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanzo_llamacpp.runtime import LlamaCppRuntime

    monkeypatch.setenv("HANZO_PLUGINS", "llamacpp")
    monkeypatch.setattr(LlamaCppRuntime, "available", lambda self: False)
    with pytest.raises(MissingPluginError, match=r"pip install 'hanzo-cli\[llamacpp\]'"):
        select_runtime("bert", "embed")


def test_an_importable_runtime_is_chosen_over_a_broken_one(
    llama_cpp: None, ctransformers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanzo_llamacpp.runtime import LlamaCppRuntime

    monkeypatch.setattr(LlamaCppRuntime, "available", lambda self: False)
    assert select_runtime("llama", "embed").name == "ctransformers"


def test_registering_runtimes_imports_no_inference_library(llama_cpp: None, ctransformers: None) -> None:
    code = textwrap.dedent(
        """
        import sys
        from hanzo_cli.plugins import registry
        runtimes = registry().runtimes
        assert all(r.available() for r in runtimes), runtimes
        heavy = ("llama_cpp", "ctransformers", "numpy", "huggingface_hub")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
