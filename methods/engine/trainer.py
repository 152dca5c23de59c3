"""The TRL adapter: a ``GRPOTrainer`` whose policy loss comes from a registry (TRL pinned to 1.16.0).

Everything except the policy loss is TRL's: generation (HF ``generate`` or vLLM colocate), reward calls,
group advantages ``(r - mean_g) / (std_g + 1e-4)`` (unbiased std; the spec's 1e-6 differs only when a
group's std is ~0, where the advantage is 0 either way), the fused log-prob/entropy forward at the
sampling temperature, the optimiser and accelerate/DeepSpeed. ``_compute_loss`` is replaced by:

1. per-token log-probs and entropies of the micro-batch from TRL's own ``_get_per_token_logps_and_entropies``;
2. for Clip-Cov / KL-Cov, the token selection computed once per *optimisation mini-batch*: at the first
   micro-batch of a gradient-accumulation window, the log-probs of every micro-batch of the window -- the rollout
   policy's (``old_per_token_logps``, already computed by TRL when a rollout feeds several mini-batches: no extra
   forward), else the current policy's -- are gathered across ranks (padded), the selection is drawn over that
   whole mini-batch with a generator seeded by ``(selection_seed, window index)`` (identical on all ranks) and
   each micro-batch later takes its slice. The paper selects over the batch it means; verl selects per GPU
   micro-batch from the current log-probs;
3. the pure loss from ``methods.entropy_mechanism.losses`` on the micro-batch, rescaled from its micro-batch
   token mean to ``sum / N_window`` (N_window = valid tokens of the whole mini-batch over all ranks, times the
   number of ranks because DDP averages gradients), so accumulated gradients are the exact token mean over
   the mini-batch. With one micro-batch this is identical to TRL's ``loss_type="bnpo"`` (golden test).

Per-step metrics added to TRL's log: ``entropy``, ``cov_mean``, ``frac_selected``, ``n_selected``,
``clip_frac``, ``logratio_abs_mean``, ``kl_penalty`` (besides TRL's ``reward``, ``completions/mean_length``...).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from methods.entropy_mechanism.losses import (
    LOSSES, clip_cov_select, grpo_loss, kl_cov_select, token_covariance,
)

__all__ = ["PolicyLossGRPOTrainer", "JsonlLogCallback", "ValidationCallback", "select_over_batch", "LOSSES"]

_SELECTING = {"clip_cov", "kl_cov"}
_INCOMPATIBLE = (  # TRL options that change the per-token loss outside our pure functions
    ("beta", 0.0, "a KL-to-reference term (the paper uses none)"),
    ("top_entropy_quantile", 1.0, "entropy masking"),
    ("entropy_coef", 0.0, "an entropy bonus"),
    ("use_adaptive_entropy", False, "an adaptive entropy bonus"),
    ("off_policy_mask_threshold", None, "off-policy sequence masking"),
    ("delta", None, "two-sided clipping"),
)


def select_over_batch(loss_name: str, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      mask: torch.Tensor, loss_kwargs: dict[str, Any],
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """The Clip-Cov / KL-Cov selection (bool (B, T)) over one whole batch; all-False for other losses."""
    if loss_name == "clip_cov":
        keys = ("clip_ratio", "cov_lb", "cov_ub", "eps_low", "eps_high")
        return clip_cov_select(logp, old_logp, advantages, mask,
                               **{k: loss_kwargs[k] for k in keys if k in loss_kwargs}, generator=generator)
    if loss_name == "kl_cov":
        return kl_cov_select(logp, advantages, mask, **{k: loss_kwargs[k] for k in ("k_ratio",) if k in loss_kwargs})
    return torch.zeros(logp.shape, dtype=torch.bool, device=logp.device)


class PolicyLossGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with the policy loss ``policy_loss`` (a key of ``LOSSES``: grpo, clip_higher, clip_cov,
    kl_cov) and its keyword arguments ``loss_kwargs`` (merged over the registry defaults).

    ``importance_sampling_level="sequence"`` in the ``GRPOConfig`` selects the GSPO-style sequence ratio
    (only with grpo / clip_higher). ``selection_seed`` seeds Clip-Cov's random draw.
    """

    def __init__(self, *args, policy_loss: str = "grpo", loss_kwargs: dict[str, Any] | None = None,
                 selection_seed: int = 0, **kwargs):
        if policy_loss not in LOSSES:
            raise ValueError(f"policy_loss: unknown loss {policy_loss!r}; choose one of {sorted(LOSSES)}")
        a = kwargs.get("args", args[2] if len(args) > 2 else None)
        if a is None:
            raise ValueError("PolicyLossGRPOTrainer needs an explicit GRPOConfig (args=...)")
        for field, ok, what in _INCOMPATIBLE:
            if getattr(a, field, ok) != ok:
                raise ValueError(f"GRPOConfig.{field}={getattr(a, field)!r} adds {what}, which the "
                                 f"policy-loss adapter does not apply; set it to {ok!r}")
        if a.use_vllm and a.vllm_importance_sampling_correction:
            raise ValueError("GRPOConfig.vllm_importance_sampling_correction=True is not applied by the "
                             "policy-loss adapter; set it to False")
        if a.steps_per_generation % a.gradient_accumulation_steps:
            raise ValueError(f"GRPOConfig.steps_per_generation ({a.steps_per_generation}) must be a multiple of "
                             f"gradient_accumulation_steps ({a.gradient_accumulation_steps})")
        if a.importance_sampling_level == "sequence" and policy_loss not in ("grpo", "clip_higher"):
            raise ValueError(f"importance_sampling_level='sequence' is only supported for grpo/clip_higher, "
                             f"not {policy_loss!r}")
        fn, defaults = LOSSES[policy_loss]
        unknown = set(loss_kwargs or {}) - set(defaults)
        if unknown:
            raise ValueError(f"loss_kwargs: unknown key(s) {sorted(unknown)} for {policy_loss!r}; "
                             f"accepted: {sorted(defaults)}")
        super().__init__(*args, **kwargs)
        self.level = self.args.importance_sampling_level
        self.policy_loss = policy_loss
        self.loss_fn: Callable = fn
        self.loss_kwargs = {**defaults, **(loss_kwargs or {})}
        self.selection_seed = int(selection_seed)
        self._window_selection: list[torch.Tensor] | None = None
        self._window_tokens: float | None = None
        self._window_index = -1
        self.last_selection: torch.Tensor | None = None  # the current micro-batch's selection (tests, debugging)

    # ------------------------------------------------------------------------------------------------------------
    def _fast_rollouts_ok(self, images, multimodal_fields) -> bool:
        """Whether this rollout can use the compact decode loop (benchmarks.math.fastgen): plain HF generation
        of a supported text model on one process, with only temperature / top-p warping."""
        from benchmarks.math import fastgen

        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False) or images or multimodal_fields:
            return False
        if self.accelerator.num_processes != 1 or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return False
        g = self.generation_config
        if (g.top_k not in (None, 0) or g.min_p not in (None, 0.0) or (g.repetition_penalty or 1.0) != 1.0
                or not g.do_sample or getattr(g, "suppress_tokens", None) or self.pad_to_multiple_of):
            return False
        return fastgen.supports(self.accelerator.unwrap_model(self.model_wrapped))

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        """TRL's rollouts, through benchmarks.math.fastgen where it applies (the same samples as TRL's
        ``model.generate`` for the same RNG state, bit for bit; see tests/test_math_fastgen.py), else TRL's own."""
        if not self._fast_rollouts_ok(images, multimodal_fields):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        from trl.trainer.utils import pad

        from benchmarks.math import fastgen

        g = self.generation_config
        tensors = [torch.tensor(ids) for ids in prompt_ids]
        ids = pad(tensors, padding_value=self._tokenizer.pad_token_id, padding_side="left")
        mask = pad([torch.ones_like(t) for t in tensors], padding_value=0, padding_side="left")
        model = self.accelerator.unwrap_model(self.model_wrapped)
        was_training = model.training
        model.eval()
        try:
            gen, _ = fastgen.decode(model, ids, mask, max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                                    top_p=g.top_p if g.top_p is not None else 1.0, eos_ids=self.eos_token_ids,
                                    pad_id=self._tokenizer.pad_token_id)
        finally:
            model.train(was_training)
        eos = torch.tensor(self.eos_token_ids)
        completion_ids = []
        for row in gen:  # up to and including the first EOS, as TRL masks them
            hits = torch.isin(row, eos).nonzero()
            completion_ids.append(row[: int(hits[0]) + 1 if len(hits) else len(row)].tolist())
        return completion_ids, None

    def _micro_logps(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, inputs["completion_ids"].size(1), compute_entropy=True)
        return logps, entropies

    @staticmethod
    def _mask(inputs) -> torch.Tensor:
        m = inputs["completion_mask"]
        return m * inputs["tool_mask"] if "tool_mask" in inputs else m

    def _gather_padded(self, t: torch.Tensor, pad_value) -> torch.Tensor:
        """(b, T) on every rank -> (world * b, T_max) in rank order (identity on one process)."""
        if self.accelerator.num_processes == 1:
            return t
        t = self.accelerator.pad_across_processes(t, dim=1, pad_index=pad_value)
        return self.accelerator.gather(t)

    def _window_members(self, inputs) -> tuple[list[dict], int, int] | None:
        """(micro-batches of this accumulation window, index of ``inputs`` in it, window id) or None."""
        buf = getattr(self, "_buffered_inputs", None)
        if not self.model.training or buf is None:
            return None
        i = self._step % self.args.steps_per_generation
        if i >= len(buf) or buf[i] is not inputs:
            return None
        ga = self.args.gradient_accumulation_steps
        start = (i // ga) * ga
        n = max(1, min(int(getattr(self, "current_gradient_accumulation_steps", ga) or ga), len(buf) - start))
        return buf[start:start + n], i - start, self._step // ga

    def _prepare_window(self, model, members: list[dict], window_id: int, own: int,
                        own_logp: torch.Tensor) -> None:
        """Selection + token count over the whole optimisation mini-batch (all micro-batches, all ranks)."""
        logps, olds, advs, masks = [], [], [], []
        # The rollout policy's log-probs, which TRL computes once per rollout whenever a rollout feeds several
        # mini-batches, stand in for the current ones: no extra forward pass. Equal on the first mini-batch of a
        # rollout, up to ppo_minibatches - 1 updates old on later ones (verl: the current log-probs, per
        # micro-batch). Only a fully on-policy rollout (one mini-batch, no old log-probs) pays GA - 1 no-grad
        # forwards for the current log-probs of the window's other micro-batches.
        rollout_logps = all(mb.get("old_per_token_logps") is not None for mb in members)
        for j, mb in enumerate(members):
            if rollout_logps:
                lp = mb["old_per_token_logps"].detach()
            elif j == own:
                lp = own_logp.detach()
            else:
                with torch.no_grad():
                    lp, _ = self._micro_logps(model, mb)
            old = mb.get("old_per_token_logps")
            logps.append(lp)
            olds.append(lp if old is None else old)
            adv = mb["advantages"]
            advs.append(adv.unsqueeze(1).expand_as(lp) if adv.dim() == 1 else adv.expand_as(lp))
            masks.append(self._mask(mb))
        sizes = [m.size(0) for m in masks]
        cat = lambda xs, v: self._gather_padded(torch.cat(xs, 0), v)  # noqa: E731
        mask_all = cat(masks, 0)
        logp_all, old_all, adv_all = cat(logps, 0.0), cat(olds, 0.0), cat(advs, 0.0)
        n_tokens = float(mask_all.sum())
        if self.level == "sequence":
            n_tokens = float((mask_all.sum(-1) > 0).sum())
        sel = torch.zeros(mask_all.shape, dtype=torch.bool, device=mask_all.device)
        if self.policy_loss in _SELECTING:
            gen = torch.Generator().manual_seed(self.selection_seed * 1_000_003 + window_id)
            sel = select_over_batch(self.policy_loss, logp_all, old_all, adv_all, mask_all, self.loss_kwargs, gen)
        # this rank's rows, then per micro-batch, trimmed back to the local width
        rank, b_local, width = self.accelerator.process_index, sum(sizes), masks[0].size(1)
        mine = sel[rank * b_local:(rank + 1) * b_local, :width] if self.accelerator.num_processes > 1 else sel
        self._window_selection = list(torch.split(mine, sizes, 0))
        self._window_tokens = n_tokens
        self._window_index = window_id
        n_sel = float((sel & mask_all.bool()).sum())
        self._metrics["train"]["n_selected"].append(n_sel)  # over the whole mini-batch, all ranks
        self._metrics["train"]["frac_selected"].append(n_sel / max(float(mask_all.sum()), 1.0))
        self._metrics["train"]["cov_mean"].append(
            float(token_covariance(logp_all, adv_all, mask_all).sum() / max(float(mask_all.sum()), 1.0)))

    # ------------------------------------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        mode = "train" if self.model.training else "eval"
        mask = self._mask(inputs)
        logp, entropies = self._micro_logps(model, inputs)
        old = inputs.get("old_per_token_logps")
        old = logp.detach() if old is None else old
        adv = inputs["advantages"]

        window = self._window_members(inputs) if mode == "train" else None
        if window is not None:
            members, own, window_id = window
            if own == 0 or window_id != self._window_index:
                self._prepare_window(model, members, window_id, own, logp)
            selected = self._window_selection[own]
            n_total = self._window_tokens * self.accelerator.num_processes
        else:  # eval, or called outside the training loop: the micro-batch is the whole batch
            gen = torch.Generator().manual_seed(self.selection_seed * 1_000_003 + self._step)
            selected = (select_over_batch(self.policy_loss, logp.detach(), old, adv, mask, self.loss_kwargs, gen)
                        if self.policy_loss in _SELECTING else None)
            n_total = float(mask.sum()) if self.level == "token" else float((mask.sum(-1) > 0).sum())
            self._metrics[mode]["cov_mean"].append(
                float(token_covariance(logp, adv, mask).sum() / max(float(mask.sum()), 1.0)))
        self.last_selection = selected

        kwargs = dict(self.loss_kwargs)
        if self.policy_loss in _SELECTING:
            kwargs["selected"] = selected
        if self.loss_fn is grpo_loss:
            kwargs["level"] = self.level
        loss, metrics = self.loss_fn(logp, old, adv, mask, **kwargs)
        # micro-batch mean -> sum over the micro-batch / units (tokens or sequences) of the whole mini-batch
        n_local = float(mask.sum()) if self.level == "token" else float((mask.sum(-1) > 0).sum())
        loss = loss * (n_local / max(n_total, 1.0))

        def log(name: str, value: torch.Tensor | float) -> None:
            t = torch.as_tensor(value, dtype=torch.float32, device=self.accelerator.device).reshape(1)
            self._metrics[mode][name].append(self.accelerator.gather(t).nanmean().item())

        mf = mask.to(entropies.dtype)
        ent = self.accelerator.reduce(torch.stack([(entropies * mf).sum(), mf.sum()]).detach(), reduction="sum")
        self._metrics[mode]["entropy"].append((ent[0] / ent[1].clamp(min=1.0)).item())
        for k, v in metrics.items():
            if window is not None and k in ("n_selected", "frac_selected"):
                continue  # logged once per mini-batch in _prepare_window
            log(k, v)
        return loss


# ----------------------------------------------------------------------------------------------------------------
# callbacks: per-step JSONL log and periodic validation
# ----------------------------------------------------------------------------------------------------------------
class JsonlLogCallback(TrainerCallback):
    """Appends every ``Trainer.log`` call (one per optimisation step with ``logging_steps=1``) to a JSONL file,
    with ``step`` = the optimiser step; ``extra`` (a dict) is merged in (e.g. validation metrics)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if int(os.environ.get("RANK", "0")) == 0:  # every rank builds one; only the main process starts the file
            open(self.path, "w").close()

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.write({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})


class ValidationCallback(TrainerCallback):
    """Every ``every`` optimiser steps (and at step 0 and the end), runs ``evaluate(model) -> dict`` in eval mode
    and writes ``{"step": s, "val/<k>": v}`` rows through ``sink`` (a JsonlLogCallback).

    Every rank runs the evaluation (a ZeRO-3 / FSDP-sharded model only generates when all ranks take part: a
    rank-0-only call would wait forever for the others); only the main process writes the row. Ranks see the
    same problems and greedy decoding, so their numbers agree.
    """

    def __init__(self, evaluate: Callable[[Any], dict[str, float]], every: int, sink: JsonlLogCallback):
        self.evaluate, self.every, self.sink = evaluate, max(1, int(every)), sink
        self.history: list[dict[str, float]] = []
        self._done: set[int] = set()

    def _run(self, model, step: int, main: bool) -> None:
        if step in self._done:
            return
        self._done.add(step)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                res = self.evaluate(model)
        finally:
            model.train(was_training)
        row = {"step": step, **{f"val/{k}": float(v) for k, v in res.items()}}
        self.history.append(row)
        if main:
            self.sink.write(row)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self._run(model, state.global_step, state.is_world_process_zero)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and state.global_step % self.every == 0:
            self._run(model, state.global_step, state.is_world_process_zero)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self._run(model, state.global_step, state.is_world_process_zero)
