"""A tiny, randomly initialised Qwen2 model with a locally built tokenizer (tests and benches).

No download: the tokenizer is the byte-level ``Qwen2Tokenizer`` of the nano model
(:func:`benchmarks.arith.tokenizer.byte_level_tokenizer`, every byte one token) with Qwen-style
``<|im_start|>``/``<|im_end|>`` specials and a ChatML chat template, so both prompt templates
(``plain`` and ``qwen25-math-cot``) work with it. Saved with ``save_pretrained``, it loads with
``AutoModelForCausalLM`` / ``AutoTokenizer`` like a Hub model.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]


def build_char_tokenizer():
    """Byte-level ``Qwen2Tokenizer``; EOS ``<|endoftext|>``, PAD ``<|pad|>``, ChatML template."""
    from benchmarks.arith.tokenizer import byte_level_tokenizer

    return byte_level_tokenizer(SPECIALS, eos="<|endoftext|>", pad="<|pad|>", model_max_length=1024,
                                chat_template=CHATML_TEMPLATE)


def build_tiny_model(tokenizer, hidden_size: int = 32, layers: int = 2, seed: int = 0,
                     initializer_range: float = 0.02, num_heads: int = 4, num_kv_heads: int = 2):
    """A randomly initialised ``Qwen2ForCausalLM`` sized for the tokenizer (~22k params at the
    defaults); a larger ``initializer_range`` gives peakier, less uniform next-token distributions."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.eval()
    return model


def save_tiny_model(out_dir: str | Path, seed: int = 0, **kw) -> Path:
    """Build and ``save_pretrained`` tokenizer + model into ``out_dir``; returns the path."""
    out_dir = Path(out_dir)
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, seed=seed, **kw)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
