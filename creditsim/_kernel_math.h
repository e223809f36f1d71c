// Shared by the package's C++ kernels (creditsim/loans/_diffusion_chain.cpp, creditsim/nn/_attention_step.cpp,
// creditsim/nn/_mlp_step.cpp): the load-time pick among instruction-set builds, a float32 exp made of plain IEEE
// operations and a fixed-order layer norm.
//
// Every multiply-add in the kernels is an explicit fmaf and they are built with -ffp-contract=off, so the
// x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and baseline builds (libm's fmaf) give the same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

// CS_NO_CLONES: one build for the -march given (the tests build each level that way and compare bits).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(CS_NO_CLONES)
#define CS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CS_CLONES
#endif
#define CS_INLINE static inline __attribute__((always_inline))

// CS_AVX512_BLOCK: a kernel may hold a hot loop's registers explicitly with AVX-512 intrinsics in a
// function of its own (target attribute), beside the generic loop it must equal bit for bit (lane by lane
// the same fmaf sequence); avx512_block() says whether that function runs.
#if defined(__GNUC__) && defined(__x86_64__)
#define CS_AVX512_BLOCK 1
#include <immintrin.h>
#else
#define CS_AVX512_BLOCK 0
#endif

namespace creditsim_kernels {

// exp(x) in float32 to ~1 ulp: x = n ln2 + r (Cody-Waite, two-part ln2), exp(r) by a degree-7 polynomial
// (Horner with fmaf), 2^n put into the exponent bits. Saturates below -87.3 (-> ~1e-38: SiLU turns it
// into the exact limit, a softmax weight vanishes beside the maximum's 1) and above 88.3. Written so the
// compiler vectorises it across a loop's lanes (libm's expf is a scalar call).
CS_INLINE float exp_f32(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = std::fmaf(n, -0.693359375f, x);
    r = std::fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = std::fmaf(p, r, 1.3981999507e-3f);
    p = std::fmaf(p, r, 8.3334519073e-3f);
    p = std::fmaf(p, r, 4.1665795894e-2f);
    p = std::fmaf(p, r, 1.6666665459e-1f);
    p = std::fmaf(p, r, 5.0000001201e-1f);
    p = std::fmaf(p, r * r, r);
    p = p + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#if CS_AVX512_BLOCK
// exp_f32 on 16 lanes: the same IEEE operations in the same order (max / min keep the scalar selects'
// results, NaN included), so each lane is exp_f32's bits.
__attribute__((target("avx512f"))) inline __m512 exp_f32_x16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);  // x < -87.3 ? -87.3 : x
    x = _mm512_min_ps(_mm512_set1_ps(88.3f), x);   // x > 88.3 ? 88.3 : x
    const __m512 big = _mm512_set1_ps(12582912.0f);
    const __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), big), big);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}
#endif

// Sum of v[0 .. n - 1] in a fixed order: v[i] into lane i % 16 in index order, then the lanes by a fixed tree.
CS_INLINE float lane_sum(const float* v, int n) {
    constexpr int LANES = 16;
    float s[LANES] = {};
    int i0 = 0;
    for (; i0 + LANES <= n; i0 += LANES)
        for (int k = 0; k < LANES; ++k) s[k] += v[i0 + k];
    for (int k = 0; i0 + k < n; ++k) s[k] += v[i0 + k];
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; ++k) s[k] += s[k + w];
    return s[0];
}

constexpr int LN_MAX_D = 256;  // widest row layer_norm_row takes (the wrappers check)

// a (d) = LayerNorm(x) of one row, nn.LayerNorm's maths (biased variance, eps inside the root), the sums by
// lane_sum. D: the width when known at compile time (0: d).
template <int D>
CS_INLINE void layer_norm_row(int d_, const float* x, const float* w, const float* b, float eps, float* a) {
    const int d = D ? D : d_;
    const float mean = lane_sum(x, d) / static_cast<float>(d);
    float c[LN_MAX_D];
    for (int i = 0; i < d; ++i) c[i] = x[i] - mean;
    float sq[LN_MAX_D];
    for (int i = 0; i < d; ++i) sq[i] = c[i] * c[i];
    const float rstd = 1.0f / std::sqrt(lane_sum(sq, d) / static_cast<float>(d) + eps);
    for (int i = 0; i < d; ++i) a[i] = std::fmaf(c[i] * rstd, w[i], b[i]);
}

// out (n_out) = b + sum_i in[i] w[i] of one row: each output's bias, then the inputs ascending (explicit fmaf).
// w: (n_in, n_out) input-major. NI, NO: the sizes when known at compile time (0: n_in, n_out).
template <int NI, int NO>
CS_INLINE void affine_row(int n_in_, int n_out_, const float* w, const float* b, const float* in, float* out) {
    const int n_in = NI ? NI : n_in_, n_out = NO ? NO : n_out_;
    for (int j = 0; j < n_out; ++j) out[j] = b[j];
    for (int i = 0; i < n_in; ++i) {
        const float v = in[i];
        const float* wi = w + static_cast<int64_t>(i) * n_out;
        for (int j = 0; j < n_out; ++j) out[j] = std::fmaf(v, wi[j], out[j]);
    }
}

// out[r] (n_out) = x[r] + (b + sum_i in[r][i] w[i]) for R rows side by side: each output's bias, then the
// inputs ascending (explicit fmaf), each row its own sums (several rows share each load of w). w: (n_in, n_out)
// input-major, n_out <= LN_MAX_D. NI, NO: the sizes when known at compile time (0: n_in, n_out).
template <int NI, int NO, int R>
CS_INLINE void residual_rows(int n_in_, int n_out_, const float* w, const float* b, const float* const* in,
                             const float* const* x, float* const* out) {
    const int n_in = NI ? NI : n_in_, n_out = NO ? NO : n_out_;
    float o[R][LN_MAX_D];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < n_out; ++j) o[r][j] = b[j];
    for (int i = 0; i < n_in; ++i) {
        const float* wi = w + static_cast<int64_t>(i) * n_out;
        for (int r = 0; r < R; ++r) {
            const float v = in[r][i];
            for (int j = 0; j < n_out; ++j) o[r][j] = std::fmaf(v, wi[j], o[r][j]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < n_out; ++j) out[r][j] = x[r][j] + o[r][j];
}

// Whether the AVX-512 blocks run: in the library's build, where the CPU has AVX-512F (checked at run time,
// beside the clones' own pick); in a single-level build (CS_NO_CLONES: the tests' per-level builds), where
// that level has it, so the baseline and v3 builds run the generic loops the bits are compared against.
inline bool avx512_block() {
#if !CS_AVX512_BLOCK
    return false;
#elif defined(CS_NO_CLONES)
#ifdef __AVX512F__
    return true;
#else
    return false;
#endif
#else
    return __builtin_cpu_supports("avx512f");
#endif
}

template <typename T>
T* as_ptr(unsigned long long address) {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(address));
}

}  // namespace creditsim_kernels

#ifdef Py_PYTHON_H
namespace creditsim_kernels {
// The (n, x address, y address) arguments of a kernel's elementwise test entry point (float32 buffers of n
// elements): false, with a Python error set, for bad ones.
inline bool elementwise_args(PyObject* args, const char* name, long long* n, unsigned long long* x,
                             unsigned long long* y) {
    if (!PyArg_ParseTuple(args, "LKK", n, x, y)) return false;
    if (*n < 0) {
        PyErr_Format(PyExc_ValueError, "%s: n >= 0 expected", name);
        return false;
    }
    return true;
}
}  // namespace creditsim_kernels
#endif
