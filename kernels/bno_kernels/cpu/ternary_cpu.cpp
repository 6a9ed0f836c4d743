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
// Threads: the kernel's own thread count (set_num_threads; by default torch.get_num_threads()). Schedulers:
//   SCHED_AUTO (default): this file's pool when the kernels own their threads (set_num_threads > 0: the
//     engine runs torch's own ops on one thread meanwhile) or for small M (M <= POOL_MAX_M); otherwise
//     torch's OpenMP (at::parallel_for, static contiguous split), whose threads torch's ops also use.
//   SCHED_POOL / SCHED_OPENMP: always one of them.
// The pool claims chunks dynamically: the caller works too and returns as soon as every chunk is done, so a
// worker the OS has not scheduled yet costs nothing. A worker preempted while it holds a chunk (another
// process on its core) makes the caller wait up to a scheduler time slice (milliseconds, against the
// microseconds a call takes); the pool measures that wait and, when it exceeds STALL_NS and a quarter of the
// call's own work (a long prefill GEMM keeps both threads), runs the next calls on the caller alone for a
// back-off period (doubling up to BACKOFF_MAX_NS while stalls recur), then tries the workers again. On a quiet machine no call stalls and every call uses all threads. The engine runs
// torch's own ops on one thread while the kernels own the threads (bno_kernels.cpu.ops.kernel_threads), so
// no OpenMP team spins against the pool's workers. Measured on 2 cores (2B4T shape, int8 head): with a busy
// process pinned to one core, OpenMP kept 0.30 of the quiet decode speed and 0.31 of the prefill; the pool
// with torch's ops on one thread keeps 0.84-1.0 of the decode and 0.60 of the prefill, and is as fast as
// OpenMP on the quiet machine.

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

int cached_best_isa() {
  static const int best = cpu_best_isa();
  return best;
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
    const int64_t began = now_ns();
    work(0, P);
    // Wait only for chunks that were claimed and are still running.
    int spins = 0;
    int64_t waited_from = 0;
    while (done_.load(std::memory_order_acquire) < n) {
      if (waited_from == 0) waited_from = now_ns();
      if (++spins < 4096) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    fn_ = nullptr;
    // A long call (a prefill GEMM) keeps both threads unless the wait was a large share of it.
    if (waited_from != 0) note_wait(now_ns() - waited_from, waited_from - began);
  }

  // Whether calls should run on the caller alone now (a recent call stalled on a preempted worker).
  bool solo_now() const {
    const int64_t until = solo_until_ns_.load(std::memory_order_relaxed);
    return until != 0 && now_ns() < until;
  }

  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  std::atomic<int64_t> stalls_{0};      // calls that waited too long on a preempted worker (see note_wait)
  std::atomic<int64_t> solo_calls_{0};  // calls run on the caller alone during a back-off

 private:
  Pool() = default;

  static constexpr int64_t STALL_NS = 1000000;            // 1 ms: far beyond a chunk, about a time slice
  // A lone stall (a hypervisor or another program taking the core for a moment) costs one short back-off; stalls
  // that recur before CLEAN_CALLS_TO_RESET clean calls (a core that stays busy) double it up to the maximum.
  static constexpr int64_t BACKOFF_MIN_NS = 5000000;      // 5 ms
  static constexpr int64_t BACKOFF_MAX_NS = 500000000;    // 0.5 s
  static constexpr int64_t CLEAN_CALLS_TO_RESET = 64;     // stall-free calls (about half a decode step) that reset it

  void note_wait(int64_t waited, int64_t worked) {
    if (waited > std::max(STALL_NS, worked / 4)) {
      stalls_.fetch_add(1, std::memory_order_relaxed);
      clean_calls_ = 0;
      solo_until_ns_.store(now_ns() + backoff_ns_, std::memory_order_relaxed);
      backoff_ns_ = std::min(backoff_ns_ * 2, BACKOFF_MAX_NS);
    } else if (++clean_calls_ >= CLEAN_CALLS_TO_RESET) {
      backoff_ns_ = BACKOFF_MIN_NS;
      clean_calls_ = 0;
    }
  }

  int64_t backoff_ns_ = BACKOFF_MIN_NS;
  int64_t clean_calls_ = 0;
  std::atomic<int64_t> solo_until_ns_{0};

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

enum Scheduler : int { SCHED_POOL = 0, SCHED_OPENMP = 1, SCHED_AUTO = 2 };
std::atomic<int> g_scheduler{SCHED_AUTO};
std::atomic<int> g_threads{0};  // 0: torch.get_num_threads()
constexpr int64_t POOL_MAX_M = 8;  // SCHED_AUTO: the pool for calls with at most this many rows

int kernel_threads() {
  const int t = g_threads.load(std::memory_order_relaxed);
  return t > 0 ? t : at::get_num_threads();
}

// Runs body(i) for i in [0, n) on the kernel's threads; m_rows (the call's activation rows) picks the
// scheduler under SCHED_AUTO.
template <typename F>
void parallel_chunks(int64_t n, const F& body, int64_t m_rows = 1) {
  const int sched = g_scheduler.load(std::memory_order_relaxed);
  const bool pool = sched == SCHED_POOL ||
                    (sched == SCHED_AUTO && (m_rows <= POOL_MAX_M || g_threads.load(std::memory_order_relaxed) > 0));
  if (!pool) {
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) body(i);
    });
    return;
  }
  Pool& p = Pool::instance();
  int threads = static_cast<int>(std::min<int64_t>(kernel_threads(), n));
  if (threads > 1 && p.solo_now()) {
    p.solo_calls_.fetch_add(1, std::memory_order_relaxed);
    threads = 1;
  }
  const Pool::Fn fn = [&body](int64_t i) { body(i); };
  p.run(n, threads, fn);
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
    parallel_chunks(M, row, M);
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
  }, M);
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


// ---------------------------------------------------------------------------------------------------
// Output heads (vocabulary projections): y (M, V) float32 from h (M, K) float32 and a (V, K) table in one
// of three precisions. Rows of the table are split in chunks of HEAD_ROWS over the kernel's threads; within
// a chunk each table row is read once and used for every activation row (decode: M = batch).
// ---------------------------------------------------------------------------------------------------

constexpr int64_t HEAD_ROWS = 128;

// int8 per-row head, natural layout w int8 (V, K), scale (V,), row_sum (V,) = sum_k w[v, k].
// y[m, v] = float(sum_k xq[m, k] w[v, k]) * (scale[v] / s[m]), xq the per-token absmax int8 activations
// (the same quantizer as the ternary kernels). vpdpbusd takes xq + 128 (unsigned) against w (signed):
// sum (xq + 128) w = sum xq w + 128 row_sum[v].
#if BITNET_X86
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) int32_t dot_u8s8_avx512(const uint8_t* xu,
                                                                                         const int8_t* w,
                                                                                         int64_t K) {
  __m512i acc = _mm512_setzero_si512();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(xu + k), _mm512_loadu_si512(w + k));
  }
  if (k < K) {
    const __mmask64 m = (~uint64_t(0)) >> (64 - (K - k));
    acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(m, xu + k), _mm512_maskz_loadu_epi8(m, w + k));
  }
  return _mm512_reduce_add_epi32(acc);
}
#endif

#if BITNET_X86
// Four table rows at once (four weight streams in flight; the activations loaded once per step).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void dot4_u8s8_avx512(const uint8_t* xu,
                                                                                     const int8_t* w, int64_t K,
                                                                                     int32_t* out) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    const __m512i x = _mm512_loadu_si512(xu + k);
    a0 = _mm512_dpbusd_epi32(a0, x, _mm512_loadu_si512(w + k));
    a1 = _mm512_dpbusd_epi32(a1, x, _mm512_loadu_si512(w + K + k));
    a2 = _mm512_dpbusd_epi32(a2, x, _mm512_loadu_si512(w + 2 * K + k));
    a3 = _mm512_dpbusd_epi32(a3, x, _mm512_loadu_si512(w + 3 * K + k));
  }
  if (k < K) {
    const __mmask64 m = (~uint64_t(0)) >> (64 - (K - k));
    const __m512i x = _mm512_maskz_loadu_epi8(m, xu + k);
    a0 = _mm512_dpbusd_epi32(a0, x, _mm512_maskz_loadu_epi8(m, w + k));
    a1 = _mm512_dpbusd_epi32(a1, x, _mm512_maskz_loadu_epi8(m, w + K + k));
    a2 = _mm512_dpbusd_epi32(a2, x, _mm512_maskz_loadu_epi8(m, w + 2 * K + k));
    a3 = _mm512_dpbusd_epi32(a3, x, _mm512_maskz_loadu_epi8(m, w + 3 * K + k));
  }
  out[0] = _mm512_reduce_add_epi32(a0);
  out[1] = _mm512_reduce_add_epi32(a1);
  out[2] = _mm512_reduce_add_epi32(a2);
  out[3] = _mm512_reduce_add_epi32(a3);
}
#endif

int32_t dot_u8s8_scalar(const uint8_t* xu, const int8_t* w, int64_t K) {
  int32_t acc = 0;
  for (int64_t k = 0; k < K; ++k) acc += static_cast<int32_t>(xu[k]) * w[k];
  return acc;
}

torch::Tensor head_int8(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& scale,
                        const torch::Tensor& row_sum, int64_t isa) {
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == torch::kInt8 && w.dim() == 2 && w.is_contiguous(),
              "ternary_cpu.head_int8: the table must be a contiguous int8 (V, K) CPU tensor");
  const int64_t V = w.size(0), K = w.size(1);
  check_activations(x, K);
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && scale.is_contiguous() && scale.numel() == V,
              "ternary_cpu.head_int8: scale must be a contiguous float32 (V,) tensor");
  TORCH_CHECK(row_sum.scalar_type() == torch::kInt32 && row_sum.is_contiguous() && row_sum.numel() == V,
              "ternary_cpu.head_int8: row_sum must be a contiguous int32 (V,) tensor");
  const int chosen = resolve_isa(isa);
  const int64_t M = x.size(0);
  torch::Tensor out = torch::empty({M, V}, torch::kFloat32);
  if (M == 0) return out;
  Quantized q = quantize_impl(x, K, chosen);  // (M, K) int8, s (M)
  torch::Tensor xu = q.xq.to(torch::kInt16).add(128).to(torch::kUInt8).contiguous();  // (M, K) xq + 128
  const uint8_t* xup = xu.data_ptr<uint8_t>();
  const int8_t* wp = w.data_ptr<int8_t>();
  const float* sc = scale.data_ptr<float>();
  const int32_t* rs = row_sum.data_ptr<int32_t>();
  const float* sm = q.s.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t chunks = (V + HEAD_ROWS - 1) / HEAD_ROWS;
  parallel_chunks(chunks, [&](int64_t c) {
    const int64_t v1 = std::min(V, (c + 1) * HEAD_ROWS);
    int64_t v = c * HEAD_ROWS;
#if BITNET_X86
    if (chosen == ISA_AVX512 && M > 1) {  // several activation rows: four table rows at once
      for (; v + 4 <= v1; v += 4) {
        for (int64_t m = 0; m < M; ++m) {
          int32_t d[4];
          dot4_u8s8_avx512(xup + m * K, wp + v * K, K, d);
          for (int i = 0; i < 4; ++i) {
            o[m * V + v + i] = static_cast<float>(d[i] - 128 * rs[v + i]) * (sc[v + i] / sm[m]);
          }
        }
      }
    }
#endif
    for (; v < v1; ++v) {
      const int8_t* wv = wp + v * K;
      for (int64_t m = 0; m < M; ++m) {
#if BITNET_X86
        const int32_t d = chosen == ISA_AVX512 ? dot_u8s8_avx512(xup + m * K, wv, K) : dot_u8s8_scalar(xup + m * K, wv, K);
#else
        const int32_t d = dot_u8s8_scalar(xup + m * K, wv, K);
#endif
        const int32_t acc = d - 128 * rs[v];
        o[m * V + v] = static_cast<float>(acc) * (sc[v] / sm[m]);  // Int8Head's order: acc * (scale / s)
      }
    }
  }, M);
  return out;
}

// bfloat16 head, natural layout w bf16 (V, K): y[m, v] = sum_k bf16(h[m, k]) w[v, k], fp32 accumulation (the
// activations are rounded to bf16 first, as F.linear(h.to(bfloat16), w) does; the sum is not rounded).
#if BITNET_X86
__attribute__((target("avx512f,avx512bw,avx512vl"))) float dot_bf16_avx512(const float* xb, const uint16_t* w,
                                                                             int64_t K) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512i raw = _mm512_loadu_si512(w + k);  // 32 bf16
    const __m512 w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(raw)), 16));
    const __m512 w1 =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(raw, 1)), 16));
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xb + k), w0, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xb + k + 16), w1, a1);
  }
  for (; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1u);
    const __m512 wv = load16_avx512<uint16_t>(w, k, m);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xb + k), wv, a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#endif

#if BITNET_X86
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 bf16x16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// Four table rows at once; K a multiple of 16 here (the caller takes the rest row by row).
__attribute__((target("avx512f,avx512bw,avx512vl"))) void dot4_bf16_avx512(const float* xb, const uint16_t* w,
                                                                             int64_t K, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t k = 0; k < K; k += 16) {
    const __m512 x = _mm512_loadu_ps(xb + k);
    a0 = _mm512_fmadd_ps(x, bf16x16(w + k), a0);
    a1 = _mm512_fmadd_ps(x, bf16x16(w + K + k), a1);
    a2 = _mm512_fmadd_ps(x, bf16x16(w + 2 * K + k), a2);
    a3 = _mm512_fmadd_ps(x, bf16x16(w + 3 * K + k), a3);
  }
  out[0] = _mm512_reduce_add_ps(a0);
  out[1] = _mm512_reduce_add_ps(a1);
  out[2] = _mm512_reduce_add_ps(a2);
  out[3] = _mm512_reduce_add_ps(a3);
}
#endif

float dot_bf16_scalar(const float* xb, const uint16_t* w, int64_t K) {
  float acc = 0.0f;
  for (int64_t k = 0; k < K; ++k) acc += xb[k] * bf16_to_float(w[k]);
  return acc;
}

torch::Tensor head_bf16(const torch::Tensor& x, const torch::Tensor& w, int64_t isa) {
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == torch::kBFloat16 && w.dim() == 2 && w.is_contiguous(),
              "ternary_cpu.head_bf16: the table must be a contiguous bfloat16 (V, K) CPU tensor");
  const int64_t V = w.size(0), K = w.size(1);
  check_activations(x, K);
  const int chosen = resolve_isa(isa);
  const int64_t M = x.size(0);
  torch::Tensor out = torch::empty({M, V}, torch::kFloat32);
  if (M == 0) return out;
  torch::Tensor xb = x.to(torch::kBFloat16).to(torch::kFloat32).contiguous();  // (M, K) bf16-rounded
  const float* xp = xb.data_ptr<float>();
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  float* o = out.data_ptr<float>();
  const int64_t chunks = (V + HEAD_ROWS - 1) / HEAD_ROWS;
  parallel_chunks(chunks, [&](int64_t c) {
    const int64_t v1 = std::min(V, (c + 1) * HEAD_ROWS);
    int64_t v = c * HEAD_ROWS;
#if BITNET_X86
    if (chosen >= ISA_AVX512 && K % 16 == 0 && M > 1) {
      for (; v + 4 <= v1; v += 4) {
        for (int64_t m = 0; m < M; ++m) {
          float d[4];
          dot4_bf16_avx512(xp + m * K, wp + v * K, K, d);
          for (int i = 0; i < 4; ++i) o[m * V + v + i] = d[i];
        }
      }
    }
#endif
    for (; v < v1; ++v) {
      for (int64_t m = 0; m < M; ++m) {
#if BITNET_X86
        o[m * V + v] = chosen >= ISA_AVX512 ? dot_bf16_avx512(xp + m * K, wp + v * K, K)
                                            : dot_bf16_scalar(xp + m * K, wp + v * K, K);
#else
        o[m * V + v] = dot_bf16_scalar(xp + m * K, wp + v * K, K);
#endif
      }
    }
  }, M);
  return out;
}

// 4-bit grouped head ("q4"): groups of 32 columns, per (row, group) an fp16 scale d; weight = d * (q - 8),
// q in 1..15 (symmetric: d = absmax / 7). Layout: codes uint8 (V, Kp / 2), Kp = K rounded up to 64: in
// the 32 bytes of block b (columns 64 b ..), byte j holds column 64 b + j in its low nibble and 64 b + 32 + j
// in its high nibble (so one 256-bit load unpacks into the block's 64 columns in order); scales fp16 stored
// as int16 (V, Kp / 32). y[m, v] = sum_g d[v, g] sum_{k in g} (q - 8) xq[m, k] / s[m].
#if BITNET_X86
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c"))) float dot_q4_avx512(
    const uint8_t* codes, const uint16_t* scales, const int8_t* xq, const int32_t* neg8_xsum4, int64_t Kp) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m512i lo_half = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512 acc = _mm512_setzero_ps();
  const int64_t blocks = Kp / 64;
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + b * 32));
    const __m256i lo = _mm256_and_si256(raw, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // 64 codes, columns in order
    const __m512i d = _mm512_dpbusd_epi32(_mm512_loadu_si512(neg8_xsum4 + b * 16), q,
                                          _mm512_loadu_si512(xq + b * 64));  // 16 x (4-column sums)
    int32_t pair;
    std::memcpy(&pair, scales + 2 * b, sizeof(pair));  // the two groups' fp16 scales
    const __m512 sc2 = _mm512_cvtph_ps(_mm256_set1_epi32(pair));  // s0 s1 s0 s1 ...
    const __m512 sc = _mm512_permutexvar_ps(lo_half, sc2);         // 8 x s0, 8 x s1
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sc, acc);
  }
  return _mm512_reduce_add_ps(acc);
}
#endif

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

float dot_q4_scalar(const uint8_t* codes, const uint16_t* scales, const int8_t* xq, int64_t Kp) {
  float acc = 0.0f;
  for (int64_t b = 0; b < Kp / 64; ++b) {
    for (int half = 0; half < 2; ++half) {
      int32_t d = 0;
      for (int j = 0; j < 32; ++j) {
        const uint8_t byte = codes[b * 32 + j];
        const int32_t q = half == 0 ? (byte & 0x0F) : (byte >> 4);
        d += (q - 8) * xq[b * 64 + half * 32 + j];
      }
      acc += static_cast<float>(d) * half_to_float(scales[2 * b + half]);
    }
  }
  return acc;
}

torch::Tensor head_q4(const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& scales,
                      int64_t isa) {
  TORCH_CHECK(codes.device().is_cpu() && codes.scalar_type() == torch::kUInt8 && codes.dim() == 2 &&
                  codes.is_contiguous() && codes.size(1) % 32 == 0,
              "ternary_cpu.head_q4: codes must be a contiguous uint8 (V, Kp / 2) CPU tensor, Kp a multiple of 64");
  const int64_t V = codes.size(0), Kp = codes.size(1) * 2;
  TORCH_CHECK(scales.scalar_type() == torch::kInt16 && scales.is_contiguous() && scales.dim() == 2 &&
                  scales.size(0) == V && scales.size(1) == Kp / 32,
              "ternary_cpu.head_q4: scales must be a contiguous int16 (fp16 bits) (V, Kp / 32) tensor");
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous() && x.size(1) <= Kp && x.size(1) > Kp - 64,
              "ternary_cpu.head_q4: activations must be a contiguous 2-D CPU tensor of K columns, Kp = ", Kp);
  const int chosen = resolve_isa(isa);
  const int64_t M = x.size(0);
  torch::Tensor out = torch::empty({M, V}, torch::kFloat32);
  if (M == 0) return out;
  Quantized q = quantize_impl(x, Kp, chosen);  // (M, Kp) zero padded, s (M)
  // -8 * (sum of each 4 consecutive activations), the dpbusd accumulators' start: sum (q - 8) x.
  torch::Tensor neg8 = q.xq.view({M, Kp / 4, 4}).sum(2, false, torch::kInt32).mul(-8).contiguous();  // (M, Kp/4)
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const uint16_t* sp = reinterpret_cast<const uint16_t*>(scales.data_ptr<int16_t>());
  const int8_t* xp = q.xq.data_ptr<int8_t>();
  const int32_t* np = neg8.data_ptr<int32_t>();
  const float* sm = q.s.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t chunks = (V + HEAD_ROWS - 1) / HEAD_ROWS;
  parallel_chunks(chunks, [&](int64_t c) {
    const int64_t v1 = std::min(V, (c + 1) * HEAD_ROWS);
    for (int64_t v = c * HEAD_ROWS; v < v1; ++v) {
      const uint8_t* cv = cp + v * (Kp / 2);
      const uint16_t* sv = sp + v * (Kp / 32);
      for (int64_t m = 0; m < M; ++m) {
#if BITNET_X86
        const float d = chosen == ISA_AVX512 ? dot_q4_avx512(cv, sv, xp + m * Kp, np + m * (Kp / 4), Kp)
                                             : dot_q4_scalar(cv, sv, xp + m * Kp, Kp);
#else
        const float d = dot_q4_scalar(cv, sv, xp + m * Kp, Kp);
#endif
        o[m * V + v] = d / sm[m];
      }
    }
  }, M);
  return out;
}

// Read bandwidth of this machine as the kernels see it: the kernel's threads stream `buf` (summing its 64-bit
// words so no read is optimized away) `repeats` times; returns the best bytes per second of the repeats.
double read_bandwidth(const torch::Tensor& buf, int64_t repeats) {
  TORCH_CHECK(buf.device().is_cpu() && buf.scalar_type() == torch::kUInt8 && buf.is_contiguous() &&
                  buf.numel() % 4096 == 0 && buf.numel() > 0,
              "ternary_cpu.read_bandwidth: a contiguous uint8 CPU buffer of a multiple of 4096 bytes");
  const uint64_t* p = reinterpret_cast<const uint64_t*>(buf.data_ptr<uint8_t>());
  const int64_t words = buf.numel() / 8;
  const int64_t chunk_words = 32768;  // 256 KB per chunk
  const int64_t chunks = (words + chunk_words - 1) / chunk_words;
  std::vector<uint64_t> sink(static_cast<size_t>(chunks), 0);
  double best = 0.0;
  for (int64_t r = 0; r < std::max<int64_t>(repeats, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_chunks(chunks, [&](int64_t c) {
      const uint64_t* q = p + c * chunk_words;
      const int64_t n = std::min(chunk_words, words - c * chunk_words);
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) {
        a0 += q[i];
        a1 += q[i + 1];
        a2 += q[i + 2];
        a3 += q[i + 3];
      }
      for (; i < n; ++i) a0 += q[i];
      sink[static_cast<size_t>(c)] += a0 ^ a1 ^ a2 ^ a3;
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(buf.numel()) / s);
  }
  uint64_t acc = 0;
  for (uint64_t v : sink) acc ^= v;
  if (acc == 0x5bd1e995u) best += 0.0;  // keep the sums observable
  return best;
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


// ---------------------------------------------------------------------------------------------------
// One BitNet b1.58 decoder layer for one new token per row (decode), fused: the Python model calls it once
// per layer instead of about 25 torch ops. Everything is fp32; the four projections are the fused
// quantize + ternary matmul above (the kernels' threads), attention runs over the (b, head) pairs on the
// same threads, the rest (norms, RoPE, relu², residuals) is vector work on the calling thread.
//   x (B, H) residual stream -> returns the new residual stream (B, H); the layer's new key/value go to
//   slot `start` of keys/values (B, Hkv, S, D), which must already be marked in valid (B, S).
// The same arithmetic as the torch model, in another summation order: logits agree to ~1e-5 relative.
// ---------------------------------------------------------------------------------------------------

// sum_i a[i] b[i] in fp32 (16 partial sums on AVX512, 8 in the portable loop).
#if BITNET_X86
__attribute__((target("avx512f"))) float dot_f32_avx512(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
#endif

float dot_f32(const float* a, const float* b, int64_t n, bool avx512) {
#if BITNET_X86
  if (avx512) return dot_f32_avx512(a, b, n);
#endif
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) part[j] += a[i + j] * b[i + j];
  }
  float acc = 0.0f;
  for (; i < n; ++i) acc += a[i] * b[i];
  for (float v : part) acc += v;
  return acc;
}

void rms_norm_rows(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    const float ss = dot_f32(xr, xr, n, cached_best_isa() == ISA_AVX512);
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) o[i] = (xr[i] * inv) * w[i];
  }
}

void check_f32(const torch::Tensor& t, int64_t numel, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == numel,
              "ternary_cpu.decode_layer: ", what, " must be a contiguous float32 CPU tensor of ", numel, " elements");
}

torch::Tensor decode_layer(const torch::Tensor& x, const torch::Tensor& input_norm, const torch::Tensor& post_norm,
                           const torch::Tensor& attn_sub_norm, const torch::Tensor& ffn_sub_norm, double eps,
                           const torch::Tensor& qkv, const torch::Tensor& qkv_scale, const torch::Tensor& o,
                           const torch::Tensor& o_scale, const torch::Tensor& gate_up,
                           const torch::Tensor& gate_up_scale, const torch::Tensor& down,
                           const torch::Tensor& down_scale, const torch::Tensor& cos, const torch::Tensor& sin_signed,
                           torch::Tensor keys, torch::Tensor values, const torch::Tensor& valid, int64_t start,
                           int64_t num_heads, int64_t num_kv_heads, int64_t intermediate) {
  TORCH_CHECK(x.dim() == 2, "ternary_cpu.decode_layer: x must be (B, H)");
  const int64_t B = x.size(0), H = x.size(1);
  TORCH_CHECK(keys.dim() == 4 && keys.size(0) == B && keys.size(1) == num_kv_heads && keys.is_contiguous() &&
                  keys.scalar_type() == torch::kFloat32 && values.sizes() == keys.sizes() && values.is_contiguous() &&
                  values.scalar_type() == torch::kFloat32,
              "ternary_cpu.decode_layer: keys/values must be contiguous float32 (B, Hkv, S, D)");
  const int64_t S = keys.size(2), D = keys.size(3);
  const int64_t Hq = num_heads, Hkv = num_kv_heads, I = intermediate;
  TORCH_CHECK(Hq % Hkv == 0 && D % 2 == 0, "ternary_cpu.decode_layer: bad head counts");
  TORCH_CHECK(start >= 0 && start < S, "ternary_cpu.decode_layer: slot ", start, " outside the cache of ", S);
  TORCH_CHECK(valid.scalar_type() == torch::kBool && valid.dim() == 2 && valid.size(0) == B && valid.size(1) >= S &&
                  valid.stride(1) == 1,
              "ternary_cpu.decode_layer: valid must be a bool (B, >= S) tensor");
  check_f32(x, B * H, "x");
  check_f32(input_norm, H, "input_norm");
  check_f32(post_norm, H, "post_norm");
  check_f32(attn_sub_norm, Hq * D, "attn_sub_norm");
  check_f32(ffn_sub_norm, I, "ffn_sub_norm");
  check_f32(cos, B * D, "cos");
  check_f32(sin_signed, B * D, "sin_signed");
  const float e = static_cast<float>(eps);
  const int64_t Nqkv = (Hq + 2 * Hkv) * D;

  // attention block: h = norm(x); qkv = W h; RoPE on q and k; k, v -> cache slot `start`
  torch::Tensor h = torch::empty({B, H}, torch::kFloat32);
  rms_norm_rows(x.data_ptr<float>(), input_norm.data_ptr<float>(), e, B, H, h.data_ptr<float>());
  torch::Tensor qkv_out = matmul(h, qkv, Nqkv, H, qkv_scale, -1);  // (B, Nqkv)
  float* qkvp = qkv_out.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin_signed.data_ptr<float>();
  float* kc = keys.data_ptr<float>();
  float* vc = values.data_ptr<float>();
  std::vector<float> tmp(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b) {
    float* row = qkvp + b * Nqkv;
    for (int64_t hh = 0; hh < Hq + Hkv; ++hh) {  // q heads then k heads: x cos + roll(x, D/2) sin_signed
      float* v = row + hh * D;
      std::memcpy(tmp.data(), v, sizeof(float) * static_cast<size_t>(D));
      for (int64_t i = 0; i < D; ++i) {
        v[i] = tmp[static_cast<size_t>(i)] * cp[b * D + i] +
               tmp[static_cast<size_t>((i + D / 2) % D)] * sp[b * D + i];
      }
    }
    for (int64_t g = 0; g < Hkv; ++g) {
      std::memcpy(kc + ((b * Hkv + g) * S + start) * D, row + (Hq + g) * D, sizeof(float) * static_cast<size_t>(D));
      std::memcpy(vc + ((b * Hkv + g) * S + start) * D, row + (Hq + Hkv + g) * D,
                  sizeof(float) * static_cast<size_t>(D));
    }
  }
  // scores over the valid slots <= start (and always start itself), softmax, weighted values
  torch::Tensor attn = torch::empty({B, Hq * D}, torch::kFloat32);
  float* ap = attn.data_ptr<float>();
  const bool* vp = valid.data_ptr<bool>();
  const int64_t vstride = valid.stride(0);
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t L = start + 1;
  const bool avx512 = cached_best_isa() == ISA_AVX512;
  parallel_chunks(B * Hq, [&](int64_t bh) {
    const int64_t b = bh / Hq, hq = bh % Hq, g = hq / group;
    const float* q = qkvp + b * Nqkv + hq * D;
    const float* kb = kc + (b * Hkv + g) * S * D;
    const float* vb = vc + (b * Hkv + g) * S * D;
    std::vector<float> p(static_cast<size_t>(L));
    float mx = -INFINITY;
    for (int64_t t = 0; t < L; ++t) {
      if (t != start && !vp[b * vstride + t]) {
        p[static_cast<size_t>(t)] = -INFINITY;
        continue;
      }
      const float d = dot_f32(q, kb + t * D, D, avx512) * scale;
      p[static_cast<size_t>(t)] = d;
      mx = std::max(mx, d);
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < L; ++t) {
      const float w = p[static_cast<size_t>(t)] == -INFINITY ? 0.0f : std::exp(p[static_cast<size_t>(t)] - mx);
      p[static_cast<size_t>(t)] = w;
      sum += w;
    }
    float* out = ap + b * Hq * D + hq * D;
    for (int64_t i = 0; i < D; ++i) out[i] = 0.0f;
    for (int64_t t = 0; t < L; ++t) {
      const float w = p[static_cast<size_t>(t)];
      if (w == 0.0f) continue;
      const float* vt = vb + t * D;
      for (int64_t i = 0; i < D; ++i) out[i] += w * vt[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < D; ++i) out[i] *= inv;
  }, B);
  torch::Tensor normed = torch::empty({B, Hq * D}, torch::kFloat32);
  rms_norm_rows(ap, attn_sub_norm.data_ptr<float>(), e, B, Hq * D, normed.data_ptr<float>());
  torch::Tensor o_out = matmul(normed, o, H, Hq * D, o_scale, -1);  // (B, H)
  torch::Tensor x1 = x + o_out;  // (B, H)
  // MLP block: down(ffn_sub_norm(relu(gate)² * up)) with h = norm(x1)
  rms_norm_rows(x1.data_ptr<float>(), post_norm.data_ptr<float>(), e, B, H, h.data_ptr<float>());
  torch::Tensor gu = matmul(h, gate_up, 2 * I, H, gate_up_scale, -1);  // (B, 2I)
  torch::Tensor a = torch::empty({B, I}, torch::kFloat32);
  const float* gup = gu.data_ptr<float>();
  float* apx = a.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < I; ++i) {
      const float gv = std::max(gup[b * 2 * I + i], 0.0f);
      apx[b * I + i] = (gv * gv) * gup[b * 2 * I + I + i];
    }
  }
  torch::Tensor an = torch::empty({B, I}, torch::kFloat32);
  rms_norm_rows(apx, ffn_sub_norm.data_ptr<float>(), e, B, I, an.data_ptr<float>());
  torch::Tensor d_out = matmul(an, down, H, I, down_scale, -1);  // (B, H)
  return x1 + d_out;
}

int64_t best_isa() { return cpu_best_isa(); }

void set_scheduler(int64_t which) {
  TORCH_CHECK(which == SCHED_POOL || which == SCHED_OPENMP || which == SCHED_AUTO,
              "ternary_cpu: scheduler is 0 (pool), 1 (openmp) or 2 (auto)");
  g_scheduler.store(static_cast<int>(which));
}

void set_num_threads(int64_t n) {
  TORCH_CHECK(n >= 0 && n <= Pool::MAX_THREADS, "ternary_cpu: threads must be 0 (follow torch) to ",
              Pool::MAX_THREADS);
  g_threads.store(static_cast<int>(n));
}

int64_t get_num_threads() { return kernel_threads(); }

std::vector<int64_t> pool_stats() {
  Pool& p = Pool::instance();
  return {p.worker_chunks_.load(), p.stalls_.load(), p.solo_calls_.load()};
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
  m.def("set_scheduler", &set_scheduler, "0: own pool with dynamic chunks, 1: torch's OpenMP, 2: auto (default)");
  m.def("get_scheduler", &get_scheduler, "the scheduler in use (0 pool, 1 openmp, 2 auto)");
  m.def("set_num_threads", &set_num_threads, "the kernels' thread count (0: torch.get_num_threads())");
  m.def("get_num_threads", &get_num_threads, "the kernels' thread count now");
  m.def("pool_stats", &pool_stats, "pool diagnostics: [chunks run by workers, stalled calls, solo calls]");
  m.def("head_int8", &head_int8, "int8 per-row head: x (M, K) -> float32 (M, V)", py::arg("x"), py::arg("w"),
        py::arg("scale"), py::arg("row_sum"), py::arg("isa") = -1);
  m.def("head_bf16", &head_bf16, "bfloat16 head: x (M, K) -> float32 (M, V)", py::arg("x"), py::arg("w"),
        py::arg("isa") = -1);
  m.def("head_q4", &head_q4, "4-bit grouped head: x (M, K) -> float32 (M, V)", py::arg("x"), py::arg("codes"),
        py::arg("scales"), py::arg("isa") = -1);
  m.def("decode_layer", &decode_layer, "one decoder layer for one new token per row, fused (float32)");
  m.def("read_bandwidth", &read_bandwidth, "best read bytes/s of the kernel's threads over buf", py::arg("buf"),
        py::arg("repeats") = 3);
  m.def("pool_worker_chunks", &pool_worker_chunks, "chunks run by pool workers so far (diagnostics)");
  m.def("scheduler_selftest", &scheduler_selftest, "run n busy chunks; per-chunk run counts");
  m.def("best_isa", &best_isa, "0 scalar, 1 AVX2, 2 AVX512-VNNI: the best path this CPU runs");
}
