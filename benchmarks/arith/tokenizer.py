"""The nano model's tokenizer: a tiny byte-level BPE that is a genuine ``Qwen2Tokenizer``.

The nano model is a ``Qwen2ForCausalLM``, and transformers 5 loads the tokenizer of any directory
whose config says ``model_type: qwen2`` as ``Qwen2Tokenizer`` (NFC normaliser, the Qwen2
pre-tokenizer regex, byte-level pre-tokenizer/decoder), whatever ``tokenizer_config.json``
declares. So the tokenizer is built *as* a ``Qwen2Tokenizer`` from a small vocabulary and merge
list: ``AutoTokenizer.from_pretrained(model_dir)`` then gives back exactly the same ids, and
vLLM or any other Qwen2 consumer sees an ordinary Qwen2 tokenizer.

Vocabulary (ids in this order):
  * the special tokens (``<|pad|>`` = PAD, ``<|endoftext|>`` = EOS, plus any extra ones);
  * all 256 byte symbols of the GPT-2/Qwen byte-level alphabet, so *every* string is encoded
    (no ``<unk>``, nothing silently dropped) and decodes back to its NFC form;
  * merged tokens for a few multi-byte characters (``×``), so they cost one token;
  * frequent strings of the arithmetic task (:data:`WORDS`: the spaced operators and template
    words) as added, non-special tokens; they are matched before pre-tokenization, which
    roughly halves sequence length (and SFT cost) while numbers stay digit by digit.
"""
from __future__ import annotations

from typing import Sequence

from tokenizers import AddedToken

EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIALS = (PAD, EOS)
MERGED_CHARS = ("×",)
WORDS = (" + ", " - ", " × ", " = ", "Problem: ", "\nSolution:", "Compute ", "\\boxed{", "Steps: ", "Quick: ")


def byte_alphabet() -> list[str]:
    """The byte-level symbol of each byte 0..255 (the GPT-2 mapping that Qwen2 also uses).

    Printable bytes stand for themselves; the others (controls, space, a few Latin-1 ones) are
    shifted to code points 256, 257, ... in byte order, so every symbol is a visible character.
    """
    visible = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, shifted = [], 0
    for b in range(256):
        if b in visible:
            out.append(chr(b))
        else:
            out.append(chr(256 + shifted))
            shifted += 1
    return out


def byte_level_tokenizer(specials: Sequence[str] = SPECIALS, merged_chars: Sequence[str] = (),
                         words: Sequence[str] = (), *, eos: str = EOS, pad: str = PAD,
                         model_max_length: int = 512, chat_template: str | None = None):
    """A ``Qwen2Tokenizer`` over bytes, with merges for ``merged_chars`` and ``words`` as added tokens.

    ``specials`` come first (ids 0..), then the 256 byte symbols, then one token per merge step
    of each multi-byte character. Padding is on the left (decoder-only generation).
    """
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    alphabet = byte_alphabet()
    vocab = {tok: i for i, tok in enumerate(list(specials) + alphabet)}
    merges: list[tuple[str, str]] = []
    for ch in merged_chars:
        symbols = [alphabet[b] for b in ch.encode("utf-8")]
        left = symbols[0]
        for right in symbols[1:]:
            merges.append((left, right))
            left += right
            vocab.setdefault(left, len(vocab))
    extra = [s for s in specials if s not in (eos, pad)]
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token=eos, pad_token=pad, unk_token=None,
                         additional_special_tokens=extra or None, model_max_length=model_max_length,
                         padding_side="left", clean_up_tokenization_spaces=False)
    if words:
        tok.add_tokens([AddedToken(w, normalized=False, special=False) for w in words])
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def build_tokenizer(model_max_length: int = 512):
    """The nano model's tokenizer (see the module docstring)."""
    return byte_level_tokenizer(SPECIALS, MERGED_CHARS, WORDS, model_max_length=model_max_length)
