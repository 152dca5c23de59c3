"""The nano tokenizer: exact round trip, special tokens, and save/load through AutoTokenizer
next to a qwen2 config (where transformers 5 forces ``Qwen2Tokenizer``)."""
from __future__ import annotations

import random
import string
import unicodedata

from transformers import AutoTokenizer, Qwen2Config

from benchmarks.arith.task import TaskSpec, make_problem, sample_expression
from benchmarks.arith.tokenizer import EOS, PAD, WORDS, byte_alphabet, build_tokenizer


def sample_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.printable.replace("\r", "").replace("\x0b", "").replace("\x0c", "") + "×"
    pieces = list(WORDS) + ["-", " ", "="]
    out = []
    for _ in range(n):
        k = rng.randint(0, 60)
        out.append("".join(rng.choice(pieces) if rng.random() < 0.3 else rng.choice(alphabet) for _ in range(k)))
    spec = TaskSpec(operators="+-*", paren_prob=0.5, max_operands=6)
    for _ in range(n):
        row = make_problem(sample_expression(rng, spec))
        out.append(f"Problem: {row['problem']}\nSolution: {row['solution']}")
    return out


def test_round_trip_is_exact():
    tok = build_tokenizer()
    for text in sample_texts(300):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == text


def test_words_are_single_tokens_and_digits_stay_digits():
    tok = build_tokenizer()
    ids = tok("Problem: Compute 12 × 3 - -45.\nSolution:", add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces == ["Problem: ", "Compute ", "1", "2", " × ", "3", " - ", "-", "4", "5", ".", "\nSolution:"]
    # prompt and response tokenized apart == together, so SFT labels line up with generation
    prompt, response = "Problem: Compute 1 + 2.\nSolution:", " 1 + 2 = 3\n\\boxed{3}"
    apart = tok(prompt, add_special_tokens=False)["input_ids"] + tok(response, add_special_tokens=False)["input_ids"]
    assert apart == tok(prompt + response, add_special_tokens=False)["input_ids"]


def test_special_tokens_and_any_unicode_is_encoded():
    tok = build_tokenizer()
    assert tok.eos_token == EOS and tok.pad_token == PAD and tok.unk_token is None
    assert tok.eos_token_id != tok.pad_token_id
    assert tok("1+1")["input_ids"] == tok("1+1", add_special_tokens=False)["input_ids"]  # no BOS/EOS added
    rng = random.Random(3)
    for _ in range(200):  # byte fallback: nothing is dropped, text comes back in NFC form
        text = "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0xA0, 0x2FFF), rng.randint(0x1F300, 0x1F5FF)]))
                       for _ in range(rng.randint(1, 12)))
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) >= 1 and tok.decode(ids) == unicodedata.normalize("NFC", text)


def test_byte_alphabet_is_a_bijection_onto_visible_symbols():
    alphabet = byte_alphabet()
    assert len(set(alphabet)) == 256
    assert all(c.isprintable() and not c.isspace() for c in alphabet)
    assert alphabet[ord("a")] == "a" and alphabet[ord(" ")] == "\u0120"  # 'Ġ', as in GPT-2/Qwen2


def test_save_and_load_with_auto_tokenizer_next_to_a_qwen2_config(tmp_path):
    """A model directory says model_type qwen2: AutoTokenizer must give back the very same ids."""
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    Qwen2Config(vocab_size=len(tok)).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    assert len(loaded) == len(tok) and loaded.get_vocab() == tok.get_vocab()
    assert (loaded.eos_token_id, loaded.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    for text in sample_texts(50, seed=1):
        ids = loaded(text, add_special_tokens=False)["input_ids"]
        assert ids == tok(text, add_special_tokens=False)["input_ids"]
        assert loaded.decode(ids) == text
    batch = loaded(["1", "Compute 10"], padding=True, return_tensors="pt")
    assert loaded.padding_side == "left" and batch["input_ids"][0, 0].item() == loaded.pad_token_id
