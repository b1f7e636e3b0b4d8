// The project's own TensorFlow ops, registered into the TensorFlow runtime that @tensorflow/tfjs-node has
// loaded (same libtensorflow, same op registry) and run through TF.js's `tensorflow` backend like any
// built-in op. Each op is one section below, in this order: formula, helpers, shape check, compute.
//
//   MiniCPMLinearRows(x: float [R<=8, K], w: float [N, K]) -> y [R, N]: y = x wᵀ (nn.Linear, W in PyTorch
//     [out, in] layout) for the few rows of decode steps and beams, streaming each row of W once.
//   MiniCPMReadTensor(; fd, file_id, size, offset, count, dtype) -> y: float [count]: a safetensors tensor
//     (F32, BF16 or F16) read from an open, validated file straight into a float32 tensor.
//   MiniCPMNorm(x: float [R, D], w [D], b [D]; kind, eps) -> y [R, D]: LayerNorm or MiniCPM's RMSNorm, one
//     pass per row.
//   MiniCPMSoftmax(x: float [..., D]) -> y: softmax over the last dimension.
//   MiniCPMBiasGelu(x: float [R, D], b [D]) -> y [R, D]: exact-erf GELU of x + b.
//   MiniCPMRotary(x: float [B, H, T, d], cos [T, d], sin [T, d]) -> y: rotate-half rotary embedding.
//
// Every op replaces several TF kernels (or a slower one) with one pass over the data; its TF.js-op
// reference (`fooOps` beside `fooNative` in src/) is what the tests compare it with.
#include <immintrin.h>
#include <node_api.h>
#include <omp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "tensorflow/c/kernels.h"
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

namespace {

// ====================================================================================================
// Shared: the kernel frame every tensor-input op runs in
// ====================================================================================================

bool g_avx2 = false;

// Ops without attributes keep no state.
void* CreateNoAttrs(TF_OpKernelConstruction*) { return nullptr; }
void DeleteNoAttrs(void*) {}

inline const float* Data(TF_Tensor* t) { return static_cast<const float*>(TF_TensorData(t)); }

// The frame every tensor-input kernel shares: fetch the `n` inputs, let `shape` check them and give the
// output's dims (nullptr when fine, else the error message), allocate the float output, run
// `body(inputs, y)`, report any failure, release everything.
template <typename Shape, typename Body>
void RunKernel(TF_OpKernelContext* ctx, int n, Shape shape, Body body) {
  TF_Status* status = TF_NewStatus();
  TF_Tensor* in[3] = {nullptr, nullptr, nullptr};
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

// ====================================================================================================
// MiniCPMLinearRows(x: float [R, K], w: float [N, K]) -> y: float [R, N], R <= 8
//   y[r, n] = sum_k x[r, k] * w[n, k]          (nn.Linear, W in PyTorch [out, in] layout)
// With one to eight rows (decode steps, beams) the product is bound by reading W. TensorFlow's MatMul
// reaches 15-18 GB/s on it; streaming each row of W once, with both cores, reaches the memory bandwidth
// (bench/backend.ts measures both). Accumulation is in fp32, in eight-lane partial sums: results differ
// from MatMul by summation order only.
// ====================================================================================================

constexpr int kMaxRows = 8;

// y[r] (+)= dot(x[r], w_row) for r < R, one row of W.
__attribute__((target("avx2,fma"))) inline void dot_rows_avx2(const float* w, const float* x, int64_t K, int R,
                                                              float* out) {
  __m256 acc[kMaxRows];
  for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 wv = _mm256_loadu_ps(w + k);
    for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + r * K + k), acc[r]);
  }
  for (int r = 0; r < R; r++) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    float t = _mm_cvtss_f32(s);
    for (int64_t j = k; j < K; j++) t += w[j] * x[r * K + j];
    out[r] = t;
  }
}

// One input row (R = 1, the decode step), four rows of W at a time: four
// independent streams give the core's prefetchers more to work with.
__attribute__((target("avx2,fma"))) inline void dot4_avx2(const float* w, const float* x, int64_t K, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  const float *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), xv, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), xv, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), xv, a3);
  }
  __m256 acc[4] = {a0, a1, a2, a3};
  const float* rows[4] = {w0, w1, w2, w3};
  for (int i = 0; i < 4; i++) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    float t = _mm_cvtss_f32(s);
    for (int64_t j = k; j < K; j++) t += rows[i][j] * x[j];
    out[i] = t;
  }
}

inline void dot_rows_scalar(const float* w, const float* x, int64_t K, int R, float* out) {
  for (int r = 0; r < R; r++) {
    float t = 0;
    for (int64_t j = 0; j < K; j++) t += w[j] * x[r * K + j];
    out[r] = t;
  }
}

void ComputeLinearRows(void*, TF_OpKernelContext* ctx) {
  RunKernel(
      ctx, 2,
      [](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        TF_Tensor *x = in[0], *w = in[1];
        if (TF_NumDims(x) != 2 || TF_NumDims(w) != 2 || TF_Dim(x, 1) != TF_Dim(w, 1) || TF_Dim(x, 0) > kMaxRows) {
          return "MiniCPMLinearRows: expects x [R<=8, K] and w [N, K]";
        }
        *dims = {TF_Dim(x, 0), TF_Dim(w, 0)};
        return nullptr;
      },
      [](TF_Tensor** in, float* yp) {
        const int R = static_cast<int>(TF_Dim(in[0], 0));
        const int64_t K = TF_Dim(in[0], 1), N = TF_Dim(in[1], 0);
        const float *xp = Data(in[0]), *wp = Data(in[1]);
        if (R == 1 && g_avx2) {
          const int64_t blocks = N / 4;
#pragma omp parallel for schedule(static)
          for (int64_t b = 0; b < blocks; b++) dot4_avx2(wp + 4 * b * K, xp, K, yp + 4 * b);
          for (int64_t n = 4 * blocks; n < N; n++) dot_rows_avx2(wp + n * K, xp, K, 1, yp + n);
        } else {
#pragma omp parallel for schedule(static)
          for (int64_t n = 0; n < N; n++) {
            float out[kMaxRows];
            if (g_avx2) dot_rows_avx2(wp + n * K, xp, K, R, out);
            else dot_rows_scalar(wp + n * K, xp, K, R, out);
            for (int r = 0; r < R; r++) yp[r * N + n] = out[r];
          }
        }
      });
}

// ====================================================================================================
// MiniCPMReadTensor(; fd: int, file_id: string, size: int, offset: int, count: int, dtype: string)
//   -> y: float [count]
// Reads `count` elements of a safetensors tensor (F32, BF16 or F16) at byte `offset` of the open file
// `fd` straight into a new float32 TensorFlow tensor: the checkpoint loads at the disk's speed, without a
// pass through JavaScript. 16-bit values are widened in place (bf16: a 16-bit shift; f16: F16C).
// The file is the one JavaScript opened and validated (src/weights/safetensors.ts): the op reads through
// that descriptor, never by path, and first checks with fstat that it is still that regular file
// (`file_id` = "device:inode") with the size it had (`size`), so a file replaced, truncated or grown
// since its header was read is refused instead of read. Every attribute is checked before anything is
// allocated; a failure is one line, "MiniCPMReadTensor: ...".
// ====================================================================================================

struct ReadAttrs {
  int64_t fd = -1;
  std::string file_id;
  int64_t size = 0;
  int64_t offset = 0;
  int64_t count = 0;
  std::string dtype;
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

__attribute__((target("f16c,avx2"))) void WidenF16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

// bf16 -> f32 is a 16-bit shift; 8 at a time, same front-to-back safety as WidenF16.
__attribute__((target("avx2"))) void WidenBf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_slli_epi32(v, 16));
  }
  for (; i < n; i++) {
    const uint32_t b = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &b, 4);
  }
}

// Checks the attributes and the open file; the empty string when the read may go ahead.
std::string CheckRead(const ReadAttrs& a, int64_t* elem_bytes) {
  const bool f32 = a.dtype == "F32", b16 = a.dtype == "BF16" || a.dtype == "F16";
  if (!f32 && !b16) return "dtype must be F32, BF16 or F16, got \"" + a.dtype + "\"";
  if (b16 && !(__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2"))) {
    return "16-bit weights need a CPU with AVX2 and F16C";
  }
  *elem_bytes = f32 ? 4 : 2;
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

void ComputeReadTensor(void* p, TF_OpKernelContext* ctx) {
  const ReadAttrs* a = static_cast<ReadAttrs*>(p);
  TF_Status* status = TF_NewStatus();
  int64_t elem_bytes = 4;
  std::string err = CheckRead(*a, &elem_bytes);
  TF_Tensor* y = nullptr;
  if (err.empty()) {
    const int64_t n = a->count;
    int64_t dims[1] = {n};
    y = TF_AllocateOutput(ctx, 0, TF_FLOAT, dims, 1, sizeof(float) * n, status);
    if (TF_GetCode(status) == TF_OK) {
      float* out = static_cast<float*>(TF_TensorData(y));
      const int fd = static_cast<int>(a->fd);
      if (elem_bytes == 4) {
        ReadFully(fd, reinterpret_cast<char*>(out), 4 * n, a->offset, &err);
      } else {
        // The 2-byte values go to the upper half of the output, then widen front to back in pieces: an element's
        // 4 output bytes never cover a 2-byte value not yet read (index i writes bytes 4i.., reads 2n+2i..).
        uint16_t* half = reinterpret_cast<uint16_t*>(out) + n;
        if (ReadFully(fd, reinterpret_cast<char*>(half), 2 * n, a->offset, &err)) {
          // 8 at a time: a block of 8 outputs (32 bytes) only reaches values already loaded into registers.
          if (a->dtype == "BF16") WidenBf16(half, out, n);
          else WidenF16(half, out, n);
        }
      }
    }
  }
  if (!err.empty()) TF_SetStatus(status, TF_INVALID_ARGUMENT, ("MiniCPMReadTensor: " + err).c_str());
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
#pragma omp parallel for schedule(static) if (R > 1)
        for (int64_t r = 0; r < R; r++) {
          const float* row = xp + r * D;
          float* out = yp + r * D;
          if (rms) {
            double sq = 0;
            for (int64_t i = 0; i < D; i++) sq += static_cast<double>(row[i]) * row[i];
            // torch: x * rsqrt(var + eps) in fp32, then * weight
            const float inv = static_cast<float>(1.0 / std::sqrt(sq / D + eps));
            for (int64_t i = 0; i < D; i++) out[i] = (row[i] * inv) * wp[i];
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
        }
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
#pragma omp parallel for schedule(static) if (R * D > 65536)
        for (int64_t r = 0; r < R; r++) {
          if (g_avx2) SoftmaxRowAvx2(xp + r * D, yp + r * D, D);
          else SoftmaxRowScalar(xp + r * D, yp + r * D, D);
        }
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
#pragma omp parallel for schedule(static) if (R * D > 65536)
        for (int64_t r = 0; r < R; r++) {
          if (g_avx2) BiasGeluRowAvx2(xp + r * D, bp, yp + r * D, D);
          else BiasGeluRowScalar(xp + r * D, bp, yp + r * D, D);
        }
      });
}

// ====================================================================================================
// MiniCPMRotary(x: float [B, H, T, d], cos: float [T, d], sin: float [T, d]) -> y [B, H, T, d]
//   y = x·cos + rotate_half(x)·sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]): one pass instead of six TF
//   kernels, rounded as TF's mul, mul, add (bit-identical to the TF.js ops).
// ====================================================================================================

void ComputeRotary(void*, TF_OpKernelContext* ctx) {
  RunKernel(
      ctx, 3,
      [](TF_Tensor** in, std::vector<int64_t>* dims) -> const char* {
        TF_Tensor *x = in[0], *c = in[1], *s = in[2];
        if (TF_NumDims(x) != 4 || TF_NumDims(c) != 2 || TF_NumDims(s) != 2 || TF_Dim(c, 0) != TF_Dim(x, 2) ||
            TF_Dim(c, 1) != TF_Dim(x, 3) || TF_Dim(s, 0) != TF_Dim(x, 2) || TF_Dim(s, 1) != TF_Dim(x, 3) ||
            TF_Dim(x, 3) % 2) {
          return "MiniCPMRotary: expects x [B, H, T, d] (d even), cos and sin [T, d]";
        }
        *dims = DimsOf(x);
        return nullptr;
      },
      [](TF_Tensor** in, float* yp) {
        const int64_t T = TF_Dim(in[0], 2), d = TF_Dim(in[0], 3), half = d / 2;
        const int64_t rows = TF_Dim(in[0], 0) * TF_Dim(in[0], 1) * T;
        const float *xp = Data(in[0]), *cp = Data(in[1]), *sp = Data(in[2]);
#pragma omp parallel for schedule(static) if (rows * d > 65536)
        for (int64_t r = 0; r < rows; r++) {
          const float* xr = xp + r * d;
          const float* cr = cp + (r % T) * d;
          const float* sr = sp + (r % T) * d;
          float* yr = yp + r * d;
          for (int64_t k = 0; k < half; k++) {
            const float a = xr[k] * cr[k], b = -xr[k + half] * sr[k];  // rounded as TF's mul, mul, add
            yr[k] = a + b;
            const float e = xr[k + half] * cr[k + half], f = xr[k] * sr[k + half];
            yr[k + half] = e + f;
          }
        }
      });
}

// ====================================================================================================
// Registration: op definitions, kernels, and the addon entry point
// ====================================================================================================

struct OpSpec {
  const char* name;
  std::initializer_list<const char*> inputs;  // "x: float"
  std::initializer_list<const char*> attrs;   // "eps: float"
  bool stateful;
  void* (*create)(TF_OpKernelConstruction*);
  void (*compute)(void*, TF_OpKernelContext*);
  void (*destroy)(void*);
};

// Registers the op definition (one float output "y") and its CPU kernel.
void RegisterOp(const OpSpec& op, TF_Status* status) {
  TF_OpDefinitionBuilder* b = TF_NewOpDefinitionBuilder(op.name);
  for (const char* in : op.inputs) TF_OpDefinitionBuilderAddInput(b, in);
  for (const char* attr : op.attrs) TF_OpDefinitionBuilderAddAttr(b, attr);
  TF_OpDefinitionBuilderAddOutput(b, "y: float");
  if (op.stateful) TF_OpDefinitionBuilderSetIsStateful(b, true);
  TF_RegisterOpDefinition(b, status);
  if (TF_GetCode(status) != TF_OK) return;
  TF_KernelBuilder* kb = TF_NewKernelBuilder(op.name, "CPU", op.create, op.compute, op.destroy);
  TF_RegisterKernelBuilder((std::string(op.name) + "Op").c_str(), kb, status);
}

bool Register(const char** error) {
  const OpSpec ops[] = {
      {"MiniCPMLinearRows", {"x: float", "w: float"}, {}, false, &CreateNoAttrs, &ComputeLinearRows, &DeleteNoAttrs},
      {"MiniCPMReadTensor", {}, {"fd: int", "file_id: string", "size: int", "offset: int", "count: int", "dtype: string"}, true, &CreateReadTensor,
       &ComputeReadTensor, &DeleteReadTensor},
      {"MiniCPMNorm", {"x: float", "w: float", "b: float"}, {"kind: string", "eps: float"}, false, &CreateNorm,
       &ComputeNorm, &DeleteNorm},
      {"MiniCPMSoftmax", {"x: float"}, {}, false, &CreateNoAttrs, &ComputeSoftmax, &DeleteNoAttrs},
      {"MiniCPMBiasGelu", {"x: float", "b: float"}, {}, false, &CreateNoAttrs, &ComputeBiasGelu, &DeleteNoAttrs},
      {"MiniCPMRotary", {"x: float", "cos: float", "sin: float"}, {}, false, &CreateNoAttrs, &ComputeRotary, &DeleteNoAttrs},
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
  g_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static bool registered = false;
  static const char* error = nullptr;
  if (!registered && error == nullptr) registered = Register(&error);
  napi_value v;
  napi_get_boolean(env, registered, &v);
  napi_set_named_property(env, exports, "registered", v);
  napi_create_string_utf8(env, registered ? "" : error, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "error", v);
  napi_create_string_utf8(env, g_avx2 ? "avx2+fma" : "scalar", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "isa", v);
  napi_create_int32(env, omp_get_max_threads(), &v);
  napi_set_named_property(env, exports, "threads", v);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
