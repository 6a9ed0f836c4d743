// Native CPU kernels for the BitNet b1.58 W1.58A8 matmul on packed ternary weights.
//
// Layout ("cpu", see kernels/cpu/layout.py): flat uint8 (Np * Kp / 4). A 64-byte block (t, g) holds 16
// output rows (tile t) x 16 input columns (group g); byte 4*lane + b holds in bits [2j, 2j+1] the code
// w + 1 of w[16t + lane, 16g + 4j + b]. Tiles form super-tiles of 4 (the last may hold s = 1..3) whose
// blocks interleave by group: block (t, g) starts at (t / 4) * G * 256 + (g * s + t % 4) * 64.
//
// Arithmetic: codes c = w + 1 in {0,1,2} are the unsigned side of u8 x s8 dot products, the int8
// activations the signed side; sum_k c_k x_k - sum_k x_k = sum_k w_k x_k (the activation sum is computed
// once per token). The int32 result equals the reference bit for bit; the epilogue computes
// float(acc) * weight_scale / s in fp32 in the reference's order.
//
// Paths (all in this one file, chosen at run time with target attributes, forced by the `isa` argument):
//   ISA_AVX512: AVX512-VNNI vpdpbusd. GEMV (M = 1): the four 2-bit fields of a block are taken by masking
//     only (no shift): field j is scaled by 4^j and accumulates into its own register, undone by an exact
//     arithmetic shift at the end. GEMM (M > 1): fields shifted down once per block, reused by MB rows.
//   ISA_AVX2: vpmaddubsw + vpmaddwd on the two 256-bit halves of a block.
//   ISA_SCALAR: plain C++ (any CPU).
// Threads: torch.get_num_threads() threads share the output tiles. Default scheduler: torch's OpenMP
// (at::parallel_for, static contiguous split), the same threads torch's own ops use. Alternative: this
// file's own pool with dynamic chunk claiming, where the caller works too and returns as soon as every chunk
// is done (a worker the OS has not scheduled is not waited for, so on a machine loaded by other processes a
// call degrades to one thread's speed instead of stalling at a fork-join barrier). Measured here: in a
// decode-like loop mixing torch ops and these kernels the pool was ~1.8x slower (its worker competes with
// torch's spinning OpenMP threads), so it is opt-in (set_scheduler / BITNET_CPU_SCHEDULER=pool).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define BITNET_X86 1
#else
#define BITNET_X86 0
#endif

namespace {

constexpr int64_t TILE_N = 16;
constexpr int64_t GROUP_K = 16;
constexpr int64_t BLOCK = 64;
constexpr int64_t SUPER = 4;  // tiles per super-tile (64 output rows, one GEMV work unit); the last may hold fewer
// |field-3 accumulator| <= 64 * 256 * K / 4 must stay below 2^31.
constexpr int64_t MAX_K = int64_t(1) << 19;
// Software prefetch distance of the GEMV weight streams, in 64-byte blocks (0 disables it).
#ifndef BITNET_PF_DIST
#define BITNET_PF_DIST 8
#endif
#ifndef BITNET_PF_HINT
#define BITNET_PF_HINT _MM_HINT_T0
#endif

enum Isa : int { ISA_AUTO = -1, ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

int cpu_best_isa() {
#if BITNET_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
    return ISA_AVX512;
  }
  if (__builtin_cpu_supports("avx2")) return ISA_AVX2;
#endif
  return ISA_SCALAR;
}

int resolve_isa(int64_t isa) {
  const int best = cpu_best_isa();
  if (isa == ISA_AUTO) return best;
  TORCH_CHECK(isa >= ISA_SCALAR && isa <= ISA_AVX512, "ternary_cpu: unknown isa ", isa);
  TORCH_CHECK(isa <= best, "ternary_cpu: isa ", isa, " is not supported by this CPU (best is ", best, ")");
  return static_cast<int>(isa);
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}


// ---------------------------------------------------------------------------------------------------
// Thread pool with dynamic chunk claiming (see the header comment).
// ---------------------------------------------------------------------------------------------------

inline void cpu_relax() {
#if BITNET_X86
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

class Pool {
 public:
  using Fn = std::function<void(int64_t)>;
  static constexpr int MAX_THREADS = 64;

  static Pool& instance() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destruction
    return *pool;
  }

  // Runs fn(i) for every i in [0, n) on up to `threads` threads, the caller included. Thread p starts on
  // its own contiguous range [p n / P, (p + 1) n / P) (streams stay sequential); a thread that runs out
  // steals chunks from the back of the others' ranges.
  void run(int64_t n, int threads, const Fn& fn) {
    if (n <= 0) return;
    const int P = std::min<int>(std::min<int64_t>(threads, n), MAX_THREADS);
    if (P <= 1) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    TORCH_CHECK(n < (int64_t(1) << 24), "ternary_cpu: too many parallel chunks");
    std::lock_guard<std::mutex> serial(run_mu_);  // one job at a time (calls from several Python threads)
    ensure_workers(P - 1);
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    gen_ = (gen_ + 1) & 0xFFFF;
    for (int p = 0; p < P; ++p) {
      const uint64_t b = uint64_t(n * p / P), e = uint64_t(n * (p + 1) / P);
      slots_[p].word.store((gen_ << 48) | (e << 24) | b, std::memory_order_relaxed);
    }
    job_.store((gen_ << 8) | uint64_t(P), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
    work(0, P);
    // Wait only for chunks that were claimed and are still running.
    int spins = 0;
    while (done_.load(std::memory_order_acquire) < n) {
      if (++spins < 4096) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    fn_ = nullptr;
  }

 private:
  Pool() = default;

  struct alignas(64) Slot {
    std::atomic<uint64_t> word{0};  // generation (16 bits) | end (24) | next (24): chunks [next, end) left
  };

  // Claims one chunk of slot p: from the front (owner) or the back (thief). -1 when the slot is empty.
  int64_t claim(int p, bool front) {
    uint64_t t = slots_[p].word.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t e = (t >> 24) & 0xFFFFFF, b = t & 0xFFFFFF;
      if (b >= e) return -1;
      const uint64_t next = front ? t + 1 : t - (uint64_t(1) << 24);
      if (slots_[p].word.compare_exchange_weak(t, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
        return static_cast<int64_t>(front ? b : e - 1);
      }
    }
  }

  // Runs the chunks of its own slot, then steals from the others. Holding an unfinished chunk keeps fn_
  // valid: the caller waits for every chunk.
  void work(int me, int P) {
    for (int k = 0; k < P; ++k) {
      const int p = (me + k) % P;
      for (;;) {
        const int64_t i = claim(p, k == 0);
        if (i < 0) break;
        (*fn_)(i);
        if (me != 0) worker_chunks_.fetch_add(1, std::memory_order_relaxed);
        done_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  }

  void ensure_workers(int wanted) {
    while (static_cast<int>(workers_.size()) < wanted) {
      const int id = static_cast<int>(workers_.size()) + 1;  // slot 0 is the caller's
      workers_.emplace_back([this, id] { loop(id); });
      workers_.back().detach();
    }
  }

  void loop(int id) {
    using clock = std::chrono::steady_clock;
    uint64_t seen = 0;
    for (;;) {
      const uint64_t job = job_.load(std::memory_order_acquire);
      if (job != seen) {
        seen = job;
        const int P = static_cast<int>(job & 0xFF);
        if (id < P) work(id, P);
        continue;
      }
      // Spin a while (decode issues kernels back to back), then sleep until the next job.
      const auto until = clock::now() + std::chrono::microseconds(300);
      bool changed = false;
      while (!changed) {
        for (int i = 0; i < 64 && !changed; ++i) {
          cpu_relax();
          changed = job_.load(std::memory_order_acquire) != seen;
        }
        if (changed || clock::now() > until) break;
      }
      if (changed) continue;
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      cv_.wait(lk, [&] { return job_.load(std::memory_order_seq_cst) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  Slot slots_[MAX_THREADS];

 public:
  std::atomic<int64_t> worker_chunks_{0};  // chunks run by pool workers (not the caller), for diagnostics

 private:
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<uint64_t> job_{0};  // generation << 8 | participants
  alignas(64) std::atomic<int> sleepers_{0};
  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_;
  const Fn* fn_ = nullptr;
  uint64_t gen_ = 0;
};

enum Scheduler : int { SCHED_POOL = 0, SCHED_OPENMP = 1 };
std::atomic<int> g_scheduler{SCHED_OPENMP};

// Runs body(i) for i in [0, n) with torch.get_num_threads() threads.
template <typename F>
void parallel_chunks(int64_t n, const F& body) {
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), n));
  if (g_scheduler.load(std::memory_order_relaxed) == SCHED_OPENMP) {
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) body(i);
    });
    return;
  }
  const Pool::Fn fn = [&body](int64_t i) { body(i); };
  Pool::instance().run(n, threads, fn);
}

// ---------------------------------------------------------------------------------------------------
// Activation quantization: s = 127 / max(|x|, 1e-5), q = clamp(round_half_even(x * s), -128, 127).
// ---------------------------------------------------------------------------------------------------

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

template <typename T>
inline float load_scalar(const T* x, int64_t k);
template <>
inline float load_scalar<float>(const float* x, int64_t k) { return x[k]; }
template <>
inline float load_scalar<uint16_t>(const uint16_t* x, int64_t k) { return bf16_to_float(x[k]); }

template <typename T>
void quant_row_scalar(const T* x, int64_t K, int8_t* q, float* s_out, int32_t* sum_out) {
  float amax = 0.0f;
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(load_scalar<T>(x, k)));
  amax = std::max(amax, 1e-5f);
  const float s = 127.0f / amax;
  int32_t sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    float r = std::nearbyint(load_scalar<T>(x, k) * s);  // default rounding mode: half to even
    r = std::min(127.0f, std::max(-128.0f, r));
    const int8_t v = static_cast<int8_t>(r);
    q[k] = v;
    sum += v;
  }
  *s_out = s;
  *sum_out = sum;
}

#if BITNET_X86
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16_avx512(const T* x, int64_t k,
                                                                                  __mmask16 m);
template <>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16_avx512<float>(const float* x,
                                                                                         int64_t k,
                                                                                         __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, x + k);
}
template <>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16_avx512<uint16_t>(
    const uint16_t* x, int64_t k, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, x + k);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void quant_row_avx512(const T* x, int64_t K, int8_t* q,
                                                                           float* s_out, int32_t* sum_out) {
  __m512 mx = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1u);
    mx = _mm512_max_ps(mx, _mm512_abs_ps(load16_avx512<T>(x, k, m)));
  }
  float amax = _mm512_reduce_max_ps(mx);
  amax = std::max(amax, 1e-5f);
  const float s = 127.0f / amax;
  const __m512 vs = _mm512_set1_ps(s);
  __m512i vsum = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1u);
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(load16_avx512<T>(x, k, m), vs));  // RNE (MXCSR)
    const __m512i c = _mm512_max_epi32(_mm512_min_epi32(r, _mm512_set1_epi32(127)), _mm512_set1_epi32(-128));
    vsum = _mm512_add_epi32(vsum, _mm512_maskz_mov_epi32(m, c));
    _mm_mask_storeu_epi8(q + k, m, _mm512_cvtepi32_epi8(c));
  }
  *s_out = s;
  *sum_out = _mm512_reduce_add_epi32(vsum);
}
#endif

// xq: (M, Kp) with zero padding; s: (M); xsum: (M).
template <typename T>
void quantize_rows(const T* x, int64_t M, int64_t K, int64_t Kp, int isa, int8_t* xq, float* s, int32_t* xsum) {
  auto row = [&](int64_t m) {
    int8_t* q = xq + m * Kp;
    std::memset(q + K, 0, static_cast<size_t>(Kp - K));
#if BITNET_X86
    if (isa == ISA_AVX512) {
      quant_row_avx512<T>(x + m * K, K, q, s + m, xsum + m);
      return;
    }
#endif
    quant_row_scalar<T>(x + m * K, K, q, s + m, xsum + m);
  };
  if (M * K >= (int64_t(1) << 16)) {
    parallel_chunks(M, row);
  } else {
    for (int64_t m = 0; m < M; ++m) row(m);
  }
}

// ---------------------------------------------------------------------------------------------------
// Epilogue: tot[i] = sum_k c_k x_k for rows 16 t + i; acc = tot - xsum[m]; write int32 or scaled float.
// ---------------------------------------------------------------------------------------------------

struct Epilogue {
  int64_t N;
  const int32_t* xsum;  // (M)
  int32_t* out_i32;     // (M, N) or null
  float* out_f32;       // (M, N) or null
  const float* ws;      // (1) or (N)
  bool per_channel;
  const float* s;  // (M)

  inline void store(int64_t m, int64_t tile, const int32_t* tot) const {
    const int64_t n0 = tile * TILE_N;
    const int64_t cnt = std::min<int64_t>(TILE_N, N - n0);
    const int32_t off = xsum[m];
    if (out_i32 != nullptr) {
      int32_t* o = out_i32 + m * N + n0;
      for (int64_t i = 0; i < cnt; ++i) o[i] = tot[i] - off;
      return;
    }
    float* o = out_f32 + m * N + n0;
    const float sm = s[m];
    for (int64_t i = 0; i < cnt; ++i) {
      const float w = per_channel ? ws[n0 + i] : ws[0];
      const float a = static_cast<float>(tot[i] - off);
      o[i] = (a * w) / sm;  // the reference's order: acc * weight_scale / s
    }
  }
};

// ---------------------------------------------------------------------------------------------------
// Scalar path: one tile (16 rows) x one activation row.
// ---------------------------------------------------------------------------------------------------

void tile_scalar(const uint8_t* wt, int64_t G, int64_t gstride, const int8_t* x, int32_t* tot) {
  for (int64_t i = 0; i < TILE_N; ++i) tot[i] = 0;
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* blk = wt + g * gstride;
    const int8_t* xg = x + g * GROUP_K;
    for (int lane = 0; lane < 16; ++lane) {
      int32_t acc = 0;
      for (int b = 0; b < 4; ++b) {
        const uint8_t byte = blk[lane * 4 + b];
        for (int j = 0; j < 4; ++j) acc += static_cast<int32_t>((byte >> (2 * j)) & 3) * xg[4 * j + b];
      }
      tot[lane] += acc;
    }
  }
}

#if BITNET_X86
// ---------------------------------------------------------------------------------------------------
// AVX2 path: MB activation rows x one tile, maddubs (u8 codes x s8 activations) then madd with ones.
// ---------------------------------------------------------------------------------------------------

template <int MB>
__attribute__((target("avx2,fma"))) void tile_avx2(const uint8_t* wt, int64_t G, int64_t gstride, const int8_t* x,
                                                  int64_t Kp, int32_t* tot) {
  const __m256i mask = _mm256_set1_epi8(0x03);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i lo[MB], hi[MB];
  for (int m = 0; m < MB; ++m) lo[m] = hi[m] = _mm256_setzero_si256();
  for (int64_t g = 0; g < G; ++g) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wt + g * gstride));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wt + g * gstride + 32));
    for (int j = 0; j < 4; ++j) {
      const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(v0, 2 * j), mask);
      const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(v1, 2 * j), mask);
      for (int m = 0; m < MB; ++m) {
        const __m256i xb = _mm256_set1_epi32(load_i32(x + m * Kp + g * GROUP_K + 4 * j));
        lo[m] = _mm256_add_epi32(lo[m], _mm256_madd_epi16(_mm256_maddubs_epi16(c0, xb), ones));
        hi[m] = _mm256_add_epi32(hi[m], _mm256_madd_epi16(_mm256_maddubs_epi16(c1, xb), ones));
      }
    }
  }
  for (int m = 0; m < MB; ++m) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tot + m * TILE_N), lo[m]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tot + m * TILE_N + 8), hi[m]);
  }
}

// ---------------------------------------------------------------------------------------------------
// AVX512-VNNI GEMV: one super-tile (NT tiles, 16 NT rows) x one activation row, mask-only field extraction
// (field j is scaled by 4^j). The super-tile's blocks are one sequential stream of NT * 64 bytes per group.
// ---------------------------------------------------------------------------------------------------

template <int NT>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void gemv_avx512(const uint8_t* w, int64_t G,
                                                                                 const int8_t* x,
                                                                                 int32_t* tot) {
  const __m512i k0 = _mm512_set1_epi8(0x03);
  const __m512i k1 = _mm512_set1_epi8(0x0C);
  const __m512i k2 = _mm512_set1_epi8(0x30);
  const __m512i k3 = _mm512_set1_epi8(static_cast<char>(0xC0));
  __m512i a0[NT], a1[NT], a2[NT], a3[NT];
  for (int t = 0; t < NT; ++t) a0[t] = a1[t] = a2[t] = a3[t] = _mm512_setzero_si512();
  for (int64_t g = 0; g < G; ++g) {
    const int8_t* xg = x + g * GROUP_K;
    const __m512i x0 = _mm512_set1_epi32(load_i32(xg));
    const __m512i x1 = _mm512_set1_epi32(load_i32(xg + 4));
    const __m512i x2 = _mm512_set1_epi32(load_i32(xg + 8));
    const __m512i x3 = _mm512_set1_epi32(load_i32(xg + 12));
    for (int t = 0; t < NT; ++t) {
      const uint8_t* blk = w + (g * NT + t) * BLOCK;
      if (BITNET_PF_DIST > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(blk + BITNET_PF_DIST * BLOCK), BITNET_PF_HINT);
      }
      const __m512i v = _mm512_loadu_si512(blk);
      a0[t] = _mm512_dpbusd_epi32(a0[t], _mm512_and_si512(v, k0), x0);
      a1[t] = _mm512_dpbusd_epi32(a1[t], _mm512_and_si512(v, k1), x1);
      a2[t] = _mm512_dpbusd_epi32(a2[t], _mm512_and_si512(v, k2), x2);
      a3[t] = _mm512_dpbusd_epi32(a3[t], _mm512_and_si512(v, k3), x3);
    }
  }
  for (int t = 0; t < NT; ++t) {
    __m512i sum = _mm512_add_epi32(a0[t], _mm512_srai_epi32(a1[t], 2));
    sum = _mm512_add_epi32(sum, _mm512_srai_epi32(a2[t], 4));
    sum = _mm512_add_epi32(sum, _mm512_srai_epi32(a3[t], 6));
    _mm512_storeu_si512(tot + t * TILE_N, sum);
  }
}

// ---------------------------------------------------------------------------------------------------
// AVX512-VNNI GEMM: MB activation rows x one tile; fields shifted down once per block, reused MB times.
// ---------------------------------------------------------------------------------------------------

template <int MB>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void tile_avx512(const uint8_t* wt, int64_t G,
                                                                                 int64_t gstride, const int8_t* x,
                                                                                 int64_t Kp, int32_t* tot) {
  const __m512i mask = _mm512_set1_epi8(0x03);
  __m512i ae[MB], ao[MB];
  for (int m = 0; m < MB; ++m) ae[m] = ao[m] = _mm512_setzero_si512();
  for (int64_t g = 0; g < G; ++g) {
    const __m512i v = _mm512_loadu_si512(wt + g * gstride);
    const __m512i c0 = _mm512_and_si512(v, mask);
    const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(v, 2), mask);
    const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
    const __m512i c3 = _mm512_and_si512(_mm512_srli_epi16(v, 6), mask);
    for (int m = 0; m < MB; ++m) {
      const int8_t* xg = x + m * Kp + g * GROUP_K;
      ae[m] = _mm512_dpbusd_epi32(ae[m], c0, _mm512_set1_epi32(load_i32(xg)));
      ao[m] = _mm512_dpbusd_epi32(ao[m], c1, _mm512_set1_epi32(load_i32(xg + 4)));
      ae[m] = _mm512_dpbusd_epi32(ae[m], c2, _mm512_set1_epi32(load_i32(xg + 8)));
      ao[m] = _mm512_dpbusd_epi32(ao[m], c3, _mm512_set1_epi32(load_i32(xg + 12)));
    }
  }
  for (int m = 0; m < MB; ++m) {
    _mm512_storeu_si512(tot + m * TILE_N, _mm512_add_epi32(ae[m], ao[m]));
  }
}
#endif

constexpr int GEMM_MB = 8;  // activation rows per AVX512 GEMM micro-kernel call (AVX2: 4)

// Tiles in super-tile u (of T tiles): SUPER, or fewer for the last.
inline int64_t super_width(int64_t u, int64_t T) { return std::min<int64_t>(SUPER, T - u * SUPER); }

void matmul_packed(const uint8_t* w, int64_t N, int64_t G, const int8_t* xq, int64_t M, int64_t Kp, int isa,
                   const Epilogue& ep) {
  const int64_t T = (N + TILE_N - 1) / TILE_N;  // tiles holding real rows
#if BITNET_X86
  if (isa == ISA_AVX512 && M == 1) {
    const int64_t units = (T + SUPER - 1) / SUPER;
    parallel_chunks(units, [&](int64_t u) {
      alignas(64) int32_t tot[SUPER * TILE_N];
      const uint8_t* wu = w + u * G * SUPER * BLOCK;
      const int64_t s = super_width(u, T);
      switch (s) {
        case 4: gemv_avx512<4>(wu, G, xq, tot); break;
        case 3: gemv_avx512<3>(wu, G, xq, tot); break;
        case 2: gemv_avx512<2>(wu, G, xq, tot); break;
        default: gemv_avx512<1>(wu, G, xq, tot); break;
      }
      for (int64_t i = 0; i < s; ++i) ep.store(0, u * SUPER + i, tot + i * TILE_N);
    });
    return;
  }
#endif
  parallel_chunks(T, [&](int64_t t) {
    alignas(64) int32_t tot[GEMM_MB * TILE_N];
    const int64_t u = t / SUPER, s = super_width(u, T);
    const uint8_t* wt = w + u * G * SUPER * BLOCK + (t % SUPER) * BLOCK;  // block (t, 0)
    const int64_t gs = s * BLOCK;                                          // bytes from block (t, g) to (t, g + 1)
    int64_t m = 0;
    while (m < M) {
      const int8_t* xm = xq + m * Kp;
      int64_t done = 1;
#if BITNET_X86
      const int64_t left = M - m;
      if (isa == ISA_AVX512) {
        if (left >= 8) {
          tile_avx512<8>(wt, G, gs, xm, Kp, tot);
          done = 8;
        } else if (left >= 4) {
          tile_avx512<4>(wt, G, gs, xm, Kp, tot);
          done = 4;
        } else if (left >= 2) {
          tile_avx512<2>(wt, G, gs, xm, Kp, tot);
          done = 2;
        } else {
          tile_avx512<1>(wt, G, gs, xm, Kp, tot);
        }
      } else if (isa == ISA_AVX2) {
        if (left >= 4) {
          tile_avx2<4>(wt, G, gs, xm, Kp, tot);
          done = 4;
        } else if (left >= 2) {
          tile_avx2<2>(wt, G, gs, xm, Kp, tot);
          done = 2;
        } else {
          tile_avx2<1>(wt, G, gs, xm, Kp, tot);
        }
      } else {
        tile_scalar(wt, G, gs, xm, tot);
      }
#else
      tile_scalar(wt, G, gs, xm, tot);
#endif
      for (int64_t i = 0; i < done; ++i) ep.store(m + i, t, tot + i * TILE_N);
      m += done;
    }
  });
}

void check_weight(const torch::Tensor& data, int64_t N, int64_t K) {
  TORCH_CHECK(N > 0 && K > 0, "ternary_cpu: empty weight (", N, ", ", K, ")");
  TORCH_CHECK(K <= MAX_K, "ternary_cpu: in_features ", K, " exceeds the int32-safe limit ", MAX_K);
  const int64_t T = (N + TILE_N - 1) / TILE_N;
  const int64_t G = (K + GROUP_K - 1) / GROUP_K;
  TORCH_CHECK(data.device().is_cpu() && data.scalar_type() == torch::kUInt8 && data.is_contiguous(),
              "ternary_cpu: packed weight must be a contiguous uint8 CPU tensor");
  TORCH_CHECK(data.dim() == 1 && data.size(0) == T * G * BLOCK, "ternary_cpu: packed weight for (", N, ", ", K,
              ") must have shape (", T * G * BLOCK, ",), got ", data.sizes());
}

void check_activations(const torch::Tensor& x, int64_t K) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous(),
              "ternary_cpu: activations must be a contiguous 2-D CPU tensor");
  TORCH_CHECK(x.size(1) == K, "ternary_cpu: activations have K=", x.size(1), ", expected ", K);
}

struct Quantized {
  torch::Tensor xq;    // (M, Kp) int8, zero padded
  torch::Tensor s;     // (M) float32
  torch::Tensor xsum;  // (M) int32
};

Quantized quantize_impl(const torch::Tensor& x, int64_t Kp, int isa) {
  const int64_t M = x.size(0), K = x.size(1);
  Quantized q{torch::empty({M, Kp}, torch::kInt8), torch::empty({M}, torch::kFloat32),
              torch::empty({M}, torch::kInt32)};
  if (x.scalar_type() == torch::kFloat32) {
    quantize_rows<float>(x.data_ptr<float>(), M, K, Kp, isa, q.xq.data_ptr<int8_t>(), q.s.data_ptr<float>(),
                         q.xsum.data_ptr<int32_t>());
  } else {
    TORCH_CHECK(x.scalar_type() == torch::kBFloat16, "ternary_cpu: activations must be float32 or bfloat16");
    quantize_rows<uint16_t>(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()), M, K, Kp, isa,
                            q.xq.data_ptr<int8_t>(), q.s.data_ptr<float>(), q.xsum.data_ptr<int32_t>());
  }
  return q;
}

// ------------------------------------- Python-facing entry points -------------------------------------

// x (M, K) float32/bfloat16 -> (xq int8 (M, K), s float32 (M, 1)).
std::vector<torch::Tensor> quantize(const torch::Tensor& x, int64_t isa) {
  TORCH_CHECK(x.dim() == 2, "ternary_cpu.quantize: expected (M, K)");
  check_activations(x, x.size(1));
  const int chosen = resolve_isa(isa);
  const int64_t K = x.size(1);
  const int64_t Kp = (K + GROUP_K - 1) / GROUP_K * GROUP_K;
  Quantized q = quantize_impl(x, Kp, chosen);
  return {q.xq.narrow(1, 0, K).contiguous(), q.s.unsqueeze(1)};
}

// xq int8 (M, K) x packed (N, K) -> int32 (M, N), exact.
torch::Tensor int_matmul(const torch::Tensor& xq, const torch::Tensor& data, int64_t N, int64_t K, int64_t isa) {
  check_weight(data, N, K);
  check_activations(xq, K);
  TORCH_CHECK(xq.scalar_type() == torch::kInt8, "ternary_cpu.int_matmul: activations must be int8");
  const int chosen = resolve_isa(isa);
  const int64_t M = xq.size(0);
  const int64_t G = (K + GROUP_K - 1) / GROUP_K, Kp = G * GROUP_K;
  torch::Tensor xpad = torch::zeros({M, Kp}, torch::kInt8);
  xpad.narrow(1, 0, K).copy_(xq);
  torch::Tensor xsum = xq.sum(1, false, torch::kInt32).contiguous();
  torch::Tensor out = torch::empty({M, N}, torch::kInt32);
  if (M == 0) return out;
  Epilogue ep{N, xsum.data_ptr<int32_t>(), out.data_ptr<int32_t>(), nullptr, nullptr, false, nullptr};
  matmul_packed(data.data_ptr<uint8_t>(), N, G, xpad.data_ptr<int8_t>(), M, Kp, chosen, ep);
  return out;
}

// x float32/bfloat16 (M, K) -> float32 (M, N) = (xq @ Wq^T) * weight_scale / s, quantization fused.
torch::Tensor matmul(const torch::Tensor& x, const torch::Tensor& data, int64_t N, int64_t K,
                     const torch::Tensor& weight_scale, int64_t isa) {
  check_weight(data, N, K);
  check_activations(x, K);
  TORCH_CHECK(weight_scale.device().is_cpu() && weight_scale.scalar_type() == torch::kFloat32 &&
                  weight_scale.is_contiguous() && (weight_scale.numel() == 1 || weight_scale.numel() == N),
              "ternary_cpu.matmul: weight_scale must be a contiguous float32 CPU tensor of 1 or N elements");
  const int chosen = resolve_isa(isa);
  const int64_t M = x.size(0);
  const int64_t G = (K + GROUP_K - 1) / GROUP_K, Kp = G * GROUP_K;
  torch::Tensor out = torch::empty({M, N}, torch::kFloat32);
  if (M == 0) return out;
  Quantized q = quantize_impl(x, Kp, chosen);
  Epilogue ep{N,       q.xsum.data_ptr<int32_t>(), nullptr, out.data_ptr<float>(), weight_scale.data_ptr<float>(),
              weight_scale.numel() == N && N != 1, q.s.data_ptr<float>()};
  matmul_packed(data.data_ptr<uint8_t>(), N, G, q.xq.data_ptr<int8_t>(), M, Kp, chosen, ep);
  return out;
}

int64_t best_isa() { return cpu_best_isa(); }

void set_scheduler(int64_t which) {
  TORCH_CHECK(which == SCHED_POOL || which == SCHED_OPENMP, "ternary_cpu: scheduler is 0 (pool) or 1 (openmp)");
  g_scheduler.store(static_cast<int>(which));
}

int64_t get_scheduler() { return g_scheduler.load(); }

int64_t pool_worker_chunks() { return Pool::instance().worker_chunks_.load(); }

// Runs n chunks that each busy-wait `spin_ns` and count how often each chunk ran (a test of the scheduler:
// every chunk must run exactly once). Returns the per-chunk run counts.
torch::Tensor scheduler_selftest(int64_t n, int64_t spin_ns) {
  torch::Tensor counts = torch::zeros({n}, torch::kInt64);
  std::vector<std::atomic<int64_t>> hits(static_cast<size_t>(n));
  for (auto& h : hits) h.store(0);
  parallel_chunks(n, [&](int64_t i) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns);
    while (std::chrono::steady_clock::now() < until) cpu_relax();
    hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) counts[i] = hits[static_cast<size_t>(i)].load();
  return counts;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "BitNet b1.58 ternary matmul kernels for the CPU (AVX512-VNNI, AVX2, scalar)";
  m.def("quantize", &quantize, "per-token absmax int8 quantization: x (M, K) -> (xq (M, K), s (M, 1))",
        py::arg("x"), py::arg("isa") = -1);
  m.def("int_matmul", &int_matmul, "exact xq int8 (M, K) @ packed^T -> int32 (M, N)", py::arg("xq"),
        py::arg("data"), py::arg("n"), py::arg("k"), py::arg("isa") = -1);
  m.def("matmul", &matmul, "fused quantize + ternary matmul + scales -> float32 (M, N)", py::arg("x"),
        py::arg("data"), py::arg("n"), py::arg("k"), py::arg("weight_scale"), py::arg("isa") = -1);
  m.def("set_scheduler", &set_scheduler, "0: own pool with dynamic chunks, 1: torch's OpenMP (default)");
  m.def("get_scheduler", &get_scheduler, "the scheduler in use (0 pool, 1 openmp)");
  m.def("pool_worker_chunks", &pool_worker_chunks, "chunks run by pool workers so far (diagnostics)");
  m.def("scheduler_selftest", &scheduler_selftest, "run n busy chunks; per-chunk run counts");
  m.def("best_isa", &best_isa, "0 scalar, 1 AVX2, 2 AVX512-VNNI: the best path this CPU runs");
}
