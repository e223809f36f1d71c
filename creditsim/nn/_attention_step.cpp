// One autoregressive step of causal self-attention over a key/value buffer, fused (CPU). Python side and
// the maths: creditsim/nn/attention_kernel.py.
//
// For each live row b: write the step's key and value (from the c_attn output) at month t of the row's
// buffers, then attend with the step's query over months 0..t of that row, head by head. One pass
// replaces split / transpose / append / scaled-dot-product attention / scatter / transpose, and rows
// that are no longer live are skipped where they lie, so the buffer never has to be compacted.
//
// Reproducibility: a row's output reads that row's data only, every sum runs in a fixed order (a head's
// dimensions by head_sum's tree; months ascending, the softmax denominator in 16 fixed partial sums) as plain
// adds or explicit fmaf, and the file is built with -ffp-contract=off: the result does not depend on the
// batch, the live set, the thread or the instruction set the library picks at load (av_avx512_hs8 runs the
// generic loop's fmaf sequence lane by lane; attend_group_hs8 runs attend_row's sequence in each lane, one
// row a lane).

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../_kernel_math.h"

namespace {

using creditsim_kernels::as_ptr;
using creditsim_kernels::residual_rows;
using creditsim_kernels::exp_f32;
using creditsim_kernels::exp_f32_x16;

struct Step {
    int64_t max_len;
    int nh, hs, t;
    float scale;
    bool avx512;  // av_avx512_hs8 runs here (hs == 8, nh even, the CPU has AVX-512F)
};

constexpr int LANES = 16;  // partial sums of the softmax denominator: a fixed tree, the same for every row
constexpr int GROUP = 16;  // rows of one step attended together, one per vector lane (attend_group_hs8)

#if CS_AVX512_BLOCK
// y (C) = sum over months l ascending of w_hl v_l, for heads of hs = 8 (nh even): two heads' weights per
// register, each head pair's accumulator held in a register (two pairs at a time, so two FMA chains
// overlap). Every lane runs the generic loop's fmaf sequence from 0, so the bits are the generic loop's.
// In the generic loop the accumulator is the output row, which the compiler must assume may alias the
// values, so each month's multiply-add went through memory (about 3x slower on a 2-core Xeon).
// The weight of head h, month l is s[h * stride + l * LSTRIDE] (LSTRIDE 1: a row's own scores; GROUP: one
// lane of a group's, attend_group_hs8).
template <int LSTRIDE>
__attribute__((target("avx512f"))) static void av_avx512_hs8(int L, int nh, int64_t stride, int C, const float* s,
                                                         const float* values, float* y) {
    int p = 0;
    for (; p + 2 <= nh / 2; p += 2) {
        const float *s0 = s + 2 * p * stride, *s1 = s0 + stride, *s2 = s1 + stride, *s3 = s2 + stride;
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        for (int l = 0; l < L; ++l) {
            const float* v = values + static_cast<int64_t>(l) * C + 16 * p;
            const int64_t w = static_cast<int64_t>(l) * LSTRIDE;
            a = _mm512_fmadd_ps(_mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0[w]), _mm512_set1_ps(s1[w])),
                                _mm512_loadu_ps(v), a);
            b = _mm512_fmadd_ps(_mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s2[w]), _mm512_set1_ps(s3[w])),
                                _mm512_loadu_ps(v + 16), b);
        }
        _mm512_storeu_ps(y + 16 * p, a);
        _mm512_storeu_ps(y + 16 * p + 16, b);
    }
    for (; p < nh / 2; ++p) {
        const float *s0 = s + 2 * p * stride, *s1 = s0 + stride;
        __m512 a = _mm512_setzero_ps();
        for (int l = 0; l < L; ++l) {
            const int64_t w = static_cast<int64_t>(l) * LSTRIDE;
            a = _mm512_fmadd_ps(_mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0[w]), _mm512_set1_ps(s1[w])),
                                _mm512_loadu_ps(values + static_cast<int64_t>(l) * C + 16 * p), a);
        }
        _mm512_storeu_ps(y + 16 * p, a);
    }
}

// Adjacent lanes summed, a's pairs in lanes 0-7 and b's in lanes 8-15 (even, odd: the lane indices 0, 2, .. 30
// and 1, 3, .. 31 of the pair a, b).
__attribute__((target("avx512f"))) static inline __m512 pair_sums(__m512 a, __m512 b, __m512i even, __m512i odd) {
    return _mm512_add_ps(_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b));
}

// GROUP live rows of one step (every row has the same L = t + 1 months), rows as vector lanes, for heads of
// hs = 8 (nh even). attend_row's per-row work, each lane running the per-row sequence of operations: a month's
// products q_f k_f row by row, each head's sum over its 8 features by head_sum's pairwise tree (three levels
// of permutes and adds over the 16 rows' vectors, ending with each head's sums in row order in one register),
// times scale; the softmax's 16 month-partial maxima and sums and their fixed-order reductions across the
// rows at once (a padded month's -inf score and 0 weight change neither, so they are not computed); then the
// weighted values row by row. The bits are attend_row's; the per-row fixed work (the four heads' softmax
// reductions) and the scalar head sums are what this saves (measured in _attention_step's Python module).
// q[i], k[i], v[i], y[i]: row i's query (C), key and value buffers (max_len, C) and output (C).
// S: (nh, L, GROUP) scratch (scores, then weights); den: (nh, GROUP) scratch.
__attribute__((target("avx512f"))) static void attend_group_hs8(const Step& st, const float* const* q,
                                                            float* const* k, float* const* v, float* const* y,
                                                            float* S, float* den, const float* const* next_k,
                                                            const float* const* next_v, int n_next) {
    const int nh = st.nh, C = nh * 8, L = st.t + 1;
    const __m512 scale = _mm512_set1_ps(st.scale);
    for (int i = 0; i < GROUP; ++i) {
        std::memcpy(k[i] + static_cast<int64_t>(st.t) * C, q[i] + C, sizeof(float) * C);
        std::memcpy(v[i] + static_cast<int64_t>(st.t) * C, q[i] + 2 * C, sizeof(float) * C);
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
                  odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int l = 0; l < L; ++l) {
        for (int j = 0; j < n_next; ++j)  // the next group's month l, fetched while this group computes
            for (int off = 0; off < C; off += 16) {
                _mm_prefetch(reinterpret_cast<const char*>(next_k[j] + static_cast<int64_t>(l) * C + off), _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(next_v[j] + static_cast<int64_t>(l) * C + off), _MM_HINT_T0);
            }
        for (int p = 0; p < nh / 2; ++p) {  // heads 2p, 2p + 1: features 16p .. 16p + 15
            __m512 r[GROUP];
            for (int i = 0; i < GROUP; ++i)
                r[i] = _mm512_mul_ps(_mm512_loadu_ps(q[i] + 16 * p),
                                     _mm512_loadu_ps(k[i] + static_cast<int64_t>(l) * C + 16 * p));
            // head_sum's tree, three levels of pairs: rows 2i, 2i + 1 -> 4 sums per head each; rows 4i .. 4i + 3
            // -> 2; rows 8i .. 8i + 7 -> 1 (lane 2 row + head); then each head's 16 rows gathered in row order
            for (int i = 0; i < 8; ++i) r[i] = pair_sums(r[2 * i], r[2 * i + 1], even, odd);
            for (int i = 0; i < 4; ++i) r[i] = pair_sums(r[2 * i], r[2 * i + 1], even, odd);
            for (int i = 0; i < 2; ++i) r[i] = pair_sums(r[2 * i], r[2 * i + 1], even, odd);
            const __m512 a = _mm512_permutex2var_ps(r[0], even, r[1]), b = _mm512_permutex2var_ps(r[0], odd, r[1]);
            _mm512_storeu_ps(S + (static_cast<int64_t>(2 * p) * L + l) * GROUP, _mm512_mul_ps(a, scale));
            _mm512_storeu_ps(S + (static_cast<int64_t>(2 * p + 1) * L + l) * GROUP, _mm512_mul_ps(b, scale));
        }
    }
    for (int h = 0; h < nh; ++h) {
        float* sh = S + static_cast<int64_t>(h) * L * GROUP;
        __m512 pm[LANES];
        for (int i = 0; i < LANES; ++i) pm[i] = _mm512_set1_ps(-INFINITY);
        for (int l = 0; l < L; ++l) {  // pm[i] = s > pm[i] ? s : pm[i]
            const __m512 s = _mm512_loadu_ps(sh + static_cast<int64_t>(l) * GROUP);
            pm[l % LANES] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, pm[l % LANES], _CMP_GT_OQ), pm[l % LANES], s);
        }
        __m512 top = pm[0];
        for (int i = 1; i < LANES; ++i)
            top = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(pm[i], top, _CMP_GT_OQ), top, pm[i]);
        __m512 part[LANES];
        for (int i = 0; i < LANES; ++i) part[i] = _mm512_setzero_ps();
        for (int l = 0; l < L; ++l) {
            float* at = sh + static_cast<int64_t>(l) * GROUP;
            const __m512 e = exp_f32_x16(_mm512_sub_ps(_mm512_loadu_ps(at), top));
            _mm512_storeu_ps(at, e);
            part[l % LANES] = _mm512_add_ps(part[l % LANES], e);
        }
        __m512 sum = _mm512_setzero_ps();
        for (int i = 0; i < LANES; ++i) sum = _mm512_add_ps(sum, part[i]);
        _mm512_storeu_ps(den + h * GROUP, sum);
    }
    for (int i = 0; i < GROUP; ++i) {
        av_avx512_hs8<GROUP>(L, nh, static_cast<int64_t>(L) * GROUP, C, S + i, v[i], y[i]);
        for (int p = 0; p < nh / 2; ++p) {
            const __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(den[2 * p * GROUP + i]),
                                                  _mm512_set1_ps(den[(2 * p + 1) * GROUP + i]));
            _mm512_storeu_ps(y[i] + 16 * p, _mm512_div_ps(_mm512_loadu_ps(y[i] + 16 * p), d));
        }
    }
}
#endif

// A head's dot product from its hs products: for hs = 8 the pairwise tree ((p0 + p1) + (p2 + p3)) + ((p4 + p5) +
// (p6 + p7)) -- the order attend_group_hs8 computes for 16 rows at once with permutes instead of a transpose --
// else in ascending order.
CS_INLINE float head_sum(const float* p, int hs) {
    if (hs == 8) return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    float dot = p[0];
    for (int d = 1; d < hs; ++d) dot += p[d];
    return dot;
}

// Row b: qkv row (3C), its key and value buffers (max_len, C) each (month-major: the months a step reads
// are one contiguous run), out row (C). s: (nh, max_len rounded up to LANES) scratch, prod: (C) scratch,
// dens: (nh) scratch. NH, HS: the head layout when known at compile time (0: read from st) -- the same
// arithmetic, but with the sizes fixed the compiler unrolls the head sums (the shipped model's 4 x 8 runs
// its scores 1.4x faster that way).
template <int NH, int HS>
CS_INLINE void attend_row(const Step& st, const float* qkv, float* keys, float* values, float* out, float* s,
                          float* prod, float* dens) {
    const int nh = NH ? NH : st.nh, hs = HS ? HS : st.hs, C = nh * hs, L = st.t + 1;
    const int64_t stride = (st.max_len + LANES - 1) / LANES * LANES;
    std::memcpy(keys + static_cast<int64_t>(st.t) * C, qkv + C, sizeof(float) * C);
    std::memcpy(values + static_cast<int64_t>(st.t) * C, qkv + 2 * C, sizeof(float) * C);
    // scores: the month's C products in one vector pass, then each head's hs of them summed in order
    for (int l = 0; l < L; ++l) {
        const float* k = keys + static_cast<int64_t>(l) * C;
        for (int f = 0; f < C; ++f) prod[f] = qkv[f] * k[f];
        for (int h = 0; h < nh; ++h) s[h * stride + l] = head_sum(prod + h * hs, hs) * st.scale;
    }
    for (int h = 0; h < nh; ++h) {
        float* sh = s + h * stride;
        // softmax over the months in blocks of LANES (the tail padded with -inf scores and 0 weights): lane
        // i keeps the max and the partial sum of months i, i + LANES, ...; then a fixed order over the lanes
        const int Lp = (L + LANES - 1) / LANES * LANES;
        for (int l = L; l < Lp; ++l) sh[l] = -INFINITY;
        float pm[LANES];
        for (int i = 0; i < LANES; ++i) pm[i] = -INFINITY;
        for (int l0 = 0; l0 < Lp; l0 += LANES)
            for (int i = 0; i < LANES; ++i) pm[i] = sh[l0 + i] > pm[i] ? sh[l0 + i] : pm[i];
        float top = pm[0];
        for (int i = 1; i < LANES; ++i) top = pm[i] > top ? pm[i] : top;
        float part[LANES] = {};
        for (int l0 = 0; l0 < Lp; l0 += LANES)
            for (int i = 0; i < LANES; ++i) {
                const float e = l0 + i < L ? exp_f32(sh[l0 + i] - top) : 0.0f;
                sh[l0 + i] = e;
                part[i] += e;
            }
        float den = 0.0f;
        for (int i = 0; i < LANES; ++i) den += part[i];
        dens[h] = den;
    }
    // each head's output: weights times values, months ascending, then / den
#if CS_AVX512_BLOCK
    if (st.avx512) {
        av_avx512_hs8<1>(L, nh, stride, C, s, values, out);
        for (int f = 0; f < C; ++f) out[f] = out[f] / dens[f / hs];
        return;
    }
#endif
    for (int f = 0; f < C; ++f) out[f] = 0.0f;  // the generic loop accumulates in the output row
    for (int h = 0; h < nh; ++h) {
        const float* sh = s + h * stride;
        float* y = out + h * hs;
        for (int l = 0; l < L; ++l) {
            const float* v = values + static_cast<int64_t>(l) * C + h * hs;
            const float wl = sh[l];
            for (int d = 0; d < hs; ++d) y[d] = std::fmaf(wl, v[d], y[d]);
        }
        for (int d = 0; d < hs; ++d) y[d] = y[d] / dens[h];
    }
}

// The block's attention half around the step (block_step): out = x + c_proj(attention(c_attn(ln_1(x)))) of a
// row, the products each output's bias then the inputs ascending (explicit fmaf), as the feed-forward kernel.
struct Half {
    float eps;
    const float *ln_w, *ln_b;  // (C) (C)
    const float *w_qkv, *b_qkv;  // (C, 3C) input-major (c_attn.weight transposed), (3C)
    const float *w_o, *b_o;      // (C, C) input-major (c_proj.weight transposed), (C)
};

// qkv (3C) = c_attn(ln_1(x)) of one row; a: (C) scratch. CW: C when known at compile time (0: C).
template <int CW>
CS_INLINE void qkv_row(const Half& hf, int C_, const float* x, float* a, float* qkv) {
    const int C = CW ? CW : C_;
    creditsim_kernels::layer_norm_row<CW>(C, x, hf.ln_w, hf.ln_b, hf.eps, a);
    creditsim_kernels::affine_row<CW, 3 * CW>(C, 3 * C, hf.w_qkv, hf.b_qkv, a, qkv);
}

constexpr int OUT_ROWS = 4;  // rows whose c_proj runs together: 4 x (C / 16) accumulators cover the FMA latency

#if CS_AVX512_BLOCK
// qkv_row's and out_rows' products for C = 32 with the accumulators in registers, two rows' qkv (12 registers)
// and four rows' out (8) at a time, so each weight load serves several rows. Each lane runs the generic loops'
// fmaf sequence (bias, then the inputs ascending), so the bits are theirs.
__attribute__((target("avx512f"))) static void qkv2_avx512_c32(const Half& hf, const float* a0, const float* a1,
                                                            float* q0, float* q1) {
    __m512 r0[6], r1[6];
    for (int b = 0; b < 6; ++b) r0[b] = r1[b] = _mm512_loadu_ps(hf.b_qkv + 16 * b);
    for (int i = 0; i < 32; ++i) {
        const __m512 x0 = _mm512_set1_ps(a0[i]), x1 = _mm512_set1_ps(a1[i]);
        const float* w = hf.w_qkv + i * 96;
        for (int b = 0; b < 6; ++b) {
            const __m512 wb = _mm512_loadu_ps(w + 16 * b);
            r0[b] = _mm512_fmadd_ps(x0, wb, r0[b]);
            r1[b] = _mm512_fmadd_ps(x1, wb, r1[b]);
        }
    }
    for (int b = 0; b < 6; ++b) {
        _mm512_storeu_ps(q0 + 16 * b, r0[b]);
        _mm512_storeu_ps(q1 + 16 * b, r1[b]);
    }
}

__attribute__((target("avx512f"))) static void out4_avx512_c32(const Half& hf, const float* const* x,
                                                            const float* const* y, float* const* out) {
    __m512 lo[OUT_ROWS], hi[OUT_ROWS];
    for (int r = 0; r < OUT_ROWS; ++r) {
        lo[r] = _mm512_loadu_ps(hf.b_o);
        hi[r] = _mm512_loadu_ps(hf.b_o + 16);
    }
    for (int i = 0; i < 32; ++i) {
        const __m512 w0 = _mm512_loadu_ps(hf.w_o + i * 32), w1 = _mm512_loadu_ps(hf.w_o + i * 32 + 16);
        for (int r = 0; r < OUT_ROWS; ++r) {
            const __m512 yi = _mm512_set1_ps(y[r][i]);
            lo[r] = _mm512_fmadd_ps(yi, w0, lo[r]);
            hi[r] = _mm512_fmadd_ps(yi, w1, hi[r]);
        }
    }
    for (int r = 0; r < OUT_ROWS; ++r) {
        _mm512_storeu_ps(out[r], _mm512_add_ps(_mm512_loadu_ps(x[r]), lo[r]));
        _mm512_storeu_ps(out[r] + 16, _mm512_add_ps(_mm512_loadu_ps(x[r] + 16), hi[r]));
    }
}
#endif

// The rows of a group: qkv of each from its x row, or the x rows' out after the attention (R rows at a time).
// (avx: the registers blocks above run, for C = 32 only; a: (2C) scratch)
template <int CW>
CS_INLINE void rows_qkv(const Half& hf, int C, int n, const float* const* x, float* a, float* qkv, bool avx) {
    int j = 0;
#if CS_AVX512_BLOCK
    if (CW == 32 && avx)
        for (; j + 2 <= n; j += 2) {
            creditsim_kernels::layer_norm_row<32>(32, x[j], hf.ln_w, hf.ln_b, hf.eps, a);
            creditsim_kernels::layer_norm_row<32>(32, x[j + 1], hf.ln_w, hf.ln_b, hf.eps, a + 32);
            qkv2_avx512_c32(hf, a, a + 32, qkv + j * 96, qkv + (j + 1) * 96);
        }
#endif
    for (; j < n; ++j) qkv_row<CW>(hf, C, x[j], a, qkv + static_cast<int64_t>(j) * 3 * C);
}

template <int CW>
CS_INLINE void rows_out(const Half& hf, int C, int n, const float* const* x, const float* const* y,
                        float* const* out, bool avx) {
    int j = 0;
#if CS_AVX512_BLOCK
    if (CW == 32 && avx)
        for (; j + OUT_ROWS <= n; j += OUT_ROWS) out4_avx512_c32(hf, x + j, y + j, out + j);
#endif
    for (; j + OUT_ROWS <= n; j += OUT_ROWS)
        residual_rows<CW, CW, OUT_ROWS>(C, C, hf.w_o, hf.b_o, y + j, x + j, out + j);
    for (; j < n; ++j) residual_rows<CW, CW, 1>(C, C, hf.w_o, hf.b_o, y + j, x + j, out + j);
}

// rows_qkv / rows_out with the shipped model's width C = 32 compiled for its size (the products unrolled).
CS_INLINE void group_qkv(const Half& hf, int C, int n, const float* const* x, float* a, float* qkv, bool avx) {
    if (C == 32)
        rows_qkv<32>(hf, C, n, x, a, qkv, avx);
    else
        rows_qkv<0>(hf, C, n, x, a, qkv, avx);
}

CS_INLINE void group_out(const Half& hf, int C, int n, const float* const* x, const float* const* y,
                         float* const* out, bool avx) {
    if (C == 32)
        rows_out<32>(hf, C, n, x, y, out, avx);
    else
        rows_out<0>(hf, C, n, x, y, out, avx);
}

// With half (block_step): qkv holds the block's input rows x (C wide) instead, and out gets x + c_proj(attention).
CS_CLONES void run_step(const Step& st, int64_t n_live, const int64_t* live, bool compact, const float* qkv,
                        float* keys, float* values, float* out, const Half* half) {
    const int C = st.nh * st.hs;
    const int64_t padded = (st.max_len + LANES - 1) / LANES * LANES;  // a row of s: months padded to LANES
    // s, prod, dens; with half also two rows' normalised inputs (2C), a group's qkv (GROUP x 3C) and attention
    // (GROUP x C)
    std::vector<float> scratch(static_cast<size_t>(padded * st.nh + C + st.nh + (half ? 2 * C + 4 * GROUP * C : 0)));
    float *s = scratch.data(), *prod = s + padded * st.nh, *dens = prod + C, *a = dens + st.nh, *hq = a + 2 * C,
          *hy = hq + 3 * GROUP * C;
    const int in_w = half ? C : 3 * C;  // the width of a row of qkv (x with half)
    const int64_t bytes = (st.t + 1) * C * static_cast<int64_t>(sizeof(float));  // a row's filled months
    int64_t i = 0;
#if CS_AVX512_BLOCK
    if (st.avx512 && n_live >= GROUP) {  // whole groups of live rows together; the rest row by row below
        std::vector<float> group_scratch(static_cast<size_t>(st.nh) * (st.t + 1) * GROUP + st.nh * GROUP);
        float *S = group_scratch.data(), *den = S + static_cast<int64_t>(st.nh) * (st.t + 1) * GROUP;
        const float* q[GROUP];
        float *k[GROUP], *v[GROUP], *y[GROUP];
        const float *next_k[GROUP], *next_v[GROUP];
        for (; i + GROUP <= n_live; i += GROUP) {
            const float* xr[GROUP];
            float* outr[GROUP];
            for (int j = 0; j < GROUP; ++j) {
                const int64_t b = live ? live[i + j] : i + j, r = compact ? i + j : b;
                k[j] = keys + b * st.max_len * C;
                v[j] = values + b * st.max_len * C;
                q[j] = half ? hq + j * 3 * C : qkv + r * 3 * C;
                y[j] = half ? hy + j * C : out + r * C;
                xr[j] = qkv + r * in_w;
                outr[j] = out + r * C;
            }
            if (half) group_qkv(*half, C, GROUP, xr, a, hq, st.avx512);
            int n_next = 0;  // the next group's rows (or the rows after it), prefetched month by month
            for (int64_t j = i + GROUP; j < i + 2 * GROUP && j < n_live; ++j, ++n_next) {
                const int64_t nb = live ? live[j] : j;
                next_k[n_next] = keys + nb * st.max_len * C;
                next_v[n_next] = values + nb * st.max_len * C;
            }
            attend_group_hs8(st, q, k, v, y, S, den, next_k, next_v, n_next);
            if (half) group_out(*half, C, GROUP, xr, y, outr, st.avx512);
        }
    }
#endif
    for (; i < n_live; ++i) {
        const int64_t b = live ? live[i] : i;
        float *keys_b = keys + b * st.max_len * C, *values_b = values + b * st.max_len * C;
        if (i + 1 < n_live) {  // the next live row's months, fetched while this row computes (the buffers are
            // far larger than the caches, and a row's run is too short for the hardware prefetcher to ramp up)
            const int64_t nb = live ? live[i + 1] : i + 1;
            const char *nk = reinterpret_cast<const char*>(keys + nb * st.max_len * C),
                       *nv = reinterpret_cast<const char*>(values + nb * st.max_len * C);
            for (int64_t off = 0; off < bytes; off += 64) {
                __builtin_prefetch(nk + off);
                __builtin_prefetch(nv + off);
            }
        }
        const int64_t r = compact ? i : b;  // the row's qkv and output: its place among the live rows, or its own
        const float* xr = qkv + r * in_w;
        float* outr = out + r * C;
        if (half) group_qkv(*half, C, 1, &xr, a, hq, st.avx512);
        const float* q = half ? hq : xr;
        float* y = half ? hy : outr;
        if (st.nh == 4 && st.hs == 8)  // the shipped trajectory model's heads
            attend_row<4, 8>(st, q, keys_b, values_b, y, s, prod, dens);
        else
            attend_row<0, 0>(st, q, keys_b, values_b, y, s, prod, dens);
        if (half) {
            const float* yc = y;
            group_out(*half, C, 1, &xr, &yc, &outr, st.avx512);
        }
    }
}

// step(n_live, live, compact, nh, hs, t, max_len, scale, qkv, keys, values, out): addresses of contiguous CPU
// buffers, live int64 (n_live,) row indices (0: rows 0 .. n_live - 1), keys and values (B, max_len, C);
// qkv float32 (B, 3C) and out (B, C), written on the live rows only, or with compact != 0 at least n_live
// rows each, row i < n_live for buffer row live[i] (the rest padding, never read or written). The caller
// checks shapes and bounds and keeps the buffers alive; the GIL is released while the step runs.
PyObject* step(PyObject*, PyObject* args) {
    long long n_live, max_len;
    int compact, nh, hs, t;
    float scale;
    unsigned long long p[5];
    if (!PyArg_ParseTuple(args, "LKpiiiLfKKKK", &n_live, &p[0], &compact, &nh, &hs, &t, &max_len, &scale, &p[1], &p[2],
                          &p[3], &p[4]))
        return nullptr;
    if (n_live < 0 || nh < 1 || hs < 1 || t < 0 || t >= max_len) {
        PyErr_SetString(PyExc_ValueError, "step: n_live >= 0, nh, hs >= 1 and 0 <= t < max_len expected");
        return nullptr;
    }
    const Step st{max_len, nh, hs, t, scale, creditsim_kernels::avx512_block() && hs == 8 && nh % 2 == 0};
    const int64_t* live = p[0] ? as_ptr<const int64_t>(p[0]) : nullptr;
    Py_BEGIN_ALLOW_THREADS
    run_step(st, n_live, live, compact != 0, as_ptr<const float>(p[1]), as_ptr<float>(p[2]), as_ptr<float>(p[3]),
             as_ptr<float>(p[4]), nullptr);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}


// block_step(n_live, live, compact, nh, hs, t, max_len, scale, eps, x, ln_w, ln_b, w_qkv, b_qkv, w_o, b_o, keys,
// values, out): step's rows and layout as step's, with the block's input rows x (B or at least n_live rows of C)
// in place of qkv: out = x + c_proj(attention(c_attn(ln_1(x)))) on the live rows (w_qkv, w_o input-major).
// The caller fills out's other rows and checks shapes, bounds and the width (C <= 256).
PyObject* block_step(PyObject*, PyObject* args) {
    long long n_live, max_len;
    int compact, nh, hs, t;
    float scale, eps;
    unsigned long long lv, p[10];
    if (!PyArg_ParseTuple(args, "LKpiiiLffKKKKKKKKKK", &n_live, &lv, &compact, &nh, &hs, &t, &max_len, &scale, &eps,
                          &p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &p[6], &p[7], &p[8], &p[9]))
        return nullptr;
    if (n_live < 0 || nh < 1 || hs < 1 || t < 0 || t >= max_len || nh * hs > creditsim_kernels::LN_MAX_D) {
        PyErr_SetString(PyExc_ValueError,
                        "block_step: n_live >= 0, nh, hs >= 1, nh * hs <= 256 and 0 <= t < max_len expected");
        return nullptr;
    }
    const Step st{max_len, nh, hs, t, scale, creditsim_kernels::avx512_block() && hs == 8 && nh % 2 == 0};
    auto f = [&p](int i) { return as_ptr<const float>(p[i]); };
    const Half half{eps, f(1), f(2), f(3), f(4), f(5), f(6)};
    const int64_t* live = lv ? as_ptr<const int64_t>(lv) : nullptr;
    Py_BEGIN_ALLOW_THREADS
    run_step(st, n_live, live, compact != 0, f(0), as_ptr<float>(p[7]), as_ptr<float>(p[8]), as_ptr<float>(p[9]),
             &half);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"step", step, METH_VARARGS, "Fused autoregressive attention step over a key/value buffer."},
    {"block_step", block_step, METH_VARARGS, "A transformer block's attention half around the fused step."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_attention_step", nullptr, -1, methods, nullptr, nullptr, nullptr,
                      nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__attention_step() { return PyModule_Create(&module); }
