"""A compact decode loop for small Qwen2/Llama-style models: the same sampling as HF ``generate``, less overhead.

HF ``generate`` on the ~1M-parameter nano model is bound by per-step Python overhead (mask building, cache
objects, logits-processor lists, stopping criteria), not by arithmetic: ~2.5 ms per decode step at batch 32,
of which the matrix work is a small part. This module runs the *same* network functionally over the model's own
weights with a preallocated KV cache, and applies the *same* decoding rules:

* logits in float32 from the last position; greedy = ``argmax``; sampling = ``logits / T``, then HF's top-p
  rule (sort ascending, drop tokens whose cumulative probability is ``<= 1 - top_p``, always keep the top one),
  ``softmax`` and one ``torch.multinomial`` draw per row per step (the RNG is consumed exactly as ``generate``
  consumes it);
* a row is finished once it emits an EOS id or its decoded continuation contains a stop string; finished rows
  are padded with ``pad_id``; the loop ends when every row is finished or after ``max_new_tokens``;
* position ids count real tokens only (``cumsum(attention_mask) - 1``), so left padding does not shift rotary
  positions, exactly as ``generate`` computes them.

``supports(model)`` says whether a model is covered (Qwen2 / Llama-family decoders with default RoPE, no
sliding window, no rope scaling, unsharded weights on one device); callers fall back to HF ``generate``
otherwise, and the environment variable ``REPRO_FASTGEN=0`` turns the fast path off everywhere.

Two implementations of the network, one loop:

* **fused C++** (``fastgen_cpu.cpp``, float32 on the CPU: the nano tiers): the whole forward pass is one call per
  step; GEMMs through MKL (weights packed once per decode at batches of 16+), the loops between them and the
  sampling (``torch.multinomial``'s own random numbers, made in C++ from the same generator) in C++. It is
  compiled on first use by torch's extension loader (~30 s, cached; needs a C++ compiler, which ``make install``
  checks) and sums in another order than ATen, so its logits differ from ``generate``'s in the last bits (~1e-6
  relative): tokens are the same unless two candidates tie to that precision (none did in the tests or the
  benchmark). Without a compiler, or with ``REPRO_FASTGEN_CPP=0``, the tensor-op network runs instead.
* **tensor ops** (:class:`_Net`, any device and dtype): the same ops as transformers' SDPA integration, bit
  for bit.

Nothing is compiled at import time: the module needs only torch.

Equivalence is tested, not assumed (tests/test_math_fastgen.py, both implementations): greedy and seeded
sampled outputs token-identical to ``generate`` and independently sampled outputs matching per-position token
frequencies within binomial tolerance.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["supports", "decode", "enabled", "path"]

_FAMILIES = ("qwen2", "llama")


def enabled() -> bool:
    """False when ``REPRO_FASTGEN=0`` (escape hatch: every caller then uses HF ``generate``)."""
    return os.environ.get("REPRO_FASTGEN", "1") != "0"


_EXT = None  # the compiled fused forward: None = not tried yet, False = unavailable


def _extension():
    """The fused C++ forward (``fastgen_cpu.cpp``), built by torch's extension loader on first use and cached
    (``~/.cache/torch_extensions``, or ``$TORCH_EXTENSIONS_DIR``); ``None`` with ``REPRO_FASTGEN_CPP=0`` or
    where it cannot be built (no compiler): the same decoding then runs through :class:`_Net`'s tensor ops."""
    global _EXT
    if os.environ.get("REPRO_FASTGEN_CPP", "1") == "0":
        return None
    if _EXT is None:
        _EXT = False
        try:
            from torch.utils.cpp_extension import load

            _ninja_on_path()
            src = os.path.join(os.path.dirname(__file__), "fastgen_cpu.cpp")
            # -march=native: the build is for this CPU, so its name carries the CPU's identity (a cache shared
            # between machines never loads another CPU's instructions)
            _EXT = load(name=f"repro_fastgen_cpu_{_cpu_tag()}", sources=[src], extra_cflags=["-O3", "-march=native"],
                        verbose=False)
        except Exception as exc:  # no compiler, no ninja, a failed build: the tensor-op path still works
            msg = str(exc).strip().splitlines()
            warnings.warn(f"fastgen: the fused C++ forward is unavailable ({type(exc).__name__}: "
                          f"{msg[-1] if msg else ''}); decoding with the tensor-op loop (same tokens, slower)",
                          stacklevel=2)
    return _EXT or None


def _ninja_on_path() -> None:
    """torch's extension loader runs ``ninja`` from PATH: add the pip package's binary if PATH has none (a venv
    used without activating it)."""
    import shutil

    if shutil.which("ninja") is None:
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass


def path(model) -> str:
    """Which decoder runs ``model`` here: ``"fused C++"`` (fastgen_cpu.cpp), ``"tensor ops"`` (:class:`_Net`) or
    ``"hf generate"`` (not supported: the callers fall back)."""
    if not supports(model):
        return "hf generate"
    return "fused C++" if _fused_applies(model) else "tensor ops"


def _fused_applies(model) -> bool:
    """Whether the fused C++ forward runs ``model``: float32 on the CPU, and the extension available."""
    w = model.lm_head.weight
    return w.device.type == "cpu" and w.dtype == torch.float32 and _extension() is not None


def _cpu_tag() -> str:
    """A short hash of this CPU's model and feature flags (``/proc/cpuinfo`` where there is one)."""
    import hashlib
    import platform

    ident = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            ident += "".join(sorted({line for line in f if line.startswith(("model name", "flags", "Features"))}))
    except OSError:
        pass
    return hashlib.sha1(ident.encode()).hexdigest()[:10]


def supports(model) -> bool:
    """True if ``model`` is a decoder this loop reproduces exactly (see the module docstring)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in _FAMILIES or not enabled():
        return False
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
        return False
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if (rope.get("rope_type") or rope.get("type") or "default") != "default":
        return False
    if getattr(cfg, "use_sliding_window", False) or getattr(cfg, "hidden_act", "silu") != "silu":
        return False
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return False
    if getattr(cfg, "attention_dropout", 0.0) and model.training:
        return False
    # sharded weights (FSDP2 DTensors, DeepSpeed ZeRO-3 partitions) are whole only inside the model's own forward,
    # whose hooks gather them: this loop reads the tensors directly (found by tests/test_engine_distributed.py)
    if any(type(p).__name__ == "DTensor" or hasattr(p, "ds_id") for p in model.parameters()):
        return False
    devices = {p.device for p in model.parameters()}
    dtypes = {p.dtype for p in model.parameters()}
    return len(devices) == 1 and len(dtypes) == 1 and getattr(model, "hf_quantizer", None) is None


@dataclass
class _Layer:
    ln1: torch.Tensor
    ln1_eps: float
    qkv_w: torch.Tensor  # q, k, v projections stacked along the output dim (one GEMM, same numbers)
    qkv_b: torch.Tensor | None
    o_w: torch.Tensor
    o_b: torch.Tensor | None
    ln2: torch.Tensor
    ln2_eps: float
    gate_up: torch.Tensor  # gate and up projections stacked
    down: torch.Tensor


def _layers(model) -> list[_Layer]:
    out = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        lins = (a.q_proj, a.k_proj, a.v_proj)
        bias = None
        if any(l.bias is not None for l in lins):
            bias = torch.cat([l.bias if l.bias is not None else l.weight.new_zeros(l.weight.shape[0]) for l in lins])
        out.append(_Layer(layer.input_layernorm.weight, _eps(layer.input_layernorm),
                          torch.cat([l.weight for l in lins]), bias, a.o_proj.weight, a.o_proj.bias,
                          layer.post_attention_layernorm.weight, _eps(layer.post_attention_layernorm),
                          torch.cat([m.gate_proj.weight, m.up_proj.weight]), m.down_proj.weight))
    return out


def _eps(norm) -> float:
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    # as Qwen2RMSNorm / LlamaRMSNorm: statistics in float32, cast back before the weight
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dtype)


def _rope_tables(model, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary cos/sin (max_len + 1, head_dim) of every position, computed as transformers computes them per step
    (same ops, so the same numbers): a table lookup per decode step instead of five ops."""
    embed = model.model.embed_tokens.weight
    rope = model.model.rotary_emb
    inv_freq = rope.inv_freq.to(device=embed.device, dtype=torch.float32)
    scale = float(getattr(rope, "attention_scaling", 1.0))
    freqs = torch.arange(max_len + 1, device=embed.device)[:, None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scale).to(embed.dtype), (emb.sin() * scale).to(embed.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Net:
    """The decoder as plain tensor ops over the model's weights, with a preallocated KV cache.

    The attention calls mirror transformers' SDPA integration so the numbers are bit-identical to
    ``generate``: with padding, a boolean mask (prefill: keys repeated per query head; decode: query heads
    packed per key head); without padding anywhere in the batch, no mask (prefill ``is_causal``) and SDPA's
    own grouped-query attention.
    """

    def __init__(self, model, batch: int, max_len: int, padded: bool):
        cfg = model.config
        self.embed = model.model.embed_tokens.weight
        self.norm, self.norm_eps = model.model.norm.weight, _eps(model.model.norm)
        self.head = model.lm_head.weight
        self.head_b = getattr(model.lm_head, "bias", None)
        self.layers = _layers(model)
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.rep = self.n_heads // self.n_kv
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.scale = self.head_dim ** -0.5
        self.padded = padded
        dev, dt = self.embed.device, self.embed.dtype
        shape = (len(self.layers), batch, self.n_kv, max_len, self.head_dim)
        self.k = torch.zeros(shape, device=dev, dtype=dt)
        self.v = torch.zeros(shape, device=dev, dtype=dt)
        self.dtype = dt
        self.cos_table, self.sin_table = _rope_tables(model, max_len)

    def keep(self, rows: torch.Tensor) -> None:
        """Drop finished rows from the cache (``rows``: indices into the current cache rows)."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)

    def _cos_sin(self, pos: torch.Tensor):
        return self.cos_table[pos][:, None], self.sin_table[pos][:, None]

    def _repeat(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n, d = x.shape
        return x[:, :, None].expand(b, self.n_kv, self.rep, n, d).reshape(b, self.n_heads, n, d)

    def _attend(self, q, keys, vals, mask, decode: bool):
        b = q.shape[0]
        if not self.padded:  # transformers passes no mask: is_causal for the prefill, SDPA's own GQA
            gqa = dict(enable_gqa=True) if self.rep > 1 else {}
            return F.scaled_dot_product_attention(q, keys, vals, scale=self.scale, is_causal=not decode, **gqa)
        if self.rep == 1:
            return F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask, scale=self.scale)
        if decode:  # one query token: pack the query heads of each key head (transformers' pack_gqa)
            out = F.scaled_dot_product_attention(q.reshape(b, self.n_kv, self.rep, self.head_dim), keys, vals,
                                                 attn_mask=mask, scale=self.scale)
            return out.reshape(b, self.n_heads, 1, self.head_dim)
        return F.scaled_dot_product_attention(q, self._repeat(keys), self._repeat(vals), attn_mask=mask,
                                              scale=self.scale)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, start: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Float32 logits (B, V) of the last position for tokens ``ids`` (B, S) at cache slots start..start+S.

        ``mask`` (B, 1, S, start+S) bool: which cached keys each new query may attend to (unused unpadded).
        """
        b, s = ids.shape
        end = start + s
        decode = start > 0
        x = F.embedding(ids, self.embed)
        cos, sin = self._cos_sin(pos)
        nq, nkv, d = self.n_heads, self.n_kv, self.head_dim
        for i, L in enumerate(self.layers):
            h = _rms(x, L.ln1, L.ln1_eps)
            qkv = F.linear(h, L.qkv_w, L.qkv_b).view(b, s, nq + 2 * nkv, d).transpose(1, 2)
            qk = qkv[:, :nq + nkv]
            qk = qk * cos + _rotate_half(qk) * sin  # rotary on q and k at once (elementwise: same numbers)
            q, k, v = qk[:, :nq], qk[:, nq:], qkv[:, nq + nkv:]
            self.k[i, :, :, start:end] = k
            self.v[i, :, :, start:end] = v
            att = self._attend(q, self.k[i, :, :, :end], self.v[i, :, :, :end], mask, decode)
            x = x + F.linear(att.transpose(1, 2).reshape(b, s, -1), L.o_w, L.o_b)
            h = _rms(x, L.ln2, L.ln2_eps)
            gate, up = F.linear(h, L.gate_up).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, L.down)
        x = _rms(x[:, -1], self.norm, self.norm_eps)
        return F.linear(x, self.head, self.head_b).float()


def _pick(logits: torch.Tensor, probs: torch.Tensor, temperature: float, batch: int, rows: torch.Tensor,
          alive: torch.Tensor, eos: torch.Tensor, pad_id: int, out: torch.Tensor, t: int) -> tuple[torch.Tensor, int]:
    """One step's tokens for the computed rows (the tensor-op twin of the C++ ``FusedNet.pick``): greedy
    ``argmax`` at temperature 0, else ``torch.multinomial``'s draw, ``argmax(probs / Exp(1) noise)``, with
    ``probs = softmax(logits / T)`` unless ``probs`` (the top-p path) is non-empty. The noise is drawn for the
    whole batch, as ``generate`` draws it, and row i takes row ``rows[i]``'s, so compaction never changes which
    sample a row gets. Finished rows get ``pad_id``; the tokens go to ``out[rows, t]``; ``alive`` is cleared in
    place where a live row emits an EOS id. Returns the tokens and the number of rows still alive."""
    if temperature > 0:
        p = probs if probs.numel() else (logits / temperature).softmax(dim=-1)
        noise = torch.empty((batch, p.shape[1]), device=p.device, dtype=p.dtype).exponential_(1)
        tok = (p / noise[rows]).argmax(dim=-1)
    else:
        tok = logits.argmax(dim=-1)
    tok = torch.where(alive, tok, torch.full_like(tok, pad_id))
    out[rows, t] = tok
    alive &= ~torch.isin(tok, eos)
    return tok, int(alive.sum())


def _fused_net(model, batch: int, max_len: int):
    """The compiled fused forward (``fastgen_cpu.cpp``) over ``model``'s weights with a preallocated cache, for
    float32 models on the CPU when the extension is available; else ``None``. Its ``forward(ids, pos, start,
    real)`` takes ``real`` (B, S) bool -- which new tokens are not padding -- instead of :class:`_Net`'s mask,
    and keeps the cache's padding slots itself."""
    if not _fused_applies(model):
        return None
    p, ext = model.lm_head.weight, _extension()
    cfg, none = model.config, torch.empty(0)
    n_heads = cfg.num_attention_heads
    weights, eps = _prepared(model)
    cos, sin = _rope_tables(model, max_len)
    head_b = getattr(model.lm_head, "bias", None)
    # batches of _PACK_ROWS+ rows run every product on MKL-packed weights (packed in C++, see pack_weights there)
    pack = batch >= _PACK_ROWS and _mkl_packs()
    return ext.FusedNet(model.model.embed_tokens.weight, model.model.norm.weight, _eps(model.model.norm), p,
                        none if head_b is None else head_b, weights, pack, eps, n_heads,
                        getattr(cfg, "num_key_value_heads", None) or n_heads,
                        getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads, cos, sin, batch, max_len)


def _prepared(model) -> tuple[list, list]:
    """(weights, eps) for :class:`FusedNet` (see fastgen_cpu.cpp), built anew for every decode: the stacked (and,
    in C++, packed) copies must follow each optimiser step, and fused AdamW updates the weights without bumping
    their version counters (measured), so there is no cheap test for "unchanged"."""
    none, weights, eps = torch.empty(0), [], []
    for L in _layers(model):
        weights += [L.ln1, L.qkv_w, none if L.qkv_b is None else L.qkv_b, L.o_w,
                    none if L.o_b is None else L.o_b, L.ln2, L.gate_up, L.down]
        eps += [L.ln1_eps, L.ln2_eps]
    return weights, eps


_MKL_PACKS = None


def _mkl_packs() -> bool:
    """Whether torch has MKL's packed GEMM (``torch.ops.mkl._mkl_reorder_linear_weight`` / ``_mkl_linear``, as
    inductor's CPU freezing uses them: the same products, ~20% faster at batch 32 here, the same numbers in
    tests/test_math_fastgen.py)."""
    global _MKL_PACKS
    if _MKL_PACKS is None:
        try:
            w = torch.ones(4, 4)
            torch.ops.mkl._mkl_linear(torch.ones(8, 4), torch.ops.mkl._mkl_reorder_linear_weight(w, 8), w, None, 8)
            _MKL_PACKS = True
        except (AttributeError, RuntimeError):
            _MKL_PACKS = False
    return _MKL_PACKS


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """HF's TopPLogitsWarper (min_tokens_to_keep=1) on (B, V) float scores."""
    sorted_logits, sorted_idx = torch.sort(scores, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cum <= (1 - top_p)
    remove[..., -1:] = False
    remove = remove.scatter(1, sorted_idx, remove)
    return scores.masked_fill(remove, -float("inf"))


# GEMMs of fewer rows take another kernel whose rounding differs: never compact below this many rows, so every
# row's numbers stay those of the full batch (measured: rows are bit-identical for 7+ rows, not for 1-5, with
# 128 inputs per row; with 384, as the nano MLP's down projection, only for 16+, where the fused network's
# packed products keep them so).
_MIN_ROWS = 8
# the fewest rows for which the fused network packs its weights (MKL's packed product of any 2+ rows has the
# numbers of an unpacked product of 16+, measured for every nano weight shape: smaller batches keep the
# unpacked products, as ``generate`` computes them)
_PACK_ROWS = 16


@torch.inference_mode()
def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
           temperature: float, top_p: float, eos_ids: Sequence[int], pad_id: int,
           stop_check: Callable[[int, list[int]], bool] | None = None,
           entropy_temperature: float | None = None, compact: bool = True
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generated ids (B, T_gen) for left-padded ``input_ids`` / ``attention_mask`` (B, S), and optionally
    the entropy (B, T_gen) of each step's softmax(raw logits / ``entropy_temperature``) (0 = 1, as
    :func:`benchmarks.math.generation.token_entropy`); finished rows are padded with ``pad_id``.

    ``temperature == 0`` is greedy. ``stop_check(row, ids_so_far)`` (optional) says whether a row's continuation
    now contains a stop string. With ``compact``, rows that have finished are dropped from the computation (the
    random draws are still made for the whole batch, so the samples do not change). The network is the fused C++
    one (:func:`_fused_net`) where it applies (``REPRO_FASTGEN_CPP=0`` forces the tensor-op one).
    """
    from benchmarks.math.generation import token_entropy

    dev = model.lm_head.weight.device
    ids = input_ids.to(dev)
    am = attention_mask.to(dev).bool()
    b, s = ids.shape
    padded = not bool(am.all())
    fused = _fused_net(model, b, s + max_new_tokens)
    net = fused if fused is not None else _Net(model, b, s + max_new_tokens, padded)
    key_ok = None  # tensor-op network: which cache slots hold real tokens (the fused one keeps its own)
    if fused is None:
        key_ok = torch.zeros(b, s + max_new_tokens, dtype=torch.bool, device=dev)
        key_ok[:, :s] = am
    pos = am.long().cumsum(-1) - 1
    pos = pos.masked_fill(~am, 1)
    mask = None
    if fused is not None:
        mask = am
    elif padded:
        causal = torch.ones(s, s, dtype=torch.bool, device=dev).tril()
        mask = ((causal[None] & am[:, None, :]) | torch.eye(s, dtype=torch.bool, device=dev)[None])[:, None]
    logits = net.forward(ids, pos, 0, mask)
    real = torch.ones(b, 1, dtype=torch.bool, device=dev)  # every decoded token is a real key
    next_pos = pos[:, -1:] + 1
    eos = torch.tensor(sorted(set(int(e) for e in eos_ids)), device=dev, dtype=torch.long)
    rows = torch.arange(b, device=dev)  # original index of each computed row
    alive = torch.ones(b, dtype=torch.bool, device=dev)  # per computed row: not finished yet
    out = torch.full((b, max_new_tokens), pad_id, dtype=torch.long, device=dev)
    ent = torch.zeros((b, max_new_tokens), dtype=torch.float32) if entropy_temperature is not None else None
    histories: dict[int, list[int]] = {}
    pick = fused.pick if fused is not None else _pick
    none = torch.empty(0, device=dev)
    n = 0
    for t in range(max_new_tokens):
        if ent is not None:
            ent[rows.cpu(), t] = token_entropy(logits, entropy_temperature).cpu()
        probs = none
        if temperature > 0 and top_p < 1.0:
            probs = _top_p(logits / temperature, top_p).softmax(dim=-1)
        tok, n_alive = pick(logits, probs, temperature, b, rows, alive, eos, pad_id, out, t)
        n = t + 1
        if stop_check is not None:
            toks, orig = tok.tolist(), rows.tolist()
            for r in alive.nonzero().flatten().tolist():
                hist = histories.setdefault(orig[r], [])
                hist.append(toks[r])
                if stop_check(orig[r], hist):
                    alive[r] = False
                    n_alive -= 1
        if n_alive == 0 or t + 1 == max_new_tokens:
            break
        slot = s + t
        if fused is None:
            key_ok[:, slot] = True
        if compact and rows.numel() > _MIN_ROWS and n_alive <= 0.75 * rows.numel():
            keep = alive.nonzero().flatten()
            if keep.numel() < _MIN_ROWS:  # pad with finished rows to stay on the full-batch kernels
                extra = (~alive).nonzero().flatten()[:_MIN_ROWS - keep.numel()]
                keep = torch.cat([keep, extra]).sort().values
            net.keep(keep)
            rows, alive, tok, next_pos = rows[keep], alive[keep], tok[keep], next_pos[keep]
        if fused is not None:
            step_mask = real[:rows.numel()]
        else:
            step_mask = key_ok[rows, None, None, :slot + 1] if padded else None
        logits = net.forward(tok[:, None], next_pos, slot, step_mask)
        next_pos = next_pos + 1
    return out[:, :n].cpu(), (ent[:, :n] if ent is not None else None)


if __name__ == "__main__":  # `make install`: build the fused forward now rather than in the first decode
    import time

    t0 = time.perf_counter()
    built = _extension() is not None
    print(f"fastgen: fused C++ forward {'ready' if built else 'unavailable (the tensor-op loop will run)'} "
          f"({time.perf_counter() - t0:.0f} s)")
