// The trajectory model's value sampler, the ancestral DDPM chain of DiffusionHead, fused into one pass per
// tile of rows (CPU). Python side and the maths: creditsim/loans/diffusion_kernel.py.
//
// Why C++: the head is a 64-wide MLP run 50 times per sampled loan-month. In torch eager every step is
// nine separate passes over (N, 64) tensors (three matrix products, two SiLUs, adds, the posterior
// update), and at these shapes the passes, not the products, take the time. Here a tile of TILE rows
// keeps its activations in registers and L1 for all the steps.
//
// Reproducibility: the rows of a tile are the lanes of the vectors, so no sum ever mixes rows and a row's
// result does not depend on which tile, chunk or thread it lands in. Every product-sum is an explicit
// fmaf in a fixed order and the file is built with -ffp-contract=off, so every instruction set gives the
// same bits (a fused multiply-add is exactly rounded by IEEE 754; the x86-64-v3/v4 clones run it as one
// instruction, the baseline clone calls libm's fmaf).

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../_kernel_math.h"

namespace {

constexpr int TILE = 32;  // rows per tile: two AVX-512 registers of float32 per hidden unit

using creditsim_kernels::as_ptr;
using creditsim_kernels::exp_f32;

CS_INLINE float silu(float v) { return v / (1.0f + exp_f32(-v)); }

struct Head {
    int h, k, d;                                                  // hidden units, steps, conditioning width
    const float *w_cond, *b_cond;                                 // (h,d) (h)
    const float *w_in, *b_in, *emb, *w_h, *b_h, *w_out, *b_out;  // (h,2) (h) (k,h) (h,h) (h) (2,h) (2)
    const float *sd_noise, *sd_signal, *c0, *ck, *sd_post;       // (k) each
    bool avx512;                                                  // hidden_avx512 runs here
};

// cj (h, TILE) = cond(params) of the tile's rows: the head's conditioning, once for all steps.
CS_INLINE void tile_cond(const Head& m, int64_t row0, int nrow, const float* params, float* cj, float* pt) {
    const int h = m.h, d = m.d;
    for (int i = 0; i < d; ++i)
        for (int r = 0; r < TILE; ++r) pt[i * TILE + r] = r < nrow ? params[(row0 + r) * d + i] : 0.0f;
    for (int j = 0; j < h; ++j) {
        float acc[TILE];
        for (int r = 0; r < TILE; ++r) acc[r] = m.b_cond[j];
        for (int i = 0; i < d; ++i)
            for (int r = 0; r < TILE; ++r) acc[r] = std::fmaf(m.w_cond[j * d + i], pt[i * TILE + r], acc[r]);
        for (int r = 0; r < TILE; ++r) cj[j * TILE + r] = acc[r];
    }
}

// act (h, TILE) = silu(hidden(z)) for output units j0 .. h - 1: four units at a time share each load of z
// (what the compiler vectorises well at every level).
CS_INLINE void hidden_generic(const Head& m, const float* z, float* act, int j0) {
    const int h = m.h;
    int j = j0;
    for (; j + 4 <= h; j += 4) {
        float a0[TILE], a1[TILE], a2[TILE], a3[TILE];
        for (int r = 0; r < TILE; ++r) {
            a0[r] = m.b_h[j];
            a1[r] = m.b_h[j + 1];
            a2[r] = m.b_h[j + 2];
            a3[r] = m.b_h[j + 3];
        }
        const float *w0 = m.w_h + j * h, *w1 = w0 + h, *w2 = w1 + h, *w3 = w2 + h;
        for (int i = 0; i < h; ++i) {
            const float* zi = z + i * TILE;
            for (int r = 0; r < TILE; ++r) {
                a0[r] = std::fmaf(w0[i], zi[r], a0[r]);
                a1[r] = std::fmaf(w1[i], zi[r], a1[r]);
                a2[r] = std::fmaf(w2[i], zi[r], a2[r]);
                a3[r] = std::fmaf(w3[i], zi[r], a3[r]);
            }
        }
        for (int r = 0; r < TILE; ++r) {
            act[j * TILE + r] = silu(a0[r]);
            act[(j + 1) * TILE + r] = silu(a1[r]);
            act[(j + 2) * TILE + r] = silu(a2[r]);
            act[(j + 3) * TILE + r] = silu(a3[r]);
        }
    }
    for (; j < h; ++j) {
        float acc[TILE];
        for (int r = 0; r < TILE; ++r) acc[r] = m.b_h[j];
        for (int i = 0; i < h; ++i)
            for (int r = 0; r < TILE; ++r) acc[r] = std::fmaf(m.w_h[j * h + i], z[i * TILE + r], acc[r]);
        for (int r = 0; r < TILE; ++r) act[j * TILE + r] = silu(acc[r]);
    }
}

#if CS_AVX512_BLOCK
// hidden_generic's sums for units 0 .. jend - 1 (jend a multiple of 8) with the registers held explicitly:
// 8 units x 2 registers of 16 rows = 16 accumulators, enough to cover the FMA latency on both ports, and
// per input unit 2 loads of z beside 8 broadcast weights. The compiler's own vectorisation of the
// generic loop keeps 4 accumulators (65 GFLOP/s for the whole chain on a 176 GFLOP/s Xeon, against 87
// here). Each lane runs exactly the generic fmaf sequence (bias, then inputs ascending), so the bits are
// the generic loop's.
//
// The SiLU is applied to the registers before they are stored (exp_f32 and the division lane by lane as the
// same IEEE operations, so the same bits): its divisions then run beside the next units' multiply-adds
// instead of in a pass of their own after all of them, where the divider alone set the pace.
__attribute__((target("avx512f"))) static inline __m512 exp_x16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);  // (max/min keep a NaN x, as exp_f32's comparisons do)
    x = _mm512_min_ps(_mm512_set1_ps(88.3f), x);
    // n = round-half-even(x log2 e): exp_f32's (t + 1.5 2^23) - 1.5 2^23 in one instruction, the same value
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
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
    // p 2^n in one instruction: n lies in [-126, 127] after the clamps, so 2^n is a normal float and p 2^n is
    // exp_f32's p * scale rounded the same way
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) static inline __m512 silu_x16(__m512 v) {
    const __m512 neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_x16(neg)));
}

__attribute__((target("avx512f"))) static void hidden_avx512(const Head& m, const float* z, float* act, int jend) {
    const int h = m.h;
    for (int j = 0; j < jend; j += 8) {
        __m512 lo[8], hi[8];
        for (int u = 0; u < 8; ++u) lo[u] = hi[u] = _mm512_set1_ps(m.b_h[j + u]);
        const float* w = m.w_h + j * h;
        for (int i = 0; i < h; ++i) {
            const __m512 zl = _mm512_loadu_ps(z + i * TILE), zh = _mm512_loadu_ps(z + i * TILE + 16);
            for (int u = 0; u < 8; ++u) {
                const __m512 wu = _mm512_set1_ps(w[u * h + i]);
                lo[u] = _mm512_fmadd_ps(wu, zl, lo[u]);
                hi[u] = _mm512_fmadd_ps(wu, zh, hi[u]);
            }
        }
        for (int u = 0; u < 8; ++u) {
            _mm512_storeu_ps(act + (j + u) * TILE, silu_x16(lo[u]));
            _mm512_storeu_ps(act + (j + u) * TILE + 16, silu_x16(hi[u]));
        }
    }
}
#endif

// act (h, TILE) = silu(hidden(z)).
CS_INLINE void hidden_silu(const Head& m, const float* z, float* act) {
#if CS_AVX512_BLOCK
    if (m.avx512) {
        const int jend = m.h - m.h % 8;
        hidden_avx512(m, z, act, jend);
        hidden_generic(m, z, act, jend);
        return;
    }
#endif
    hidden_generic(m, z, act, 0);
}

// One tile: rows row0 .. row0 + nrow - 1 (nrow <= TILE; the padding lanes compute on zeros, unused).
// params (N, d), noise (k + 1, N, 2), out (N, 2), all row-major float32. z, a, cj: (h, TILE) scratch,
// pt: (d, TILE) scratch.
CS_INLINE void tile_chain(const Head& m, int64_t n_rows, int64_t row0, int nrow, const float* params,
                          const float* noise, float* out, float* z, float* a, float* cj, float* pt) {
    const int h = m.h;
    float y0[TILE] = {}, y1[TILE] = {};
    for (int r = 0; r < nrow; ++r) {
        y0[r] = noise[(row0 + r) * 2];
        y1[r] = noise[(row0 + r) * 2 + 1];
    }
    tile_cond(m, row0, nrow, params, cj, pt);
    for (int k = m.k - 1; k >= 0; --k) {
        // z = silu(x_in(y) + cond + step_emb[k])
        for (int j = 0; j < h; ++j) {
            const float w0 = m.w_in[2 * j], w1 = m.w_in[2 * j + 1], b = m.b_in[j], e = m.emb[k * h + j];
            for (int r = 0; r < TILE; ++r) {
                float v = std::fmaf(w1, y1[r], std::fmaf(w0, y0[r], b));
                v = (v + cj[j * TILE + r]) + e;
                z[j * TILE + r] = silu(v);
            }
        }
        // a = silu(hidden(z))
        hidden_silu(m, z, a);
        // eps = out(a); y0 = clip((y - sqrt(1 - ab) eps) / sqrt(ab)); posterior step
        float e0[TILE], e1[TILE];
        for (int r = 0; r < TILE; ++r) {
            e0[r] = m.b_out[0];
            e1[r] = m.b_out[1];
        }
        for (int i = 0; i < h; ++i)
            for (int r = 0; r < TILE; ++r) {
                e0[r] = std::fmaf(m.w_out[i], a[i * TILE + r], e0[r]);
                e1[r] = std::fmaf(m.w_out[h + i], a[i * TILE + r], e1[r]);
            }
        const float sn = m.sd_noise[k], ss = m.sd_signal[k];
        for (int r = 0; r < TILE; ++r) {
            float q0 = (y0[r] - sn * e0[r]) / ss, q1 = (y1[r] - sn * e1[r]) / ss;
            q0 = q0 < -1.0f ? -1.0f : (q0 > 1.0f ? 1.0f : q0);
            q1 = q1 < -1.0f ? -1.0f : (q1 > 1.0f ? 1.0f : q1);
            e0[r] = q0;
            e1[r] = q1;
        }
        if (k == 0) {
            for (int r = 0; r < TILE; ++r) {
                y0[r] = e0[r];
                y1[r] = e1[r];
            }
            break;
        }
        const float c0 = m.c0[k], ck = m.ck[k], sp = m.sd_post[k];
        const float* nz = noise + (m.k - k) * n_rows * 2;
        for (int r = 0; r < TILE; ++r) {
            const float n0 = r < nrow ? nz[(row0 + r) * 2] : 0.0f, n1 = r < nrow ? nz[(row0 + r) * 2 + 1] : 0.0f;
            y0[r] = (c0 * e0[r] + ck * y0[r]) + sp * n0;
            y1[r] = (c0 * e1[r] + ck * y1[r]) + sp * n1;
        }
    }
    for (int r = 0; r < nrow; ++r) {
        out[(row0 + r) * 2] = (y0[r] + 1.0f) / 2.0f;
        out[(row0 + r) * 2 + 1] = (y1[r] + 1.0f) / 2.0f;
    }
}

CS_CLONES void run_chain(const Head& m, int64_t n_rows, const float* params, const float* noise, float* out) {
    std::vector<float> scratch(static_cast<size_t>(3 * m.h + m.d) * TILE);
    float *z = scratch.data(), *a = z + m.h * TILE, *cj = a + m.h * TILE, *pt = cj + m.h * TILE;
    for (int64_t row0 = 0; row0 < n_rows; row0 += TILE) {
        const int nrow = static_cast<int>(n_rows - row0 < TILE ? n_rows - row0 : TILE);
        tile_chain(m, n_rows, row0, nrow, params, noise, out, z, a, cj, pt);
    }
}


// ancestral(n_rows, d, h, k, params, noise, w_cond, b_cond, w_in, b_in, emb, w_h, b_h, w_out, b_out, coef,
// out): the addresses of contiguous float32 CPU buffers (coef: (5, k) sd_noise, sd_signal, c0, ck,
// sd_post). The caller checks shapes and keeps the buffers alive; the GIL is released while the chain runs.
PyObject* ancestral(PyObject*, PyObject* args) {
    long long n_rows;
    int d, h, k;
    unsigned long long p[13];
    if (!PyArg_ParseTuple(args, "LiiiKKKKKKKKKKKKK", &n_rows, &d, &h, &k, &p[0], &p[1], &p[2], &p[3], &p[4], &p[5],
                          &p[6], &p[7], &p[8], &p[9], &p[10], &p[11], &p[12]))
        return nullptr;
    if (n_rows < 0 || d < 1 || h < 1 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "ancestral: n_rows >= 0, d >= 1, h >= 1 and k >= 1 expected");
        return nullptr;
    }
    auto f = [&p](int i) { return as_ptr<const float>(p[i]); };
    const float* coef = f(11);
    const Head m{h, k, d, f(2), f(3), f(4), f(5), f(6), f(7), f(8), f(9), f(10),
                 coef, coef + k, coef + 2 * k, coef + 3 * k, coef + 4 * k,
                 creditsim_kernels::avx512_block()};
    Py_BEGIN_ALLOW_THREADS
    run_chain(m, n_rows, f(0), f(1), as_ptr<float>(p[12]));
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"ancestral", ancestral, METH_VARARGS, "Fused ancestral DDPM chain of the trajectory value head."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_diffusion_chain", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__diffusion_chain() { return PyModule_Create(&module); }
