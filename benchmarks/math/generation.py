"""Text generation backends behind one interface (../shared/spec/evaluation.md).

    completions = generate(model, tokenizer, prompts, Sampling(n=8, temperature=1.0, seed=0))
    completions[i][j]  # j-th sample for prompt i: Completion(text, num_tokens, mean_entropy, finish_reason)

* ``hf``: batched ``model.generate`` with left padding and the KV cache, CPU or GPU. Sampling
  is seeded per batch (``torch.manual_seed(seed + first prompt index of the batch)``, on a forked RNG state
  that is restored afterwards), so a run is reproducible for a given batch size. With ``return_entropy`` the
  mean token entropy of each completion is recorded on the fly by a logits processor (no full-vocabulary
  logits are kept).
* ``vllm``: ``vllm.LLM`` offline generation. vLLM is imported only when this backend is asked for;
  without it (or without a GPU) a clear error says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

__all__ = ["Sampling", "Completion", "generate", "generate_hf", "generate_vllm", "token_entropy",
           "load_vllm"]


@dataclass
class Sampling:
    """Decoding parameters shared by every backend."""

    n: int = 1  # samples per prompt
    temperature: float = 0.0  # 0 = greedy decoding
    top_p: float = 1.0  # nucleus sampling mass (1 = off)
    max_new_tokens: int = 512  # generation budget per completion (tokens)
    seed: int = 0  # sampling seed
    stop: list[str] | None = None  # extra stop strings (cut from the text, like vLLM)
    repetition_penalty: float = 1.0  # HF / vLLM multiplicative penalty on tokens already in prompt or response (1 = off)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"Sampling.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"Sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"Sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"Sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"Sampling.repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Completion:
    """One generated continuation of a prompt."""

    text: str  # decoded continuation (special tokens and stop strings removed)
    num_tokens: int  # generated tokens, including the EOS token when one was produced
    mean_entropy: float | None = None  # mean per-token entropy (nats) of the sampling distribution
    finish_reason: str = "stop"  # "stop" (EOS / stop string) or "length" (hit max_new_tokens)
    token_ids: list[int] = field(default_factory=list)  # the generated ids (hf backend; vllm too)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy (nats) of softmax(logits / temperature) over the last dim.

    logits: (..., V) -> (...). ``temperature`` <= 0 means 1 (greedy decoding has no sampling
    temperature; the model's own distribution is used), as in verl's entropy logging.
    """
    t = temperature if temperature > 0 else 1.0
    logp = torch.log_softmax(logits.float() / t, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class _EntropyRecorder:
    """A logits processor that records the per-row entropy of each step's raw logits.

    Custom processors run before the sampling warpers (temperature, top-p) in ``generate``, so
    ``scores`` are the model's logits; the temperature is applied here explicitly.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(token_entropy(scores, self.temperature).detach().cpu())
        return scores


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    if not stop:
        return text, False
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


def _generate_transformers(model, tokenizer, input_ids, attention_mask, sampling: Sampling, n_return: int,
                           eos_ids: list[int], pad_id: int, return_entropy: bool):
    """``model.generate``: generated ids (B * n_return, T) on CPU and per-step entropies (or None)."""
    from transformers import LogitsProcessorList

    recorder = _EntropyRecorder(sampling.temperature) if return_entropy else None
    kwargs: dict[str, Any] = dict(
        max_new_tokens=sampling.max_new_tokens,
        num_return_sequences=n_return,
        pad_token_id=pad_id,
        eos_token_id=eos_ids,
        use_cache=True,
        do_sample=not sampling.greedy,
        repetition_penalty=sampling.repetition_penalty,
        return_dict_in_generate=True,
    )
    if not sampling.greedy:
        # Explicit values so a checkpoint's generation_config (Qwen's top_k=20, ...)
        # cannot silently change the sampling protocol.
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
    if sampling.stop:
        kwargs.update(stop_strings=list(sampling.stop), tokenizer=tokenizer)
    if recorder is not None:
        kwargs["logits_processor"] = LogitsProcessorList([recorder])
    result = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    gen = result.sequences[:, input_ids.shape[1] :].cpu()  # (B * n_return, T_gen)
    ent = torch.stack(recorder.steps, dim=1) if recorder is not None and recorder.steps else None
    return gen, ent


def _generate_fast(model, tokenizer, input_ids, attention_mask, sampling: Sampling, n_return: int,
                   eos_ids: list[int], pad_id: int, return_entropy: bool):
    """The same as :func:`_generate_transformers` through :func:`benchmarks.math.fastgen.decode`."""
    from benchmarks.math import fastgen

    if n_return > 1:  # generate's num_return_sequences: each prompt row repeated n times, in place
        input_ids = input_ids.repeat_interleave(n_return, dim=0)
        attention_mask = attention_mask.repeat_interleave(n_return, dim=0)
    stop_check = None
    if sampling.stop:
        stops = [s for s in sampling.stop if s]

        def stop_check(row: int, ids: list[int]) -> bool:
            text = tokenizer.decode(ids, skip_special_tokens=True)
            return any(s in text for s in stops)

    return fastgen.decode(model, input_ids, attention_mask, max_new_tokens=sampling.max_new_tokens,
                          temperature=sampling.temperature, top_p=sampling.top_p, eos_ids=eos_ids, pad_id=pad_id,
                          stop_check=stop_check, entropy_temperature=sampling.temperature if return_entropy else None)


def generate_hf(model, tokenizer, prompts: Sequence[str], sampling: Sampling, batch_size: int = 8,
                return_entropy: bool = False, progress: bool = False, use_fast: bool = True) -> list[list[Completion]]:
    """Batched generation of ``batch_size`` prompts at a time (each expanded to ``n`` samples); see
    :func:`_generate_hf`. The caller's torch RNG state is left as it was: the per-batch seeding happens on a
    forked generator state, so a validation or evaluation inside a training run does not reset the run's own
    random stream (it did before: every rollout after a validation drew the same numbers whatever the seed)."""
    dev = next(model.parameters()).device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        return _generate_hf(model, tokenizer, prompts, sampling, batch_size, return_entropy, progress, use_fast)


@torch.no_grad()
def _generate_hf(
    model,
    tokenizer,
    prompts: Sequence[str],
    sampling: Sampling,
    batch_size: int = 8,
    return_entropy: bool = False,
    progress: bool = False,
    use_fast: bool = True,
) -> list[list[Completion]]:
    """Batched generation of ``batch_size`` prompts at a time (each expanded to ``n`` samples).

    Prompts are tokenized without adding special tokens (chat templates already contain them)
    and left-padded. Greedy decoding generates once per prompt and repeats it ``n`` times.
    Models that :func:`benchmarks.math.fastgen.supports` run through its compact decode loop
    (the same tokens as ``model.generate``, bit for bit, for the same seed; ``use_fast=False`` or
    ``REPRO_FASTGEN=0`` forces ``model.generate``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no eos_token")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos_ids = {eos_id} | set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    n_return = 1 if sampling.greedy else sampling.n
    out: list[list[Completion]] = []
    starts = list(range(0, len(prompts), batch_size))
    if progress:
        from repro.progress import progress as _progress

        starts = _progress(starts, desc="generate", total=len(starts))
    from benchmarks.math import fastgen

    fast = use_fast and sampling.repetition_penalty == 1.0 and fastgen.supports(model)  # the loop has no penalty
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in starts:
            batch = list(prompts[start : start + batch_size])
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            input_ids = enc["input_ids"].to(device)
            attention_mask = enc["attention_mask"].to(device)
            torch.manual_seed(sampling.seed + start)
            if fast:
                gen, ent = _generate_fast(model, tokenizer, input_ids, attention_mask, sampling, n_return,
                                          sorted(eos_ids), pad_id, return_entropy)
            else:
                gen, ent = _generate_transformers(model, tokenizer, input_ids, attention_mask, sampling, n_return,
                                                  sorted(eos_ids), pad_id, return_entropy)
            for row in range(gen.shape[0]):
                toks = gen[row].tolist()
                length = len(toks)
                hit_eos = False
                for j, t in enumerate(toks):
                    if t in eos_ids:
                        length, hit_eos = j + 1, True
                        break
                if not hit_eos and sampling.stop:  # a row finished by a stop string is padded after it
                    while length > 0 and toks[length - 1] == pad_id:
                        length -= 1
                text = tokenizer.decode(toks[: length - 1 if hit_eos else length], skip_special_tokens=True)
                text, hit_stop = _cut_at_stop(text, sampling.stop)
                mean_ent = None
                if ent is not None and length > 0:
                    mean_ent = float(ent[row, :length].mean())
                done = hit_eos or hit_stop or length < sampling.max_new_tokens
                finish = "stop" if done else "length"
                comp = Completion(text=text, num_tokens=length, mean_entropy=mean_ent, finish_reason=finish,
                                  token_ids=toks[:length])
                prompt_idx = row // n_return
                if row % n_return == 0:
                    out.append([])
                if sampling.greedy:
                    out[start + prompt_idx].extend(
                        Completion(comp.text, comp.num_tokens, comp.mean_entropy, comp.finish_reason,
                                   list(comp.token_ids))
                        for _ in range(sampling.n)
                    )
                else:
                    out[start + prompt_idx].append(comp)
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return out


def load_vllm(model: str | os.PathLike, seed: int = 0, dtype: str = "auto", **llm_kwargs):
    """A ``vllm.LLM`` for ``model`` (path or Hub id); clear errors without vLLM or a GPU.

    Build it once and pass it to :func:`generate` as ``model`` (each construction loads weights).
    """
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "backend 'vllm' needs the optional vLLM package and a CUDA GPU "
            "(pip install '.[gpu]'); use --backend hf on CPU"
        ) from e
    if not torch.cuda.is_available():
        raise RuntimeError("backend 'vllm' needs a CUDA GPU, and none is visible; use --backend hf")
    from vllm import LLM

    return LLM(model=str(model), seed=seed, dtype=dtype, **llm_kwargs)


def generate_vllm(
    model,
    tokenizer,
    prompts: Sequence[str],
    sampling: Sampling,
    return_entropy: bool = False,
    **llm_kwargs,
) -> list[list[Completion]]:
    """Offline generation with ``vllm.LLM`` (GPU only). ``model`` is a ``vllm.LLM`` or a model path.

    Mean token entropy needs the full distribution, which vLLM does not return: asking for it
    is an error (use the ``hf`` backend for entropy measurements).
    """
    if return_entropy:
        raise ValueError("backend 'vllm' cannot return token entropies; use the 'hf' backend")
    if isinstance(model, torch.nn.Module):
        raise ValueError("backend 'vllm' needs a vllm.LLM or a model path, got a torch module; "
                         "save the model and pass its directory, or use backend 'hf'")
    llm = model if not isinstance(model, (str, os.PathLike)) else load_vllm(model, seed=sampling.seed, **llm_kwargs)
    from vllm import SamplingParams

    params = SamplingParams(
        n=sampling.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p if not sampling.greedy else 1.0,
        top_k=-1,
        max_tokens=sampling.max_new_tokens,
        seed=sampling.seed,
        stop=list(sampling.stop) if sampling.stop else None,
        repetition_penalty=sampling.repetition_penalty,
    )
    results = llm.generate(list(prompts), params)
    out = []
    for res in results:
        out.append(
            [
                Completion(
                    text=o.text,
                    num_tokens=len(o.token_ids),
                    mean_entropy=None,
                    finish_reason="length" if o.finish_reason == "length" else "stop",
                    token_ids=list(o.token_ids),
                )
                for o in res.outputs
            ]
        )
    return out


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    sampling: Sampling,
    backend: str = "hf",
    batch_size: int = 8,
    return_entropy: bool = False,
    progress: bool = False,
) -> list[list[Completion]]:
    """Generate ``sampling.n`` completions per prompt with the chosen backend (``hf`` | ``vllm``)."""
    if backend == "hf":
        return generate_hf(model, tokenizer, prompts, sampling, batch_size, return_entropy, progress)
    if backend == "vllm":
        return generate_vllm(model, tokenizer, prompts, sampling, return_entropy)
    raise ValueError(f"unknown generation backend {backend!r}; known: ['hf', 'vllm']")
