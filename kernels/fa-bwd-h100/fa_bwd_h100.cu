// fa_bwd_h100: fa-bwd on h100 (sm90a), emitted by twill.
// Schedule: II 3231 cycles, 2 stages, 4 roles, 22 channels.
// Shared memory, barriers and arguments: manifest.json. Each role runs kernel iterations
// k = first .. trips + last - 1 and, inside, each step for loop iteration i = k - stage when
// 0 <= i < trips. Item q of a channel lives in slot q % depth; its full barrier is waited with parity
// (q / depth) & 1, its empty barrier with the inverse.
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

// ptx_sm90a.cuh: Hopper (sm_90a) device primitives for the kernels that twill emits: setmaxnreg,
// wgmma shared-memory descriptors and the accumulator store. The wgmma.mma_async wrappers are
// generated per shape by wgmma.j2.
// Needs ptx_common.cuh first. PTX ISA references are to docs.nvidia.com/cuda/parallel-thread-execution.
#pragma once

// ---- wgmma shared-memory matrix descriptor ----
// PTX ISA 9.7.15.5.1.2.2 "Matrix Descriptor Format" (64 bits):
//   bits  0-13  matrix-descriptor-encode(start address)            = (addr & 0x3FFFF) >> 4
//   bits 16-29  matrix-descriptor-encode(leading dimension byte offset, LBO)
//   bits 32-45  matrix-descriptor-encode(stride dimension byte offset, SBO)
//   bits 49-51  matrix base offset (0 when the swizzle pattern starts on a 1024-B boundary for 128B)
//   bits 62-63  swizzle mode: 0 none, 1 = 128-Byte swizzle, 2 = 64B, 3 = 32B
// The tile: TMA box {64 elements of K, rows} with CU_TENSOR_MAP_SWIZZLE_128B, 16-bit elements, so
// each row is 128 B (64 bf16/fp16) and 8 consecutive rows (1024 B) form one swizzle atom
// (PTX ISA 9.7.15.5.1.2 "Shared Memory Matrix Layout", K-major 128B swizzling: atom 8x8 of 128-bit
// elements; canonical layout Swizzle<3,4,3> o ((8,m),(T,2k)):((8T,SBO),(1,T))).
//   LBO: for swizzled K-major layouts "not used, assumed to be 1" (PTX ISA 9.7.15.5.1.2.1.1
//        "Leading Dimension Byte Offset"); we encode 1.
//   SBO: "the offset from the first 8 rows to the next 8 rows" (9.7.15.5.1.2.1.2) = 8 * 128 B = 1024.
//   base offset 0: the tile must start on a 1024-B boundary (align every TMA slot to 1024 B).
// Cross-checked against the same table as quoted by third-party references (Triton's SMEMDescriptor
// bit-field, Modular's WGMMADescriptor docs): same field positions, swizzle code 1 = 128B on sm90.
__host__ __device__ constexpr u64 wgmma_desc_encode(u32 smem_addr) {
  return static_cast<u64>((smem_addr & 0x3FFFFu) >> 4)         // bits  0-13: start address
       | (static_cast<u64>(1u) << 16)                           // bits 16-29: LBO (unused, "assumed 1")
       | (static_cast<u64>(1024u >> 4) << 32)                   // bits 32-45: SBO = 1024 B
       | (static_cast<u64>(1u) << 62);                          // bits 62-63: 1 = 128-Byte swizzle
}
__device__ __forceinline__ u64 wgmma_desc(const void* smem_tile) {
  return wgmma_desc_encode(smem_u32(smem_tile));
}

// Descriptor of the k-th 16-element (32-byte) K slice of a 64-wide K tile: start address + 32*k.
// Why a plain +32 B is right under 128B swizzling: the swizzle is a function of the address the
// tensor core computes, not of the descriptor. It XORs address bits [4,7) (16-byte chunk within a
// 128-B row) with bits [7,10) (row within the 8-row, 1024-B atom), i.e. Swizzle<3,4,3> (PTX ISA
// 5.5.7 "Swizzling Modes", 128-byte swizzle table: chunk c of row r lands at chunk c ^ (r % 8),
// pattern starting on a 1024-B boundary). TMA wrote logical element (r, c) of the tile to
// swizzle(base + 128 r + 2 c). Given start = base + 32 k, the tensor core generates the unswizzled
// addresses base + 128 r + 32 k + 16 j (j = 16-byte chunk of the slice, 0 or 1) and applies the
// same XOR; since 32 k + 16 j < 128, adding 32 k never carries into bits [7,10), so the row bits,
// and with them the XOR pattern, are those of the tile, and the base offset stays 0 (the pattern
// still starts on the tile's 1024-B boundary). k in [0, 4) for a 64-element K tile; a wider K tile
// is not one swizzle atom wide (the TMA box inner extent is at most 128 B under SWIZZLE_128B).
__device__ __forceinline__ u64 wgmma_desc_k(const void* smem_tile, int k) {
  return wgmma_desc(smem_tile) + static_cast<u64>(2 * k);   // start-address field is in 16-B units
}

// Descriptor of a B operand stored MN-major (imm-trans-b = 1): K rows of n elements, n contiguous,
// as TMA boxes of {64 elements of n, rows} under the 128B swizzle, box b of the tile at byte
// b * box_bytes (FA's V tile: rows = keys, n = head_dim). PTX ISA 9.7.15.5.1.2 "Shared Memory
// Matrix Layout", MN-major 128B swizzling, canonical layout Swizzle<3,4,3> o ((T,8,m),(8,k)) :
// ((1,T,LBO),(8T,SBO)) in elements (T = 8 16-bit elements = 16 B): 64 contiguous elements of n,
// then the next 64 at LBO; 8 rows of K at 128 B, then the next 8 at SBO. So LBO = box_bytes (the
// next box) and SBO = 1024 (8 rows of 128 B). The k-th 16-row K slice starts 16 * 128 B = 2048 B
// further: a whole number of 1024-B swizzle atoms, so the base offset stays 0.
__device__ __forceinline__ u64 wgmma_desc_mn(const void* smem_tile, u32 box_bytes, int k) {
  return static_cast<u64>(((smem_u32(smem_tile) + 2048u * k) & 0x3FFFFu) >> 4)   // bits  0-13: start address
       | (static_cast<u64>(box_bytes >> 4) << 16)                                 // bits 16-29: LBO
       | (static_cast<u64>(1024u >> 4) << 32)                                     // bits 32-45: SBO = 1024 B
       | (static_cast<u64>(1u) << 62);                                            // bits 62-63: 128-Byte swizzle
}

// ---- wgmma ordering (PTX ISA "wgmma.fence", "wgmma.commit_group", "wgmma.wait_group") ----
// wgmma_fence(): before the first wgmma.mma_async of a batch, and whenever the accumulator
// registers (or shared-memory operands) were written by other instructions since the last one.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Wait until at most N committed wgmma groups are pending.
template <int N> __device__ __forceinline__ void wgmma_wait() {
  static_assert(N >= 0 && N <= 7, "wgmma.wait_group: N in [0, 7]");
  asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory");
}
// Compiler-only fence on the accumulator registers: keeps the compiler from moving reads or
// writes of `d` across wgmma_wait / the mma_async (the asm above names `d` only as operands of the
// mma itself). Use after wgmma_wait<...>() before touching the accumulator, and after zeroing it.
template <int R> __device__ __forceinline__ void wgmma_fence_acc(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i]) :: "memory");
}

// Wait until at most n committed groups are pending, n known only at run time (the groups a role
// issued after the one it waits for, counted by their guards): n above 7 waits for 7, which is more.
__device__ __forceinline__ void wgmma_wait_upto(int n) {
  switch (n) {
    case 0: wgmma_wait<0>(); break;
    case 1: wgmma_wait<1>(); break;
    case 2: wgmma_wait<2>(); break;
    case 3: wgmma_wait<3>(); break;
    case 4: wgmma_wait<4>(); break;
    case 5: wgmma_wait<5>(); break;
    case 6: wgmma_wait<6>(); break;
    default: wgmma_wait<7>(); break;
  }
}
// A wgmma A-operand register (two 16-bit values) as its 32 bits: a u32 fragment as it is, a float array
// holding packed pairs in place of the fp32 values it was converted from (FA backward's P^T, dS^T) bit-cast.
__device__ __forceinline__ u32 as_u32(u32 x) { return x; }
__device__ __forceinline__ u32 as_u32(float x) { return __float_as_uint(x); }
// Loop iteration i runs (0 <= i < trips): one branch-free compare.
__device__ __forceinline__ int in_range(int i, int trips) { return static_cast<unsigned>(i) < static_cast<unsigned>(trips); }
// Compiler-only fences on a register value's fragments (one row of G per 64-row group): as wgmma_fence_acc.
template <int G, int R> __device__ __forceinline__ void reg_fence(float (&d)[G][R]) {
#pragma unroll
  for (int g = 0; g < G; ++g) wgmma_fence_acc(d[g]);
}
template <int G, int R> __device__ __forceinline__ void reg_fence(u32 (&d)[G][R]) {
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+r"(d[g][i]) :: "memory");
}

// ---- register values staged in shared memory, read in place ----
// A consumer reads a value another warpgroup staged without copying it into registers: v[g][j] loads
// the word when the op body uses it. Fragment layout: element (g, j) of thread t at word
// (g N + j) 128 + t (base = slot + t). Row layout (one value per row of a 64-row group, `values`
// per row): element (g, 2 v + h) at word v rows + 64 g + frag_row + 8 h (base = slot + frag_row).
template <typename T, int N, int FIRST = 0> struct FragmentView {   // FIRST: the slot holds elements FIRST .. FIRST + N - 1
  const T* base;
  struct Row {
    const T* p;
    __device__ __forceinline__ T operator[](int j) const { return p[(j - FIRST) * 128]; }
  };
  __device__ __forceinline__ Row operator[](int g) const { return Row{base + g * N * 128}; }
};
template <typename T, int ROWS> struct RowView {
  const T* base;
  struct Row {
    const T* p;
    __device__ __forceinline__ T operator[](int v) const { return p[(v / 2) * ROWS + 8 * (v % 2)]; }
  };
  __device__ __forceinline__ Row operator[](int g) const { return Row{base + 64 * g}; }
};

// ---- softmax arithmetic ----
// The max and the sum over the four lanes of a quad (lanes 4 q .. 4 q + 3 share the accumulator rows).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- accumulator store ----
// Store the m64nBN fp32 accumulator of this warpgroup to row-major C (leading dimension ldc, in
// elements) at rows row0.., columns col0.., guarding rows >= M and columns >= N.
// Fragment layout: PTX ISA 9.7.15.5.1.1.1 "Matrix Fragments for wgmma.mma_async.m64nNk16",
// Figure "WGMMA .m64nNk16 register fragment layout for accumulator matrix D": thread t of the
// warpgroup (warp w = t / 32, lane l = t % 32) holds d[i], i in [0, N/2), at
//   row = 16 w + l / 4 + 8 * ((i / 2) % 2),   col = 8 * (i / 4) + 2 * (l % 4) + (i % 2).
// (The PTX ISA gives this layout as a figure only; the formula was cross-checked against two
// independent third-party codes that index wgmma accumulators the same way: Microsoft MMA-Sim's
// m64n8k16 tests for the row and i % 2 parts, and a FlashMLA-style softmax masking loop for the
// 8 * (i / 4) column step. Not yet confirmed by a GPU run of this code.)
// Call from all 128 threads of the warpgroup after wgmma_wait<0>() and wgmma_fence_acc(d).
template <int BN>
__device__ __forceinline__ void store_acc_m64n(const float (&d)[BN / 2], float* C, int ldc,
                                               int row0, int col0, int M, int N) {
  static_assert(BN % 8 == 0 && BN >= 8 && BN <= 256, "m64nN: N multiple of 8 in [8, 256]");
  const int t = static_cast<int>(threadIdx.x) & 127;
  const int warp = t >> 5, lane = t & 31;
  const int r_base = row0 + 16 * warp + (lane >> 2);
  const int c_base = col0 + 2 * (lane & 3);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {          // 8-column block j holds d[4j .. 4j+3]
#pragma unroll
    for (int h = 0; h < 2; ++h) {             // h = 0: row r_base, h = 1: row r_base + 8
      const int r = r_base + 8 * h;
      const int c = c_base + 8 * j;
      const float v0 = d[4 * j + 2 * h];
      const float v1 = d[4 * j + 2 * h + 1];
      if (r < M) {
        float* p = C + static_cast<long long>(r) * ldc + c;
        if (c + 1 < N && (reinterpret_cast<u64>(p) & 7u) == 0) {
          *reinterpret_cast<float2*>(p) = make_float2(v0, v1);   // one 8-byte store
        } else {
          if (c < N) p[0] = v0;
          if (c + 1 < N) p[1] = v1;
        }
      }
    }
  }
}

__device__ __forceinline__ void wgmma_m64n64k16_f32_bf16_ss(float (&d)[32], u64 desc_a, u64 desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n\t}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_m64n64k16_f32_bf16_ss_zero(float (&d)[32], u64 desc_a, u64 desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n\t}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]),
        "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]),
        "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]),
        "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_m64n64k16_f32_bf16_ss_ta_tb(float (&d)[32], u64 desc_a, u64 desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 1, 1;\n\t}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_m64n64k16_f32_bf16_ss_ta_tb_zero(float (&d)[32], u64 desc_a, u64 desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 1, 1;\n\t}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]),
        "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]),
        "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]),
        "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_m64n128k16_f32_bf16_rs_tb(float (&d)[64], u32 a0, u32 a1, u32 a2, u32 a3, u64 desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %69, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n\t}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_m64n128k16_f32_bf16_rs_tb_zero(float (&d)[64], u32 a0, u32 a1, u32 a2, u32 a3, u64 desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %69, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n\t}"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]),
        "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]),
        "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]),
        "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31]),
        "=f"(d[32]), "=f"(d[33]), "=f"(d[34]), "=f"(d[35]), "=f"(d[36]), "=f"(d[37]), "=f"(d[38]), "=f"(d[39]),
        "=f"(d[40]), "=f"(d[41]), "=f"(d[42]), "=f"(d[43]), "=f"(d[44]), "=f"(d[45]), "=f"(d[46]), "=f"(d[47]),
        "=f"(d[48]), "=f"(d[49]), "=f"(d[50]), "=f"(d[51]), "=f"(d[52]), "=f"(d[53]), "=f"(d[54]), "=f"(d[55]),
        "=f"(d[56]), "=f"(d[57]), "=f"(d[58]), "=f"(d[59]), "=f"(d[60]), "=f"(d[61]), "=f"(d[62]), "=f"(d[63])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b), "r"(scale_d));
}

extern "C" __global__ void __launch_bounds__(384, 1) fa_bwd_h100(const __grid_constant__ CUtensorMap tmap_Q, const __grid_constant__ CUtensorMap tmap_K, const __grid_constant__ CUtensorMap tmap_V, const __grid_constant__ CUtensorMap tmap_dO, const float* __restrict__ LSE, const float* __restrict__ Delta, const __grid_constant__ CUtensorMap tmap_dQ, float* __restrict__ dK, float* __restrict__ dV, int SQ, int SK, int H, int B) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = (unsigned char*)(((unsigned long long)smem_raw + 1023) & ~1023ull);
  const int warp = __shfl_sync(0xffffffffu, (int)threadIdx.x / 32, 0);
  const bool first_thread = threadIdx.x == 0;
  if (first_thread) {
    prefetch_tensormap(&tmap_Q);
    prefetch_tensormap(&tmap_K);
    prefetch_tensormap(&tmap_V);
    prefetch_tensormap(&tmap_dO);
    prefetch_tensormap(&tmap_dQ);
  }
  const int kv0 = blockIdx.x * 128;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int trips = SQ / 64;
  if (first_thread) {
    for (int s = 0; s < 3; ++s) {
      mbar_init((u64*)(smem + 212992) + s, 1);
      mbar_init((u64*)(smem + 213016) + s, 2);
    }
    for (int s = 0; s < 2; ++s) {
      mbar_init((u64*)(smem + 213040) + s, 1);
      mbar_init((u64*)(smem + 213056) + s, 2);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213072) + s, 1);
      mbar_init((u64*)(smem + 213080) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213088) + s, 1);
      mbar_init((u64*)(smem + 213096) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213104) + s, 1);
      mbar_init((u64*)(smem + 213112) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213120) + s, 1);
      mbar_init((u64*)(smem + 213128) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213136) + s, 1);
      mbar_init((u64*)(smem + 213144) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213152) + s, 1);
      mbar_init((u64*)(smem + 213160) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213168) + s, 1);
      mbar_init((u64*)(smem + 213176) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213184) + s, 1);
      mbar_init((u64*)(smem + 213192) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213200) + s, 1);
      mbar_init((u64*)(smem + 213208) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213216) + s, 1);
      mbar_init((u64*)(smem + 213224) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213232) + s, 1);
      mbar_init((u64*)(smem + 213240) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213248) + s, 1);
      mbar_init((u64*)(smem + 213256) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213264) + s, 1);
      mbar_init((u64*)(smem + 213272) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213280) + s, 1);
      mbar_init((u64*)(smem + 213288) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213296) + s, 1);
      mbar_init((u64*)(smem + 213304) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213312) + s, 1);
      mbar_init((u64*)(smem + 213320) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213328) + s, 1);
      mbar_init((u64*)(smem + 213336) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213344) + s, 1);
      mbar_init((u64*)(smem + 213352) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 213360) + s, 1);
      mbar_init((u64*)(smem + 213368) + s, 1);
    }
    for (int s = 0; s < 2; ++s) {
      mbar_init((u64*)(smem + 213376) + s, 1);
      mbar_init((u64*)(smem + 213392) + s, 1);
    }
    mbar_init((u64*)(smem + 213408), 1);  // K, loaded once
    mbar_init((u64*)(smem + 213416), 1);  // V, loaded once
    fence_mbar_init();
  }
  __syncthreads();
  if (warp >= 0 && warp < 4) {
    setmaxnreg_dec<24>();
    if (warp >= 0 && warp < 1) {  // role 0: 1 warp, setmaxnreg 24
      const bool leader = elect_one();  // issues the role's single-thread work and arrivals
      const int lane = threadIdx.x & 31;
      const int frag_row = 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2);  // rows frag_row, frag_row + 8 of each 64-row group
      const int frag_col = 2 * (lane & 3);                                // columns frag_col, frag_col + 1 of each 8
      if (leader) { mbar_arrive_expect_tx((u64*)(smem + 213408), 32768); tma_load_4d(smem + 147456, &tmap_K, (u64*)(smem + 213408), 0, head, kv0, batch); tma_load_4d(smem + 147456 + 16384, &tmap_K, (u64*)(smem + 213408), 0 + 64, head, kv0, batch); }
      if (leader) { mbar_arrive_expect_tx((u64*)(smem + 213416), 32768); tma_load_4d(smem + 180224, &tmap_V, (u64*)(smem + 213416), 0, head, kv0, batch); tma_load_4d(smem + 180224 + 16384, &tmap_V, (u64*)(smem + 213416), 0 + 64, head, kv0, batch); }
      for (int k = 0; k < trips + 0; ++k) {
        {  // loadQ (stage 0, offset 0)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213016) + q % 3, ((u32)(q / 3) & 1u) ^ 1u); } }  // loadQ.empty
            { const int q = i - 2; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213376) + q % 2, ((u32)(q / 2) & 1u)); } }  // tma:storeDQ>loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) { mbar_arrive_expect_tx((u64*)(smem + 212992) + q % 3, 16384); tma_load_4d(smem + 0 + (q % 3) * 16384, &tmap_Q, (u64*)(smem + 212992) + q % 3, 0, head, i * 64, batch); tma_load_4d(smem + 0 + (q % 3) * 16384 + 8192, &tmap_Q, (u64*)(smem + 212992) + q % 3, 0 + 64, head, i * 64, batch); } } }  // loadQ.full
            { const int q = i - 2; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213392) + q % 2); } }  // tma:storeDQ>loadQ.empty
          }
        }
        {  // loadDO (stage 0, offset 30)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213056) + q % 2, ((u32)(q / 2) & 1u) ^ 1u); } }  // loadDO.empty
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 213368) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tma:loadDO>storeDQ.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) { mbar_arrive_expect_tx((u64*)(smem + 213040) + q % 2, 16384); tma_load_4d(smem + 49152 + (q % 2) * 16384, &tmap_dO, (u64*)(smem + 213040) + q % 2, 0, head, i * 64, batch); tma_load_4d(smem + 49152 + (q % 2) * 16384 + 8192, &tmap_dO, (u64*)(smem + 213040) + q % 2, 0 + 64, head, i * 64, batch); } } }  // loadDO.full
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 213360) + q % 1); } }  // tma:loadDO>storeDQ.full
          }
        }
      }
    }
    if (warp >= 1 && warp < 2) {  // role 1: 1 warp, setmaxnreg 24
      const bool leader = elect_one();  // issues the role's single-thread work and arrivals
      const int lane = threadIdx.x & 31;
      const int frag_row = 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2);  // rows frag_row, frag_row + 8 of each 64-row group
      const int frag_col = 2 * (lane & 3);                                // columns frag_col, frag_col + 1 of each 8
      for (int k = 1; k < trips + 1; ++k) {
        {  // storeDQ (stage 1, offset 3201)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213136) + q % 1, ((u32)(q / 1) & 1u)); } }  // dq.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213152) + q % 1, ((u32)(q / 1) & 1u)); } }  // dq.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 213360) + q % 1, ((u32)(q / 1) & 1u)); } }  // tma:loadDO>storeDQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213392) + q % 2, ((u32)(q / 2) & 1u) ^ 1u); } }  // tma:storeDQ>loadQ.empty
            const unsigned char* in_dq_0 = smem + 114688 + ((i - 0) % 1) * 16384;  // dq in dq.0's slot
            const unsigned char* in_dq_1 = smem + 131072 + ((i - 0) % 1) * 16384;  // dq in dq.1's slot
            if (leader) {  // dQ += scale dQ_i: one TMA reduce-add per dq part, then wait until the slots are read
              tma_reduce_add_4d(&tmap_dQ, in_dq_0, 0, head, i * 64, batch);
              tma_reduce_add_4d(&tmap_dQ, in_dq_1, 64, head, i * 64, batch);
              bulk_commit_group();
              bulk_wait_group_read<0>();
            }
            __syncwarp();  // the role's slot reads and writes are done before its arrivals
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 213368) + q % 1); } }  // tma:loadDO>storeDQ.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213376) + q % 2); } }  // tma:storeDQ>loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213144) + q % 1); } }  // dq.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213160) + q % 1); } }  // dq.1.empty
          }
        }
      }
    }
  }
  if (warp >= 4 && warp < 8) {
    setmaxnreg_inc<232>();
    if (warp >= 4 && warp < 8) {  // role 2: 4 warps, setmaxnreg 232
      const bool leader = warp == 4 && elect_one();  // issues the role's single-thread work and arrivals
      float r_s_0[1][1][32];  // s.0: 1 copy of this thread's fragments
      float r_dp_0[1][1][32];  // dp.0: 1 copy of this thread's fragments
      float r_dv_0[1][1][64];  // dv.0: 1 copy of this thread's fragments
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int g = 0; g < 1; ++g)
#pragma unroll
          for (int j = 0; j < 64; ++j) r_dv_0[c][g][j] = 0.0f;
      float r_dq_0[1][1][32];  // dq.0: 1 copy of this thread's fragments
      float r_dk_0[1][1][64];  // dk.0: 1 copy of this thread's fragments
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int g = 0; g < 1; ++g)
#pragma unroll
          for (int j = 0; j < 64; ++j) r_dk_0[c][g][j] = 0.0f;
      const int lane = threadIdx.x & 31;
      const int frag_row = 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2);  // rows frag_row, frag_row + 8 of each 64-row group
      const int frag_col = 2 * (lane & 3);                                // columns frag_col, frag_col + 1 of each 8
      mbar_wait((u64*)(smem + 213408), 0);  // K has landed
      mbar_wait((u64*)(smem + 213416), 0);  // V has landed
      for (int k = 1; k < trips + 1; ++k) {
        {  // s.0 (stage 1, offset 0)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 212992) + q % 3, ((u32)(q / 3) & 1u)); } }  // loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213240) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:s.0>s.1.empty
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dv.0 completed */ }
            {
              const unsigned char* a_tile = smem + 147456;
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 3) * 16384);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                if (ks == 0) wgmma_m64n64k16_f32_bf16_ss_zero(r_s_0[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 0, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 0);
                else wgmma_m64n64k16_f32_bf16_ss(r_s_0[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 0, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213232) + q % 1); } }  // tc:s.0>s.1.full
          }
        }
        {  // dp.0 (stage 1, offset 512)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213040) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadDO.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213080) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // dp.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213248) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:s.1>dp.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213272) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dp.0>dp.1.empty
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<1>();  /* dk.0 completed */ }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<1>();  /* dq.0 completed */ }
            {
              const unsigned char* a_tile = smem + 180224;
              const unsigned char* b_tile = (smem + 49152 + ((i - 0) % 2) * 16384);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                if (ks == 0) wgmma_m64n64k16_f32_bf16_ss_zero(r_dp_0[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 0, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 0);
                else wgmma_m64n64k16_f32_bf16_ss(r_dp_0[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 0, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213256) + q % 1); } }  // tc:s.1>dp.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213264) + q % 1); } }  // tc:dp.0>dp.1.full
            wgmma_wait<0>();  // the signals below are at dp.0's completion
            named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213072) + q % 1); } }  // dp.0.full
          }
        }
        {  // p.0 (stage 1, offset 644)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213208) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // sfu:p.0>p.1.empty
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213216) + q % 1, ((u32)(q / 1) & 1u)); } }  // sfu:p.1>p.0.full
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* s.0 completed */ reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dp.0 completed */ reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dv.0 completed */ reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dk.0 completed */ reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dq.0 completed */ reg_fence(r_s_0[0]); }
            // P^T = exp2(c S^T - LSE_i), over S (one FFMA and one MUFU.EX2 each)
{
              const float* column = LSE + ((size_t)batch * H + head) * SQ + (size_t)i * 64;
              float2 pairs[1];
#pragma unroll
              for (int t = 0; t < 1; ++t) pairs[t] = __ldg((const float2*)(column + 2 * (lane + 32 * t)));
#pragma unroll
              for (int b = 0; b < 8; ++b) {  // columns 8 b + frag_col, + 1: elements 4 b .. 4 b + 3 of each group
                const float x = __shfl_sync(0xffffffffu, pairs[b / 8].x, 4 * (b % 8) + (lane & 3));
                const float y = __shfl_sync(0xffffffffu, pairs[b / 8].y, 4 * (b % 8) + (lane & 3));
#pragma unroll
                for (int g = 0; g < 1; ++g)
#pragma unroll
                  for (int e = 0; e < 4; ++e) {
                    const int j = 4 * b + e;
                    const float value = e % 2 ? y : x;
                    r_s_0[0][g][j] = ex2(fmaf(r_s_0[0][g][j], 1.275174308e-01f, -value));
                  }
              }
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213200) + q % 1); } }  // sfu:p.0>p.1.full
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213224) + q % 1); } }  // sfu:p.1>p.0.empty
          }
        }
        {  // ds.0 (stage 1, offset 1156)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213184) + q % 1, ((u32)(q / 1) & 1u)); } }  // alu:convertDS.1>ds.0.full
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* s.0 completed */ reg_fence(r_dp_0[0]); reg_fence(r_s_0[0]); }
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* dp.0 completed */ reg_fence(r_dp_0[0]); reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dv.0 completed */ reg_fence(r_dp_0[0]); reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dk.0 completed */ reg_fence(r_dp_0[0]); reg_fence(r_s_0[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dq.0 completed */ reg_fence(r_dp_0[0]); reg_fence(r_s_0[0]); }
            // dS^T = P^T (dP^T - Delta_i), over dP
{
              const float* column = Delta + ((size_t)batch * H + head) * SQ + (size_t)i * 64;
              float2 pairs[1];
#pragma unroll
              for (int t = 0; t < 1; ++t) pairs[t] = __ldg((const float2*)(column + 2 * (lane + 32 * t)));
#pragma unroll
              for (int b = 0; b < 8; ++b) {  // columns 8 b + frag_col, + 1: elements 4 b .. 4 b + 3 of each group
                const float x = __shfl_sync(0xffffffffu, pairs[b / 8].x, 4 * (b % 8) + (lane & 3));
                const float y = __shfl_sync(0xffffffffu, pairs[b / 8].y, 4 * (b % 8) + (lane & 3));
#pragma unroll
                for (int g = 0; g < 1; ++g)
#pragma unroll
                  for (int e = 0; e < 4; ++e) {
                    const int j = 4 * b + e;
                    const float value = e % 2 ? y : x;
                    r_dp_0[0][g][j] = r_s_0[0][g][j] * (r_dp_0[0][g][j] - value);
                  }
              }
            }
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213192) + q % 1); } }  // alu:convertDS.1>ds.0.empty
          }
        }
        {  // convertP.0 (stage 1, offset 1230)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            {  // P^T in 16 bits, packed pairs over the first half of its registers (word w reads 2 w, 2 w + 1 >= w)
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int w = 0; w < 16; ++w) r_s_0[0][g][w] = __uint_as_float(pack_16x2<true>(r_s_0[0][g][2 * w], r_s_0[0][g][2 * w + 1]));
            }
          }
        }
        {  // convertDS.0 (stage 1, offset 1304)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213112) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // convertDS.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213176) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alu:convertDS.0>ds.1.empty
            {  // dS^T in 16 bits, packed pairs over the first half of its registers (word w reads 2 w, 2 w + 1 >= w)
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int w = 0; w < 16; ++w) r_dp_0[0][g][w] = __uint_as_float(pack_16x2<true>(r_dp_0[0][g][2 * w], r_dp_0[0][g][2 * w + 1]));
            }
            {  // convertDS 16-bit, boxed and swizzled, into dp.0's slot
              const u32 to = smem_u32(smem + 81920 + ((i - 0) % 1) * 16384);
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int w = 0; w < 16; ++w) {
                  const int r = 64 * g + frag_row + 8 * (w % 2), c = 8 * (w / 2) + frag_col;
                  st_shared_u32(to + (c / 64) * 8192 + 128 * r + 16 * (((c % 64) / 8) ^ (r % 8)) + 2 * (c % 8), as_u32(r_dp_0[0][g][w]));
                }
              fence_proxy_async();
            }
            named_bar_sync(3, 128);  // every warp of the role is done  // the role's slot reads and writes are done before its arrivals
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213104) + q % 1); } }  // convertDS.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213168) + q % 1); } }  // alu:convertDS.0>ds.1.full
          }
        }
        {  // dv.0 (stage 1, offset 1378)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213040) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadDO.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213280) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dp.1>dv.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213304) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dv.0>dv.1.empty
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* s.0 completed */ }
            {
              const unsigned char* b_tile = (smem + 49152 + ((i - 0) % 2) * 16384);
              u32 a_frag[1][16];  // convertP's packed pairs as 32-bit registers, defined before the fence
#pragma unroll
              for (int r = 0; r < 1; ++r)
#pragma unroll
                for (int j = 0; j < 16; ++j) a_frag[r][j] = as_u32(r_s_0[0][r][j]);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 4; ++ks) {
                wgmma_m64n128k16_f32_bf16_rs_tb(r_dv_0[0][0], as_u32(a_frag[0][4 * ks]), as_u32(a_frag[0][4 * ks + 1]), as_u32(a_frag[0][4 * ks + 2]), as_u32(a_frag[0][4 * ks + 3]), wgmma_desc_mn(b_tile, 8192, ks), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213288) + q % 1); } }  // tc:dp.1>dv.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213296) + q % 1); } }  // tc:dv.0>dv.1.full
            wgmma_wait<0>();  // the signals below are at dv.0's completion
            named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213056) + q % 2); } }  // loadDO.empty
          }
        }
        {  // dq.0 (stage 1, offset 2146)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213088) + q % 1, ((u32)(q / 1) & 1u)); } }  // dp.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213120) + q % 1, ((u32)(q / 1) & 1u)); } }  // convertDS.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213144) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // dq.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213312) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dq.1>dq.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213336) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dq.0>dk.1.empty
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* dp.0 completed */ }
            {
              const unsigned char* a_parts[2] = {((const unsigned char*)(smem + 81920 + ((i - 0) % 1) * 16384)), ((const unsigned char*)(smem + 98304 + ((i - 0) % 1) * 16384))};  // convertDS's parts, 64 K rows each
              const unsigned char* b_tile = smem + 147456;
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                if (ks == 0) wgmma_m64n64k16_f32_bf16_ss_ta_tb_zero(r_dq_0[0][0], wgmma_desc_mn(a_parts[ks / 4] + 0, 8192, ks % 4), wgmma_desc_mn(b_tile, 16384, ks), 0);
                else wgmma_m64n64k16_f32_bf16_ss_ta_tb(r_dq_0[0][0], wgmma_desc_mn(a_parts[ks / 4] + 0, 8192, ks % 4), wgmma_desc_mn(b_tile, 16384, ks), 1);
              }
              wgmma_commit();
            }
            wgmma_wait<0>();  // dq.0's result is staged for another role: its groups have completed
            reg_fence(r_dq_0[0]);
            {  // scale dQ_i (fp32, row-major 64 x 64) into dq.0's slot for the TMA reduce
              float* to = (float*)(smem + 114688 + ((i - 0) % 1) * 16384);
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int j = 0; j < 32; j += 2)
                  *(float2*)(to + (64 * g + frag_row + 8 * ((j / 2) % 2)) * 64 + 8 * (j / 4) + frag_col) = make_float2(8.838834765e-02f * r_dq_0[0][g][j], 8.838834765e-02f * r_dq_0[0][g][j + 1]);
              fence_proxy_async();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213320) + q % 1); } }  // tc:dq.1>dq.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213328) + q % 1); } }  // tc:dq.0>dk.1.full
            wgmma_wait<0>();  // the signals below are at dq.0's completion
            named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213096) + q % 1); } }  // dp.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213128) + q % 1); } }  // convertDS.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213136) + q % 1); } }  // dq.0.full
          }
        }
        {  // dk.0 (stage 1, offset 2658)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 212992) + q % 3, ((u32)(q / 3) & 1u)); } }  // loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213344) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dk.1>dk.0.full
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* dp.0 completed */ }
            {
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 3) * 16384);
              u32 a_frag[1][16];  // convertDS's packed pairs as 32-bit registers, defined before the fence
#pragma unroll
              for (int r = 0; r < 1; ++r)
#pragma unroll
                for (int j = 0; j < 16; ++j) a_frag[r][j] = as_u32(r_dp_0[0][r][j]);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 4; ++ks) {
                wgmma_m64n128k16_f32_bf16_rs_tb(r_dk_0[0][0], as_u32(a_frag[0][4 * ks]), as_u32(a_frag[0][4 * ks + 1]), as_u32(a_frag[0][4 * ks + 2]), as_u32(a_frag[0][4 * ks + 3]), wgmma_desc_mn(b_tile, 8192, ks), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213352) + q % 1); } }  // tc:dk.1>dk.0.empty
            wgmma_wait<0>();  // the signals below are at dk.0's completion
            named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213016) + q % 3); } }  // loadQ.empty
          }
        }
      }
      wgmma_wait<0>();
      {  // dV, KV rows kv0 + 0 ..
        auto store = [&](float (&o)[1][64]) {
          reg_fence(o);
#pragma unroll
          for (int g = 0; g < 1; ++g) {
            store_acc_m64n<128>(o[g], dV + ((size_t)batch * SK * H + head) * 128, H * 128, kv0 + 0 + 64 * g, 0, SK, 128);  // [batch, row, head, :]
          }
        };
        switch (((trips - 1) % 1 + 1) % 1) {
          default: store(r_dv_0[0]); break;
        }
      }
      {  // scale dK, KV rows kv0 + 0 ..
        auto store = [&](float (&o)[1][64]) {
          reg_fence(o);
#pragma unroll
          for (int g = 0; g < 1; ++g) {
#pragma unroll
            for (int j = 0; j < 64; ++j) o[g][j] *= 8.838834765e-02f;
            store_acc_m64n<128>(o[g], dK + ((size_t)batch * SK * H + head) * 128, H * 128, kv0 + 0 + 64 * g, 0, SK, 128);  // [batch, row, head, :]
          }
        };
        switch (((trips - 1) % 1 + 1) % 1) {
          default: store(r_dk_0[0]); break;
        }
      }
    }
  }
  if (warp >= 8 && warp < 12) {
    setmaxnreg_inc<248>();
    if (warp >= 8 && warp < 12) {  // role 3: 4 warps, setmaxnreg 248
      const bool leader = warp == 8 && elect_one();  // issues the role's single-thread work and arrivals
      float r_s_1[1][1][32];  // s.1: 1 copy of this thread's fragments
      float r_dp_1[1][1][32];  // dp.1: 1 copy of this thread's fragments
      float r_dv_1[1][1][64];  // dv.1: 1 copy of this thread's fragments
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int g = 0; g < 1; ++g)
#pragma unroll
          for (int j = 0; j < 64; ++j) r_dv_1[c][g][j] = 0.0f;
      float r_dq_1[1][1][32];  // dq.1: 1 copy of this thread's fragments
      float r_dk_1[1][1][64];  // dk.1: 1 copy of this thread's fragments
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int g = 0; g < 1; ++g)
#pragma unroll
          for (int j = 0; j < 64; ++j) r_dk_1[c][g][j] = 0.0f;
      const int lane = threadIdx.x & 31;
      const int frag_row = 16 * ((threadIdx.x >> 5) & 3) + (lane >> 2);  // rows frag_row, frag_row + 8 of each 64-row group
      const int frag_col = 2 * (lane & 3);                                // columns frag_col, frag_col + 1 of each 8
      mbar_wait((u64*)(smem + 213408), 0);  // K has landed
      mbar_wait((u64*)(smem + 213416), 0);  // V has landed
      for (int k = 1; k < trips + 1; ++k) {
        {  // s.1 (stage 1, offset 256)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 212992) + q % 3, ((u32)(q / 3) & 1u)); } }  // loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213232) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:s.0>s.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213256) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:s.1>dp.0.empty
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dv.1 completed */ }
            {
              const unsigned char* a_tile = smem + 147456;
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 3) * 16384);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                if (ks == 0) wgmma_m64n64k16_f32_bf16_ss_zero(r_s_1[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 8192, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 0);
                else wgmma_m64n64k16_f32_bf16_ss(r_s_1[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 8192, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213240) + q % 1); } }  // tc:s.0>s.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213248) + q % 1); } }  // tc:s.1>dp.0.full
          }
        }
        {  // dp.1 (stage 1, offset 768)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213040) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadDO.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213096) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // dp.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213264) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dp.0>dp.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213288) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dp.1>dv.0.empty
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<1>();  /* dk.1 completed */ }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<1>();  /* dq.1 completed */ }
            {
              const unsigned char* a_tile = smem + 180224;
              const unsigned char* b_tile = (smem + 49152 + ((i - 0) % 2) * 16384);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                if (ks == 0) wgmma_m64n64k16_f32_bf16_ss_zero(r_dp_1[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 8192, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 0);
                else wgmma_m64n64k16_f32_bf16_ss(r_dp_1[0][0], wgmma_desc_k(a_tile + (ks / 4) * 16384 + 8192, ks % 4), wgmma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213272) + q % 1); } }  // tc:dp.0>dp.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213280) + q % 1); } }  // tc:dp.1>dv.0.full
            wgmma_wait<0>();  // the signals below are at dp.1's completion
            named_bar_sync(4, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213088) + q % 1); } }  // dp.1.full
          }
        }
        {  // p.1 (stage 1, offset 900)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213200) + q % 1, ((u32)(q / 1) & 1u)); } }  // sfu:p.0>p.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213224) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // sfu:p.1>p.0.empty
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* s.1 completed */ reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dp.1 completed */ reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dv.1 completed */ reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dk.1 completed */ reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dq.1 completed */ reg_fence(r_s_1[0]); }
            // P^T = exp2(c S^T - LSE_i), over S (one FFMA and one MUFU.EX2 each)
{
              const float* column = LSE + ((size_t)batch * H + head) * SQ + (size_t)i * 64;
              float2 pairs[1];
#pragma unroll
              for (int t = 0; t < 1; ++t) pairs[t] = __ldg((const float2*)(column + 2 * (lane + 32 * t)));
#pragma unroll
              for (int b = 0; b < 8; ++b) {  // columns 8 b + frag_col, + 1: elements 4 b .. 4 b + 3 of each group
                const float x = __shfl_sync(0xffffffffu, pairs[b / 8].x, 4 * (b % 8) + (lane & 3));
                const float y = __shfl_sync(0xffffffffu, pairs[b / 8].y, 4 * (b % 8) + (lane & 3));
#pragma unroll
                for (int g = 0; g < 1; ++g)
#pragma unroll
                  for (int e = 0; e < 4; ++e) {
                    const int j = 4 * b + e;
                    const float value = e % 2 ? y : x;
                    r_s_1[0][g][j] = ex2(fmaf(r_s_1[0][g][j], 1.275174308e-01f, -value));
                  }
              }
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213208) + q % 1); } }  // sfu:p.0>p.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213216) + q % 1); } }  // sfu:p.1>p.0.full
          }
        }
        {  // ds.1 (stage 1, offset 1412)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213168) + q % 1, ((u32)(q / 1) & 1u)); } }  // alu:convertDS.0>ds.1.full
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* s.1 completed */ reg_fence(r_dp_1[0]); reg_fence(r_s_1[0]); }
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* dp.1 completed */ reg_fence(r_dp_1[0]); reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dv.1 completed */ reg_fence(r_dp_1[0]); reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dk.1 completed */ reg_fence(r_dp_1[0]); reg_fence(r_s_1[0]); }
            if (i - 1 >= 0 && i - 1 < trips) { wgmma_wait<0>();  /* dq.1 completed */ reg_fence(r_dp_1[0]); reg_fence(r_s_1[0]); }
            // dS^T = P^T (dP^T - Delta_i), over dP
{
              const float* column = Delta + ((size_t)batch * H + head) * SQ + (size_t)i * 64;
              float2 pairs[1];
#pragma unroll
              for (int t = 0; t < 1; ++t) pairs[t] = __ldg((const float2*)(column + 2 * (lane + 32 * t)));
#pragma unroll
              for (int b = 0; b < 8; ++b) {  // columns 8 b + frag_col, + 1: elements 4 b .. 4 b + 3 of each group
                const float x = __shfl_sync(0xffffffffu, pairs[b / 8].x, 4 * (b % 8) + (lane & 3));
                const float y = __shfl_sync(0xffffffffu, pairs[b / 8].y, 4 * (b % 8) + (lane & 3));
#pragma unroll
                for (int g = 0; g < 1; ++g)
#pragma unroll
                  for (int e = 0; e < 4; ++e) {
                    const int j = 4 * b + e;
                    const float value = e % 2 ? y : x;
                    r_dp_1[0][g][j] = r_s_1[0][g][j] * (r_dp_1[0][g][j] - value);
                  }
              }
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213176) + q % 1); } }  // alu:convertDS.0>ds.1.empty
          }
        }
        {  // convertP.1 (stage 1, offset 1486)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            {  // P^T in 16 bits, packed pairs over the first half of its registers (word w reads 2 w, 2 w + 1 >= w)
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int w = 0; w < 16; ++w) r_s_1[0][g][w] = __uint_as_float(pack_16x2<true>(r_s_1[0][g][2 * w], r_s_1[0][g][2 * w + 1]));
            }
          }
        }
        {  // convertDS.1 (stage 1, offset 1560)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213128) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // convertDS.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213192) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alu:convertDS.1>ds.0.empty
            {  // dS^T in 16 bits, packed pairs over the first half of its registers (word w reads 2 w, 2 w + 1 >= w)
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int w = 0; w < 16; ++w) r_dp_1[0][g][w] = __uint_as_float(pack_16x2<true>(r_dp_1[0][g][2 * w], r_dp_1[0][g][2 * w + 1]));
            }
            {  // convertDS 16-bit, boxed and swizzled, into dp.1's slot
              const u32 to = smem_u32(smem + 98304 + ((i - 0) % 1) * 16384);
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int w = 0; w < 16; ++w) {
                  const int r = 64 * g + frag_row + 8 * (w % 2), c = 8 * (w / 2) + frag_col;
                  st_shared_u32(to + (c / 64) * 8192 + 128 * r + 16 * (((c % 64) / 8) ^ (r % 8)) + 2 * (c % 8), as_u32(r_dp_1[0][g][w]));
                }
              fence_proxy_async();
            }
            named_bar_sync(4, 128);  // every warp of the role is done  // the role's slot reads and writes are done before its arrivals
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213120) + q % 1); } }  // convertDS.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213184) + q % 1); } }  // alu:convertDS.1>ds.0.full
          }
        }
        {  // dv.1 (stage 1, offset 1634)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213040) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadDO.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213296) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dv.0>dv.1.full
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* s.1 completed */ }
            {
              const unsigned char* b_tile = (smem + 49152 + ((i - 0) % 2) * 16384);
              u32 a_frag[1][16];  // convertP's packed pairs as 32-bit registers, defined before the fence
#pragma unroll
              for (int r = 0; r < 1; ++r)
#pragma unroll
                for (int j = 0; j < 16; ++j) a_frag[r][j] = as_u32(r_s_1[0][r][j]);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 4; ++ks) {
                wgmma_m64n128k16_f32_bf16_rs_tb(r_dv_1[0][0], as_u32(a_frag[0][4 * ks]), as_u32(a_frag[0][4 * ks + 1]), as_u32(a_frag[0][4 * ks + 2]), as_u32(a_frag[0][4 * ks + 3]), wgmma_desc_mn(b_tile, 8192, ks), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213304) + q % 1); } }  // tc:dv.0>dv.1.empty
            wgmma_wait<0>();  // the signals below are at dv.1's completion
            named_bar_sync(4, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213056) + q % 2); } }  // loadDO.empty
          }
        }
        {  // dq.1 (stage 1, offset 1890)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213072) + q % 1, ((u32)(q / 1) & 1u)); } }  // dp.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213104) + q % 1, ((u32)(q / 1) & 1u)); } }  // convertDS.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213160) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // dq.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213320) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dq.1>dq.0.empty
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* dp.1 completed */ }
            {
              const unsigned char* a_parts[2] = {((const unsigned char*)(smem + 81920 + ((i - 0) % 1) * 16384)), ((const unsigned char*)(smem + 98304 + ((i - 0) % 1) * 16384))};  // convertDS's parts, 64 K rows each
              const unsigned char* b_tile = smem + 147456;
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                if (ks == 0) wgmma_m64n64k16_f32_bf16_ss_ta_tb_zero(r_dq_1[0][0], wgmma_desc_mn(a_parts[ks / 4] + 0, 8192, ks % 4), wgmma_desc_mn(b_tile + 16384, 16384, ks), 0);
                else wgmma_m64n64k16_f32_bf16_ss_ta_tb(r_dq_1[0][0], wgmma_desc_mn(a_parts[ks / 4] + 0, 8192, ks % 4), wgmma_desc_mn(b_tile + 16384, 16384, ks), 1);
              }
              wgmma_commit();
            }
            wgmma_wait<0>();  // dq.1's result is staged for another role: its groups have completed
            reg_fence(r_dq_1[0]);
            {  // scale dQ_i (fp32, row-major 64 x 64) into dq.1's slot for the TMA reduce
              float* to = (float*)(smem + 131072 + ((i - 0) % 1) * 16384);
#pragma unroll
              for (int g = 0; g < 1; ++g)
#pragma unroll
                for (int j = 0; j < 32; j += 2)
                  *(float2*)(to + (64 * g + frag_row + 8 * ((j / 2) % 2)) * 64 + 8 * (j / 4) + frag_col) = make_float2(8.838834765e-02f * r_dq_1[0][g][j], 8.838834765e-02f * r_dq_1[0][g][j + 1]);
              fence_proxy_async();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213312) + q % 1); } }  // tc:dq.1>dq.0.full
            wgmma_wait<0>();  // the signals below are at dq.1's completion
            named_bar_sync(4, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213080) + q % 1); } }  // dp.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213112) + q % 1); } }  // convertDS.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213152) + q % 1); } }  // dq.1.full
          }
        }
        {  // dk.1 (stage 1, offset 2402)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 212992) + q % 3, ((u32)(q / 3) & 1u)); } }  // loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213328) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dq.0>dk.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 213352) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dk.1>dk.0.empty
            if (i - 0 >= 0 && i - 0 < trips) { wgmma_wait<0>();  /* dp.1 completed */ }
            {
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 3) * 16384);
              u32 a_frag[1][16];  // convertDS's packed pairs as 32-bit registers, defined before the fence
#pragma unroll
              for (int r = 0; r < 1; ++r)
#pragma unroll
                for (int j = 0; j < 16; ++j) a_frag[r][j] = as_u32(r_dp_1[0][r][j]);
              wgmma_fence();
#pragma unroll
              for (int ks = 0; ks < 4; ++ks) {
                wgmma_m64n128k16_f32_bf16_rs_tb(r_dk_1[0][0], as_u32(a_frag[0][4 * ks]), as_u32(a_frag[0][4 * ks + 1]), as_u32(a_frag[0][4 * ks + 2]), as_u32(a_frag[0][4 * ks + 3]), wgmma_desc_mn(b_tile, 8192, ks), 1);
              }
              wgmma_commit();
            }
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213336) + q % 1); } }  // tc:dq.0>dk.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213344) + q % 1); } }  // tc:dk.1>dk.0.full
            wgmma_wait<0>();  // the signals below are at dk.1's completion
            named_bar_sync(4, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 213016) + q % 3); } }  // loadQ.empty
          }
        }
      }
      wgmma_wait<0>();
      {  // dV, KV rows kv0 + 64 ..
        auto store = [&](float (&o)[1][64]) {
          reg_fence(o);
#pragma unroll
          for (int g = 0; g < 1; ++g) {
            store_acc_m64n<128>(o[g], dV + ((size_t)batch * SK * H + head) * 128, H * 128, kv0 + 64 + 64 * g, 0, SK, 128);  // [batch, row, head, :]
          }
        };
        switch (((trips - 1) % 1 + 1) % 1) {
          default: store(r_dv_1[0]); break;
        }
      }
      {  // scale dK, KV rows kv0 + 64 ..
        auto store = [&](float (&o)[1][64]) {
          reg_fence(o);
#pragma unroll
          for (int g = 0; g < 1; ++g) {
#pragma unroll
            for (int j = 0; j < 64; ++j) o[g][j] *= 8.838834765e-02f;
            store_acc_m64n<128>(o[g], dK + ((size_t)batch * SK * H + head) * 128, H * 128, kv0 + 64 + 64 * g, 0, SK, 128);  // [batch, row, head, :]
          }
        };
        switch (((trips - 1) % 1 + 1) % 1) {
          default: store(r_dk_1[0]); break;
        }
      }
    }
  }

}

