// ptx_common.cuh: device primitives shared by the sm_90a and sm_100a kernels that twill emits.
// Included textually by the emitter (no #include needed: builtin types and inline PTX only).
// PTX ISA references are to docs.nvidia.com/cuda/parallel-thread-execution.
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;
#ifdef __CUDACC_RTC__
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
// NVRTC has no <cuda.h>: an opaque, 64-byte aligned, 128-byte tensor map, layout-compatible with
// the driver's CUtensorMap (cuTensorMapEncodeTiled fills it on the host).
struct alignas(64) CUtensorMap_st { unsigned long long opaque[16]; };
typedef struct CUtensorMap_st CUtensorMap;
#define INFINITY __int_as_float(0x7f800000)   // no <cmath> under NVRTC either
#else
#include <cmath>
#include <cstdint>
#include <cuda.h>   // CUtensorMap
#endif

// 32-bit shared-state-space address of a generic pointer into shared memory.
__device__ __forceinline__ u32 smem_u32(const void* p) {
  return static_cast<u32>(__cvta_generic_to_shared(p));
}

// A 32-bit store to a shared-memory address (PTX ISA "st", .shared state space): a 32-bit address
// register per store instead of a 64-bit generic pointer, so a swizzled staging loop does not hold
// 64-bit addresses across a wait (FA backward: ptxas spilled them).
__device__ __forceinline__ void st_shared_u32(u32 addr, u32 value) {
  asm volatile("st.shared.b32 [%0], %1;" :: "r"(addr), "r"(value) : "memory");
}

// ---- mbarrier (PTX ISA "Parallel Synchronization and Communication Instructions: mbarrier") ----

// Initialise a 64-bit mbarrier for `count` arrivals per phase (one thread does this).
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(smem_u32(bar)), "r"(count) : "memory");
}

// Make mbarrier initialisation visible to the async proxy (TMA, tensor cores) and the cluster.
__device__ __forceinline__ void fence_mbar_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// Block until the phase with parity `parity` of `bar` has completed (try_wait.parity loop).
// A fresh barrier is in phase 0, so waiting on parity 1 returns at once (the usual "empty slot" start).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const u32 addr = smem_u32(bar);
  u32 done;
  do {
    asm volatile(
        "{\n\t.reg .pred p;\n\t"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
        "selp.u32 %0, 1, 0, p;\n\t}"
        : "=r"(done) : "r"(addr), "r"(parity) : "memory");
  } while (!done);
}

// One arrival (release semantics, CTA scope).
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(smem_u32(bar)) : "memory");
}

// One arrival that also raises the phase's expected transaction count by `bytes`
// (the TMA loads that follow complete_tx the same barrier).
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
               :: "r"(smem_u32(bar)), "r"(bytes) : "memory");
}

// ---- TMA (PTX ISA "Data Movement and Conversion Instructions: cp.async.bulk.tensor") ----

// 2-D tiled load of the box at coordinates (c0 = innermost, c1) into shared memory; completion is
// signalled on `bar` as transaction bytes. Issue from one thread.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];"
      :: "r"(smem_u32(dst)), "l"(reinterpret_cast<u64>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
      : "memory");
}

// 4-D tiled load (c0 innermost): FlashAttention's (batch, sequence, head, head_dim) tensors.
__device__ __forceinline__ void tma_load_4d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1, int c2,
                                            int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], [%2];"
      :: "r"(smem_u32(dst)), "l"(reinterpret_cast<u64>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// 4-D tiled reduce-add of a shared-memory box into global memory (PTX ISA "Data Movement and Conversion
// Instructions: cp.reduce.async.bulk.tensor", .tile mode, .add; f32 elements for an fp32 tensor map): the
// box at coordinates (c0 innermost, ..) of `map` gets the box in `src` added element-wise, atomically per
// element. The source is read through the async proxy (the writers fence.proxy.async first). Completion:
// the issuing thread's bulk async-group (bulk_commit_group, then bulk_wait_group_read). Issue from one thread.
__device__ __forceinline__ void tma_reduce_add_4d(const CUtensorMap* map, const void* src, int c0, int c1, int c2,
                                                  int c3) {
  asm volatile(
      "cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];"
      :: "l"(reinterpret_cast<u64>(map)), "r"(smem_u32(src)), "r"(c0), "r"(c1), "r"(c2), "r"(c3) : "memory");
}

// Close this thread's bulk async-group (PTX ISA "cp.async.bulk.commit_group").
__device__ __forceinline__ void bulk_commit_group() {
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Wait until at most N of this thread's bulk async-groups are pending in reading their source
// (PTX ISA "cp.async.bulk.wait_group", .read: the shared memory may be reused, the writes may still be in flight).
template <int N> __device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" :: "n"(N) : "memory");
}

// Prefetch a tensor map (a __grid_constant__ kernel parameter) into the descriptor cache.
__device__ __forceinline__ void prefetch_tensormap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" :: "l"(reinterpret_cast<u64>(map)) : "memory");
}

// Order this thread's generic-proxy shared-memory accesses before later async-proxy accesses
// (PTX ISA "Memory Consistency Model: Proxies"; membar/fence "fence.proxy.async").
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// ---- named barriers (PTX ISA "bar, barrier") ----
// Id 0 is the one __syncthreads() uses; `threads` must be a multiple of 32.
__device__ __forceinline__ void named_bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" :: "r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" :: "r"(id), "r"(threads) : "memory");
}

// ---- register reallocation (PTX ISA "setmaxnreg": sm_90a and sm_100a) ----
// Warpgroup-wide (.sync.aligned): every warp of the warpgroup must execute the same one.
// N: multiple of 8 in [24, 256]. ptxas needs __launch_bounds__ on the kernel, or it ignores
// setmaxnreg and says so (C7508).
template <u32 N> __device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(N % 8 == 0 && N >= 24 && N <= 256, "setmaxnreg: multiple of 8 in [24, 256]");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(N));
}
template <u32 N> __device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(N % 8 == 0 && N >= 24 && N <= 256, "setmaxnreg: multiple of 8 in [24, 256]");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(N));
}

// ---- softmax arithmetic (FlashAttention's bodies) ----
// 2^x on the special-function unit (PTX ISA "ex2", .approx.ftz.f32: MUFU.EX2; ex2(-Inf) = +0).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// 2^x for x < 128 as a cubic on the FP32 pipe, FA4's emulated exp2 (twill/emit/polynomial.py: the
// coefficients, derivation and error). n = floor(x) by one add rounding down (PTX ISA "add",
// .rm: 1.5 2^23 + x has ulp 1, so it is 1.5 2^23 + n with n in its low mantissa bits), f = x - n in
// [0, 1), p(f) = 1 + f (c1 + f (c2 + f c3)), and n added into p's exponent field (shift and add).
// p(0) = 1 exactly, so -inf, clamped to -127, gives the bits of +0. In SASS: FMNMX, 3 FADD, 3 FFMA
// and one LEA (the shift and add), 9 with the caller's FFMA of the scale (exp2_poly_ops, specs/machines).
__device__ __forceinline__ float ex2_poly(float x, float c1, float c2, float c3) {
  const float shifter = 12582912.0f;   // 1.5 2^23
  x = fmaxf(x, -127.0f);
  const float n = __fadd_rd(x, shifter);
  const float f = x - (n - shifter);
  const float p = fmaf(fmaf(fmaf(c3, f, c2), f, c1), f, 1.0f);
  return __uint_as_float(__float_as_uint(p) + (__float_as_uint(n) << 23));
}
// Two fp32 values rounded to nearest-even 16-bit and packed, lo in bits 0-15 (PTX ISA "cvt":
// cvt.rn.bf16x2.f32 d, a, b puts a in the upper half): the pair order of the wgmma A fragment.
template <bool BF16> __device__ __forceinline__ u32 pack_16x2(float lo, float hi) {
  u32 d;
  if (BF16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}
// ---- warp-level election (PTX ISA "elect.sync") ----
// True in exactly one active lane of the (fully active) warp.
__device__ __forceinline__ bool elect_one() {
  u32 elected;
  asm volatile(
      "{\n\t.reg .pred p;\n\t.reg .b32 lane;\n\t"
      "elect.sync lane|p, %1;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(elected) : "r"(0xffffffffu));
  return elected != 0;
}
