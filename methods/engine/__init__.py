"""The shared LLM RL engine: TRL's ``GRPOTrainer`` (pinned, trl==1.16.0) behind one small adapter.

* ``methods.engine.trainer.PolicyLossGRPOTrainer`` — a ``GRPOTrainer`` whose policy loss is picked by name from
  ``methods.entropy_mechanism.losses.LOSSES`` (``grpo``, ``clip_higher``, ``clip_cov``, ``kl_cov``); Clip-Cov /
  KL-Cov token selection runs over the whole optimisation mini-batch (all micro-batches, all ranks). With
  ``grpo`` it reproduces TRL's ``loss_type="bnpo"`` loss and gradients exactly (tests/test_engine_trainer.py).
  ``GRPOConfig(importance_sampling_level="sequence")`` gives the GSPO-style sequence ratio.
* ``methods.engine.rewards`` — the reward registry. Built in: ``verifiable`` (1/0, math-verify of the last
  ``\\boxed{}`` against the dataset's ``answer`` column) and ``semantic_entropy`` (EMPO, label-free; resolved
  lazily from ``methods.empo.semantic_entropy:make_reward``).
* ``python -m methods.engine.train_rl`` — the generic training entry point (dataclass CLI, ``--dry-run``).

Adding a reward
---------------
A reward is a factory returning a TRL reward function ``f(prompts, completions, **columns) -> list[float]``
(``columns``: the dataset's other columns such as ``answer``, plus TRL's ``completion_ids``, ``trainer_state``,
``log_metric``...). Register it once, in a module imported before training (or lazily by import path)::

    from methods.engine.rewards import register_reward

    def length_penalty(scale: float = 0.01):                       # options come from --reward-kwargs JSON
        def reward(prompts, completions, **columns):
            return [-scale * len(c) for c in completions]
        return reward

    register_reward("length_penalty", length_penalty)                # or "my.module:length_penalty"

then ``python -m methods.engine.train_rl --reward length_penalty --reward-kwargs '{"scale": 0.02}'``. A factory
with a ``num_generations`` parameter receives the trainer's group size automatically.

Adding a policy loss
--------------------
Write a pure function ``loss(logp, old_logp, advantages, mask, **options) -> (loss, metrics)`` (token mean over
the mask, shapes (B, T)) and add it to ``LOSSES`` with its default options; ``--policy-loss <name>`` selects it.
"""
