// The project's own TensorFlow ops, registered into the TensorFlow runtime that @tensorflow/tfjs-node has
// loaded (same libtensorflow, same op registry) and run through TF.js's `tensorflow` backend like any
// built-in op. Each op is one section below, in this order: formula, helpers, shape check, compute.
//
//   MiniCPMLinear(x: float [M, K], w: 1-8 x ([N, K] float or [N, K/2] int32, two bf16/f16 per word); wtype)
//     -> y: [M, N] each: y = x wᵀ (nn.Linear, W in PyTorch [out, in] layout), 16-bit weights widened in registers.
//   MiniCPMWiden(x: int32 [..., K/2]; wtype) -> y: float [..., K]: packed 16-bit values to float32.
//   MiniCPMReadTensor(; fd, file_id, size, offset, count, dtype, T) -> y: T: a safetensors tensor read from
//     an open, validated file: float32 (widened) or, for bf16/f16 with T = int32, the stored values packed.
//   MiniCPMNorm(x: float [R, D], w [D], b [D]; kind, eps) -> y [R, D]: LayerNorm or MiniCPM's RMSNorm, one
//     pass per row.
//   MiniCPMSoftmax(x: float [..., D]) -> y: softmax over the last dimension.
//   MiniCPMBiasGelu(x: float [R, D], b [D]) -> y [R, D]: exact-erf GELU of x + b.
//   MiniCPMSwiGLU(g, u) -> y = silu(g) * u: the MiniCPM MLP's middle.
//   MiniCPMRotary(x: float [..., W], cos [T, d], sin [T, d]) -> y: rotate-half rotary embedding per head.
//   MiniCPMCachedAttention(q, k, v, kcache, vcache, idx; heads, scale) -> y: the decoder's causal attention
//     over a preallocated KV cache that it appends to in place; beams index their slots through idx.
//   MiniCPMKVGrow(old, lo, hi; slots, capacity) -> y: a KV cache's new storage (mmap), with only the positions
//     each slot holds copied in: pages no sequence wrote are never touched.
//   MiniCPMDecoderLayer(h, norms, 7 weights, cos, sin, kcache, vcache, idx; wtype, eps, heads, scale, residual)
//     -> y: one whole decoder layer (the ops above, same code, same order) in one call, for decode steps.
//
// Every op replaces several TF kernels (or a slower one) with one pass over the data; its TF.js-op
// reference (`fooOps` beside `fooNative` in src/) is what the tests compare it with. Parallel loops run on
// the module's own worker threads (see the pool below), not OpenMP.
#include <fcntl.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <node_api.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "tensorflow/c/kernels.h"
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

namespace {

// ====================================================================================================
// Shared: CPU features, the kernel frame every tensor-input op runs in, attributes
// ====================================================================================================

bool g_avx2 = false;  // AVX2 + FMA + F16C

// Ops without attributes keep no state.
void* CreateNoAttrs(TF_OpKernelConstruction*) { return nullptr; }
void DeleteNoAttrs(void*) {}

inline const float* Data(TF_Tensor* t) { return static_cast<const float*>(TF_TensorData(t)); }

constexpr int kMaxInputs = 16;

// The frame every tensor-input kernel shares: fetch the `n` inputs, let `shape` check them and give the
// output's dims (nullptr when fine, else the error message), allocate the float output, run
// `body(inputs, y)`, report any failure, release everything. Nothing is allocated before the check.
template <typename Shape, typename Body>
void RunKernel(TF_OpKernelContext* ctx, int n, Shape shape, Body body) {
  TF_Status* status = TF_NewStatus();
  TF_Tensor* in[kMaxInputs] = {};
  for (int i = 0; i < n && TF_GetCode(status) == TF_OK; i++) TF_GetInput(ctx, i, &in[i], status);
  std::vector<int64_t> dims;
  if (TF_GetCode(status) == TF_OK) {
    if (const char* err = shape(in, &dims)) TF_SetStatus(status, TF_INVALID_ARGUMENT, err);
  }
  if (TF_GetCode(status) == TF_OK) {
    int64_t total = 1;
    for (int64_t d : dims) total *= d;
    TF_Tensor* y = TF_AllocateOutput(ctx, 0, TF_FLOAT, dims.data(), static_cast<int>(dims.size()), sizeof(float) * total, status);
    if (TF_GetCode(status) == TF_OK) body(in, static_cast<float*>(TF_TensorData(y)));
    if (y) TF_DeleteTensor(y);
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelContext_Failure(ctx, status);
  for (TF_Tensor* t : in) if (t) TF_DeleteTensor(t);
  TF_DeleteStatus(status);
}

// A string attribute (TF gives its size first).
bool GetStringAttr(TF_OpKernelConstruction* ctx, const char* name, std::string* out, TF_Status* status) {
  int32_t list_size = 0, total_size = 0;
  TF_OpKernelConstruction_GetAttrSize(ctx, name, &list_size, &total_size, status);
  if (TF_GetCode(status) != TF_OK) return false;
  out->assign(total_size > 0 ? total_size : 0, '\0');
  if (total_size > 0) TF_OpKernelConstruction_GetAttrString(ctx, name, &(*out)[0], total_size, status);
  return TF_GetCode(status) == TF_OK;
}

// y's dims = x's dims.
inline std::vector<int64_t> DimsOf(TF_Tensor* x) {
  std::vector<int64_t> d(TF_NumDims(x));
  for (size_t i = 0; i < d.size(); i++) d[i] = TF_Dim(x, static_cast<int>(i));
  return d;
}

// IEEE half to float, exactly (the scalar path; vector paths use F16C).
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0 && man == 0) {
    bits = sign;
  } else if (exp == 0) {  // subnormal: man * 2^-24, normalized
    int e = -1;
    uint32_t m = man;
    do {
      e++;
      m <<= 1;
    } while (!(m & 0x400u));
    bits = sign | static_cast<uint32_t>(112 - e) << 23 | (m & 0x3ffu) << 13;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 112) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ====================================================================================================
// Shared: the worker threads every parallel op runs on
// ====================================================================================================
// Work is split into numbered chunks that threads claim one at a time from a shared counter; the calling
// thread always takes part, and an op returns as soon as every chunk is DONE, not when every thread has
// checked in. So a worker that the OS has descheduled (another process on the same cores) holds an op up
// only while it is in the middle of a chunk: the caller takes the chunks it does not claim. (An OpenMP
// static schedule hands each thread a fixed share and waits for it: with the two cores shared, decode
// slowed threefold.) Idle workers spin for a while (MINICPMV_SPIN_US, default 50 µs) so that back-to-back
// ops of a decode step find them awake, then sleep on a futex, leaving the cores to TensorFlow's kernels.
// MINICPMV_THREADS sets the thread count (default: the CPUs this process may run on).

class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = new Pool();  // never destroyed: the workers live until the process exits
    return *pool;
  }
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // fn(i) for every i in [0, n), over the caller and the workers; returns when all n have run.
  template <typename F>
  void For(int64_t n, F&& fn) {
    if (n <= 0) return;
    if (n == 1 || workers_.empty()) {
      for (int64_t i = 0; i < n; i++) fn(i);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);  // one job at a time (TensorFlow could call two kernels at once)
    using Fn = std::remove_reference_t<F>;
    const uint64_t gen = (state_.load(std::memory_order_relaxed) >> 32) + 1;
    // The job's fields go to the slot of its generation's parity: a worker that read the previous job late
    // reads the other slot, and its claim (a compare-and-swap on the generation) fails anyway.
    Slot& slot = slots_[gen & 1];
    slot.fn.store([](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); }, std::memory_order_relaxed);
    slot.ctx.store(&fn, std::memory_order_relaxed);
    slot.n.store(n < kMaxChunks ? n : kMaxChunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    state_.store(gen << 32, std::memory_order_release);  // publishes job `gen`, next chunk 0
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWake(&epoch_);
    Work(gen);
    // Only chunks that another thread has claimed and not finished can still be running.
    const int64_t total = n < kMaxChunks ? n : kMaxChunks;
    for (int spins = 0; done_.load(std::memory_order_acquire) < total; spins++) {
      if (spins < 4096) _mm_pause();
      else sched_yield();
    }
    for (int64_t i = total; i < n; i++) fn(i);  // (callers keep n far below kMaxChunks)
  }

 private:
  static constexpr int64_t kMaxChunks = 0xffffffff;
  struct Slot {
    std::atomic<void (*)(void*, int64_t)> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<int64_t> n{0};
  };

  Pool() {
    int n = 0;
    if (const char* env = std::getenv("MINICPMV_THREADS")) n = std::atoi(env);
    if (n <= 0) {
      cpu_set_t set;
      n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    n = n < 1 ? 1 : n > 64 ? 64 : n;
    int spin_us = 50;
    if (const char* env = std::getenv("MINICPMV_SPIN_US")) spin_us = std::atoi(env);
    spin_ns_ = static_cast<int64_t>(spin_us < 0 ? 0 : spin_us) * 1000;
    for (int i = 1; i < n; i++) workers_.emplace_back([this] { Loop(); });
    for (std::thread& t : workers_) t.detach();
  }

  static int64_t NowNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  static void FutexWait(std::atomic<uint32_t>* a, uint32_t expected) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(a), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
  }
  static void FutexWake(std::atomic<uint32_t>* a) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(a), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  }

  // Claims and runs chunks of job `gen` until none is left. A claim succeeds only while the state still holds
  // generation `gen` with chunks left, that is while the job is unfinished, so its slot is unchanged.
  void Work(uint64_t gen) {
    const Slot& slot = slots_[gen & 1];
    void (*fn)(void*, int64_t) = slot.fn.load(std::memory_order_relaxed);
    void* ctx = slot.ctx.load(std::memory_order_relaxed);
    const int64_t n = slot.n.load(std::memory_order_relaxed);
    for (;;) {
      uint64_t s = state_.load(std::memory_order_acquire);
      if ((s >> 32) != gen || static_cast<int64_t>(s & 0xffffffffu) >= n) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
      fn(ctx, static_cast<int64_t>(s & 0xffffffffu));
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void Loop() {
    uint32_t seen = epoch_.load(std::memory_order_acquire);
    for (;;) {
      const int64_t until = NowNs() + spin_ns_;
      uint32_t now = epoch_.load(std::memory_order_acquire);
      for (int i = 0; now == seen; i++) {
        _mm_pause();
        if ((i & 255) == 255 && NowNs() > until) {
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          FutexWait(&epoch_, seen);
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        }
        now = epoch_.load(std::memory_order_acquire);
      }
      seen = now;
      Work(state_.load(std::memory_order_acquire) >> 32);
    }
  }

  std::mutex mu_;
  std::vector<std::thread> workers_;
  int64_t spin_ns_ = 0;
  Slot slots_[2];
  std::atomic<uint64_t> state_{0};  // generation << 32 | next chunk
  std::atomic<int64_t> done_{0};
  std::atomic<uint32_t> epoch_{0};  // bumped once per job; idle workers wait on it
  std::atomic<int> sleepers_{0};
};

// fn(i) for i in [0, n): on the pool when `parallel` (worth a wake-up), else on the calling thread.
template <typename F>
void ParallelFor(int64_t n, bool parallel, F&& fn) {
  if (parallel) {
    Pool::Get().For(n, fn);
  } else {
    for (int64_t i = 0; i < n; i++) fn(i);
  }
}

// ====================================================================================================
// MiniCPMLinear(x: float [M, K], w: N x T [N_j, K] or [N_j, K/2]; wtype: 'f32'|'bf16'|'f16')
//   -> y: N x float [M, N_j]
//   y_j[m, n] = sum_k x[m, k] * W_j[n, k]        (nn.Linear, W in PyTorch [out, in] layout)
// One call takes the 1-8 weights that multiply the same x (q, k and v; gate and up) and streams them in one
// parallel loop.
// W is float32 [N, K] (wtype f32), or a checkpoint's 16-bit values as stored, two per int32: int32
// [N, K/2] with element 2j in the low half of word j (wtype bf16 or f16; this is the file's byte order).
// 16-bit weights are widened to fp32 in registers (bf16: a 16-bit shift, exact; f16: vcvtph2ps, exact);
// x is never rounded and every product and sum is fp32.
//
// The weight type never changes the arithmetic: the same kernel runs a float32 weight and a 16-bit one
// (widened exactly), with the same summation order, so a bf16 weight gives bit for bit what its float32
// widening gives. Two paths, each with its fixed order:
//   - M = 1 (a greedy decode step): bound by reading W. Each thread takes chunks of 64 rows of W and reads
//     them front to back (RowAvx512: 16-lane blocks into 8 accumulators per row, added in a fixed order,
//     then the lanes, then the tail).
//   - M = 2..8 (beams): chunks of ~64 rows of W as well, in tiles of up to 4 rows of x by 6 rows of W, so a
//     loaded piece of x serves 6 rows of W (3 rows: 44 GB/s of bf16 against 24 row by row).
//   - M > 8 (prefill): tiles of R = 4 rows of x by G = 6 rows of W (AVX2: 3 x 3), whose rows stay in L1
//     while the tile walks the rows of an L2-sized block of x; W is read once per block of x. (From 256
//     rows on, TensorFlow's MatMul on the widened weight is as fast: src/ops/native_kernels.ts.)
// ====================================================================================================

enum class WType { F32, BF16, F16 };
enum class Isa { Scalar, Avx2, Avx512 };
Isa g_isa = Isa::Scalar;  // the widest vector path this CPU runs (set at load)

constexpr int64_t WBytes(WType t) { return t == WType::F32 ? 4 : 2; }

// One weight widened to fp32 (the scalar tails and the scalar path).
template <WType T>
inline float WidenOne(const void* w, int64_t k) {
  if constexpr (T == WType::F32) {
    return static_cast<const float*>(w)[k];
  } else if constexpr (T == WType::BF16) {
    const uint32_t b = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[k]) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  } else {
    return HalfToFloat(static_cast<const uint16_t*>(w)[k]);
  }
}

#define MINICPM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define MINICPM_AVX2 __attribute__((target("avx2,fma,f16c")))

// 16 consecutive weights from w[k], widened.
template <WType T>
MINICPM_AVX512 inline __m512 Load16(const void* w, int64_t k) {
  if constexpr (T == WType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + k);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + k));
    if constexpr (T == WType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else return _mm512_cvtph_ps(h);
  }
}

// 8 consecutive weights from w[k], widened.
template <WType T>
MINICPM_AVX2 inline __m256 Load8(const void* w, int64_t k) {
  if constexpr (T == WType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + k);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + k));
    if constexpr (T == WType::BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  }
}

MINICPM_AVX2 inline float Sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// How far ahead (bytes) a tile streaming W from memory prefetches each of its rows: the G rows are G
// concurrent streams per core, more than the hardware prefetcher keeps ahead of (3 x 6 tiles on two cores,
// bf16, standalone: 31 GB/s without, 37-39 with 512-1536 bytes ahead, 51 for one row streamed alone, when the
// machine read at ~50 GB/s; 45 without and 46 with 1536 when it read at ~63; 3072 ahead was slower).
constexpr int64_t kTilePrefetchBytes = 1536;

// The R x G block y[r * ldy + g] = sum_k x[r * ldx + k] * W[g][k], W's row g at w + g * K elements.
// Stream: W comes from memory once (few rows of x): prefetch each row kTilePrefetchBytes ahead. Prefetching
// changes no arithmetic.
template <WType T, int R, int G, bool Stream = false>
MINICPM_AVX512 void TileAvx512(const float* x, int64_t ldx, const void* w, int64_t K, float* y, int64_t ldy) {
  const char* wb = static_cast<const char*>(w);
  const int64_t row = K * WBytes(T);
  constexpr int64_t kLine = 64 / WBytes(T);  // elements per cache line
  __m512 acc[R][G];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    if constexpr (Stream) {
      if (k % kLine == 0) {
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) _mm_prefetch(wb + g * row + k * WBytes(T) + kTilePrefetchBytes, _MM_HINT_T0);
      }
    }
    __m512 wv[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) wv[g] = Load16<T>(wb + g * row, k);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) acc[r][g] = _mm512_fmadd_ps(wv[g], xv, acc[r][g]);
    }
  }
  for (int r = 0; r < R; r++) {
    for (int g = 0; g < G; g++) {
      float s = _mm512_reduce_add_ps(acc[r][g]);
      for (int64_t j = k; j < K; j++) s += x[r * ldx + j] * WidenOne<T>(wb + g * row, j);
      y[r * ldy + g] = s;
    }
  }
}

template <WType T, int R, int G>
MINICPM_AVX2 void TileAvx2(const float* x, int64_t ldx, const void* w, int64_t K, float* y, int64_t ldy) {
  const char* wb = static_cast<const char*>(w);
  const int64_t row = K * WBytes(T);
  __m256 acc[R][G];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) acc[r][g] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) wv[g] = Load8<T>(wb + g * row, k);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m256 xv = _mm256_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) acc[r][g] = _mm256_fmadd_ps(wv[g], xv, acc[r][g]);
    }
  }
  for (int r = 0; r < R; r++) {
    for (int g = 0; g < G; g++) {
      float s = Sum8(acc[r][g]);
      for (int64_t j = k; j < K; j++) s += x[r * ldx + j] * WidenOne<T>(wb + g * row, j);
      y[r * ldy + g] = s;
    }
  }
}

// One row of W against R rows of x: y[r * ldy] = sum_k x[r * ldx + k] * W[k] (used with R = 1: a decode step). The row is
// read front to back, U blocks of 16 (AVX2: 8) at a time into R x U independent accumulators (enough chains
// to cover the FMA latency), so each thread reads one contiguous stretch of W: one sequential stream per
// core, which this memory system serves faster than several interleaved rows (measured 50 vs 44 GB/s on
// two cores, 30 vs 23 on one). Block b of the row goes to accumulator b % U; the U accumulators are added
// in a fixed order, then the lanes, then the tail.
template <WType T, int R, int U>
MINICPM_AVX512 void RowAvx512(const float* x, int64_t ldx, const void* w, int64_t K, float* y, int64_t ldy) {
  __m512 acc[R][U];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) acc[r][u] = _mm512_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 * U <= K; k += 16 * U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) {
      const __m512 wv = Load16<T>(w, k + 16 * u);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * ldx + k + 16 * u), acc[r][u]);
    }
  }
  // Fewer than U blocks left: into accumulator 0 (a constant index keeps acc in registers; a running index
  // would put the whole array on the stack and make every FMA a load and a store).
  for (; k + 16 <= K; k += 16) {
    const __m512 wv = Load16<T>(w, k);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[r][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * ldx + k), acc[r][0]);
  }
  for (int r = 0; r < R; r++) {
    __m512 sum = acc[r][0];
    for (int u = 1; u < U; u++) sum = _mm512_add_ps(sum, acc[r][u]);
    float t = _mm512_reduce_add_ps(sum);
    for (int64_t j = k; j < K; j++) t += x[r * ldx + j] * WidenOne<T>(w, j);
    y[r * ldy] = t;
  }
}

template <WType T, int R, int U>
MINICPM_AVX2 void RowAvx2(const float* x, int64_t ldx, const void* w, int64_t K, float* y, int64_t ldy) {
  __m256 acc[R][U];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) acc[r][u] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 8 * U <= K; k += 8 * U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) {
      const __m256 wv = Load8<T>(w, k + 8 * u);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * ldx + k + 8 * u), acc[r][u]);
    }
  }
  for (; k + 8 <= K; k += 8) {  // fewer than U blocks left: into accumulator 0 (see RowAvx512)
    const __m256 wv = Load8<T>(w, k);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * ldx + k), acc[r][0]);
  }
  for (int r = 0; r < R; r++) {
    __m256 sum = acc[r][0];
    for (int u = 1; u < U; u++) sum = _mm256_add_ps(sum, acc[r][u]);
    float t = Sum8(sum);
    for (int64_t j = k; j < K; j++) t += x[r * ldx + j] * WidenOne<T>(w, j);
    y[r * ldy] = t;
  }
}

using RowFn = void (*)(const float*, int64_t, const void*, int64_t, float*, int64_t);

// The one-row function on this CPU: 8 accumulators per row (2-8 rows take the tile path instead).
template <WType T>
RowFn RowOne() {
  return g_isa == Isa::Avx512 ? &RowAvx512<T, 1, 8> : &RowAvx2<T, 1, 8>;
}

template <WType T>
void TileScalar(const float* x, int64_t ldx, const void* w, int64_t K, float* y, int64_t ldy, int R, int G) {
  const char* wb = static_cast<const char*>(w);
  for (int r = 0; r < R; r++) {
    for (int g = 0; g < G; g++) {
      float s = 0;
      for (int64_t j = 0; j < K; j++) s += x[r * ldx + j] * WidenOne<T>(wb + g * K * WBytes(T), j);
      y[r * ldy + g] = s;
    }
  }
}


using TileFn = void (*)(const float*, int64_t, const void*, int64_t, float*, int64_t);

// The GEMM tile function for R <= 4 rows of x by G rows of W on this CPU: the full tile (AVX-512 4 x 6,
// AVX2 3 x 3) and the smaller ones at the edges (fewer rows of x; one row of W).
template <WType T, int R>
TileFn TileFor(int G, bool stream) {
  if (g_isa == Isa::Avx512) {
    if (G == 6) return stream ? &TileAvx512<T, R, 6, true> : &TileAvx512<T, R, 6>;
    return &TileAvx512<T, R, 1>;
  }
  if constexpr (R <= 3) {
    if (G == 3) return &TileAvx2<T, R, 3>;
  }
  return &TileAvx2<T, R, 1>;
}

template <WType T>
TileFn TileRG(int R, int G, bool stream) {
  switch (R) {
    case 1: return TileFor<T, 1>(G, stream);
    case 2: return TileFor<T, 2>(G, stream);
    case 3: return TileFor<T, 3>(G, stream);
    default: return TileFor<T, 4>(G, stream);
  }
}

// y [M, N] = x [M, K] · Wᵀ for rows [m0, m1) of x and [n0, n1) of W, in R x G tiles (n outer: a tile's G
// rows of W stay in L1 while it walks the rows of x). `stream`: few rows of x, W comes from memory (the
// tiles prefetch it).
template <WType T>
void LinearBlock(const float* x, const void* w, int64_t K, int64_t N, float* y, int64_t m0, int64_t m1, int64_t n0,
                 int64_t n1, int R, int G, bool stream) {
  const char* wb = static_cast<const char*>(w);
  const int64_t row = K * WBytes(T);
  if (g_isa == Isa::Scalar) {
    for (int64_t m = m0; m < m1; m++) {
      for (int64_t n = n0; n < n1; n++) TileScalar<T>(x + m * K, K, wb + n * row, K, y + m * N + n, N, 1, 1);
    }
    return;
  }
  int64_t n = n0;
  for (; n + G <= n1; n += G) {
    for (int64_t m = m0; m < m1; m += R) {
      const int r = static_cast<int>(m1 - m < R ? m1 - m : R);
      TileRG<T>(r, G, stream)(x + m * K, K, wb + n * row, K, y + m * N + n, N);
    }
  }
  for (; n < n1; n++) {
    for (int64_t m = m0; m < m1; m += R) {
      const int r = static_cast<int>(m1 - m < R ? m1 - m : R);
      TileRG<T>(r, 1, stream)(x + m * K, K, wb + n * row, K, y + m * N + n, N);
    }
  }
}

constexpr int64_t kLinearRowsMax = 8;

// One product of a MiniCPMLinear call: W [N, K] (f32 or packed) into y [M, N].
struct LinearJob {
  const void* w;
  int64_t N;
  float* y;
};

// y_j = x · W_jᵀ for every job j, all in one parallel loop: the weights of one input (q, k and v; gate and
// up) stream back to back without an idle gap between them.
template <WType T>
void Linear(const float* x, int64_t M, int64_t K, const LinearJob* jobs, int n_jobs) {
  int64_t work = 0;
  for (int j = 0; j < n_jobs; j++) work += M * jobs[j].N * K;
  const bool parallel = work > (1 << 16);
  // Each job splits into tasks: chunks of W's rows for few rows of x, blocks of (x rows, W rows) for many.
  // One row of x: each W row streamed alone (RowAvx512). 2-8 rows: R x G tiles (R <= 4 rows of x by G rows of W),
  // so each loaded piece of x serves G rows of W and each piece of W R rows of x: the row-at-a-time loop was
  // bound by loading x (3 rows: 4 loads per 3 FMAs; 24 GB/s of bf16 against 46 for one row).
  const bool rows_path = M <= kLinearRowsMax;
  const int RT = g_isa == Isa::Avx512 ? 4 : 3;
  const int R = M == 1 ? 1 : static_cast<int>(M < RT ? M : RT);
  const int G = g_isa == Isa::Scalar || M == 1 ? 1 : g_isa == Isa::Avx512 ? 6 : 3;
  // Few rows: each weight in 4 x threads runs of consecutive W rows (at least 64, a multiple of G), so that a
  // thread streams long contiguous stretches (64-row chunks, interleaved between the threads, streamed a third
  // slower: 141 vs 105-115 ms of products per decode step on 2 cores, for runs of N/2, N/4 or N/8 alike), and a
  // descheduled thread holds up at most one short run (bench/contention.ts, one busy process on the 2 cores: greedy
  // step 162 -> 271 ms with runs of N/4, 123 -> 209 ms with runs of N/8).
  // GEMM: x blocks that fit in L2 (~512 KB) by 96 W rows.
  int64_t nmax = 0;
  for (int j = 0; j < n_jobs; j++) nmax = jobs[j].N > nmax ? jobs[j].N : nmax;
  const int64_t runs = 4 * Pool::Get().threads();
  int64_t run = (nmax + runs - 1) / runs;
  run = run < 64 ? 64 : run;
  const int64_t nc = rows_path ? G * ((run + G - 1) / G) : 96;
  int64_t mc = M;
  if (!rows_path) {
    mc = (512 * 1024) / (4 * (K > 0 ? K : 1));
    mc = mc < R ? R : mc - mc % R;
    if (mc > M) mc = M;
  }
  const int64_t mb = (M + mc - 1) / mc;
  int64_t first[9] = {0};
  for (int j = 0; j < n_jobs; j++) first[j + 1] = first[j] + mb * ((jobs[j].N + nc - 1) / nc);
  const RowFn row_fn = M == 1 && g_isa != Isa::Scalar ? RowOne<T>() : nullptr;
  ParallelFor(first[n_jobs], parallel, [&](int64_t task) {
    int j = 0;
    while (task >= first[j + 1]) j++;
    const int64_t i = task - first[j], nb = (jobs[j].N + nc - 1) / nc;
    const int64_t m0 = (i / nb) * mc, n0 = (i % nb) * nc, N = jobs[j].N;
    const int64_t n1 = n0 + nc < N ? n0 + nc : N;
    if (row_fn) {
      const char* wb = static_cast<const char*>(jobs[j].w);
      for (int64_t n = n0; n < n1; n++) row_fn(x, K, wb + n * K * WBytes(T), K, jobs[j].y + n, N);
      return;
    }
    LinearBlock<T>(x, jobs[j].w, K, N, jobs[j].y, m0, m0 + mc < M ? m0 + mc : M, n0, n1, R, G, rows_path);
  });
}

struct LinearAttrs {
  WType wtype = WType::F32;
};

// Reads the `wtype` attribute (f32, bf16 or f16) of op `op` into *out; a failure goes to `status`.
void ReadWType(TF_OpKernelConstruction* ctx, const char* op, WType* out, TF_Status* status) {
  std::string t;
  GetStringAttr(ctx, "wtype", &t, status);
  if (TF_GetCode(status) != TF_OK) return;
  if (t == "f32") *out = WType::F32;
  else if (t == "bf16") *out = WType::BF16;
  else if (t == "f16") *out = WType::F16;
  else TF_SetStatus(status, TF_INVALID_ARGUMENT, (std::string(op) + ": wtype must be f32, bf16 or f16, got \"" + t + "\"").c_str());
}

// The `wtype` attribute of MiniCPMLinear and MiniCPMWiden.
void* CreateWType(TF_OpKernelConstruction* ctx, const char* op) {
  auto* a = new LinearAttrs();
  TF_Status* status = TF_NewStatus();
  ReadWType(ctx, op, &a->wtype, status);
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return a;
}

void* CreateLinear(TF_OpKernelConstruction* ctx) { return CreateWType(ctx, "MiniCPMLinear"); }
void* CreateWiden(TF_OpKernelConstruction* ctx) { return CreateWType(ctx, "MiniCPMWiden"); }
void DeleteLinear(void* p) { delete static_cast<LinearAttrs*>(p); }

constexpr int kMaxLinearWeights = 8;

void ComputeLinear(void* p, TF_OpKernelContext* ctx) {
  const WType wt = static_cast<LinearAttrs*>(p)->wtype;
  const bool packed = wt != WType::F32;
  TF_Status* status = TF_NewStatus();
  const int n = TF_NumInputs(ctx) - 1;
  TF_Tensor* in[kMaxLinearWeights + 1] = {};
  TF_Tensor* out[kMaxLinearWeights] = {};
  const char* err = n < 1 || n > kMaxLinearWeights ? "MiniCPMLinear: takes 1 to 8 weights" : nullptr;
  for (int i = 0; !err && i <= n && TF_GetCode(status) == TF_OK; i++) TF_GetInput(ctx, i, &in[i], status);
  if (!err && TF_GetCode(status) == TF_OK) {
    TF_Tensor* x = in[0];
    if (TF_NumDims(x) != 2) err = "MiniCPMLinear: expects x [M, K]";
    for (int i = 1; !err && i <= n; i++) {
      TF_Tensor* w = in[i];
      if (TF_TensorType(w) != (packed ? TF_INT32 : TF_FLOAT)) {
        err = "MiniCPMLinear: w must be float32 for wtype f32 and int32 (two 16-bit values per word) for bf16/f16";
      } else if (TF_NumDims(w) != 2 || TF_Dim(x, 1) != TF_Dim(w, 1) * (packed ? 2 : 1)) {
        err = packed ? "MiniCPMLinear: expects x [M, K] and packed w [N, K/2]" : "MiniCPMLinear: expects x [M, K] and w [N, K]";
      }
    }
  }
  if (err) TF_SetStatus(status, TF_INVALID_ARGUMENT, err);
  LinearJob jobs[kMaxLinearWeights];
  const int64_t M = in[0] ? TF_Dim(in[0], 0) : 0, K = in[0] ? TF_Dim(in[0], 1) : 0;
  for (int i = 0; i < n && TF_GetCode(status) == TF_OK; i++) {
    const int64_t N = TF_Dim(in[i + 1], 0), dims[2] = {M, N};
    out[i] = TF_AllocateOutput(ctx, i, TF_FLOAT, dims, 2, sizeof(float) * M * N, status);
    if (TF_GetCode(status) == TF_OK) jobs[i] = {TF_TensorData(in[i + 1]), N, static_cast<float*>(TF_TensorData(out[i]))};
  }
  if (TF_GetCode(status) == TF_OK) {
    const float* x = Data(in[0]);
    if (wt == WType::F32) Linear<WType::F32>(x, M, K, jobs, n);
    else if (wt == WType::BF16) Linear<WType::BF16>(x, M, K, jobs, n);
    else Linear<WType::F16>(x, M, K, jobs, n);
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelContext_Failure(ctx, status);
  for (TF_Tensor* t : in) if (t) TF_DeleteTensor(t);
  for (TF_Tensor* t : out) if (t) TF_DeleteTensor(t);
  TF_DeleteStatus(status);
}

// ====================================================================================================
// MiniCPMWiden(x: int32 [..., K/2]; wtype: 'bf16'|'f16') -> y: float [..., K]
// 16-bit values stored two per int32 (MiniCPMLinear's packed layout), widened to float32 exactly: the
// embedding rows gathered from a packed table, or a whole packed weight.
// ====================================================================================================

template <WType T>
MINICPM_AVX512 int64_t WidenAvx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, Load16<T>(src, i));
  return i;
}

template <WType T>
MINICPM_AVX2 int64_t WidenAvx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, Load8<T>(src, i));
  return i;
}

// dst[i] = src[i] widened to float32, i < n.
template <WType T>
void WidenRange(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = g_isa == Isa::Avx512 ? WidenAvx512<T>(src, dst, n) : g_isa == Isa::Avx2 ? WidenAvx2<T>(src, dst, n) : 0;
  for (; i < n; i++) dst[i] = WidenOne<T>(src, i);
}

void ComputeWiden(void* p, TF_OpKernelContext* ctx) {
  const WType wt = static_cast<LinearAttrs*>(p)->wtype;
  RunKernel(
      ctx, 1,
      [wt](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        if (wt == WType::F32) return "MiniCPMWiden: wtype must be bf16 or f16";
        if (TF_TensorType(in[0]) != TF_INT32 || TF_NumDims(in[0]) < 1) return "MiniCPMWiden: expects int32 x [..., K/2]";
        *dims = DimsOf(in[0]);
        dims->back() *= 2;
        return nullptr;
      },
      [wt](TF_Tensor** in, float* y) {
        const int64_t n = 2 * static_cast<int64_t>(TF_TensorElementCount(in[0]));
        const uint16_t* src = static_cast<const uint16_t*>(TF_TensorData(in[0]));
        const int64_t piece = 1 << 16;
        ParallelFor((n + piece - 1) / piece, n > 4 * piece, [&](int64_t i) {
          const int64_t a = i * piece, len = a + piece < n ? piece : n - a;
          if (wt == WType::BF16) WidenRange<WType::BF16>(src + a, y + a, len);
          else WidenRange<WType::F16>(src + a, y + a, len);
        });
      });
}

// ====================================================================================================
// MiniCPMReadTensor(; fd: int, file_id: string, size: int, offset: int, count: int, dtype: string,
//   T: float|int32, lazy: int = 0) -> y: T [count] (float) or [count / 2] (int32)
// Reads `count` elements of a safetensors tensor (F32, BF16 or F16) at byte `offset` of the open file
// `fd` straight into a new TensorFlow tensor, without a pass through JavaScript. T = float widens 16-bit
// values to float32; T = int32 keeps a BF16/F16 tensor's bytes as stored, two values per word
// (MiniCPMLinear's packed layout): the checkpoint goes from the file to its final place in one copy, or, for
// such a weight of 1 MiB or more 64-byte aligned in its file, in none: the tensor points into the file's
// mapping (FileMap below). With lazy = 1 (a table that is only gathered from, like the token embeddings), such
// a mapped tensor's pages are not mapped in at load: its values are checked through a scratch buffer, and only
// the rows the model gathers are ever mapped (resident), as with a plain mmap of the file.
// The output's pages are faulted in by two threads (the pool), a piece at a time (MADV_POPULATE_WRITE),
// and as transparent huge pages where the kernel allows it (MADV_HUGEPAGE): faulting fresh 4 KiB pages one
// by one, not the disk, bounded the load before.
// The file is the one JavaScript opened and validated (src/weights/safetensors.ts): the op reads through
// that descriptor, never by path, and first checks with fstat that it is still that regular file
// (`file_id` = "device:inode") with the size it had (`size`), so a file replaced, truncated or grown
// since its header was read is refused instead of read. Every attribute is checked before anything is
// allocated; a failure is one line, "MiniCPMReadTensor: ...".
// Every value is checked as it arrives (a NaN/Inf exponent: all ones), while its piece is still in cache:
// a weight that is not finite is refused ("C non-finite value(s), first V at flat index I") instead of
// silently giving NaN logits and an empty answer.
// ====================================================================================================

struct ReadAttrs {
  int64_t fd = -1;
  std::string file_id;
  int64_t size = 0;
  int64_t offset = 0;
  int64_t count = 0;
  std::string dtype;
  TF_DataType out = TF_FLOAT;
  int64_t lazy = 0;
};

void* CreateReadTensor(TF_OpKernelConstruction* ctx) {
  auto* a = new ReadAttrs();
  TF_Status* status = TF_NewStatus();
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "fd", &a->fd, status);
  if (TF_GetCode(status) == TF_OK) GetStringAttr(ctx, "file_id", &a->file_id, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "size", &a->size, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "offset", &a->offset, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "count", &a->count, status);
  if (TF_GetCode(status) == TF_OK) GetStringAttr(ctx, "dtype", &a->dtype, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrType(ctx, "T", &a->out, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "lazy", &a->lazy, status);
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return a;
}

void DeleteReadTensor(void* p) { delete static_cast<ReadAttrs*>(p); }

// pread until `len` bytes are in `dst` (the kernel may return less than asked).
bool ReadFully(int fd, char* dst, int64_t len, int64_t at, std::string* err) {
  while (len > 0) {
    const ssize_t got = pread(fd, dst, static_cast<size_t>(len < (1 << 30) ? len : (1 << 30)), at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      *err = got == 0 ? "unexpected end of file at byte " + std::to_string(at) : std::strerror(errno);
      return false;
    }
    dst += got;
    len -= got;
    at += got;
  }
  return true;
}

// Checks the attributes and the open file; the empty string when the read may go ahead.
std::string CheckRead(const ReadAttrs& a, int64_t* elem_bytes) {
  const bool f32 = a.dtype == "F32", b16 = a.dtype == "BF16" || a.dtype == "F16";
  if (!f32 && !b16) return "dtype must be F32, BF16 or F16, got \"" + a.dtype + "\"";
  *elem_bytes = f32 ? 4 : 2;
  if (a.out == TF_INT32 && !b16) return "T = int32 (packed) needs a BF16 or F16 tensor, got " + a.dtype;
  if (a.out == TF_INT32 && a.count % 2 != 0) return "T = int32 (packed) needs an even count, got " + std::to_string(a.count);
  if (a.out != TF_INT32 && a.out != TF_FLOAT) return "T must be float or int32";
  if (a.fd < 0 || a.fd > INT32_MAX) return "fd " + std::to_string(a.fd) + " is not a file descriptor";
  if (a.offset < 0) return "offset " + std::to_string(a.offset) + " is negative";
  if (a.count < 0) return "count " + std::to_string(a.count) + " is negative";
  if (a.size < 0) return "size " + std::to_string(a.size) + " is negative";
  if (a.count > (INT64_MAX - a.offset) / 4 || a.offset + a.count * *elem_bytes > a.size) {
    return std::to_string(a.count) + " x " + a.dtype + " at byte " + std::to_string(a.offset) + " lies beyond the file's " +
           std::to_string(a.size) + " bytes";
  }
  struct stat st;
  if (fstat(static_cast<int>(a.fd), &st) != 0) return "fd " + std::to_string(a.fd) + ": " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return "fd " + std::to_string(a.fd) + " is not a regular file";
  const std::string id = std::to_string(static_cast<uint64_t>(st.st_dev)) + ":" + std::to_string(static_cast<uint64_t>(st.st_ino));
  if (id != a.file_id) return "fd " + std::to_string(a.fd) + " is file " + id + ", not the validated file " + a.file_id;
  if (st.st_size != a.size) {
    return "the file changed since it was validated (now " + std::to_string(st.st_size) + " bytes, was " +
           std::to_string(a.size) + ")";
  }
  return "";
}

// Asks for transparent huge pages on the 2 MiB-aligned interior of a fresh buffer (ignored where off).
void AdviseHugePages(void* p, int64_t bytes) {
  const uintptr_t kHuge = 2 << 20, a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lo = (a + kHuge - 1) & ~(kHuge - 1), hi = (a + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
  if (bytes >= static_cast<int64_t>(2 * kHuge) && hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// Faults in the pages of [p, p + bytes) with one call (Linux >= 5.14; ignored elsewhere): `advice` is
// MADV_POPULATE_WRITE for fresh memory to write into, MADV_POPULATE_READ for a file's pages. On this project's
// VMs a page fault costs microseconds; populating a piece at once is 2-20x faster than faulting page by page.
void Populate(const void* p, int64_t bytes, int advice) {
  const uintptr_t kPage = 4096, a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lo = a & ~(kPage - 1), hi = (a + static_cast<uintptr_t>(bytes) + kPage - 1) & ~(kPage - 1);
  madvise(reinterpret_cast<void*>(lo), hi - lo, advice);
}

// Whether any of the n stored values (F32: exponent bits 0x7f800000; BF16: 0x7f80; F16: 0x7c00, all ones) is
// NaN or Inf: 64-bit words at a time, each lane's exponent bits XOR the mask, and a lane that becomes zero
// found with the borrow trick ((y - 1s) & ~y & high bits: exact, as the high bit of each lane is never set in
// y). Branch-free, so the compiler vectorises it: the check costs ~0.2 s of CPU for the 6.4 GiB model.
template <typename U>
bool AnyNonFinite(const U* v, int64_t n, U mask) {
  constexpr int kLanes = 8 / sizeof(U);
  uint64_t m = 0, ones = 0, high = 0;
  for (int l = 0; l < kLanes; l++) {
    m |= static_cast<uint64_t>(mask) << (l * 8 * sizeof(U));
    ones |= uint64_t{1} << (l * 8 * sizeof(U));
    high |= uint64_t{1} << (l * 8 * sizeof(U) + 8 * sizeof(U) - 1);
  }
  const int64_t words = n / kLanes;
  const char* p = reinterpret_cast<const char*>(v);
  uint64_t hit = 0;
  for (int64_t i = 0; i < words; i++) {
    uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    const uint64_t y = (w & m) ^ m;
    hit |= (y - ones) & ~y & high;
  }
  for (int64_t i = words * kLanes; i < n; i++) hit |= (v[i] & mask) == mask;
  return hit != 0;
}

// How many of n stored values are NaN or Inf, and (*first) the index of the first: a fast yes/no per block of
// 4096, then a count in the rare block that has one.
template <typename U>
int64_t CountNonFinite(const U* v, int64_t n, U mask, int64_t* first) {
  int64_t count = 0;
  for (int64_t b = 0; b < n; b += 4096) {
    const int64_t e = b + 4096 < n ? b + 4096 : n;
    if (!AnyNonFinite(v + b, e - b, mask)) continue;
    for (int64_t i = b; i < e; i++) {
      if ((v[i] & mask) == mask) {
        if (count++ == 0) *first = i;
      }
    }
  }
  return count;
}

// The value a stored non-finite bit pattern stands for, as JavaScript prints it.
std::string NonFiniteName(const char* stored, const std::string& dtype) {
  uint32_t u = 0;
  bool nan = false, neg = false;
  if (dtype == "F32") {
    std::memcpy(&u, stored, 4);
    nan = (u & 0x007fffffu) != 0, neg = (u >> 31) != 0;
  } else {
    uint16_t h;
    std::memcpy(&h, stored, 2);
    nan = (h & (dtype == "F16" ? 0x03ffu : 0x007fu)) != 0, neg = (h >> 15) != 0;
  }
  return nan ? "NaN" : neg ? "-Infinity" : "Infinity";
}

// Weights of at least 1 MiB are mapped on their own, 2 MiB-aligned, with transparent huge pages asked for
// the whole range: the pages are faulted 2 MiB at a time, and the memory goes back to the system when the
// tensor is disposed. (Through TensorFlow's allocator, which with oneDNN keeps freed memory for reuse, a
// loaded model held 0.26 GiB more than its weights.)
constexpr int64_t kMapWeightBytes = 1 << 20;

// `len` bytes (rounded up to pages) of fresh anonymous memory at a 2 MiB-aligned address, or nullptr.
char* MapAligned2M(size_t len) {
  const size_t kHuge = 2 << 20;
  void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(raw), lo = (a + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = lo + ((len + 4095) & ~size_t{4095});
  if (lo > a) munmap(raw, lo - a);
  if (a + len + kHuge > end) munmap(reinterpret_cast<void*>(end), a + len + kHuge - end);
  return reinterpret_cast<char*>(lo);
}

char* MapWeight(int64_t bytes) {
  char* p = MapAligned2M(static_cast<size_t>(bytes));
  if (p) madvise(p, (static_cast<size_t>(bytes) + 4095) & ~size_t{4095}, MADV_HUGEPAGE);
  return p;
}

// The deallocator of tensors whose memory came from mmap (weights, KV caches).
void UnmapBuffer(void* data, size_t len, void*) { munmap(data, len); }

// Weights that stay where the checkpoint is. A weight the kernels take exactly as stored (a 16-bit matrix kept
// packed, or an F32 tensor read as F32) of at least kMapWeightBytes, 64-byte aligned in its file, is not copied:
// the file is mapped once (MAP_PRIVATE, at a 2 MiB-aligned address, huge pages asked for) and the tensor points
// into the mapping. The page cache is then the weights' only copy: no fresh memory to fault in and zero (the
// load's cost before: 67 % of its time in the kernel clearing pages), and the next process that loads the same
// file finds it in memory. That pays only when the page cache holds the file in 2 MiB folios, mapped 2 MiB at a
// time (ext4, xfs and tmpfs do on recent kernels): the 4 KiB mappings of a file read or written in small pieces
// stream at a fraction of the speed in decode. So the first large weight of each file probes: if its pages are
// not mapped as huge pages, the file's clean cache is dropped once (POSIX_FADV_DONTNEED) and read again through
// the mapping, which reads ahead in 2 MiB folios; if they still are not, the file is read into memory of the
// process's own as before (MapWeight). MINICPMV_MAP_WEIGHTS=0 turns the mapping off.
// A mapped file must not be truncated or rewritten in place while a model is loaded from it (replacing it
// by a rename is safe): the tensors read the file's pages.
struct FileMap {
  std::string id;  // "device:inode"
  int64_t size = 0;
  char* base = nullptr;
  int refs = 0;  // tensors pointing into the mapping
  enum State { kUnknown, kHuge, kRefused } state = kUnknown;
};
std::mutex g_file_maps_mu;
std::vector<FileMap*> g_file_maps;  // refused files stay listed (unmapped), so each is probed once
std::atomic<int64_t> g_file_backed_bytes{0};

bool MapWeightsEnabled() {
  const char* e = std::getenv("MINICPMV_MAP_WEIGHTS");
  return !(e && std::strcmp(e, "0") == 0);
}

// The kB of the mapping holding `addr` that /proc/self/smaps lists under `key` (e.g. "FilePmdMapped"), or -1.
int64_t SmapsKb(const void* addr, const char* key) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  bool in = false;
  int64_t kb = -1;
  const size_t klen = std::strlen(key);
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  while (std::fgets(line, sizeof line, f)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    if (std::sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
      if (in) break;
      in = a >= lo && a < hi;
    } else if (in && std::strncmp(line, key, klen) == 0 && line[klen] == ':') {
      kb = std::atoll(line + klen + 1);
    }
  }
  std::fclose(f);
  return kb;
}

// Maps [from, to) of the mapping and tells whether at least half of its 2 MiB-aligned interior is mapped as huge
// pages; true when the range holds no whole 2 MiB page (nothing to judge).
bool PopulatedHuge(const char* from, const char* to) {
  const uintptr_t kHuge = 2 << 20;
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(from) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(to) & ~(kHuge - 1);
  if (hi <= lo) return true;
  const int64_t before = SmapsKb(from, "FilePmdMapped");
  Populate(reinterpret_cast<const void*>(lo), static_cast<int64_t>(hi - lo), MADV_POPULATE_READ);
  const int64_t after = SmapsKb(from, "FilePmdMapped");
  return before >= 0 && after >= 0 && (after - before) * 1024 * 2 >= static_cast<int64_t>(hi - lo);
}

void DropFileMap(FileMap* m) {  // with g_file_maps_mu held, refs == 0
  if (m->base) munmap(m->base, static_cast<size_t>(m->size));
  m->base = nullptr;
  if (m->state != FileMap::kRefused) {
    g_file_maps.erase(std::find(g_file_maps.begin(), g_file_maps.end(), m));
    delete m;
  }
}

// The deallocator of tensors that point into a file mapping.
void ReleaseFileMap(void*, size_t len, void* arg) {
  auto* m = static_cast<FileMap*>(arg);
  g_file_backed_bytes -= static_cast<int64_t>(len);
  std::lock_guard<std::mutex> lock(g_file_maps_mu);
  if (--m->refs == 0) DropFileMap(m);
}

// The listed entry of the file (device:inode, size), or nullptr; with g_file_maps_mu held.
FileMap* FindFileMap(const std::string& id, int64_t size) {
  for (FileMap* x : g_file_maps) {
    if (x->id == id && x->size == size) return x;
  }
  return nullptr;
}

// The mapping of a file that already has one (not refused), with a reference taken, or nullptr. The reads of
// its other tensors (small, widened) copy from it rather than pread: pages a read brings into the page cache
// are then read ahead in 2 MiB folios too, not in the small ones that would sit in the middle of mapped weights.
FileMap* ExistingFileMap(const std::string& id, int64_t size) {
  std::lock_guard<std::mutex> lock(g_file_maps_mu);
  FileMap* m = FindFileMap(id, size);
  if (!m || m->state == FileMap::kRefused || !m->base) return nullptr;
  m->refs++;
  return m;
}

// The address of [offset, offset + bytes) of the open file `fd` in its mapping, with a reference taken on the
// mapping (ReleaseFileMap gives it back), or nullptr where the file is not to be mapped (refused, or mmap failed).
char* MapFileRange(int fd, const std::string& id, int64_t size, int64_t offset, int64_t bytes, bool probe, FileMap** out) {
  std::lock_guard<std::mutex> lock(g_file_maps_mu);
  FileMap* m = FindFileMap(id, size);
  if (m && m->state == FileMap::kRefused) return nullptr;
  if (!m) {
    // The file is mapped over a 2 MiB-aligned reservation (so file offset and address agree modulo 2 MiB).
    const size_t len = static_cast<size_t>(size);
    char* at2m = MapAligned2M(len);
    if (!at2m) return nullptr;
    void* p = mmap(at2m, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
      munmap(at2m, len);
      return nullptr;
    }
    madvise(p, len, MADV_HUGEPAGE);
    m = new FileMap();
    m->id = id;
    m->size = size;
    m->base = static_cast<char*>(p);
    g_file_maps.push_back(m);
  }
  char* at = m->base + offset;
  if (probe && m->state == FileMap::kUnknown && static_cast<int64_t>(2 << 20) * 2 <= bytes) {
    bool huge = PopulatedHuge(at, at + bytes);
    if (!huge) {
      // Small folios in the page cache: drop this mapping's pages and the file's cache (written back first: a
      // file just written has dirty pages, which stay), read it again.
      madvise(m->base, static_cast<size_t>(size), MADV_DONTNEED);
      fdatasync(fd);
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      huge = PopulatedHuge(at, at + bytes);
    }
    m->state = huge ? FileMap::kHuge : FileMap::kRefused;
    if (!huge) {
      if (m->refs == 0) DropFileMap(m);
      return nullptr;
    }
  }
  m->refs++;
  *out = m;
  return at;
}

void ComputeReadTensor(void* p, TF_OpKernelContext* ctx) {
  const ReadAttrs* a = static_cast<ReadAttrs*>(p);
  TF_Status* status = TF_NewStatus();
  int64_t elem_bytes = 4;
  std::string err = CheckRead(*a, &elem_bytes);
  TF_Tensor* y = nullptr;
  char* mapped = nullptr;  // the output's memory when it is the reader's own (MapWeight), else TensorFlow's
  char* in_file = nullptr;  // the output's memory when it is the file's mapping (FileMap)
  FileMap* source = nullptr;  // else, the file's mapping to copy from where it has one
  if (err.empty()) {
    const bool packed = a->out == TF_INT32;
    const int64_t n = a->count;
    int64_t dims[1] = {packed ? n / 2 : n};
    const int64_t out_bytes = packed ? 2 * n : 4 * n;
    const bool widen = !packed && elem_bytes == 2;
    const int fd = static_cast<int>(a->fd);
    // A large weight stored as the kernels take it stays in the file's mapping when the file allows (FileMap).
    FileMap* fm = nullptr;
    if (!widen && out_bytes >= kMapWeightBytes && a->offset % 64 == 0 && MapWeightsEnabled()) {
      in_file = MapFileRange(fd, a->file_id, a->size, a->offset, out_bytes, !a->lazy, &fm);
    }
    if (in_file) {
      g_file_backed_bytes += out_bytes;
      y = TF_NewTensor(a->out, dims, 1, in_file, static_cast<size_t>(out_bytes), &ReleaseFileMap, fm);
      if (!y) {
        ReleaseFileMap(nullptr, static_cast<size_t>(out_bytes), fm);
        in_file = nullptr;
      }
    }
    // Else a large weight gets memory of its own (MapWeight): it lives as long as the model, and TensorFlow's
    // allocator, which keeps what it once held for reuse, never sees it.
    if (!in_file && out_bytes >= kMapWeightBytes) mapped = MapWeight(out_bytes);
    if (mapped) {
      y = TF_NewTensor(a->out, dims, 1, mapped, static_cast<size_t>(out_bytes), &UnmapBuffer, nullptr);
      if (!y) {  // TensorFlow refused the buffer: give it back, and take TensorFlow's memory after all
        munmap(mapped, static_cast<size_t>(out_bytes));
        mapped = nullptr;
      }
    }
    if (!in_file && MapWeightsEnabled()) source = ExistingFileMap(a->file_id, a->size);
    if (!mapped && !in_file) {
      y = TF_AllocateOutput(ctx, 0, a->out, dims, 1, static_cast<size_t>(out_bytes), status);
    }
    if (TF_GetCode(status) == TF_OK) {
      char* out = static_cast<char*>(TF_TensorData(y));
      if (!mapped && !in_file) AdviseHugePages(out, out_bytes);
      const WType wt = a->dtype == "F16" ? WType::F16 : WType::BF16;
      const bool lazy = in_file && a->lazy != 0;
      // Pieces of 8 Mi elements, 1 Mi when widened (a widened one goes through a scratch buffer of its own, freed with it).
      const int64_t piece = widen ? 1 << 20 : 1 << 23, pieces = (n + piece - 1) / piece;
      std::mutex mu;
      int64_t bad_count = 0, bad_first = -1;
      std::string bad_value;
      const uint16_t mask16 = a->dtype == "F16" ? 0x7c00 : 0x7f80;
      ParallelFor(pieces, pieces > 1, [&](int64_t i) {
        const int64_t first = i * piece, len = first + piece < n ? piece : n - first;
        std::string e;
        // The file's pages are mapped in (read from the disk where not cached), or fresh pages faulted in to read into;
        // a lazy tensor's pages are left for its users to map (read through a scratch buffer to be checked).
        if (in_file && !lazy) Populate(out + first * (packed ? 2 : 4), len * (packed ? 2 : 4), MADV_POPULATE_READ);
        else if (!in_file) Populate(out + first * (packed ? 2 : 4), len * (packed ? 2 : 4), MADV_POPULATE_WRITE);
        // Read and check in stretches of 256 KiB, each checked while it is still in cache.
        const int64_t stretch = (256 << 10) / elem_bytes;
        std::vector<uint16_t> scratch(widen || lazy ? static_cast<size_t>(stretch * elem_bytes / 2) : 0);
        int64_t bad = 0, bad_at = -1;
        for (int64_t s0 = 0; s0 < len && e.empty(); s0 += stretch) {
          const int64_t m = s0 + stretch < len ? stretch : len - s0, at = first + s0;
          char* dst = widen || lazy ? reinterpret_cast<char*>(scratch.data()) : out + at * elem_bytes;
          if (source) std::memcpy(dst, source->base + a->offset + at * elem_bytes, static_cast<size_t>(m * elem_bytes));
          else if ((!in_file || lazy) && !ReadFully(fd, dst, m * elem_bytes, a->offset + at * elem_bytes, &e)) break;
          int64_t where = -1;
          const int64_t c = elem_bytes == 4 ? CountNonFinite(reinterpret_cast<const uint32_t*>(dst), m, 0x7f800000u, &where)
                                            : CountNonFinite(reinterpret_cast<const uint16_t*>(dst), m, mask16, &where);
          if (c > 0 && bad == 0) bad_at = at + where;
          bad += c;
          if (widen) {
            float* wide = reinterpret_cast<float*>(out) + at;
            if (wt == WType::BF16) WidenRange<WType::BF16>(scratch.data(), wide, m);
            else WidenRange<WType::F16>(scratch.data(), wide, m);
          }
          if (c > 0 && bad == c) {
            std::lock_guard<std::mutex> lock(mu);
            if (bad_first < 0 || bad_at < bad_first) {
              bad_first = bad_at;
              bad_value = NonFiniteName(dst + (bad_at - at) * elem_bytes, a->dtype);
            }
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        bad_count += bad;
        if (!e.empty() && err.empty()) err = e;
      });
      if (err.empty() && bad_count > 0) {
        err = std::to_string(bad_count) + " non-finite value(s), first " + bad_value + " at flat index " + std::to_string(bad_first);
      }
    }
  }
  if (!err.empty()) TF_SetStatus(status, TF_INVALID_ARGUMENT, ("MiniCPMReadTensor: " + err).c_str());
  if (source) ReleaseFileMap(nullptr, 0, source);
  if ((mapped || in_file) && TF_GetCode(status) == TF_OK) TF_SetOutput(ctx, 0, y, status);
  if (TF_GetCode(status) != TF_OK) TF_OpKernelContext_Failure(ctx, status);
  if (y) TF_DeleteTensor(y);
  TF_DeleteStatus(status);
}

// ====================================================================================================
// MiniCPMNorm(x: float [R, D], w: float [D], b: float [D]; kind: 'layer'|'rms', eps: float) -> y [R, D]
//   LayerNorm (x - mean) / sqrt(var + eps) * w + b (biased variance; b used), or MiniCPM's
//   RMSNorm x * rsqrt(mean(x^2) + eps) * w (b ignored): one pass per row instead of 6-9 TF kernels.
// Sums are taken in double, so the result is at least as close to the exact value as TF's fp32 reductions.
// ====================================================================================================

struct NormAttrs {
  bool rms = false;
  float eps = 0;
};

void* CreateNorm(TF_OpKernelConstruction* ctx) {
  auto* a = new NormAttrs();
  TF_Status* status = TF_NewStatus();
  std::string kind;
  GetStringAttr(ctx, "kind", &kind, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrFloat(ctx, "eps", &a->eps, status);
  if (TF_GetCode(status) == TF_OK && kind != "layer" && kind != "rms") {
    TF_SetStatus(status, TF_INVALID_ARGUMENT, "MiniCPMNorm: kind must be 'layer' or 'rms'");
  }
  if (TF_GetCode(status) == TF_OK && !(a->eps >= 0 && std::isfinite(a->eps))) {
    TF_SetStatus(status, TF_INVALID_ARGUMENT, "MiniCPMNorm: eps must be a finite number >= 0");
  }
  a->rms = kind == "rms";
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return a;
}

void DeleteNorm(void* p) { delete static_cast<NormAttrs*>(p); }

// One row of RMSNorm: torch's x * rsqrt(mean(x^2) + eps) in fp32 (the mean in double), then * w.
inline void RmsNormRow(const float* row, const float* wp, float* out, int64_t D, double eps) {
  double sq = 0;
  for (int64_t i = 0; i < D; i++) sq += static_cast<double>(row[i]) * row[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(sq / D + eps));
  for (int64_t i = 0; i < D; i++) out[i] = (row[i] * inv) * wp[i];
}

void ComputeNorm(void* p, TF_OpKernelContext* ctx) {
  const NormAttrs* a = static_cast<NormAttrs*>(p);
  RunKernel(
      ctx, 3,
      [a](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        TF_Tensor *x = in[0], *w = in[1], *b = in[2];
        if (TF_NumDims(x) != 2 || TF_NumDims(w) != 1 || TF_NumDims(b) != 1 || TF_Dim(w, 0) != TF_Dim(x, 1) ||
            (!a->rms && TF_Dim(b, 0) != TF_Dim(x, 1))) {
          return "MiniCPMNorm: expects x [R, D], w [D], b [D]";
        }
        *dims = DimsOf(x);
        return nullptr;
      },
      [a](TF_Tensor** in, float* yp) {
        const int64_t R = TF_Dim(in[0], 0), D = TF_Dim(in[0], 1);
        const float *xp = Data(in[0]), *wp = Data(in[1]), *bp = Data(in[2]);
        const bool rms = a->rms;
        const double eps = a->eps;
        // A parallel region costs a wake-up: only worth it for more than a few rows (decode normalizes 1-8).
        ParallelFor(R, R * D > 65536, [&](int64_t r) {
          const float* row = xp + r * D;
          float* out = yp + r * D;
          if (rms) {
            RmsNormRow(row, wp, out, D, eps);
          } else {
            double sum = 0;
            for (int64_t i = 0; i < D; i++) sum += row[i];
            const double mean = sum / D;
            double var = 0;
            for (int64_t i = 0; i < D; i++) var += (row[i] - mean) * (row[i] - mean);
            const float inv = static_cast<float>(1.0 / std::sqrt(var / D + eps));
            const float m = static_cast<float>(mean);
            for (int64_t i = 0; i < D; i++) out[i] = (row[i] - m) * inv * wp[i] + bp[i];
          }
        });
      });
}

// ====================================================================================================
// MiniCPMSoftmax(x: float [..., D]) -> y: softmax over the last dimension
// Max-shifted; exp and the sum in fp32 as torch does, with an 8-wide polynomial exp (~1e-7 relative);
// rows split over both cores.
// ====================================================================================================

// exp for 8 floats: 2^n * p(r), r = x - n ln2 (Cody-Waite split), p the Cephes degree-6
// polynomial; relative error ~1e-7 over the softmax range (x <= 0 after the max shift).
__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-88.3762626647949f));
  __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) void SoftmaxRowAvx2(const float* x, float* y, int64_t D) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= D; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  float lanes[8];
  _mm256_storeu_ps(lanes, mv);
  float m = lanes[0];
  for (int k = 1; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;
  for (; i < D; i++) m = x[i] > m ? x[i] : m;
  const __m256 mb = _mm256_set1_ps(m);
  __m256 sv = _mm256_setzero_ps();
  for (i = 0; i + 8 <= D; i += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb));
    _mm256_storeu_ps(y + i, e);
    sv = _mm256_add_ps(sv, e);
  }
  _mm256_storeu_ps(lanes, sv);
  float sum = 0;
  for (int k = 0; k < 8; k++) sum += lanes[k];
  for (; i < D; i++) sum += (y[i] = std::exp(x[i] - m));
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (i = 0; i + 8 <= D; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
  for (; i < D; i++) y[i] *= 1.0f / sum;
}

void SoftmaxRowScalar(const float* x, float* y, int64_t D) {
  float m = x[0];
  for (int64_t i = 1; i < D; i++) m = x[i] > m ? x[i] : m;
  float sum = 0;
  for (int64_t i = 0; i < D; i++) sum += (y[i] = std::exp(x[i] - m));
  for (int64_t i = 0; i < D; i++) y[i] *= 1.0f / sum;
}

void ComputeSoftmax(void*, TF_OpKernelContext* ctx) {
  RunKernel(
      ctx, 1,
      [](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        if (TF_NumDims(in[0]) < 1 || TF_Dim(in[0], TF_NumDims(in[0]) - 1) < 1) {
          return "MiniCPMSoftmax: expects a non-empty last dimension";
        }
        *dims = DimsOf(in[0]);
        return nullptr;
      },
      [](TF_Tensor** in, float* yp) {
        const int64_t D = TF_Dim(in[0], TF_NumDims(in[0]) - 1), R = TF_TensorElementCount(in[0]) / D;
        const float* xp = Data(in[0]);
        ParallelFor(R, R * D > 65536, [&](int64_t r) {
          if (g_avx2) SoftmaxRowAvx2(xp + r * D, yp + r * D, D);
          else SoftmaxRowScalar(xp + r * D, yp + r * D, D);
        });
      });
}

// ====================================================================================================
// MiniCPMBiasGelu(x: float [R, D], b: float [D]) -> y = gelu(x + b), exact-erf GELU
//   0.5·v·(1 + erf(v/√2)) with erf from Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, the approximation
//   TF.js's cpu backend uses): one pass instead of six TF kernels. Uses Exp8 (softmax section).
// ====================================================================================================

// erf(z) by A&S 7.1.26 for 8 floats: 1 - poly(t)·exp(-z²), t = 1/(1 + p|z|), odd in z.
__attribute__((target("avx2,fma"))) inline __m256 Erf8(__m256 z) {
  const __m256 sign = _mm256_and_ps(z, _mm256_set1_ps(-0.0f));
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 e = Exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
  const __m256 r = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
  return _mm256_or_ps(r, sign);
}

inline float ErfScalar(float z) {
  const float a = std::fabs(z), t = 1.0f / (1.0f + 0.3275911f * a);
  const float p = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  const float r = 1.0f - p * std::exp(-a * a);
  return z < 0 ? -r : r;
}

__attribute__((target("avx2,fma"))) void BiasGeluRowAvx2(const float* x, const float* b, float* y, int64_t D) {
  const __m256 half = _mm256_set1_ps(0.5f), c = _mm256_set1_ps(0.70710678118654752f), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= D; i += 8) {
    const __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(v, half), _mm256_add_ps(one, Erf8(_mm256_mul_ps(v, c)))));
  }
  for (; i < D; i++) {
    const float v = x[i] + b[i];
    y[i] = v * 0.5f * (1.0f + ErfScalar(v * 0.70710678118654752f));
  }
}

void BiasGeluRowScalar(const float* x, const float* b, float* y, int64_t D) {
  for (int64_t i = 0; i < D; i++) {
    const float v = x[i] + b[i];
    y[i] = v * 0.5f * (1.0f + ErfScalar(v * 0.70710678118654752f));
  }
}

void ComputeBiasGelu(void*, TF_OpKernelContext* ctx) {
  RunKernel(
      ctx, 2,
      [](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        TF_Tensor *x = in[0], *b = in[1];
        if (TF_NumDims(x) != 2 || TF_NumDims(b) != 1 || TF_Dim(b, 0) != TF_Dim(x, 1)) {
          return "MiniCPMBiasGelu: expects x [R, D] and b [D]";
        }
        *dims = DimsOf(x);
        return nullptr;
      },
      [](TF_Tensor** in, float* yp) {
        const int64_t R = TF_Dim(in[0], 0), D = TF_Dim(in[0], 1);
        const float *xp = Data(in[0]), *bp = Data(in[1]);
        ParallelFor(R, R * D > 65536, [&](int64_t r) {
          if (g_avx2) BiasGeluRowAvx2(xp + r * D, bp, yp + r * D, D);
          else BiasGeluRowScalar(xp + r * D, bp, yp + r * D, D);
        });
      });
}

// ====================================================================================================
// MiniCPMSwiGLU(g: float [R, D], u: float [R, D]) -> y [R, D] = silu(g) * u, rounded as the TF ops
//   mul(mul(g, sigmoid(g)), u) with sigmoid(g) = 1 / (1 + exp(-g)); exp is Exp8 (softmax section, ~1e-7
//   relative; std::exp for the tail and without AVX2). The MiniCPM MLP's middle: one pass instead of three TF
//   kernels, and the same rows the fused decoder layer runs.
// ====================================================================================================

inline float SwiGLUOne(float g, float u) {
  const float sig = 1.0f / (1.0f + std::exp(-g));
  const float a = g * sig;
  return a * u;
}

__attribute__((target("avx2,fma"))) void SwiGLUAvx2(const float* g, const float* u, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, Exp8(_mm256_sub_ps(zero, gv))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(gv, sig), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++) y[i] = SwiGLUOne(g[i], u[i]);
}

// y = silu(g) * u over n values, in blocks of 4096 over the pool when there are many.
void SwiGLU(const float* g, const float* u, float* y, int64_t n) {
  constexpr int64_t kBlock = 4096;
  ParallelFor((n + kBlock - 1) / kBlock, n > 65536, [&](int64_t b) {
    const int64_t i0 = b * kBlock, len = n - i0 < kBlock ? n - i0 : kBlock;
    if (g_avx2) {
      SwiGLUAvx2(g + i0, u + i0, y + i0, len);
    } else {
      for (int64_t i = i0; i < i0 + len; i++) y[i] = SwiGLUOne(g[i], u[i]);
    }
  });
}

void ComputeSwiGLU(void*, TF_OpKernelContext* ctx) {
  RunKernel(
      ctx, 2,
      [](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        if (TF_NumDims(in[0]) != TF_NumDims(in[1])) return "MiniCPMSwiGLU: g and u must have the same shape";
        for (int i = 0; i < TF_NumDims(in[0]); i++) {
          if (TF_Dim(in[0], i) != TF_Dim(in[1], i)) return "MiniCPMSwiGLU: g and u must have the same shape";
        }
        *dims = DimsOf(in[0]);
        return nullptr;
      },
      [](TF_Tensor** in, float* y) { SwiGLU(Data(in[0]), Data(in[1]), y, TF_TensorElementCount(in[0])); });
}

// ====================================================================================================
// MiniCPMRotary(x: float [..., W], cos: float [T, d], sin: float [T, d]) -> y: float [..., W]
//   y = x·cos + rotate_half(x)·sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]), for each d-wide head of each
//   row; row r (x's leading dimensions flattened) is at position r % T. So x is either [B, H, T, d] (W = d)
//   or the decoder's 2-D [B*T, H*d] (W = H*d). One pass instead of six TF kernels, rounded as TF's mul,
//   mul, add (bit-identical to the TF.js ops).
// ====================================================================================================

// y = rotary(x) for `rows` rows of width W (heads of d), row r at position r % T of cos/sin [T, d].
void RotaryRows(const float* xp, const float* cp, const float* sp, float* yp, int64_t rows, int64_t W, int64_t T,
                int64_t d) {
  const int64_t half = d / 2;
  ParallelFor(rows, rows * W > 65536, [&](int64_t r) {
    const float* cr = cp + (r % T) * d;
    const float* sr = sp + (r % T) * d;
    for (int64_t h = 0; h < W; h += d) {
      const float* xr = xp + r * W + h;
      float* yr = yp + r * W + h;
      for (int64_t k = 0; k < half; k++) {
        const float a = xr[k] * cr[k], b = -xr[k + half] * sr[k];  // rounded as TF's mul, mul, add
        yr[k] = a + b;
        const float e = xr[k + half] * cr[k + half], f = xr[k] * sr[k + half];
        yr[k + half] = e + f;
      }
    }
  });
}

void ComputeRotary(void*, TF_OpKernelContext* ctx) {
  RunKernel(
      ctx, 3,
      [](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        TF_Tensor *x = in[0], *c = in[1], *s = in[2];
        if (TF_NumDims(x) < 2 || TF_NumDims(c) != 2 || TF_NumDims(s) != 2 || TF_Dim(c, 0) != TF_Dim(s, 0) ||
            TF_Dim(c, 1) != TF_Dim(s, 1) || TF_Dim(c, 0) < 1 || TF_Dim(c, 1) < 2 || TF_Dim(c, 1) % 2 ||
            TF_Dim(x, TF_NumDims(x) - 1) % TF_Dim(c, 1) ||
            (TF_TensorElementCount(x) / (TF_Dim(x, TF_NumDims(x) - 1) > 0 ? TF_Dim(x, TF_NumDims(x) - 1) : 1)) % TF_Dim(c, 0)) {
          return "MiniCPMRotary: expects x [..., W] with rows a multiple of T and W of d (d even), cos and sin [T, d]";
        }
        *dims = DimsOf(x);
        return nullptr;
      },
      [](TF_Tensor** in, float* yp) {
        const int64_t W = TF_Dim(in[0], TF_NumDims(in[0]) - 1), rows = W > 0 ? TF_TensorElementCount(in[0]) / W : 0;
        RotaryRows(Data(in[0]), Data(in[1]), Data(in[2]), yp, rows, W, TF_Dim(in[1], 0), TF_Dim(in[1], 1));
      });
}

// ====================================================================================================
// MiniCPMCachedAttention(q: float [B*T, H*d], k: float [B*T, Hkv*d], v: float [B*T, Hkv*d],
//   kc: float [S, Hkv, C, d], vc: float [S, Hkv, C, d], idx: int32 [B, P]; heads: int, scale: float)
//   -> y: float [B*T, H*d]
// The decoder's attention over its KV cache, for B sequences (beams) of T new positions each (q and k
// already rotated). P = past + T is the filled length; idx[b][p] is the slot of the cache holding
// sequence b's key and value at position p. First the new keys/values are written in place into the cache
// tensors (kc[idx[b][p], h, p] for p >= past: the op writes into its inputs' buffers, which the caller
// owns and never shares), then for each sequence b, head h and new position t (absolute past + t):
//   s_j = (q · K[idx[b][j], h', j]) * scale,  j = 0..past+t     (h' = h / (H / Hkv), causal)
//   y   = sum_j softmax(s)_j V[idx[b][j], h', j]
// as the eager path computes it: scores scaled after the product, softmax in fp32 (max-shifted, the
// softmax op's exp), then the weighted sum. Beams that share a prefix point at the same slots, so a beam
// reorder is a permutation of idx's rows and nothing is copied. Masked keys are skipped (their weight is
// exactly 0 in the reference's exp(-3.4e38 - max)).
// ====================================================================================================

struct AttentionAttrs {
  int64_t heads = 0;
  float scale = 0;
};

void* CreateCachedAttention(TF_OpKernelConstruction* ctx) {
  auto* a = new AttentionAttrs();
  TF_Status* status = TF_NewStatus();
  TF_OpKernelConstruction_GetAttrInt64(ctx, "heads", &a->heads, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrFloat(ctx, "scale", &a->scale, status);
  if (TF_GetCode(status) == TF_OK && (a->heads < 1 || !(std::isfinite(a->scale) && a->scale > 0))) {
    TF_SetStatus(status, TF_INVALID_ARGUMENT, "MiniCPMCachedAttention: heads must be >= 1 and scale a finite number > 0");
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return a;
}

void DeleteCachedAttention(void* p) { delete static_cast<AttentionAttrs*>(p); }

// sum_c a[c] * b[c], 8 lanes then the lanes added (as Sum8), then the tail.
MINICPM_AVX2 inline float Dot8(const float* a, const float* b, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc);
  float s = Sum8(acc);
  for (; c < d; c++) s += a[c] * b[c];
  return s;
}

inline float DotScalar(const float* a, const float* b, int64_t d) {
  float s = 0;
  for (int64_t c = 0; c < d; c++) s += a[c] * b[c];
  return s;
}

// out[c] += p * v[c]
MINICPM_AVX2 inline void Axpy8(float p, const float* v, float* out, int64_t d) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) _mm256_storeu_ps(out + c, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + c), _mm256_loadu_ps(out + c)));
  for (; c < d; c++) out[c] += p * v[c];
}

// softmax of s[0..L) in place (max-shifted; the softmax op's exp and order).
void SoftmaxInPlace(float* s, int64_t L) {
  if (g_avx2) SoftmaxRowAvx2(s, s, L);
  else SoftmaxRowScalar(s, s, L);
}

// The sums of 16 vectors' lanes, one per lane of the result in the vectors' order, each added in the order
// _mm512_reduce_add_ps adds one vector's lanes ((x_i + x_i+8), then + the pair 4 lanes on, then lanes 0+2 and
// 1+3, then those two), so a score is the same float whether its key is summed alone or in a block of 16.
// Pairs of vectors are combined level by level (two shuffles and an add a pair): 45 instructions for 16 sums
// instead of 16 dependent reductions.
MINICPM_AVX512 inline __m512 AddHalves(__m512 a, __m512 b, int level) {
  switch (level) {
    case 0: return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));  // 8 + 8
    case 1: return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));  // 4 + 4
    case 2: return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));        // 0+2, 1+3
    default: return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD));       // 0 + 1
  }
}

MINICPM_AVX512 inline __m512 LaneSums16(__m512* v) {
  for (int i = 0; i < 8; i++) v[i] = AddHalves(v[2 * i], v[2 * i + 1], 0);
  for (int i = 0; i < 4; i++) v[i] = AddHalves(v[2 * i], v[2 * i + 1], 1);
  for (int i = 0; i < 2; i++) v[i] = AddHalves(v[2 * i], v[2 * i + 1], 2);
  // Lane 4k + m now holds vector 4m + k's sum.
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
                               AddHalves(v[0], v[1], 3));
}

// Up to 4 query rows of one kv head h at once (AVX-512, d a multiple of 16): row r is query q[r], reads keys
// and values 0..L[r]-1 of its sequence through slots[r], and writes out[r]. Keys are walked outer and rows
// inner, so a key or value that several rows share (beams with a common prefix, or consecutive prefill
// positions) is read from memory once, and the rows' value sums stay in registers. s: scratch [4, P].
// A row's scores are formed 16 keys at a time (each key's product in 16-lane blocks, then the 16 keys' lane
// sums together, LaneSums16), the last L % 16 one by one: the decode step's attention at 2000 positions, 40
// calls, went from 57 to 47 ms (alternating builds; 16 reductions of one key each had bound the score pass).
// Keys (and values) this many positions ahead are prefetched: a long context's cache is streamed per head in
// 256-byte steps (40 layers at 2000 positions: 51 -> 43 ms per decode step).
constexpr int64_t kAttendAhead = 16;

template <int R>
MINICPM_AVX512 void AttendRowsAvx512(const float* const* q, const int32_t* const* slots, const int64_t* L, const float* kc,
                                     const float* vc, int64_t Hkv, int64_t C, int64_t d, int64_t h, float scale,
                                     float* const* out, float* s, int64_t P) {
  int64_t Lmax = 0;
  for (int r = 0; r < R; r++) Lmax = L[r] > Lmax ? L[r] : Lmax;
  const int64_t head = h * C * d, slot_stride = Hkv * C * d;
  auto key = [&](int r, int64_t j) { return kc + slots[r][j] * slot_stride + head + j * d; };
  const __m512 scale16 = _mm512_set1_ps(scale);
  for (int64_t j0 = 0; j0 < Lmax; j0 += 16) {
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      if (j0 >= L[r]) continue;
      if (j0 + 16 <= L[r]) {
        __m512 acc[16];
        const __m512 q0 = _mm512_loadu_ps(q[r]);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
          const int64_t j = j0 + i;
          if (j + kAttendAhead < L[r]) {
            const char* ahead = reinterpret_cast<const char*>(key(r, j + kAttendAhead));
            for (int64_t b = 0; b < d * 4; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
          }
          acc[i] = _mm512_mul_ps(q0, _mm512_loadu_ps(key(r, j)));
        }
        for (int64_t c = 16; c < d; c += 16) {
          const __m512 qc = _mm512_loadu_ps(q[r] + c);
#pragma GCC unroll 16
          for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(key(r, j0 + i) + c), acc[i]);
        }
        _mm512_storeu_ps(s + r * P + j0, _mm512_mul_ps(LaneSums16(acc), scale16));
        continue;
      }
      for (int64_t j = j0; j < L[r]; j++) {  // the last L % 16 keys
        const float* k = key(r, j);
        __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q[r]), _mm512_loadu_ps(k));
        for (int64_t c = 16; c < d; c += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q[r] + c), _mm512_loadu_ps(k + c), acc);
        s[r * P + j] = _mm512_reduce_add_ps(acc) * scale;
      }
    }
  }
  for (int r = 0; r < R; r++) SoftmaxRowAvx2(s + r * P, s + r * P, L[r]);
  int64_t c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) {
    __m512 acc[R][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) acc[r][i] = _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < Lmax; j++) {
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) {
        if (j >= L[r]) continue;
        const float* v = vc + slots[r][j] * slot_stride + head + j * d + c0;
        if (j + kAttendAhead < L[r]) {
          const char* ahead = reinterpret_cast<const char*>(vc + slots[r][j + kAttendAhead] * slot_stride + head + (j + kAttendAhead) * d + c0);
          for (int64_t b = 0; b < 256; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
        }
        const __m512 pv = _mm512_set1_ps(s[r * P + j]);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) acc[r][i] = _mm512_fmadd_ps(pv, _mm512_loadu_ps(v + 16 * i), acc[r][i]);
      }
    }
    for (int r = 0; r < R; r++) {
      for (int i = 0; i < 4; i++) _mm512_storeu_ps(out[r] + c0 + 16 * i, acc[r][i]);
    }
  }
  for (; c0 < d; c0 += 16) {  // the columns past the last multiple of 64
    for (int r = 0; r < R; r++) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t j = 0; j < L[r]; j++) {
        const float* v = vc + slots[r][j] * slot_stride + head + j * d + c0;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(s[r * P + j]), _mm512_loadu_ps(v), acc);
      }
      _mm512_storeu_ps(out[r] + c0, acc);
    }
  }
}

// The checks of the cached attention's inputs, the products given by their dims (q [rows, qw], k [krows, kw],
// v [vrows, vw]) so that the fused layer op can check what it will compute: nullptr when fine, else the message
// ("op: what").
const char* CheckAttention(int64_t rows, int64_t qw, int64_t krows, int64_t kw, int64_t vrows, int64_t vw, TF_Tensor* kc,
                           TF_Tensor* vc, TF_Tensor* idx, int64_t heads,
                           const char* op) {
  thread_local std::string message;
  auto fail = [&](const char* what) { return (message = std::string(op) + ": " + what).c_str(); };
  if (TF_NumDims(kc) != 4 || TF_NumDims(vc) != 4 || TF_NumDims(idx) != 2 || TF_TensorType(idx) != TF_INT32 ||
      TF_TensorType(kc) != TF_FLOAT || TF_TensorType(vc) != TF_FLOAT) {
    return fail("expects q [B*T, H*d], k and v [B*T, Hkv*d], caches [S, Hkv, C, d], int32 idx [B, P]");
  }
  for (int i = 0; i < 4; i++) {
    if (TF_Dim(kc, i) != TF_Dim(vc, i)) return fail("the key and value caches differ in shape");
  }
  const int64_t B = TF_Dim(idx, 0), P = TF_Dim(idx, 1);
  const int64_t S = TF_Dim(kc, 0), Hkv = TF_Dim(kc, 1), C = TF_Dim(kc, 2), d = TF_Dim(kc, 3), H = heads;
  if (B < 1 || d < 1 || Hkv < 1 || rows % B != 0 || rows / B < 1 || rows / B > P) {
    return fail("q's rows must be B*T with 1 <= T <= P (idx [B, P])");
  }
  if (H % Hkv != 0 || qw != H * d || kw != Hkv * d || vw != Hkv * d || krows != rows || vrows != rows) {
    return fail("q must be [B*T, heads*d] and k, v [B*T, Hkv*d], heads a multiple of Hkv");
  }
  if (P > C) return fail("idx covers more positions than the cache holds");
  const int32_t* ix = static_cast<const int32_t*>(TF_TensorData(idx));
  for (int64_t i = 0; i < B * P; i++) {
    if (ix[i] < 0 || ix[i] >= S) return fail("idx holds a slot outside the cache");
  }
  const int64_t T = rows / B;
  for (int64_t t = P - T; t < P; t++) {
    for (int64_t b = 0; b < B; b++) {
      for (int64_t c = 0; c < b; c++) {
        if (ix[b * P + t] == ix[c * P + t]) return fail("two sequences write the same cache slot");
      }
    }
  }
  return nullptr;
}

// Writes the new keys/values into the caches, then y [rows, H*d] = the attention of every new query row (see the
// section's head). The inputs passed CheckAttention.
void Attend(const float* q, const float* k, const float* v, TF_Tensor* kct, TF_Tensor* vct, TF_Tensor* idx, int64_t rows,
            int64_t heads, float scale, float* y) {
  float* kc = static_cast<float*>(TF_TensorData(kct));
  float* vc = static_cast<float*>(TF_TensorData(vct));
  const int32_t* ix = static_cast<const int32_t*>(TF_TensorData(idx));
  const int64_t B = TF_Dim(idx, 0), P = TF_Dim(idx, 1), T = rows / B, past = P - T;
  const int64_t Hkv = TF_Dim(kct, 1), C = TF_Dim(kct, 2), d = TF_Dim(kct, 3), H = heads, rep = H / Hkv;
  auto cell = [&](int64_t slot, int64_t h, int64_t pos) { return (slot * Hkv + h) * C * d + pos * d; };
  // A prefill writes T positions of a slot's head at once: their pages are faulted in one call
  // (MADV_POPULATE_WRITE) instead of one fault each, which this VM serves at ~0.25 GB/s (a 2000-position
  // prompt's 1.47 GB of keys and values: 6.5 s of faults touched, 2.7-3.8 s populated).
  const int64_t run_bytes = T * d * static_cast<int64_t>(sizeof(float));  // one slot's head, the new positions
  if (run_bytes >= 16384) {
    for (int64_t b = 0; b < B; b++) {
      const int32_t slot = ix[b * P + past];
      bool one_slot = true;
      for (int64_t t = 1; t < T; t++) one_slot = one_slot && ix[b * P + past + t] == slot;
      for (int64_t h = 0; one_slot && h < Hkv; h++) {
        Populate(kc + cell(slot, h, past), run_bytes, MADV_POPULATE_WRITE);
        Populate(vc + cell(slot, h, past), run_bytes, MADV_POPULATE_WRITE);
      }
    }
  }
  for (int64_t b = 0; b < B; b++) {
    for (int64_t t = 0; t < T; t++) {
      const int64_t slot = ix[b * P + past + t], row = b * T + t;
      for (int64_t h = 0; h < Hkv; h++) {
        std::memcpy(kc + cell(slot, h, past + t), k + row * Hkv * d + h * d, sizeof(float) * d);
        std::memcpy(vc + cell(slot, h, past + t), v + row * Hkv * d + h * d, sizeof(float) * d);
      }
    }
  }
  // The query rows of kv head h, in groups of up to 4: for a decode step the beams (and the query heads
  // sharing h), for a prefill consecutive positions. One task per (h, group).
  const int64_t rows_per_head = rep * B * T, groups = (rows_per_head + 3) / 4;
  const bool wide = g_isa == Isa::Avx512 && d % 16 == 0;
  ParallelFor(Hkv * groups, B * T * P * d * H > (1 << 14), [&](int64_t task) {
    const int64_t h = task / groups, g0 = (task % groups) * 4;
    const int R = static_cast<int>(rows_per_head - g0 < 4 ? rows_per_head - g0 : 4);
    const float* qr[4];
    float* outr[4];
    const int32_t* slots[4];
    int64_t L[4];
    for (int r = 0; r < R; r++) {
      const int64_t i = g0 + r, hq = h * rep + i / (B * T), b = (i % (B * T)) / T, t = i % T;
      qr[r] = q + (b * T + t) * H * d + hq * d;
      outr[r] = y + (b * T + t) * H * d + hq * d;
      slots[r] = ix + b * P;
      L[r] = past + t + 1;
    }
    std::vector<float> s(static_cast<size_t>(4 * P));
    if (wide) {
      switch (R) {
        case 1: AttendRowsAvx512<1>(qr, slots, L, kc, vc, Hkv, C, d, h, scale, outr, s.data(), P); break;
        case 2: AttendRowsAvx512<2>(qr, slots, L, kc, vc, Hkv, C, d, h, scale, outr, s.data(), P); break;
        case 3: AttendRowsAvx512<3>(qr, slots, L, kc, vc, Hkv, C, d, h, scale, outr, s.data(), P); break;
        default: AttendRowsAvx512<4>(qr, slots, L, kc, vc, Hkv, C, d, h, scale, outr, s.data(), P); break;
      }
      return;
    }
    for (int r = 0; r < R; r++) {
      for (int64_t j = 0; j < L[r]; j++) {
        const float* kr = kc + cell(slots[r][j], h, j);
        s[j] = (g_avx2 ? Dot8(qr[r], kr, d) : DotScalar(qr[r], kr, d)) * scale;
      }
      SoftmaxInPlace(s.data(), L[r]);
      std::memset(outr[r], 0, sizeof(float) * d);
      for (int64_t j = 0; j < L[r]; j++) {
        const float* vr = vc + cell(slots[r][j], h, j);
        if (g_avx2) {
          Axpy8(s[j], vr, outr[r], d);
        } else {
          for (int64_t c = 0; c < d; c++) outr[r][c] += s[j] * vr[c];
        }
      }
    }
  });
}

void ComputeCachedAttention(void* p, TF_OpKernelContext* ctx) {
  const AttentionAttrs* a = static_cast<AttentionAttrs*>(p);
  RunKernel(
      ctx, 6,
      [a](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        TF_Tensor *q = in[0], *k = in[1], *v = in[2];
        if (TF_NumDims(q) != 2 || TF_NumDims(k) != 2 || TF_NumDims(v) != 2) {
          return "MiniCPMCachedAttention: expects q [B*T, H*d], k and v [B*T, Hkv*d], caches [S, Hkv, C, d], int32 idx [B, P]";
        }
        if (const char* err = CheckAttention(TF_Dim(q, 0), TF_Dim(q, 1), TF_Dim(k, 0), TF_Dim(k, 1), TF_Dim(v, 0),
                                             TF_Dim(v, 1), in[3], in[4], in[5], a->heads,
                                             "MiniCPMCachedAttention")) {
          return err;
        }
        *dims = {TF_Dim(q, 0), a->heads * TF_Dim(in[3], 3)};
        return nullptr;
      },
      [a](TF_Tensor** in, float* y) {
        Attend(Data(in[0]), Data(in[1]), Data(in[2]), in[3], in[4], in[5], TF_Dim(in[0], 0), a->heads, a->scale, y);
      });
}

// ====================================================================================================
// MiniCPMDecoderLayer(h: float [M, D], ln1 [D], wq, wk, wv, wo, ln2 [D], wg, wu, wd (each W [N, K] float or
//   [N, K/2] int32 packed, as MiniCPMLinear), cos [T, d], sin [T, d], kcache, vcache [S, Hkv, C, d],
//   idx: int32 [B, P]; wtype, eps, heads, scale, residual) -> y: float [M, D]
// One MiniCPM decoder layer over M = B*T rows (src/model/minicpm_llm.ts), the ops above in the order the
// unfused path runs them, each the same code, so the result is bit for bit that path's:
//   x  = rmsnorm(h, ln1);  q, k, v = x·Wqᵀ, x·Wkᵀ, x·Wvᵀ;  q, k = rotary(q), rotary(k)
//   a  = cached attention (writes k, v into the caches);   h1 = h + (a·Woᵀ)·residual
//   x2 = rmsnorm(h1, ln2); y = h1 + ((silu(x2·Wgᵀ) * x2·Wuᵀ)·Wdᵀ)·residual
// A decode step is 40 of these calls instead of ~600 small kernels: the products stream back to back on
// workers that stay awake, and nothing in between goes through TensorFlow's dispatch.
// ====================================================================================================

struct LayerAttrs {
  WType wtype = WType::F32;
  float eps = 0, scale = 0, residual = 0;
  int64_t heads = 0;
};

void* CreateDecoderLayer(TF_OpKernelConstruction* ctx) {
  auto* a = new LayerAttrs();
  TF_Status* status = TF_NewStatus();
  ReadWType(ctx, "MiniCPMDecoderLayer", &a->wtype, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrFloat(ctx, "eps", &a->eps, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrFloat(ctx, "scale", &a->scale, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrFloat(ctx, "residual", &a->residual, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "heads", &a->heads, status);
  if (TF_GetCode(status) == TF_OK &&
      (a->heads < 1 || !(std::isfinite(a->scale) && a->scale > 0) || !(a->eps >= 0 && std::isfinite(a->eps)) ||
       !std::isfinite(a->residual))) {
    TF_SetStatus(status, TF_INVALID_ARGUMENT,
                 "MiniCPMDecoderLayer: heads must be >= 1, scale a finite number > 0, eps finite >= 0, residual finite");
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return a;
}

void DeleteDecoderLayer(void* p) { delete static_cast<LayerAttrs*>(p); }

constexpr int kLayerInputs = 15;
enum LayerInput { kH, kLn1, kWq, kWk, kWv, kWo, kLn2, kWg, kWu, kWd, kCos, kSin, kKc, kVc, kIdx };

// Shapes: nullptr when the inputs make a layer, else the message.
const char* CheckDecoderLayer(TF_Tensor** in, const LayerAttrs& a) {
  const bool packed = a.wtype != WType::F32;
  const int64_t f = packed ? 2 : 1;
  TF_Tensor* h = in[kH];
  if (TF_NumDims(h) != 2 || TF_Dim(h, 0) < 1 || TF_Dim(h, 1) < 1) return "MiniCPMDecoderLayer: expects h [M, D]";
  const int64_t M = TF_Dim(h, 0), D = TF_Dim(h, 1);
  for (int i : {kLn1, kLn2}) {
    if (TF_NumDims(in[i]) != 1 || TF_Dim(in[i], 0) != D) return "MiniCPMDecoderLayer: the norm weights must be [D]";
  }
  for (int i : {kWq, kWk, kWv, kWo, kWg, kWu, kWd}) {
    if (TF_TensorType(in[i]) != (packed ? TF_INT32 : TF_FLOAT) || TF_NumDims(in[i]) != 2) {
      return "MiniCPMDecoderLayer: weights must be float32 [N, K] for wtype f32 and int32 [N, K/2] for bf16/f16";
    }
  }
  // (weight, the input width it multiplies, its rows or -1 when free)
  const int64_t Nq = TF_Dim(in[kWq], 0), I = TF_Dim(in[kWg], 0);
  const struct { int w; int64_t K, N; } want[] = {{kWq, D, -1}, {kWk, D, -1}, {kWv, D, -1}, {kWo, Nq, D},
                                                  {kWg, D, -1}, {kWu, D, I},  {kWd, I, D}};
  for (const auto& e : want) {
    if (TF_Dim(in[e.w], 1) * f != e.K || (e.N >= 0 && TF_Dim(in[e.w], 0) != e.N) || TF_Dim(in[e.w], 0) < 1) {
      return "MiniCPMDecoderLayer: expects wq [Hd, D], wk and wv [Hkv*d, D], wo [D, Hd], wg and wu [I, D], wd [D, I] "
             "(K halved when packed)";
    }
  }
  if (const char* err = CheckAttention(M, Nq, M, TF_Dim(in[kWk], 0), M, TF_Dim(in[kWv], 0), in[kKc], in[kVc], in[kIdx],
                                       a.heads, "MiniCPMDecoderLayer")) {
    return err;
  }
  const int64_t T = M / TF_Dim(in[kIdx], 0), d = TF_Dim(in[kKc], 3);
  TF_Tensor *c = in[kCos], *s = in[kSin];
  if (TF_NumDims(c) != 2 || TF_NumDims(s) != 2 || TF_Dim(c, 0) != T || TF_Dim(s, 0) != T || TF_Dim(c, 1) != d ||
      TF_Dim(s, 1) != d || d % 2) {
    return "MiniCPMDecoderLayer: cos and sin must be [T, d] (T new positions per sequence, d even)";
  }
  return nullptr;
}

template <WType T>
void DecoderLayer(TF_Tensor** in, const LayerAttrs& a, float* y) {
  const int64_t M = TF_Dim(in[kH], 0), D = TF_Dim(in[kH], 1);
  const int64_t Nq = TF_Dim(in[kWq], 0), Nk = TF_Dim(in[kWk], 0), Nv = TF_Dim(in[kWv], 0), I = TF_Dim(in[kWg], 0);
  const int64_t Tn = TF_Dim(in[kCos], 0), d = TF_Dim(in[kCos], 1);
  const float* h = Data(in[kH]);
  const double eps = a.eps;
  const float rs = a.residual;
  // Scratch for the intermediate rows: a decode step's (up to 2 MiB: 8 rows of the full model) is kept between
  // calls; a prefill's is freed on return.
  thread_local std::vector<float> kept;
  std::vector<float> local;
  const size_t need = static_cast<size_t>(M) * (D + 2 * Nq + 2 * Nk + Nv + Nq + 3 * I);
  std::vector<float>& scratch = need <= (size_t{1} << 19) ? kept : local;
  if (scratch.size() < need) scratch.resize(need);
  float* x = scratch.data();
  float* q = x + M * D;
  float* qr = q + M * Nq;
  float* k = qr + M * Nq;
  float* kr = k + M * Nk;
  float* v = kr + M * Nk;
  float* att = v + M * Nv;
  float* g = att + M * Nq;
  float* u = g + M * I;
  float* act = u + M * I;
  float* o = x;  // x is free again once q, k, v (and later g, u) are computed
  auto norm = [&](const float* src, const float* w) {
    ParallelFor(M, M * D > 65536, [&](int64_t r) { RmsNormRow(src + r * D, w, x + r * D, D, eps); });
  };
  auto add_scaled = [&](const float* base, const float* delta) {  // y = base + delta * rs, as TF's mul then add
    for (int64_t i = 0; i < M * D; i++) {
      const float t = delta[i] * rs;
      y[i] = base[i] + t;
    }
  };
  norm(h, Data(in[kLn1]));
  const LinearJob qkv[3] = {{TF_TensorData(in[kWq]), Nq, q}, {TF_TensorData(in[kWk]), Nk, k}, {TF_TensorData(in[kWv]), Nv, v}};
  Linear<T>(x, M, D, qkv, 3);
  RotaryRows(q, Data(in[kCos]), Data(in[kSin]), qr, M, Nq, Tn, d);
  RotaryRows(k, Data(in[kCos]), Data(in[kSin]), kr, M, Nk, Tn, d);
  Attend(qr, kr, v, in[kKc], in[kVc], in[kIdx], M, a.heads, a.scale, att);
  const LinearJob oj = {TF_TensorData(in[kWo]), D, o};
  Linear<T>(att, M, Nq, &oj, 1);
  add_scaled(h, o);  // y = h1
  norm(y, Data(in[kLn2]));
  const LinearJob gu[2] = {{TF_TensorData(in[kWg]), I, g}, {TF_TensorData(in[kWu]), I, u}};
  Linear<T>(x, M, D, gu, 2);
  SwiGLU(g, u, act, M * I);
  const LinearJob dj = {TF_TensorData(in[kWd]), D, o};
  Linear<T>(act, M, I, &dj, 1);
  add_scaled(y, o);
}

void ComputeDecoderLayer(void* p, TF_OpKernelContext* ctx) {
  const LayerAttrs& a = *static_cast<LayerAttrs*>(p);
  RunKernel(
      ctx, kLayerInputs,
      [&a](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        if (const char* err = CheckDecoderLayer(in, a)) return err;
        *dims = DimsOf(in[kH]);
        return nullptr;
      },
      [&a](TF_Tensor** in, float* y) {
        if (a.wtype == WType::F32) DecoderLayer<WType::F32>(in, a, y);
        else if (a.wtype == WType::BF16) DecoderLayer<WType::BF16>(in, a, y);
        else DecoderLayer<WType::F16>(in, a, y);
      });
}

// ====================================================================================================
// MiniCPMKVGrow(old: float [S0, H, C0, d], lo: int32 [S0], hi: int32 [S0]; slots, capacity)
//   -> y: float [slots, H, capacity, d], y[s, h, p] = old[s, h, p] for lo[s] <= p < hi[s]; nothing else written.
// A KV cache's storage, new or grown (src/model/minicpm_llm.ts KVCache). The memory comes straight from mmap
// and only the positions each slot holds are copied in, so pages no sequence has written are never touched
// and take no RSS: with 3 beams the prompt is stored once, in slot 0, and slots 1-2 only hold what each beam
// generates (3 beams after a 1000-token prompt: 1.5 GiB of the 2.2 GiB cache stays unbacked). Reading a
// position no one wrote gives 0 (fresh anonymous pages), but the cache's table never points there.
// ====================================================================================================

struct KVGrowAttrs {
  int64_t slots = 0, capacity = 0;
};

void* CreateKVGrow(TF_OpKernelConstruction* ctx) {
  auto* a = new KVGrowAttrs();
  TF_Status* status = TF_NewStatus();
  TF_OpKernelConstruction_GetAttrInt64(ctx, "slots", &a->slots, status);
  if (TF_GetCode(status) == TF_OK) TF_OpKernelConstruction_GetAttrInt64(ctx, "capacity", &a->capacity, status);
  if (TF_GetCode(status) == TF_OK && (a->slots < 1 || a->capacity < 1)) {
    TF_SetStatus(status, TF_INVALID_ARGUMENT, "MiniCPMKVGrow: slots and capacity must be >= 1");
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return a;
}

void DeleteKVGrow(void* p) { delete static_cast<KVGrowAttrs*>(p); }

void ComputeKVGrow(void* p, TF_OpKernelContext* ctx) {
  const KVGrowAttrs* a = static_cast<KVGrowAttrs*>(p);
  TF_Status* status = TF_NewStatus();
  TF_Tensor* in[3] = {};
  for (int i = 0; i < 3 && TF_GetCode(status) == TF_OK; i++) TF_GetInput(ctx, i, &in[i], status);
  const char* err = nullptr;
  int64_t S0 = 0, H = 0, C0 = 0, d = 0;
  if (TF_GetCode(status) == TF_OK) {
    TF_Tensor *old = in[0], *lo = in[1], *hi = in[2];
    if (TF_TensorType(old) != TF_FLOAT || TF_NumDims(old) != 4) {
      err = "MiniCPMKVGrow: expects a float old cache [S0, H, C0, d]";
    } else {
      S0 = TF_Dim(old, 0), H = TF_Dim(old, 1), C0 = TF_Dim(old, 2), d = TF_Dim(old, 3);
      if (TF_TensorType(lo) != TF_INT32 || TF_TensorType(hi) != TF_INT32 || TF_NumDims(lo) != 1 || TF_NumDims(hi) != 1 ||
          TF_Dim(lo, 0) != S0 || TF_Dim(hi, 0) != S0) {
        err = "MiniCPMKVGrow: expects int32 lo [S0] and hi [S0]";
      } else if (H < 1 || d < 1 || S0 > a->slots || C0 > a->capacity) {
        err = "MiniCPMKVGrow: the new cache must have heads and width and hold the old one (slots >= S0, capacity >= C0)";
      } else if (a->slots > (INT64_MAX / 4) / H / d / a->capacity) {
        err = "MiniCPMKVGrow: the cache size overflows";
      } else {
        const int32_t* l = static_cast<const int32_t*>(TF_TensorData(lo));
        const int32_t* h = static_cast<const int32_t*>(TF_TensorData(hi));
        for (int64_t s = 0; s < S0 && !err; s++) {
          if (l[s] < 0 || l[s] > h[s] || h[s] > C0) err = "MiniCPMKVGrow: each slot's range must satisfy 0 <= lo <= hi <= C0";
        }
      }
    }
  }
  if (err) TF_SetStatus(status, TF_INVALID_ARGUMENT, err);
  if (TF_GetCode(status) == TF_OK) {
    const size_t bytes = static_cast<size_t>(a->slots * H * a->capacity * d) * sizeof(float);
    // No swap reserved: a cache reserves positions it may never write (src/model/minicpm_llm.ts).
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
      TF_SetStatus(status, TF_RESOURCE_EXHAUSTED, (std::string("MiniCPMKVGrow: cannot map ") + std::to_string(bytes) +
                                                   " bytes: " + std::strerror(errno)).c_str());
    } else {
      float* y = static_cast<float*>(mem);
      const float* x = Data(in[0]);
      const int32_t* l = static_cast<const int32_t*>(TF_TensorData(in[1]));
      const int32_t* h = static_cast<const int32_t*>(TF_TensorData(in[2]));
      for (int64_t s = 0; s < S0; s++) {
        if (h[s] <= l[s]) continue;
        for (int64_t k = 0; k < H; k++) {
          std::memcpy(y + ((s * H + k) * a->capacity + l[s]) * d, x + ((s * H + k) * C0 + l[s]) * d,
                      static_cast<size_t>(h[s] - l[s]) * d * sizeof(float));
        }
      }
      const int64_t dims[4] = {a->slots, H, a->capacity, d};
      // Page-aligned, so TensorFlow takes the buffer as it is (it copies only unaligned ones); unmapped when
      // the last tensor referring to it goes.
      TF_Tensor* t = TF_NewTensor(TF_FLOAT, dims, 4, mem, bytes, &UnmapBuffer, nullptr);
      TF_SetOutput(ctx, 0, t, status);
      TF_DeleteTensor(t);
    }
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelContext_Failure(ctx, status);
  for (TF_Tensor* t : in) if (t) TF_DeleteTensor(t);
  TF_DeleteStatus(status);
}

// ====================================================================================================
// Registration: op definitions, kernels, and the addon entry point
// ====================================================================================================

struct OpSpec {
  const char* name;
  std::initializer_list<const char*> inputs;  // "x: float"
  std::initializer_list<const char*> attrs;   // "eps: float"
  const char* output;                         // "y: float"
  bool stateful;
  void* (*create)(TF_OpKernelConstruction*);
  void (*compute)(void*, TF_OpKernelContext*);
  void (*destroy)(void*);
};

// Registers the op definition and its CPU kernel.
void RegisterOp(const OpSpec& op, TF_Status* status) {
  TF_OpDefinitionBuilder* b = TF_NewOpDefinitionBuilder(op.name);
  for (const char* in : op.inputs) TF_OpDefinitionBuilderAddInput(b, in);
  for (const char* attr : op.attrs) TF_OpDefinitionBuilderAddAttr(b, attr);
  TF_OpDefinitionBuilderAddOutput(b, op.output);
  if (op.stateful) TF_OpDefinitionBuilderSetIsStateful(b, true);
  TF_RegisterOpDefinition(b, status);
  if (TF_GetCode(status) != TF_OK) return;
  TF_KernelBuilder* kb = TF_NewKernelBuilder(op.name, "CPU", op.create, op.compute, op.destroy);
  TF_RegisterKernelBuilder((std::string(op.name) + "Op").c_str(), kb, status);
}

bool Register(const char** error) {
  const char* f = "y: float";
  const OpSpec ops[] = {
      {"MiniCPMLinear", {"x: float", "w: N * T"}, {"N: int >= 1", "T: {float, int32}", "wtype: string"}, "y: N * float",
       false, &CreateLinear, &ComputeLinear, &DeleteLinear},
      {"MiniCPMWiden", {"x: int32"}, {"wtype: string"}, f, false, &CreateWiden, &ComputeWiden, &DeleteLinear},
      {"MiniCPMReadTensor", {}, {"fd: int", "file_id: string", "size: int", "offset: int", "count: int", "dtype: string",
       "T: {float, int32}", "lazy: int = 0"}, "y: T", true, &CreateReadTensor, &ComputeReadTensor, &DeleteReadTensor},
      {"MiniCPMNorm", {"x: float", "w: float", "b: float"}, {"kind: string", "eps: float"}, f, false, &CreateNorm,
       &ComputeNorm, &DeleteNorm},
      {"MiniCPMSoftmax", {"x: float"}, {}, f, false, &CreateNoAttrs, &ComputeSoftmax, &DeleteNoAttrs},
      {"MiniCPMBiasGelu", {"x: float", "b: float"}, {}, f, false, &CreateNoAttrs, &ComputeBiasGelu, &DeleteNoAttrs},
      {"MiniCPMRotary", {"x: float", "cos: float", "sin: float"}, {}, f, false, &CreateNoAttrs, &ComputeRotary, &DeleteNoAttrs},
      // Stateful: it writes into its cache inputs, so TensorFlow must run it every time it is asked to.
      {"MiniCPMCachedAttention", {"q: float", "k: float", "v: float", "kcache: float", "vcache: float", "idx: int32"},
       {"heads: int", "scale: float"}, f, true, &CreateCachedAttention, &ComputeCachedAttention, &DeleteCachedAttention},
      {"MiniCPMKVGrow", {"old: float", "lo: int32", "hi: int32"}, {"slots: int", "capacity: int"}, f, true, &CreateKVGrow,
       &ComputeKVGrow, &DeleteKVGrow},
      {"MiniCPMSwiGLU", {"g: float", "u: float"}, {}, f, false, &CreateNoAttrs, &ComputeSwiGLU, &DeleteNoAttrs},
      // Stateful: it writes into its cache inputs (as MiniCPMCachedAttention).
      {"MiniCPMDecoderLayer", {"h: float", "ln1: float", "wq: T", "wk: T", "wv: T", "wo: T", "ln2: float", "wg: T", "wu: T",
       "wd: T", "cos: float", "sin: float", "kcache: float", "vcache: float", "idx: int32"},
       {"T: {float, int32}", "wtype: string", "eps: float", "heads: int", "scale: float", "residual: float"}, f, true,
       &CreateDecoderLayer, &ComputeDecoderLayer, &DeleteDecoderLayer},
  };
  TF_Status* status = TF_NewStatus();
  for (const OpSpec& op : ops) {
    RegisterOp(op, status);
    if (TF_GetCode(status) != TF_OK) break;
  }
  static char message[512];
  const bool ok = TF_GetCode(status) == TF_OK;
  if (!ok) {
    std::strncpy(message, TF_Message(status), sizeof(message) - 1);
    *error = message;
  }
  TF_DeleteStatus(status);
  return ok;
}

napi_value Init(napi_env env, napi_value exports) {
  __builtin_cpu_init();
  g_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = g_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  g_isa = !g_avx2 ? Isa::Scalar : avx512 ? Isa::Avx512 : Isa::Avx2;
  // MINICPMV_ISA=avx2 or scalar: a narrower path than the CPU allows, for tests and comparisons.
  const char* want = std::getenv("MINICPMV_ISA");
  if (want && std::strcmp(want, "avx2") == 0 && g_isa == Isa::Avx512) g_isa = Isa::Avx2;
  if (want && std::strcmp(want, "scalar") == 0) {
    g_isa = Isa::Scalar;
    g_avx2 = false;
  }
  static bool registered = false;
  static const char* error = nullptr;
  if (!registered && error == nullptr) registered = Register(&error);
  napi_value v;
  napi_get_boolean(env, registered, &v);
  napi_set_named_property(env, exports, "registered", v);
  napi_create_string_utf8(env, registered ? "" : error, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "error", v);
  napi_create_string_utf8(env, g_isa == Isa::Avx512 ? "avx512" : g_isa == Isa::Avx2 ? "avx2+fma" : "scalar", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "isa", v);
  napi_create_int32(env, Pool::Get().threads(), &v);
  napi_set_named_property(env, exports, "threads", v);
  // fileBackedBytes(): the bytes of the tensors that now point into checkpoint files' mappings (FileMap).
  napi_create_function(env, "fileBackedBytes", NAPI_AUTO_LENGTH, [](napi_env e, napi_callback_info) -> napi_value {
    napi_value r;
    napi_create_double(e, static_cast<double>(g_file_backed_bytes.load()), &r);
    return r;
  }, nullptr, &v);
  napi_set_named_property(env, exports, "fileBackedBytes", v);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
