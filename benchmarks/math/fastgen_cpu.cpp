// The nano-sized decoder's forward pass fused into one C++ call per decode step (float32, CPU).
//
// Used by benchmarks/math/fastgen.py when a C++ compiler is available (built on first use by
// torch.utils.cpp_extension with -march=native; REPRO_FASTGEN_CPP=0 turns it off). The tensor-op loop there
// pays ~150 op dispatches per step for a model whose matrix products take ~0.5 ms. Here the matrix products
// still go through ATen -- MKL's GEMM, on weights packed once per decode -- and everything between them
// (RMSNorm, rotary, the KV-cache write, masked attention with its softmax, SiLU, residual adds) is a loop over
// the rows; so is sampling, which makes torch.multinomial's random numbers itself (uniforms53). Those loops sum
// in another order than ATen's kernels and use their own exp (exp8), so the logits differ from the tensor-op
// path in the last bits (~1e-6 relative); tests/test_math_fastgen.py checks that the decoded tokens do not.
//
// Cache layout: values (layers, rows, kv_heads, max_len, head_dim); keys transposed in blocks of 16 slots,
// (layers, rows, kv_heads, kpad / 16, head_dim, 16) with kpad = max_len rounded up to 16, so the score loop
// runs over key slots 16 at a time (two 8-float vectors) without reductions, and a new key's 16-float columns
// lie within one 2 KiB block (head_dim 32) rather than strided across the whole cache row. `valid` (rows,
// max_len) marks the slots that hold real tokens (left padding is never attended to).
#include <torch/extension.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/MT19937RNGEngine.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

namespace {

typedef float v8 __attribute__((vector_size(32)));  // GCC/Clang vector extension: AVX with -march=native
inline v8 load8(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }

struct Layer {
  at::Tensor ln1, qkv_w, qkv_b, o_w, o_b, ln2, gate_up, down;
  at::Tensor qkv_pk, o_pk, gate_up_pk, down_pk;  // MKL-packed copies (undefined: none; see pack_weights)
  double eps1, eps2;
};

typedef int v8i __attribute__((vector_size(32)));
inline v8 splat(float a) { return v8{} + a; }

// exp of 8 floats (Cephes' expf: 2^n times a degree-6 polynomial on [-ln2/2, ln2/2], within ~2 ulp of libm's
// expf), exactly 0 below -87.3 (where expf is subnormal) -- so a masked score (-inf) gets weight 0 -- and
// saturating at exp(88). Not bit-identical to ATen's Sleef exp: like every loop here it changes the last bits.
inline v8 exp8(v8 x) {
  const v8 lo = splat(-87.33654f), hi = splat(88.f);
  const v8i under = x < lo;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const v8 n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round(x / ln 2): 1.5 * 2^23 trick
  const v8 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;       // x - n ln 2 in two parts
  v8 y = splat(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.f;
  const v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &e, sizeof scale);
  y *= scale;
  v8i bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits &= ~under;
  std::memcpy(&y, &bits, sizeof y);
  return y;
}

// p[0..n) = exp(p - mx) in place, returning their sum; p must have room for n rounded up to 8 (the extra
// lanes are overwritten with 0).
float exp_shift_sum(float* p, int64_t n, float mx) {
  const int64_t n8 = (n + 7) / 8 * 8;
  for (int64_t j = n; j < n8; ++j) p[j] = -std::numeric_limits<float>::infinity();
  v8 acc = {0};
  for (int64_t j = 0; j < n8; j += 8) {
    const v8 e = exp8(load8(p + j) - mx);
    store8(p + j, e);
    acc += e;
  }
  float sum = 0.f;
  for (int i = 0; i < 8; ++i) sum += acc[i];
  return sum;
}

// RMSNorm as Qwen2RMSNorm: y = w * x / sqrt(mean(x^2) + eps), statistics in float32.
void rms_rows(const float* x, const float* w, float eps, int64_t rows, int64_t h, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * h;
    float* yr = y + r * h;
    float ss = 0.f;
    for (int64_t i = 0; i < h; ++i) ss += xr[i] * xr[i];
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(h) + eps);
    for (int64_t i = 0; i < h; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

// Scores q . k_t for key slots 0..16 nb - 1 from blocked transposed keys kt (nb blocks of (d, 16)), two blocks
// at a time where it can (four independent accumulator chains instead of two).
void scores16(const float* q, const float* kt, int64_t d, int64_t nb, float* out) {
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const float* k0 = kt + b * d * 16;
    const float* k1 = k0 + d * 16;
    v8 a0 = {0}, a1 = {0}, c0 = {0}, c1 = {0};
    for (int64_t i = 0; i < d; ++i) {
      a0 += q[i] * load8(k0 + i * 16);
      a1 += q[i] * load8(k0 + i * 16 + 8);
      c0 += q[i] * load8(k1 + i * 16);
      c1 += q[i] * load8(k1 + i * 16 + 8);
    }
    store8(out + b * 16, a0);
    store8(out + b * 16 + 8, a1);
    store8(out + b * 16 + 16, c0);
    store8(out + b * 16 + 24, c1);
  }
  if (b < nb) {
    const float* k0 = kt + b * d * 16;
    v8 a0 = {0}, a1 = {0};
    for (int64_t i = 0; i < d; ++i) {
      a0 += q[i] * load8(k0 + i * 16);
      a1 += q[i] * load8(k0 + i * 16 + 8);
    }
    store8(out + b * 16, a0);
    store8(out + b * 16 + 8, a1);
  }
}

// o = sum_t p[t] v_t over slots 0..n-1 of values v (n, 8 NB): slots outer, one accumulator per 8 lanes (NB
// independent chains held in registers).
template <int NB>
void weighted_values_n(const float* p, const float* v, int64_t n, float* o) {
  v8 acc[NB] = {};
  for (int64_t t = 0; t < n; ++t) {
    const float pt = p[t];
    for (int b = 0; b < NB; ++b) acc[b] += pt * load8(v + t * 8 * NB + 8 * b);
  }
  for (int b = 0; b < NB; ++b) store8(o + 8 * b, acc[b]);
}

// o = sum_t p[t] v_t over slots 0..n-1 of values v (n, d).
void weighted_values(const float* p, const float* v, int64_t n, int64_t d, float* o) {
  switch (d % 8 ? 0 : d / 8) {
    case 1: return weighted_values_n<1>(p, v, n, o);
    case 2: return weighted_values_n<2>(p, v, n, o);
    case 3: return weighted_values_n<3>(p, v, n, o);
    case 4: return weighted_values_n<4>(p, v, n, o);
    case 6: return weighted_values_n<6>(p, v, n, o);
    case 8: return weighted_values_n<8>(p, v, n, o);
    default: break;
  }
  for (int64_t i = 0; i < d; ++i) o[i] = 0.f;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < d; ++i) o[i] += p[t] * v[t * d + i];
}

// torch.multinomial's draw for one row: argmax_j p[j] / e[j] with e[j] = Exp(1) noise made from the 53-bit
// uniforms u[j] exactly as ATen's CPU exponential_ makes it -- float(-log1p(-u)), log1p in double (libm) --
// and the same float division. -log1p(-u) > u, so with the rounding of both steps float(p / e) < p / u *
// (1 + 2e-7): a slot whose bound p (1 + 1e-6) <= best * u cannot beat the running maximum and its log1p is
// skipped (nearly every slot of a peaked distribution). Ties keep the first maximum, as argmax; u == 0
// (probability 2^-53) takes the exact path.
int64_t exp_argmax(const float* p, const double* u, int64_t V) {
  int64_t best = 0;
  float best_q = p[0] / static_cast<float>(-std::log1p(-u[0]));
  for (int64_t j = 1; j < V; ++j) {
    if (u[j] > 0 && static_cast<double>(p[j]) * (1 + 1e-6) <= static_cast<double>(best_q) * u[j]) continue;
    const float q = p[j] / static_cast<float>(-std::log1p(-u[j]));
    if (q > best_q) { best_q = q; best = j; }
  }
  return best;
}

// n uniforms in [0, 1) from the default CPU generator, consumed as ATen's exponential_ consumes it for a
// float tensor of n values: one random64() (two mt19937 draws, high word first) per value, 53 bits kept.
// The engine is copied out and back under the generator's lock (its inline operator() instead of an
// out-of-line call per value).
void uniforms53(double* u, int64_t n) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  auto* impl = gen.get<at::CPUGeneratorImpl>();
  std::lock_guard<std::mutex> lock(impl->mutex_);
  at::mt19937 eng = impl->engine();
  constexpr uint64_t mask = (uint64_t{1} << 53) - 1;
  constexpr double scale = 1.0 / static_cast<double>(uint64_t{1} << 53);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t hi = eng(), lo = eng();
    u[i] = static_cast<double>(((hi << 32) | lo) & mask) * scale;
  }
  impl->set_engine(eng);
}

at::Tensor opt(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); }

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

}  // namespace

class FusedNet {
 public:
  // weights: per layer ln1, qkv_w, qkv_b, o_w, o_b, ln2, gate_up, down (an empty tensor for a missing bias);
  // pack: whether every product uses MKL's packed GEMM (the weights are packed once, here: pack_weights).
  FusedNet(at::Tensor embed, at::Tensor norm, double norm_eps, at::Tensor head, at::Tensor head_b,
           std::vector<at::Tensor> weights, bool pack,
           std::vector<double> eps, int64_t n_heads, int64_t n_kv, int64_t head_dim, at::Tensor cos_table,
           at::Tensor sin_table, int64_t rows, int64_t max_len)
      : embed_(embed.contiguous()), norm_(norm.contiguous()), norm_eps_(norm_eps), head_(head),
        head_b_(opt(head_b)), nq_(n_heads), nkv_(n_kv), d_(head_dim),
        cos_(cos_table.contiguous()), sin_(sin_table.contiguous()), max_len_(max_len), kpad_(round16(max_len)) {
    const size_t n_layers = eps.size() / 2;
    TORCH_CHECK(weights.size() == 8 * n_layers, "FusedNet: 8 weights and 2 eps per layer");
    TORCH_CHECK(d_ % 2 == 0 && nq_ % nkv_ == 0, "FusedNet: bad head layout");
    for (size_t l = 0; l < n_layers; ++l) {
      const at::Tensor* w = &weights[8 * l];
      Layer L{w[0].contiguous(), w[1], opt(w[2]), w[3], opt(w[4]), w[5].contiguous(), w[6], w[7],
              {}, {}, {}, {}, eps[2 * l], eps[2 * l + 1]};
      layers_.push_back(L);
    }
    if (pack) {
      mkl_linear_ = c10::Dispatcher::singleton()
                        .findSchemaOrThrow("mkl::_mkl_linear", "")
                        .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          const c10::optional<at::Tensor>&, int64_t)>();
    }
    const auto f = at::TensorOptions().dtype(at::kFloat);
    const int64_t nl = static_cast<int64_t>(n_layers);
    k_ = at::zeros({nl, rows, nkv_, kpad_ / 16, d_, 16}, f);
    v_ = at::zeros({nl, rows, nkv_, max_len_, d_}, f);
    valid_ = at::zeros({rows, max_len_}, at::TensorOptions().dtype(at::kBool));
    rows_ = rows;
    if (pack) pack_weights(rows);
  }

  // One decode step's tokens for the computed rows, from their float32 logits (R, V), as the Python loop picks
  // them (fastgen._pick): greedy argmax at temperature 0, else torch.multinomial's draw -- argmax(softmax(logits
  // / T) / noise) with Exp(1) noise for all `batch` rows made as ATen's exponential_ makes it when generate draws
  // it (uniforms53 + exp_argmax: the same random numbers, the generator left in the same state, the log1p skipped
  // where it cannot matter) and row `rows[i]`'s noise for row i. The softmax and the argmax are loops here (NaN
  // logits are not expected from a float32 nano model; argmax would pick them, these loops would not). `probs`
  // (R, V), if non-empty, replaces softmax(logits / T) (the top-p path). Finished rows (`alive` false) get
  // `pad_id`; the tokens are written to out[rows, t], and `alive` (R,) is cleared in place where a live row emits
  // an EOS id in `eos`. Returns the tokens (R,) and the number of rows still alive.
  std::tuple<at::Tensor, int64_t> pick(const at::Tensor& logits, const at::Tensor& probs, double temperature,
                                       int64_t batch, const at::Tensor& rows, at::Tensor alive,
                                       const at::Tensor& eos, int64_t pad_id, at::Tensor out, int64_t t) {
    const int64_t R = logits.size(0), V = logits.size(1);
    at::Tensor tok = at::empty({R}, at::TensorOptions().dtype(at::kLong));
    int64_t* tp = tok.data_ptr<int64_t>();
    const at::Tensor lg = logits.contiguous();
    const int64_t* rp = rows.data_ptr<int64_t>();
    const float* lp = lg.data_ptr<float>();
    if (temperature > 0) {
      std::vector<double> u(batch * V);  // the noise's uniforms for all `batch` rows, as generate draws them
      uniforms53(u.data(), batch * V);
      const bool given = probs.numel() > 0;
      const at::Tensor pr = given ? probs.contiguous() : at::Tensor();
      std::vector<float> p((V + 7) / 8 * 8);  // room for exp_shift_sum's lanes
      const float temp = static_cast<float>(temperature);
      for (int64_t i = 0; i < R; ++i) {
        const float* z = lp + i * V;
        if (given) {
          std::copy(pr.data_ptr<float>() + i * V, pr.data_ptr<float>() + (i + 1) * V, p.begin());
        } else {  // softmax(logits / T)
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < V; ++j) mx = std::max(mx, p[j] = z[j] / temp);
          const float sum = exp_shift_sum(p.data(), V, mx);
          for (int64_t j = 0; j < V; ++j) p[j] /= sum;
        }
        tp[i] = exp_argmax(p.data(), u.data() + rp[i] * V, V);
      }
    } else {
      for (int64_t i = 0; i < R; ++i) tp[i] = std::max_element(lp + i * V, lp + (i + 1) * V) - (lp + i * V);
    }
    bool* al = alive.data_ptr<bool>();
    const int64_t* ep = eos.data_ptr<int64_t>();
    int64_t* op = out.data_ptr<int64_t>();
    const int64_t n_eos = eos.numel(), width = out.size(1);
    int64_t n_alive = 0;
    for (int64_t i = 0; i < R; ++i) {
      if (!al[i]) tp[i] = pad_id;
      op[rp[i] * width + t] = tp[i];
      for (int64_t e = 0; e < n_eos && al[i]; ++e) al[i] = tp[i] != ep[e];
      n_alive += al[i];
    }
    return {tok, n_alive};
  }

  // Keep only cache rows `rows` (ascending indices into the current rows), as finished rows are dropped: kept
  // row i moves to row i in place (rows[i] >= i, so no source is overwritten before it is read), and only the
  // slots written so far are copied. Rows past the kept ones, and slots past `end_`, hold stale finite values
  // that no query reads (a slot is written before it is attended to).
  void keep(const at::Tensor& rows) {
    const at::Tensor idx = rows.contiguous();
    const int64_t* ip = idx.data_ptr<int64_t>();
    const int64_t n = idx.numel(), cap = k_.size(1), D = d_, L = max_len_, KP = kpad_;
    float* kb = k_.data_ptr<float>();
    float* vb = v_.data_ptr<float>();
    bool* ok = valid_.data_ptr<bool>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t src = ip[i];
      TORCH_CHECK(src >= i && src < rows_ && (i == 0 || src > ip[i - 1]), "FusedNet.keep: rows must ascend");
      if (src == i) continue;
      for (int64_t l = 0; l < k_.size(0); ++l)
        for (int64_t g = 0; g < nkv_; ++g) {
          float* kd = kb + ((l * cap + i) * nkv_ + g) * D * KP;
          const float* ks = kb + ((l * cap + src) * nkv_ + g) * D * KP;
          std::memmove(kd, ks, round16(end_) * D * sizeof(float));  // the blocks written so far
          std::memmove(vb + ((l * cap + i) * nkv_ + g) * L * D, vb + ((l * cap + src) * nkv_ + g) * L * D,
                       end_ * D * sizeof(float));
        }
      std::memmove(ok + i * L, ok + src * L, end_);
    }
    rows_ = n;
  }

  // Float32 logits (R, V) of the last new position for tokens `ids` (R, S) at cache slots start..start+S-1,
  // rotary positions `pos` (R, S) and `real` (R, S) bool: which new tokens are real (left padding is not).
  at::Tensor forward(const at::Tensor& ids_in, const at::Tensor& pos_in, int64_t start, const at::Tensor& real_in) {
    at::NoGradGuard no_grad;
    const at::Tensor ids = ids_in.contiguous(), pos = pos_in.contiguous(), real = real_in.contiguous();
    const int64_t R = ids.size(0), S = ids.size(1), N = R * S, H = embed_.size(1), D = d_;
    const int64_t nq = nq_, nkv = nkv_, rep = nq / nkv, end = start + S, L = max_len_, KP = kpad_;
    TORCH_CHECK(end <= L && R == rows_, "FusedNet.forward: cache slots or rows out of range");
    const int64_t cap = k_.size(1);  // cache rows allocated (rows_ of them in use)
    const int64_t qkv_n = (nq + 2 * nkv) * D, E = round16(end);  // E: scores per query, padded
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    const int64_t* pos_p = pos.data_ptr<int64_t>();
    bool* valid = valid_.data_ptr<bool>();
    const bool* real_p = real.data_ptr<bool>();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < S; ++j) valid[r * L + start + j] = real_p[r * S + j];

    at::Tensor x = at::embedding(embed_, ids.reshape({N})).contiguous();  // (N, H) residual stream
    at::Tensor h = at::empty_like(x);
    at::Tensor att = at::empty({N, nq * D}, x.options());
    std::vector<float> scores(E);
    float* xp = x.data_ptr<float>();
    float* hp = h.data_ptr<float>();
    const float* cos_p = cos_.data_ptr<float>();
    const float* sin_p = sin_.data_ptr<float>();
    const float ninf = -std::numeric_limits<float>::infinity();

    for (size_t li = 0; li < layers_.size(); ++li) {
      const Layer& w = layers_[li];
      rms_rows(xp, w.ln1.data_ptr<float>(), static_cast<float>(w.eps1), N, H, hp);
      at::Tensor qkv = linear(h, w.qkv_w, w.qkv_pk, w.qkv_b);
      float* qkv_p = qkv.data_ptr<float>();
      float* kc = k_.data_ptr<float>() + li * cap * nkv * D * KP;  // (rows, kv_heads, kpad / 16, head_dim, 16)
      float* vc = v_.data_ptr<float>() + li * cap * nkv * L * D;   // (rows, kv_heads, max_len, head_dim)
      // rotary on q and k (as transformers: x * cos + rotate_half(x) * sin), then k and v into the cache
      for (int64_t n = 0; n < N; ++n) {
        const int64_t r = n / S, slot = start + n % S;
        const float* c = cos_p + pos_p[n] * D;
        const float* s = sin_p + pos_p[n] * D;
        float* row = qkv_p + n * qkv_n;
        for (int64_t hd = 0; hd < nq + nkv; ++hd) {
          float* v = row + hd * D;
          for (int64_t i = 0; i < D / 2; ++i) {
            const float a = v[i], b = v[i + D / 2];
            v[i] = a * c[i] + (-b) * s[i];
            v[i + D / 2] = b * c[i + D / 2] + a * s[i + D / 2];
          }
        }
        for (int64_t g = 0; g < nkv; ++g) {
          float* kd = kc + (r * nkv + g) * D * KP + (slot / 16) * D * 16 + slot % 16;
          const float* ks = row + (nq + g) * D;
          for (int64_t i = 0; i < D; ++i) kd[i * 16] = ks[i];
          const float* vs = row + (nq + nkv + g) * D;
          float* vd = vc + ((r * nkv + g) * L + slot) * D;
          for (int64_t i = 0; i < D; ++i) vd[i] = vs[i];
        }
      }
      // attention of query (n, head) over the slots 0..its own that hold real tokens (itself always, so a
      // padding query never sees an empty row -- transformers adds the same diagonal)
      float* ap = att.data_ptr<float>();
      for (int64_t n = 0; n < N; ++n) {
        const int64_t r = n / S, slot = start + n % S;
        const bool* ok = valid + r * L;
        for (int64_t hd = 0; hd < nq; ++hd) {
          const int64_t g = hd / rep;
          scores16(qkv_p + n * qkv_n + hd * D, kc + (r * nkv + g) * D * KP, D, round16(slot + 1) / 16,
                   scores.data());
          float mx = ninf;
          for (int64_t t = 0; t <= slot; ++t) {
            scores[t] = (ok[t] || t == slot) ? scores[t] * scale : ninf;
            mx = std::max(mx, scores[t]);
          }
          const float inv = 1.f / exp_shift_sum(scores.data(), slot + 1, mx);
          for (int64_t t = 0; t <= slot; ++t) scores[t] *= inv;
          weighted_values(scores.data(), vc + (r * nkv + g) * L * D, slot + 1, D, ap + (n * nq + hd) * D);
        }
      }
      add_into(xp, linear(att, w.o_w, w.o_pk, w.o_b));
      rms_rows(xp, w.ln2.data_ptr<float>(), static_cast<float>(w.eps2), N, H, hp);
      at::Tensor gu = linear(h, w.gate_up, w.gate_up_pk, at::Tensor());  // (N, 2I): gate | up
      const int64_t I = gu.size(1) / 2;
      at::Tensor act = at::empty({N, I}, x.options());  // silu(gate) * up, silu(g) = g / (1 + exp(-g))
      float* actp = act.data_ptr<float>();
      const float* gup = gu.data_ptr<float>();
      for (int64_t n = 0; n < N; ++n) {
        const float* g = gup + n * 2 * I;
        const float* u = g + I;
        float* a = actp + n * I;
        int64_t i = 0;
        for (; i + 8 <= I; i += 8) {
          const v8 gv = load8(g + i);
          store8(a + i, gv / (1.f + exp8(-gv)) * load8(u + i));
        }
        for (; i < I; ++i) a[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
      }
      add_into(xp, linear(act, w.down, w.down_pk, at::Tensor()));
    }
    // final norm and head on each row's last new position only
    at::Tensor last = at::empty({R, H}, x.options());
    float* lp = last.data_ptr<float>();
    for (int64_t r = 0; r < R; ++r)
      rms_rows(xp + (r * S + S - 1) * H, norm_.data_ptr<float>(), static_cast<float>(norm_eps_), 1, H, lp + r * H);
    end_ = end;
    return linear(last, head_, head_pk_, head_b_);
  }

 private:
  // MKL-packed copies of every weight (torch.ops.mkl, as inductor's CPU freezing makes them), so that no product
  // copies its weight again. A packed B matrix is op(B) alone (k x n): MKL's cblas_?gemm_pack / _compute
  // reference ties nothing but the layout between the two calls, so one packing serves every row count, and
  // _mkl_linear runs cblas_sgemm_compute for any M it is told is the packed one (it falls back to addmm
  // otherwise). For 2+ rows each row of the packed product is bit-identical to the unpacked product at 16+
  // rows (measured for every nano weight shape at 2-32 and 600 rows); an unpacked product of 6-15 rows rounds
  // differently for some shapes, so compacted rows keep the full batch's numbers only this way.
  void pack_weights(int64_t rows) {
    auto reorder = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkl::_mkl_reorder_linear_weight", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t)>();
    for (Layer& L : layers_) {
      L.qkv_pk = reorder.call(L.qkv_w, rows);
      L.o_pk = reorder.call(L.o_w, rows);
      L.gate_up_pk = reorder.call(L.gate_up, rows);
      L.down_pk = reorder.call(L.down, rows);
    }
    head_pk_ = reorder.call(head_, rows);
  }

  // x @ w.T (+ b): MKL's packed GEMM where there is a packed copy, else addmm / mm
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& packed, const at::Tensor& b) const {
    if (packed.defined())
      return mkl_linear_->call(x, packed, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt, x.size(0));
    return b.defined() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
  }

  static void add_into(float* x, const at::Tensor& y) {
    const float* yp = y.data_ptr<float>();
    for (int64_t i = 0, n = y.numel(); i < n; ++i) x[i] += yp[i];
  }

  at::Tensor embed_, norm_;
  double norm_eps_;
  at::Tensor head_, head_b_, head_pk_;
  std::optional<c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    const c10::optional<at::Tensor>&, int64_t)>> mkl_linear_;
  std::vector<Layer> layers_;
  int64_t nq_, nkv_, d_;
  at::Tensor cos_, sin_;
  int64_t max_len_, kpad_;
  at::Tensor k_, v_, valid_;
  int64_t rows_ = 0, end_ = 0;  // cache rows in use; cache slots written so far
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<FusedNet>(m, "FusedNet")
      .def(pybind11::init<at::Tensor, at::Tensor, double, at::Tensor, at::Tensor, std::vector<at::Tensor>,
                          bool, std::vector<double>, int64_t, int64_t, int64_t,
                          at::Tensor, at::Tensor, int64_t, int64_t>())
      .def("keep", &FusedNet::keep)
      .def("pick", &FusedNet::pick)
      .def("forward", &FusedNet::forward);
}
