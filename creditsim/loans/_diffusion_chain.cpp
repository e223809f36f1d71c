// The trajectory model's value sampler, the ancestral DDPM chain of DiffusionHead, fused into one pass per
// tile of rows (CPU). Python side and the maths: creditsim/loans/diffusion_kernel.py. And the chain's input, the
// value noise's normal pairs (creditsim/loans/value_noise.py; at the end of this file).
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

// silu(v) = v / (1 + 2^y), y = -v log2(e) clamped to [-150, 150] (beyond which 1 + 2^y is 1 or inf anyway):
// n = round-half-even(y), f = y - n in [-1/2, 1/2] (exact), 2^f by a degree-5 polynomial (minimax in relative
// error, 3.6 float32 ulps with its Horner roundings), times 2^n as two exact power-of-two scalings, the second
// rounding once where 2^y is subnormal or overflows (what AVX-512's scalef does in one instruction:
// silu_x16 below). Twelve vector operations and a division, against eighteen with exp_f32: the two SiLUs were
// about a third of the chain's time, the 64 x 64 product most of the rest. Accuracy: y carries the
// product's rounding (half an ulp of y: ~7e-7 relative in 2^y at |v| = 20); measured against the exact SiLU,
// 3.7e-7 relative for |v| <= 5, 1.1e-6 for |v| <= 20, 4e-6 up to 87 (below -87 the result is ~1e-37 or 0),
// and within 1.3e-6 absolute where |v| <= 20 -- as torch's own float32 silu; the tests hold it to that.
constexpr float LOG2E = 1.44269504088896341f;
constexpr float P2[6] = {1.0000001192092896f, 0.6931469440460205f, 0.24022120237350464f, 0.05550713092088699f,
                         0.009675540961325169f, 0.001327647129073739f};

CS_INLINE float bits_to_float(int32_t b) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    return x;
}

CS_INLINE float silu(float v) {
    float y = v * -LOG2E;
    y = y < -150.0f ? -150.0f : y;
    y = y > 150.0f ? 150.0f : y;
    const float n = (y + 12582912.0f) - 12582912.0f;  // round half to even (|y| <= 150)
    const float f = y - n;
    float p = P2[5];
    for (int i = 4; i >= 0; --i) p = std::fmaf(p, f, P2[i]);
    // p 2^n = (p 2^(n - b)) 2^b, b = +-64: both factors normal, the first product exact
    const int32_t ni = n == n ? static_cast<int32_t>(n) : 0, b = ni > 0 ? 64 : -64;
    const float e = (p * bits_to_float((ni - b + 127) << 23)) * bits_to_float((b + 127) << 23);
    return v / (1.0f + e);
}

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
// The SiLU is applied to the registers before they are stored (silu's operations lane by lane, so the same
// bits): its divisions then run beside the next units' multiply-adds
// instead of in a pass of their own after all of them, where the divider alone set the pace.
__attribute__((target("avx512f"))) static inline __m512 silu_x16(__m512 v) {
    __m512 y = _mm512_mul_ps(v, _mm512_set1_ps(-LOG2E));
    // silu clamps y to [-150, 150]; here only from below (max keeps a NaN y, as silu's comparison does): above
    // 150, n and f = y - n stay exact and scalef overflows p 2^n to inf, the clamped value's result, so the
    // upper clamp would change no output (v = -inf gives NaN either way) and costs one of the ~15 operations
    y = _mm512_max_ps(_mm512_set1_ps(-150.0f), y);
    const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(y, n);
    __m512 p = _mm512_set1_ps(P2[5]);
    for (int i = 4; i >= 0; --i) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(P2[i]));
    // p 2^n rounded once: silu's two scalings
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(p, n)));
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

#if CS_AVX512_BLOCK
// z (h, TILE) = silu(x_in(y) + cond + step_emb[k]): tile_chain's generic loop with the registers held
// explicitly, lane by lane its operations (so its bits). With the compiler's vectorisation of that loop its
// SiLUs cost ~10 of the chain's ~36 ms for 8,000 rows (measured against the identity), here ~7 with the
// old exp and less with the chain's own SiLU.
__attribute__((target("avx512f"))) static void input_avx512(const Head& m, int k, const float* y0, const float* y1,
                                                        const float* cj, float* z) {
    const __m512 y0l = _mm512_loadu_ps(y0), y0h = _mm512_loadu_ps(y0 + 16);
    const __m512 y1l = _mm512_loadu_ps(y1), y1h = _mm512_loadu_ps(y1 + 16);
    for (int j = 0; j < m.h; ++j) {
        const __m512 w0 = _mm512_set1_ps(m.w_in[2 * j]), w1 = _mm512_set1_ps(m.w_in[2 * j + 1]);
        const __m512 b = _mm512_set1_ps(m.b_in[j]), e = _mm512_set1_ps(m.emb[k * m.h + j]);
        const __m512 lo = _mm512_fmadd_ps(w1, y1l, _mm512_fmadd_ps(w0, y0l, b));
        const __m512 hi = _mm512_fmadd_ps(w1, y1h, _mm512_fmadd_ps(w0, y0h, b));
        _mm512_storeu_ps(z + j * TILE, silu_x16(_mm512_add_ps(_mm512_add_ps(lo, _mm512_loadu_ps(cj + j * TILE)), e)));
        _mm512_storeu_ps(z + j * TILE + 16,
                         silu_x16(_mm512_add_ps(_mm512_add_ps(hi, _mm512_loadu_ps(cj + j * TILE + 16)), e)));
    }
}

// out (TILE) = silu(v (TILE)) in the AVX-512 form (the silu test entry point, run_silu).
__attribute__((target("avx512f"))) static void silu_tile_avx512(const float* v, float* out) {
    _mm512_storeu_ps(out, silu_x16(_mm512_loadu_ps(v)));
    _mm512_storeu_ps(out + 16, silu_x16(_mm512_loadu_ps(v + 16)));
}
#endif

// z (h, TILE) = silu(x_in(y) + cond + step_emb[k]).
CS_INLINE void input_silu(const Head& m, int k, const float* y0, const float* y1, const float* cj, float* z) {
#if CS_AVX512_BLOCK
    if (m.avx512) {
        input_avx512(m, k, y0, y1, cj, z);
        return;
    }
#endif
    for (int j = 0; j < m.h; ++j) {
        const float w0 = m.w_in[2 * j], w1 = m.w_in[2 * j + 1], b = m.b_in[j], e = m.emb[k * m.h + j];
        for (int r = 0; r < TILE; ++r) {
            float v = std::fmaf(w1, y1[r], std::fmaf(w0, y0[r], b));
            v = (v + cj[j * TILE + r]) + e;
            z[j * TILE + r] = silu(v);
        }
    }
}

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
        input_silu(m, k, y0, y1, cj, z);
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

CS_CLONES void run_silu(int64_t n, const float* x, float* y, bool avx512) {
    for (int64_t i0 = 0; i0 < n; i0 += TILE) {
        const int m = static_cast<int>(n - i0 < TILE ? n - i0 : TILE);
        float v[TILE] = {};
        std::memcpy(v, x + i0, sizeof(float) * m);
#if CS_AVX512_BLOCK
        if (avx512) {
            float out[TILE];
            silu_tile_avx512(v, out);
            std::memcpy(y + i0, out, sizeof(float) * m);
            continue;
        }
#endif
        for (int r = 0; r < m; ++r) y[i0 + r] = silu(v[r]);
    }
}

// silu(n, x, y): y = silu(x) elementwise by the chain's own SiLU (the AVX-512 form where the chain runs it),
// float32 CPU buffers of n elements by address; for the tests of its accuracy and bits.
PyObject* silu_values(PyObject*, PyObject* args) {
    long long n;
    unsigned long long x, y;
    if (!creditsim_kernels::elementwise_args(args, "silu", &n, &x, &y)) return nullptr;
    run_silu(n, as_ptr<const float>(x), as_ptr<float>(y), creditsim_kernels::avx512_block());
    Py_RETURN_NONE;
}

// ---- value noise: creditsim.loans.value_noise's normals, the numba kernel's operations one for one ----------------
//
// Every float operation below is that module's (float32 adds, multiplies, divisions and square roots, no
// multiply-add: this file is built with -ffp-contract=off, as numba contracts none without fastmath), and the
// integer conversions are exact (below 2^24), so the bits are the numba kernel's on every instruction set. Here
// the loops over a block of rows vectorise at every level (AVX-512 has a 64-bit multiply; the numba loop ran
// ~3 ns a normal).

constexpr uint64_t GOLDEN = 0x9E3779B97F4A7C15ull;
constexpr int NOISE_ROWS = 256;  // rows per block: their hashes and two component rows stay in L1

CS_INLINE uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// log(u1) of u1 = (a + 1/2) 2^-23, 0 <= a < 2^23 (value_noise._log_unit)
CS_INLINE float log_unit(int32_t a) {
    constexpr float POW[5] = {65536.0f, 256.0f, 16.0f, 4.0f, 2.0f};
    constexpr float INV_POW[5] = {1.0f / 65536.0f, 1.0f / 256.0f, 1.0f / 16.0f, 0.25f, 0.5f};
    constexpr float STEP[5] = {16.0f, 8.0f, 4.0f, 2.0f, 1.0f};
    float m = static_cast<float>(a + a + 1);  // exact: below 2^24
    float e = -24.0f;
    for (int i = 0; i < 5; ++i) {
        const bool big = m >= POW[i];
        m = big ? m * INV_POW[i] : m;
        e = big ? e + STEP[i] : e;
    }
    const bool big = m > 1.4142135623730951f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1.0f : e;
    const float s = (m - 1.0f) / (m + 1.0f);
    const float s2 = s * s;
    float p = 1.0f / 7.0f + s2 * (1.0f / 9.0f);
    p = 1.0f / 5.0f + s2 * p;
    p = 1.0f / 3.0f + s2 * p;
    return e * 0.6931471805599453f + (s + s) * (1.0f + s2 * p);
}

// (cos, sin) of the angle 2 pi b 2^-24, 0 <= b < 2^24 (value_noise._cos_sin_turn)
CS_INLINE void cos_sin_turn(int32_t b, float* cos_out, float* sin_out) {
    const int32_t q = (b + (1 << 21)) >> 22;
    const float x = (static_cast<float>(b) - static_cast<float>(q) * 4194304.0f) *
                    static_cast<float>(2.0 * 3.14159265358979323846 / 16777216.0);
    const float x2 = x * x;
    float c = -1.0f / 720.0f + x2 * (1.0f / 40320.0f);
    c = 1.0f / 24.0f + x2 * c;
    c = -0.5f + x2 * c;
    c = 1.0f + x2 * c;
    float s = -1.0f / 5040.0f + x2 * (1.0f / 362880.0f);
    s = 1.0f / 120.0f + x2 * s;
    s = -1.0f / 6.0f + x2 * s;
    s = x + x * (x2 * s);
    const int32_t k = q & 3;
    const bool odd = (k & 1) != 0;
    float ct = odd ? s : c, st = odd ? c : s;
    ct = (k == 1 || k == 2) ? -ct : ct;
    st = k >= 2 ? -st : st;
    *cos_out = ct;
    *sin_out = st;
}

// out (n_noise, n, 2) float32: the normal pairs of n path-months with keys k0, k1 and counters loan, tag
CS_CLONES void run_normals(int64_t n, int64_t n_noise, const uint64_t* k0, const uint64_t* k1, const uint64_t* loan,
                           const uint64_t* tag, float* out) {
    uint64_t h[NOISE_ROWS];
    int32_t ua[NOISE_ROWS], ub[NOISE_ROWS];
    float z0[NOISE_ROWS], z1[NOISE_ROWS];
    for (int64_t i0 = 0; i0 < n; i0 += NOISE_ROWS) {
        const int m = static_cast<int>(n - i0 < NOISE_ROWS ? n - i0 : NOISE_ROWS);
        for (int i = 0; i < m; ++i)
            h[i] = mix64(mix64(k0[i0 + i] + loan[i0 + i] * GOLDEN) ^ (k1[i0 + i] + tag[i0 + i] * GOLDEN));
        for (int64_t k = 0; k < n_noise; ++k) {
            const uint64_t step = static_cast<uint64_t>(k + 1) * GOLDEN;
            // the hashes in 64-bit lanes, then the float work on their 23- and 24-bit fields in 32-bit lanes
            for (int i = 0; i < m; ++i) {
                const uint64_t x = mix64(h[i] + step);
                ua[i] = static_cast<int32_t>(x >> 41);
                ub[i] = static_cast<int32_t>((x & 0xFFFFFFFFull) >> 8);
            }
            for (int i = 0; i < m; ++i) {
                const float r = std::sqrt(-2.0f * log_unit(ua[i]));
                float c, s;
                cos_sin_turn(ub[i], &c, &s);
                z0[i] = r * c;
                z1[i] = r * s;
            }
            float* o = out + (k * n + i0) * 2;
            for (int i = 0; i < m; ++i) {
                o[2 * i] = z0[i];
                o[2 * i + 1] = z1[i];
            }
        }
    }
}

// normals(n, n_noise, k0, k1, loan, tag, out): run_normals on uint64 (n,) counter arrays and a float32
// (n_noise, n, 2) output, by address (the caller checks them); the GIL is released while it runs.
PyObject* normals(PyObject*, PyObject* args) {
    long long n, n_noise;
    unsigned long long p[5];
    if (!PyArg_ParseTuple(args, "LLKKKKK", &n, &n_noise, &p[0], &p[1], &p[2], &p[3], &p[4])) return nullptr;
    if (n < 0 || n_noise < 0) {
        PyErr_SetString(PyExc_ValueError, "normals: n >= 0 and n_noise >= 0 expected");
        return nullptr;
    }
    auto u = [&p](int i) { return as_ptr<const uint64_t>(p[i]); };
    Py_BEGIN_ALLOW_THREADS
    run_normals(n, n_noise, u(0), u(1), u(2), u(3), as_ptr<float>(p[4]));
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"normals", normals, METH_VARARGS, "The value noise's normal pairs (creditsim.loans.value_noise)."},
    {"ancestral", ancestral, METH_VARARGS, "Fused ancestral DDPM chain of the trajectory value head."},
    {"silu", silu_values, METH_VARARGS, "The chain's SiLU, elementwise."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_diffusion_chain", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__diffusion_chain() { return PyModule_Create(&module); }
