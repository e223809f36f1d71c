// The feed-forward half of a transformer block for one decoding step, fused into one pass per row (CPU):
// out = x + c_proj(gelu(c_fc(ln_2(x)))). Python side and the maths: creditsim/nn/mlp_kernel.py.
//
// Reproducibility: a row reads its own data only; every sum runs in a fixed order (the layer norm's over
// 16 fixed lanes combined by a fixed tree, the products input by input with explicit fmaf), and the file
// is built with -ffp-contract=off, so a row's output is the same bits whatever the batch, the live set,
// the thread or the instruction set (x86-64 baseline, v3, v4 clones).

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cmath>
#include <cstdint>

#include "../_kernel_math.h"

namespace {

using creditsim_kernels::as_ptr;
using creditsim_kernels::residual_rows;
using creditsim_kernels::exp_f32;

constexpr int MAX_D = creditsim_kernels::LN_MAX_D;  // model width the row buffers hold (the wrapper checks)
constexpr int MAX_H = 1024;    // hidden width
constexpr int PROJ_ROWS = 4;   // rows c_proj runs together: 4 x (d / 16) accumulators cover the FMA latency

struct Mlp {
    int d, h;                              // model width, hidden width
    float eps;                             // layer norm epsilon
    const float *ln_w, *ln_b;              // (d) (d)
    const float *w_fc, *b_fc;              // (d, h) input-major (c_fc.weight transposed), (h)
    const float *w_proj, *b_proj;          // (h, d) input-major (c_proj.weight transposed), (d)
    bool avx512;                           // hidden_avx512 runs here (AVX-512F, h a multiple of 128)
};

// erfc(z) for z >= 0 to a relative error below 1.2e-7: t = 1 / (1 + z / 2), erfc = t exp(-z^2 + P(t)) with
// the degree-9 Chebyshev fit of Press et al., Numerical Recipes (2nd ed., section 6.2, erfcc).
CS_INLINE float erfc_nonneg(float z) {
    const float t = 1.0f / std::fmaf(0.5f, z, 1.0f);
    float p = 0.17087277f;
    p = std::fmaf(p, t, -0.82215223f);
    p = std::fmaf(p, t, 1.48851587f);
    p = std::fmaf(p, t, -1.13520398f);
    p = std::fmaf(p, t, 0.27886807f);
    p = std::fmaf(p, t, -0.18628806f);
    p = std::fmaf(p, t, 0.09678418f);
    p = std::fmaf(p, t, 0.37409196f);
    p = std::fmaf(p, t, 1.00002368f);
    p = std::fmaf(p, t, -1.26551223f);
    return t * exp_f32(std::fmaf(-z, z, p));
}

// GELU, the exact (erf) form: x (1 + erf(x / sqrt 2)) / 2, with 1 + erf(-z) = erfc(z) and 1 + erf(z) = 2 - erfc(z)
// (no cancellation on either side). erfc(z) is taken as 0 beyond z = 9 (below 4.2e-37): GELU is then -0 for
// x < -12.7, as in float32 torch, rather than a denormal (a slow operand for the products that follow).
CS_INLINE float gelu(float x) {
    const float z = std::fabs(x) * 0.70710678118654752f;
    const float c = z > 9.0f ? 0.0f : erfc_nonneg(z);
    return 0.5f * x * (x >= 0.0f ? 2.0f - c : c);
}

#if CS_AVX512_BLOCK
// gelu on 16 lanes: erfc_nonneg's and gelu's operations lane by lane (the selects as blends; a NaN takes the
// same branch as in the scalar comparisons), so each lane is gelu's bits.
__attribute__((target("avx512f"))) static inline __m512 gelu_x16(__m512 x) {
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, one));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    // fmaf(-z, z, p), -z by the sign bit (as the scalar negation: -0 for z = 0)
    const __m512 neg_z = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(z), _mm512_set1_epi32(INT32_MIN)));
    const __m512 e = creditsim_kernels::exp_f32_x16(_mm512_fmadd_ps(neg_z, z, p));
    __m512 c = _mm512_mul_ps(t, e);
    c = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_set1_ps(9.0f), _CMP_GT_OQ), c, _mm512_setzero_ps());
    const __m512 side = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), c,
                                             _mm512_sub_ps(_mm512_set1_ps(2.0f), c));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), side);
}

__attribute__((target("avx512f"))) static void gelu16(const float* x, float* y) {
    _mm512_storeu_ps(y, gelu_x16(_mm512_loadu_ps(x)));
}

// g (h) = gelu(c_fc(a)) of one row for h a multiple of 128: 8 registers of 16 units at a time, the GELU applied
// to the registers before they are stored (its division and exp beside the next units' multiply-adds). Each
// lane runs hidden's fmaf sequence (bias, then the inputs ascending), then gelu's operations: hidden's bits.
__attribute__((target("avx512f"))) static void hidden_avx512(const Mlp& m, const float* a, float* g) {
    for (int j0 = 0; j0 < m.h; j0 += 128) {
        __m512 acc[8];
        for (int b = 0; b < 8; ++b) acc[b] = _mm512_loadu_ps(m.b_fc + j0 + 16 * b);
        for (int i = 0; i < m.d; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            const float* w = m.w_fc + static_cast<int64_t>(i) * m.h + j0;
            for (int b = 0; b < 8; ++b) acc[b] = _mm512_fmadd_ps(ai, _mm512_loadu_ps(w + 16 * b), acc[b]);
        }
        for (int b = 0; b < 8; ++b) _mm512_storeu_ps(g + j0 + 16 * b, gelu_x16(acc[b]));
    }
}
#endif

// g (h) = gelu(c_fc(a)) of one row: each unit's bias, then the inputs ascending.
template <int D, int H>
CS_INLINE void hidden(const Mlp& m, const float* a, float* g) {
    const int d = D ? D : m.d, h = H ? H : m.h;
#if CS_AVX512_BLOCK
    if (m.avx512) {
        hidden_avx512(m, a, g);
        return;
    }
#endif
    creditsim_kernels::affine_row<D, H>(d, h, m.w_fc, m.b_fc, a, g);
    for (int j = 0; j < h; ++j) g[j] = gelu(g[j]);
}

template <int D, int H>
CS_INLINE void run_rows(const Mlp& m, int64_t n, const int64_t* live, const float* x, float* out) {
    const int d = D ? D : m.d;
    float g[PROJ_ROWS][MAX_H];
    float a[MAX_D];
    int64_t k = 0;
    for (; k < n; k += PROJ_ROWS) {
        const int rows = n - k < PROJ_ROWS ? static_cast<int>(n - k) : PROJ_ROWS;
        const float* xr[PROJ_ROWS];
        float* outr[PROJ_ROWS];
        float* gr[PROJ_ROWS];
        for (int r = 0; r < rows; ++r) {
            const int64_t row = live ? live[k + r] : k + r;
            xr[r] = x + row * d;
            outr[r] = out + row * d;
            gr[r] = g[r];
            creditsim_kernels::layer_norm_row<D>(m.d, xr[r], m.ln_w, m.ln_b, m.eps, a);
            hidden<D, H>(m, a, g[r]);
        }
        if (rows == PROJ_ROWS) {
            residual_rows<H, D, PROJ_ROWS>(m.h, m.d, m.w_proj, m.b_proj, gr, xr, outr);
        } else {
            for (int r = 0; r < rows; ++r)
                residual_rows<H, D, 1>(m.h, m.d, m.w_proj, m.b_proj, gr + r, xr + r, outr + r);
        }
    }
}

CS_CLONES void run(const Mlp& m, int64_t n, const int64_t* live, const float* x, float* out) {
    if (m.d == 32 && m.h == 128) {
        run_rows<32, 128>(m, n, live, x, out);  // the shipped model's sizes, unrolled
    } else {
        run_rows<0, 0>(m, n, live, x, out);
    }
}

// step(n, live, d, h, eps, x, ln_w, ln_b, w_fc, b_fc, w_proj, b_proj, out): the addresses of contiguous float32
// CPU buffers (live: n int64 row indices, or 0 for rows 0 .. n - 1). The caller checks shapes and keeps the
// buffers alive; the GIL is released while the rows run.
PyObject* step(PyObject*, PyObject* args) {
    long long n;
    unsigned long long live;
    int d, h;
    float eps;
    unsigned long long p[8];
    if (!PyArg_ParseTuple(args, "LKiifKKKKKKKK", &n, &live, &d, &h, &eps, &p[0], &p[1], &p[2], &p[3], &p[4], &p[5],
                          &p[6], &p[7]))
        return nullptr;
    if (n < 0 || d < 1 || d > MAX_D || h < 1 || h > MAX_H) {
        PyErr_SetString(PyExc_ValueError, "mlp step: n >= 0, 1 <= d <= 256 and 1 <= h <= 1024 expected");
        return nullptr;
    }
    auto f = [&p](int i) { return as_ptr<const float>(p[i]); };
    const Mlp m{d, h, eps, f(1), f(2), f(3), f(4), f(5), f(6), creditsim_kernels::avx512_block() && h % 128 == 0};
    Py_BEGIN_ALLOW_THREADS
    run(m, n, live ? as_ptr<const int64_t>(live) : nullptr, f(0), as_ptr<float>(p[7]));
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

// y (n) = gelu(x (n)) as the kernel computes its hidden units: 16 at a time in the AVX-512 form where it runs
// (the rest one by one), float32 contiguous addresses (the tests' entry point: the products that follow in
// step can hide a GELU's last bits).
CS_CLONES void run_gelu(int64_t n, const float* x, float* y) {
    int64_t i = 0;
#if CS_AVX512_BLOCK
    if (creditsim_kernels::avx512_block())
        for (; i + 16 <= n; i += 16) gelu16(x + i, y + i);
#endif
    for (; i < n; ++i) y[i] = gelu(x[i]);
}

PyObject* gelu_entry(PyObject*, PyObject* args) {
    long long n;
    unsigned long long x, y;
    if (!creditsim_kernels::elementwise_args(args, "gelu", &n, &x, &y)) return nullptr;
    Py_BEGIN_ALLOW_THREADS
    run_gelu(n, as_ptr<const float>(x), as_ptr<float>(y));
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"step", step, METH_VARARGS, "Fused feed-forward half of a transformer block, one decoding step."},
    {"gelu", gelu_entry, METH_VARARGS, "The kernel's GELU on a float32 buffer (tests)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mlp_step", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__mlp_step() { return PyModule_Create(&module); }
