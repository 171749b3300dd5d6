"""hanzo-cli: pull embedding, reranker and LLM models from Ollama, Hugging Face or LM Studio, and run them."""

from hanzo_cli.hookspecs import hookimpl

__version__ = "1.1.0"
__all__ = ["__version__", "hookimpl"]
