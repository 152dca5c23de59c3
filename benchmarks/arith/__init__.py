"""The nano testbed (issue 4): a synthetic reasoning task and a self-trained nano LM for the CPU tiers.

- :mod:`benchmarks.arith.task`: multi-step integer arithmetic with worked steps ending in ``\\boxed{}``.
- :mod:`benchmarks.arith.make_data`: ``python -m benchmarks.arith.make_data`` writes the splits
  (``arith_sft``, ``arith_rl_train``, ``arith_unlabeled``, ``arith_test``, ``arith_hard``) as JSONL
  that ``benchmarks.math.datasets.load_problems`` reads like any other benchmark.
- :mod:`benchmarks.arith.tokenizer`: a byte-level ``Qwen2Tokenizer`` with task words as added tokens (EOS/PAD).
- :mod:`benchmarks.arith.model`: a ~0.8M-parameter ``Qwen2ForCausalLM`` built from a config.
- :mod:`benchmarks.arith.train_nano`: ``python -m benchmarks.arith.train_nano`` (SFT on the plain template).
"""
