"""The nano model: a ``Qwen2ForCausalLM`` built from a config (no download), ~0.5-2M parameters.

Qwen2 is the architecture of the papers' models and one vLLM serves, so nothing downstream needs
to special-case the nano model: ``AutoModelForCausalLM.from_pretrained(path)`` loads it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM


@dataclass
class NanoModelSpec:
    """Size of the nano model."""

    hidden_size: int = 128  # residual width
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads
    num_kv_heads: int = 2  # key/value heads (grouped-query attention, as in Qwen2)
    intermediate_size: int = 384  # SwiGLU MLP width
    max_positions: int = 512  # longest prompt + response in tokens

    def check(self, where: str = "NanoModelSpec") -> "NanoModelSpec":
        """Raise ValueError naming the field if the shapes are inconsistent; return self."""
        if self.hidden_size % self.num_heads:
            raise ValueError(f"{where}: hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"{where}: num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"{where}: head size hidden_size/num_heads must be even for rotary embeddings")
        for name in ("num_layers", "intermediate_size", "max_positions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{where}: {name} must be >= 1, got {getattr(self, name)}")
        return self


def build_model(spec: NanoModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> Qwen2ForCausalLM:
    """A freshly initialised nano Qwen2 (tied embeddings) for ``tokenizer``'s vocabulary."""
    spec.check()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, do_sample=False, max_new_tokens=256,
    )
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
