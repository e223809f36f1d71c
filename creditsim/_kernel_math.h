// Shared by the package's C++ kernels (creditsim/loans/_diffusion_chain.cpp, creditsim/nn/_attention_step.cpp):
// the load-time pick among instruction-set builds and a float32 exp made of plain IEEE operations.
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

template <typename T>
T* as_ptr(unsigned long long address) {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(address));
}

}  // namespace creditsim_kernels
