"""Prompt templates (../shared/spec/evaluation.md, "Prompt templates"); one is chosen per model.

* ``plain``: ``"Problem: {problem}\\nSolution:"`` for models without a chat template. The nano
  model is SFT-trained on exactly this prompt followed by ``" " + solution + eos`` where the
  solution ends in ``\\boxed{answer}``.
* ``qwen25-math-cot``: the Qwen2.5-Math chain-of-thought prompt, rendered with the tokenizer's
  own chat template: system "Please reason step by step, and put your final answer within
  \\boxed{}." + the problem as the user turn, with the assistant turn opened.
"""

from __future__ import annotations

__all__ = ["TEMPLATES", "QWEN25_MATH_SYSTEM", "build_prompt", "build_messages", "strip_answer_instructions"]

QWEN25_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
TEMPLATES = ("plain", "qwen25-math-cot")

# DAPO-Math-17k wraps every problem in an "Answer: $Answer" instruction (kept by open-r1's processed copy). Our
# templates and rewards ask for and read \boxed{} only, so the wrapper would contradict the system prompt; the
# Entropy-Mechanism authors rewrote their data to \boxed{} (their README: "modify the system prompt and specify
# the answer in the format of \boxed{}").
_DAPO_PREAMBLE = ("Solve the following math problem step by step. The last line of your response should be of the "
                  "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.")
_DAPO_REMINDER = 'Remember to put your answer on its own line after "Answer:".'


def strip_answer_instructions(problem: str) -> str:
    """The bare problem of a DAPO-style row (its answer-format preamble and reminder removed); other text as is."""
    text = problem.strip()
    if not text.startswith(_DAPO_PREAMBLE):
        return problem
    text = text[len(_DAPO_PREAMBLE):]
    if text.rstrip().endswith(_DAPO_REMINDER):
        text = text.rstrip()[: -len(_DAPO_REMINDER)]
    return text.strip()


def build_messages(problem: str, template: str) -> list[dict[str, str]]:
    """Chat messages of a chat template (``qwen25-math-cot``)."""
    if template != "qwen25-math-cot":
        raise ValueError(f"template {template!r} is not a chat template (chat templates: ['qwen25-math-cot'])")
    return [
        {"role": "system", "content": QWEN25_MATH_SYSTEM},
        {"role": "user", "content": problem},
    ]


def build_prompt(problem: str, template: str, tokenizer=None) -> str:
    """The prompt string for ``problem`` under ``template`` (see module docstring).

    ``qwen25-math-cot`` needs a tokenizer with a chat template; the result includes the opened
    assistant turn (``add_generation_prompt=True``) and is meant to be tokenized without adding
    special tokens again.
    """
    if template == "plain":
        return f"Problem: {problem}\nSolution:"
    if template == "qwen25-math-cot":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            name = getattr(tokenizer, "name_or_path", None)
            raise ValueError(
                f"template 'qwen25-math-cot' needs a tokenizer with a chat template "
                f"(tokenizer {name!r} has none); use template 'plain' for such models"
            )
        return tokenizer.apply_chat_template(
            build_messages(problem, template), tokenize=False, add_generation_prompt=True
        )
    raise ValueError(f"unknown prompt template {template!r}; known: {list(TEMPLATES)}")
