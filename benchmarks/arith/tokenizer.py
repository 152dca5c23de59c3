"""A character-level tokenizer for the nano model, saved as a Hugging Face fast tokenizer.

Every printable ASCII character, newline, tab and ``×`` is one token, so any text (e.g. a prompt
built by the math harness, "Problem: ...\\nSolution:") round-trips exactly; anything else maps to
``<unk>``. A handful of frequent strings of the arithmetic task (the spaced operators and the
template words, :data:`WORDS`) are single tokens, matched left to right before the characters;
this roughly halves the sequence length (and the SFT cost) while numbers stay digit by digit.

It is a `tokenizers` BPE model with an empty merge list (i.e. pure characters), the words as
added (non-special) tokens, a ``Fuse`` decoder, and the special tokens ``<|endoftext|>`` (EOS) and
``<|pad|>`` (PAD). Saved with ``save_pretrained`` it loads with
``AutoTokenizer.from_pretrained(path)`` like any hub tokenizer.
"""
from __future__ import annotations

import string

from tokenizers import AddedToken, Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"
UNK = "<unk>"
SPECIALS = (PAD, EOS, UNK)
EXTRA_CHARS = ("×", "\n", "\t")
WORDS = (" + ", " - ", " × ", " = ", "Problem: ", "\nSolution:", "Compute ", "\\boxed{")


def charset() -> list[str]:
    """The ordered list of ordinary (non-special) characters in the vocabulary."""
    printable = [c for c in string.printable if c not in "\n\t\r\x0b\x0c"]
    return printable + [c for c in EXTRA_CHARS if c not in printable]


def build_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """The fast tokenizer (ids: specials, then :func:`charset`, then :data:`WORDS`)."""
    vocab = {tok: i for i, tok in enumerate(list(SPECIALS) + charset() + list(WORDS))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIALS))
    core.add_tokens([AddedToken(w, normalized=False, special=False) for w in WORDS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=model_max_length, padding_side="left", clean_up_tokenization_spaces=False,
    )
    return tok
