// The nano-sized decoder's forward pass fused into one C++ call per decode step (float32, CPU).
//
// Used by benchmarks/math/fastgen.py when a C++ compiler is available (built on first use by
// torch.utils.cpp_extension with -march=native; REPRO_FASTGEN_CPP=0 turns it off). The tensor-op loop there
// pays ~150 op dispatches per step for a model whose matrix products take ~0.5 ms. Here the matrix products
// and SiLU still go through ATen -- the same MKL / vectorised kernels -- and everything between them (RMSNorm,
// rotary, the KV-cache write, masked attention with its softmax, residual adds) is a loop over the rows.
// Those loops sum in another order than ATen's kernels, so the logits differ from the tensor-op path in the
// last bits (~1e-6 relative); tests/test_math_fastgen.py checks that the decoded tokens do not.
//
// Cache layout: values (layers, rows, kv_heads, max_len, head_dim); keys transposed, (layers, rows, kv_heads,
// head_dim, kpad) with kpad = max_len rounded up to 16, so the score loop runs over key slots in blocks of 16
// (two 8-float vectors) without reductions. `valid` (rows, max_len) marks the slots that hold real tokens
// (left padding is never attended to).
#include <torch/extension.h>

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
  at::Tensor qkv_pk, o_pk, gate_up_pk, down_pk;  // MKL-packed copies for `pack_rows` rows (undefined: none)
  double eps1, eps2;
};

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

// Scores q . k_t for key slots 0..n16-1 (n16 a multiple of 16) from transposed keys kt (d, kpad).
void scores16(const float* q, const float* kt, int64_t d, int64_t kpad, int64_t n16, float* out) {
  for (int64_t t0 = 0; t0 < n16; t0 += 16) {
    v8 a = {0}, b = {0};
    for (int64_t i = 0; i < d; ++i) {
      const float* k = kt + i * kpad + t0;
      a += q[i] * load8(k);
      b += q[i] * load8(k + 8);
    }
    store8(out + t0, a);
    store8(out + t0 + 8, b);
  }
}

// o = sum_t p[t] v_t over slots 0..n-1 of values v (n, d).
void weighted_values(const float* p, const float* v, int64_t n, int64_t d, float* o) {
  if (d % 8) {
    for (int64_t i = 0; i < d; ++i) o[i] = 0.f;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < d; ++i) o[i] += p[t] * v[t * d + i];
    return;
  }
  for (int64_t i0 = 0; i0 < d; i0 += 8) {
    v8 acc = {0};
    for (int64_t t = 0; t < n; ++t) acc += p[t] * load8(v + t * d + i0);
    store8(o + i0, acc);
  }
}

at::Tensor opt(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); }

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

}  // namespace

class FusedNet {
 public:
  // weights: per layer ln1, qkv_w, qkv_b, o_w, o_b, ln2, gate_up, down (an empty tensor for a missing bias);
  // packed: empty, or per layer the MKL-packed qkv_w, o_w, gate_up, down for `pack_rows`-row inputs, then head.
  FusedNet(at::Tensor embed, at::Tensor norm, double norm_eps, at::Tensor head, at::Tensor head_b,
           std::vector<at::Tensor> weights, std::vector<at::Tensor> packed, int64_t pack_rows,
           std::vector<double> eps, int64_t n_heads, int64_t n_kv, int64_t head_dim, at::Tensor cos_table,
           at::Tensor sin_table, int64_t rows, int64_t max_len)
      : embed_(embed.contiguous()), norm_(norm.contiguous()), norm_eps_(norm_eps), head_(head),
        head_b_(opt(head_b)), pack_rows_(pack_rows), nq_(n_heads), nkv_(n_kv), d_(head_dim),
        cos_(cos_table.contiguous()), sin_(sin_table.contiguous()), max_len_(max_len), kpad_(round16(max_len)) {
    const size_t n_layers = eps.size() / 2;
    TORCH_CHECK(weights.size() == 8 * n_layers && (packed.empty() || packed.size() == 4 * n_layers + 1),
                "FusedNet: 8 weights, 4 packed weights (or none) and 2 eps per layer, and the packed head");
    TORCH_CHECK(d_ % 2 == 0 && nq_ % nkv_ == 0, "FusedNet: bad head layout");
    for (size_t l = 0; l < n_layers; ++l) {
      const at::Tensor* w = &weights[8 * l];
      Layer L{w[0].contiguous(), w[1], opt(w[2]), w[3], opt(w[4]), w[5].contiguous(), w[6], w[7],
              {}, {}, {}, {}, eps[2 * l], eps[2 * l + 1]};
      if (!packed.empty()) {
        L.qkv_pk = packed[4 * l];
        L.o_pk = packed[4 * l + 1];
        L.gate_up_pk = packed[4 * l + 2];
        L.down_pk = packed[4 * l + 3];
      }
      layers_.push_back(L);
    }
    if (!packed.empty()) {
      head_pk_ = packed.back();
      mkl_linear_ = c10::Dispatcher::singleton()
                        .findSchemaOrThrow("mkl::_mkl_linear", "")
                        .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          const c10::optional<at::Tensor>&, int64_t)>();
    }
    const auto f = at::TensorOptions().dtype(at::kFloat);
    const int64_t nl = static_cast<int64_t>(n_layers);
    k_ = at::zeros({nl, rows, nkv_, d_, kpad_}, f);
    v_ = at::zeros({nl, rows, nkv_, max_len_, d_}, f);
    valid_ = at::zeros({rows, max_len_}, at::TensorOptions().dtype(at::kBool));
  }

  // One decode step's tokens for the computed rows, from their float32 logits (R, V), as the Python loop picks
  // them (fastgen._pick): greedy argmax at temperature 0, else torch.multinomial's draw --
  // argmax(softmax(logits / T) / noise) with Exp(1) noise drawn by ATen for all `batch` rows (as generate
  // draws it, so the same random numbers) and row `rows[i]`'s noise for row i. The softmax and the argmax are
  // loops here (NaN logits are not expected from a float32 nano model; argmax would pick them, these loops
  // would not). `probs` (R, V), if non-empty, replaces softmax(logits / T) (the top-p
  // path). Finished rows (`alive` false) get `pad_id`; the tokens are written to out[rows, t], and `alive` (R,)
  // is cleared in place where a live row emits an EOS id in `eos`. Returns the tokens (R,) and the number of
  // rows still alive.
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
      at::Tensor noise = at::empty({batch, V}, logits.options()).exponential_(1);
      const float* np = noise.data_ptr<float>();
      const bool given = probs.numel() > 0;
      const at::Tensor pr = given ? probs.contiguous() : at::Tensor();
      std::vector<float> p(V);
      const float temp = static_cast<float>(temperature);
      for (int64_t i = 0; i < R; ++i) {
        const float* z = lp + i * V;
        if (given) {
          std::copy(pr.data_ptr<float>() + i * V, pr.data_ptr<float>() + (i + 1) * V, p.begin());
        } else {  // softmax(logits / T)
          float mx = -std::numeric_limits<float>::infinity(), sum = 0.f;
          for (int64_t j = 0; j < V; ++j) mx = std::max(mx, p[j] = z[j] / temp);
          for (int64_t j = 0; j < V; ++j) sum += (p[j] = std::exp(p[j] - mx));
          for (int64_t j = 0; j < V; ++j) p[j] /= sum;
        }
        const float* e = np + rp[i] * V;
        int64_t best = 0;
        float best_q = p[0] / e[0];
        for (int64_t j = 1; j < V; ++j) {
          const float q = p[j] / e[j];
          if (q > best_q) { best_q = q; best = j; }  // first maximum, as argmax
        }
        tp[i] = best;
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

  // Keep only cache rows `rows` (indices into the current rows), as finished rows are dropped.
  void keep(const at::Tensor& rows) {
    k_ = k_.index_select(1, rows);
    v_ = v_.index_select(1, rows);
    valid_ = valid_.index_select(0, rows);
  }

  // Float32 logits (R, V) of the last new position for tokens `ids` (R, S) at cache slots start..start+S-1,
  // rotary positions `pos` (R, S) and `real` (R, S) bool: which new tokens are real (left padding is not).
  at::Tensor forward(const at::Tensor& ids_in, const at::Tensor& pos_in, int64_t start, const at::Tensor& real_in) {
    at::NoGradGuard no_grad;
    const at::Tensor ids = ids_in.contiguous(), pos = pos_in.contiguous(), real = real_in.contiguous();
    const int64_t R = ids.size(0), S = ids.size(1), N = R * S, H = embed_.size(1), D = d_;
    const int64_t nq = nq_, nkv = nkv_, rep = nq / nkv, end = start + S, L = max_len_, KP = kpad_;
    TORCH_CHECK(end <= L && R == k_.size(1), "FusedNet.forward: cache slots or rows out of range");
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
    std::vector<float> scores(E), rot(D);
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
      float* kc = k_[li].data_ptr<float>();  // (rows, kv_heads, head_dim, kpad)
      float* vc = v_[li].data_ptr<float>();  // (rows, kv_heads, max_len, head_dim)
      // rotary on q and k (as transformers: x * cos + rotate_half(x) * sin), then k and v into the cache
      for (int64_t n = 0; n < N; ++n) {
        const int64_t r = n / S, slot = start + n % S;
        const float* c = cos_p + pos_p[n] * D;
        const float* s = sin_p + pos_p[n] * D;
        float* row = qkv_p + n * qkv_n;
        for (int64_t hd = 0; hd < nq + nkv; ++hd) {
          float* v = row + hd * D;
          for (int64_t i = 0; i < D / 2; ++i) {
            rot[i] = v[i] * c[i] + (-v[i + D / 2]) * s[i];
            rot[i + D / 2] = v[i + D / 2] * c[i + D / 2] + v[i] * s[i + D / 2];
          }
          std::copy(rot.begin(), rot.end(), v);
        }
        for (int64_t g = 0; g < nkv; ++g) {
          float* kd = kc + ((r * nkv + g) * D) * KP + slot;
          const float* ks = row + (nq + g) * D;
          for (int64_t i = 0; i < D; ++i) kd[i * KP] = ks[i];
          std::copy(row + (nq + nkv + g) * D, row + (nq + nkv + g + 1) * D, vc + ((r * nkv + g) * L + slot) * D);
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
          scores16(qkv_p + n * qkv_n + hd * D, kc + (r * nkv + g) * D * KP, D, KP, round16(slot + 1),
                   scores.data());
          float mx = ninf;
          for (int64_t t = 0; t <= slot; ++t) {
            scores[t] = (ok[t] || t == slot) ? scores[t] * scale : ninf;
            mx = std::max(mx, scores[t]);
          }
          float sum = 0.f;
          for (int64_t t = 0; t <= slot; ++t) sum += (scores[t] = std::exp(scores[t] - mx));
          const float inv = 1.f / sum;
          for (int64_t t = 0; t <= slot; ++t) scores[t] *= inv;
          weighted_values(scores.data(), vc + (r * nkv + g) * L * D, slot + 1, D, ap + (n * nq + hd) * D);
        }
      }
      add_into(xp, linear(att, w.o_w, w.o_pk, w.o_b));
      rms_rows(xp, w.ln2.data_ptr<float>(), static_cast<float>(w.eps2), N, H, hp);
      at::Tensor gu = linear(h, w.gate_up, w.gate_up_pk, at::Tensor());  // (N, 2I): gate | up
      const int64_t I = gu.size(1) / 2;
      at::Tensor act = at::silu(gu.narrow(1, 0, I)).contiguous();
      float* actp = act.data_ptr<float>();
      const float* gup = gu.data_ptr<float>();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < I; ++i) actp[n * I + i] *= gup[n * 2 * I + I + i];
      add_into(xp, linear(act, w.down, w.down_pk, at::Tensor()));
    }
    // final norm and head on each row's last new position only
    at::Tensor last = at::empty({R, H}, x.options());
    float* lp = last.data_ptr<float>();
    for (int64_t r = 0; r < R; ++r)
      rms_rows(xp + (r * S + S - 1) * H, norm_.data_ptr<float>(), static_cast<float>(norm_eps_), 1, H, lp + r * H);
    return linear(last, head_, head_pk_, head_b_);
  }

 private:
  // x @ w.T (+ b): MKL's packed GEMM where a packed copy fits these rows, else addmm / mm
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& packed, const at::Tensor& b) const {
    if (packed.defined() && x.size(0) == pack_rows_)
      return mkl_linear_->call(x, packed, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt, pack_rows_);
    return b.defined() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
  }

  static void add_into(float* x, const at::Tensor& y) {
    const float* yp = y.data_ptr<float>();
    for (int64_t i = 0, n = y.numel(); i < n; ++i) x[i] += yp[i];
  }

  at::Tensor embed_, norm_;
  double norm_eps_;
  at::Tensor head_, head_b_, head_pk_;
  int64_t pack_rows_;
  std::optional<c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    const c10::optional<at::Tensor>&, int64_t)>> mkl_linear_;
  std::vector<Layer> layers_;
  int64_t nq_, nkv_, d_;
  at::Tensor cos_, sin_;
  int64_t max_len_, kpad_;
  at::Tensor k_, v_, valid_;
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<FusedNet>(m, "FusedNet")
      .def(pybind11::init<at::Tensor, at::Tensor, double, at::Tensor, at::Tensor, std::vector<at::Tensor>,
                          std::vector<at::Tensor>, int64_t, std::vector<double>, int64_t, int64_t, int64_t,
                          at::Tensor, at::Tensor, int64_t, int64_t>())
      .def("keep", &FusedNet::keep)
      .def("pick", &FusedNet::pick)
      .def("forward", &FusedNet::forward);
}
