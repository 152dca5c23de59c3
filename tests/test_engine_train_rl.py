"""The generic RL entry point: config errors, dry run, and a short CPU run that moves entropy and reward."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from methods.engine import train_rl  # noqa: E402
from methods.engine.rewards import available_rewards, make_reward, register_reward  # noqa: E402


def _sevens(**_):
    def sevens(prompts=None, completions=None, **kw):
        return [c.count("7") / max(len(c), 1) for c in completions]
    return sevens


register_reward("test_sevens", _sevens, replace=True)


def test_verifiable_reward_uses_gold_answers():
    fn = make_reward("verifiable")
    out = fn(prompts=["p"] * 3, completions=["so \\boxed{4}", "\\boxed{5}", "no box"], answer=["4", "4", "4"])
    assert out == [1.0, 0.0, 0.0]
    with pytest.raises(KeyError, match="answer"):
        fn(prompts=["p"], completions=["\\boxed{4}"])
    assert {"verifiable", "semantic_entropy"} <= set(available_rewards())
    with pytest.raises(ValueError, match="unknown reward"):
        make_reward("nope")
    with pytest.raises(ValueError, match="unknown option"):
        make_reward("verifiable", bogus=1)


def test_batch_geometry_and_errors():
    a = train_rl.TrainRLArgs(prompts_per_step=8, num_generations=8, ppo_minibatches=4, micro_batch_size=8,
                             rollout_steps=3)
    geo = train_rl.batch_geometry(a)
    assert geo == dict(per_device_train_batch_size=8, gradient_accumulation_steps=2, steps_per_generation=8,
                       generation_batch_size=64, max_steps=12, minibatch=16)
    with pytest.raises(ValueError, match="micro_batch_size"):
        train_rl.batch_geometry(train_rl.TrainRLArgs(micro_batch_size=5))
    with pytest.raises(ValueError, match="ppo_minibatches"):
        train_rl.batch_geometry(train_rl.TrainRLArgs(prompts_per_step=3, num_generations=3, ppo_minibatches=2))
    with pytest.raises(ValueError, match="--k-ratio does not apply"):
        train_rl.loss_kwargs(train_rl.TrainRLArgs(policy_loss="grpo", k_ratio=0.1))
    assert train_rl.loss_kwargs(train_rl.TrainRLArgs(policy_loss="clip_higher", eps_high=0.28)) == {"eps_high": 0.28}
    tp = train_rl.TrainRLArgs(prompts_per_step=8, num_generations=8, ppo_minibatches=4, micro_batch_size=2,
                              vllm_tensor_parallel_size=2, use_vllm=True)
    assert train_rl.grpo_settings(tp, world_size=8)["vllm_tensor_parallel_size"] == 2  # the 32B runs' TP 2
    with pytest.raises(ValueError, match="tensor-parallel-size 3 must .* divide the 8"):
        train_rl.batch_geometry(train_rl.TrainRLArgs(prompts_per_step=8, num_generations=8, ppo_minibatches=4,
                                                     micro_batch_size=2, vllm_tensor_parallel_size=3), 8)


def test_dry_run_needs_no_model(capsys):
    assert train_rl.main(["--model", "Qwen/Qwen2.5-7B", "--policy-loss", "kl_cov", "--k-ratio", "0.002",
                          "--prompts-per-step", "256", "--ppo-minibatches", "8", "--micro-batch-size", "4",
                          "--use-vllm", "true", "--bf16", "true", "--dry-run", "true"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["grpo"]["steps_per_generation"] == 8 * 64 and out["grpo"]["use_vllm"] is True
    assert out["loss_kwargs"] == {"k_ratio": 0.002}


def test_train_filter():
    rows = [{"problem": str(i), "answer": "1", "num_operands": i % 4 + 2} for i in range(12)]
    kept = train_rl.filter_rows(rows, "num_operands<=3")
    assert kept and all(r["num_operands"] <= 3 for r in kept) and len(kept) == 6
    assert train_rl.filter_rows(rows, None) is rows
    with pytest.raises(ValueError, match="no column 'depth'"):
        train_rl.filter_rows(rows, "depth>1")
    with pytest.raises(ValueError, match="expected <column><op><number>"):
        train_rl.filter_rows(rows, "num_operands~3")


def test_jsonl_errors_name_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: missing field 'answer'"):
        train_rl.read_jsonl(p)


@pytest.mark.slow
def test_short_cpu_run_moves_entropy_and_reward(tmp_path):
    from tests.test_engine_trainer import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=1)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"id": i, "problem": f"{i}+1", "answer": str(i + 1)}) + "\n"
                            for i in range(16)))
    out = tmp_path / "run"
    rc = train_rl.main(["--model", str(tmp_path / "m"), "--train-data", str(data), "--out", str(out),
                        "--policy-loss", "kl_cov", "--k-ratio", "0.01", "--reward", "test_sevens",
                        "--prompts-per-step", "4", "--num-generations", "8", "--ppo-minibatches", "2",
                        "--micro-batch-size", "8", "--rollout-steps", "12", "--learning-rate", "2e-2",
                        "--max-completion-length", "8", "--val-data", str(data), "--val-limit", "4",
                        "--val-every", "8", "--seed", "0"])
    assert rc == 0
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "entropy" in r]
    assert len(steps) == 24
    rewards = [r["reward"] for r in steps if r.get("reward") is not None]  # logged on rollout steps
    assert len(rewards) == 12
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.1
    assert sum(r["entropy"] for r in steps[-4:]) < 0.8 * sum(r["entropy"] for r in steps[:4])
    assert all(r["n_selected"] >= 1 for r in steps)
    assert any(r["kl_penalty"] > 0 for r in steps)  # later mini-batches are off-policy: the penalty acts
    assert any("val/acc" in r for r in log)
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    got = {r["metric"]: r["value"] for r in rows if r["step"] == -1}
    assert got["entropy_final"] < got["entropy_initial"]


def test_rollouts_see_the_evaluation_harness_prompts_tokens_and_sampling(tmp_path):
    """RL trains on the distribution it is judged on: TRL's prompts, prompt token ids, sampling settings and
    sampled tokens equal those of the evaluation harness (benchmarks.math) for the same problems and seed."""
    import torch

    from benchmarks.math.evaluate import get_protocol
    from benchmarks.math.generation import Sampling, generate_hf
    from benchmarks.math.prompts import build_prompt
    from benchmarks.math.tiny import save_tiny_model

    save_tiny_model(tmp_path / "m", seed=2, hidden_size=32, layers=2, initializer_range=0.3)
    rows = [{"id": f"p{i}", "problem": f"Compute {i} + {i % 5} × 3.", "answer": str(i + 3 * (i % 5))}
            for i in range(8)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t1 = next(d for d in get_protocol("tiny").decodes if d.name == "t1")  # the harness's sampled decode
    args = train_rl.TrainRLArgs(model=str(tmp_path / "m"), train_data=str(data), out=str(tmp_path / "run"),
                                temperature=t1.temperature, top_p=t1.top_p, max_completion_length=16,
                                prompts_per_step=4, num_generations=2, ppo_minibatches=1, micro_batch_size=8)
    trainer, tok, _, _ = train_rl.build_trainer(args)
    harness = [build_prompt(r["problem"], "plain", tok) for r in rows]
    assert list(trainer.train_dataset["prompt"]) == harness
    ids, _, _ = trainer._tokenize_prompts(harness)
    assert ids == [tok(p, add_special_tokens=False)["input_ids"] for p in harness]
    g = trainer.generation_config
    assert (g.do_sample, g.temperature, g.top_p, g.top_k or 0, g.repetition_penalty or 1.0) == \
           (True, t1.temperature, t1.top_p, 0, 1.0)
    assert g.max_new_tokens == args.max_completion_length
    assert sorted(trainer.eos_token_ids) == [tok.eos_token_id]
    sampling = Sampling(n=1, temperature=t1.temperature, top_p=t1.top_p, max_new_tokens=16, seed=9)
    ref = generate_hf(trainer.model, tok, harness, sampling, batch_size=len(harness))  # seeds 9 + 0
    torch.manual_seed(9)
    got, _ = trainer._generate_single_turn(ids, None, {}, 1)
    assert got == [row[0].token_ids for row in ref]


def test_final_eval_target_is_the_checkpoint_for_vllm_or_several_processes(tmp_path):
    """Issue 17: with use_vllm the final evaluation reads the saved checkpoint (vLLM when importable, else the
    checkpoint through transformers) -- a torch module cannot be handed to vLLM; one HF process keeps the
    in-memory model."""
    import importlib.util

    from benchmarks.math.tiny import save_tiny_model

    ckpt = save_tiny_model(tmp_path / "ckpt", hidden_size=32, layers=2)
    trained = object()
    args = train_rl.TrainRLArgs(use_vllm=False)
    assert train_rl.eval_target(args, trained, ckpt, world=1) == (trained, "hf")
    model, backend = train_rl.eval_target(args, trained, ckpt, world=2)  # sharded in memory: reload
    assert backend == "hf" and model is not trained and model.config.hidden_size == 32
    target, backend = train_rl.eval_target(train_rl.TrainRLArgs(use_vllm=True), trained, ckpt, world=1)
    if importlib.util.find_spec("vllm") is None:
        assert backend == "hf" and target is not trained
    else:
        assert (target, backend) == (str(ckpt), "vllm")


def test_validation_runs_on_every_rank_and_only_the_main_one_writes(tmp_path):
    """A rank-0-only validation hangs a ZeRO-3 run (the other ranks never join generate): every rank evaluates."""
    from types import SimpleNamespace

    from methods.engine.trainer import JsonlLogCallback, ValidationCallback

    calls = []
    sink = JsonlLogCallback(tmp_path / "log.jsonl")
    cb = ValidationCallback(lambda m: calls.append(1) or {"acc": 0.5}, every=2, sink=sink)
    model = torch_module()
    for rank0 in (True, False):
        state = SimpleNamespace(global_step=0, is_world_process_zero=rank0)
        cb._done.clear()
        cb.on_train_begin(None, state, None, model=model)
    assert len(calls) == 2
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1


def torch_module():
    import torch

    return torch.nn.Linear(2, 2)


def test_dapo_answer_instructions_are_removed_from_training_problems(tmp_path, capsys):
    """Issue 17: DAPO-Math-17k rows say 'Answer: $Answer' while the template asks for \\boxed{} (and the reward reads
    only that): the wrapper is removed, the problem kept verbatim; rows without it are untouched."""
    from benchmarks.math.prompts import strip_answer_instructions

    problem = "Find the largest real part of $(75+117i)z$ where $|z|=4$.\n\nGive it exactly."
    dapo = ("Solve the following math problem step by step. The last line of your response should be of the form "
            "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n" + problem +
            '\n\nRemember to put your answer on its own line after "Answer:".')
    assert strip_answer_instructions(dapo) == problem
    assert strip_answer_instructions(problem) == problem
    data = tmp_path / "dapo.jsonl"
    data.write_text(json.dumps({"id": 0, "problem": dapo, "answer": "540"}) + "\n"
                    + json.dumps({"id": 1, "problem": problem, "answer": "1"}) + "\n")
    rows = train_rl.load_rows(str(data))
    assert [r["problem"] for r in rows] == [problem, problem] and rows[0]["answer"] == "540"
    assert "from 1 of 2 problems" in capsys.readouterr().err
