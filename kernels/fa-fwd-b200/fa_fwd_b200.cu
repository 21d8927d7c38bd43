// fa_fwd_b200: fa-fwd on b200 (sm100a), emitted by twill.
// Schedule: II 3650 cycles, 2 stages, 4 roles, 20 channels.
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

// ptx_sm100a.cuh: Blackwell (sm_100a) device primitives for the kernels that twill emits: tensor
// memory (TMEM) allocation, tcgen05.mma (UMMA) descriptors and issue, commit to an mbarrier,
// TMEM loads. Needs ptx_common.cuh first. All cta_group::1 (no CTA pairs).
// PTX ISA references are to docs.nvidia.com/cuda/parallel-thread-execution, section 9.7.16
// "TensorCore 5th Generation Family Instructions" (section numbers as in PTX ISA 9.x; names are stable).
#pragma once

// ---- TMEM allocation (PTX ISA "tcgen05.alloc, tcgen05.dealloc, tcgen05.relinquish_alloc_permit") ----
// Warp-collective (.sync.aligned): one whole warp calls these. cols: power of 2 in [32, 512].
// The allocated TMEM address (lane 0, first column) is written to *dst_smem (shared memory); read
// it after tcgen05_fence_before(); __syncthreads(); tcgen05_fence_after().
__device__ __forceinline__ void tmem_alloc(uint32_t* dst_smem, uint32_t cols) {
  asm volatile("tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%0], %1;"
               :: "r"(smem_u32(dst_smem)), "r"(cols) : "memory");
}
// After the CTA's last tmem_alloc: lets other CTAs on the SM allocate without waiting on this one.
__device__ __forceinline__ void tmem_relinquish() {
  asm volatile("tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;" ::: "memory");
}
// Same warp as the allocation; `cols` as allocated. All TMEM reads/MMAs must be complete
// (tcgen05_fence_before(); __syncthreads(); then the allocating warp deallocates).
__device__ __forceinline__ void tmem_dealloc(uint32_t taddr, uint32_t cols) {
  asm volatile("tcgen05.dealloc.cta_group::1.sync.aligned.b32 %0, %1;" :: "r"(taddr), "r"(cols) : "memory");
}

// TMEM address (PTX ISA "Tensor Memory Addressing"): bits 31-16 lane, bits 15-0 column.
__device__ __forceinline__ uint32_t tmem_addr(uint32_t base, uint32_t lane, uint32_t col) {
  return base + (lane << 16) + col;
}

// ---- thread-sync fences for tcgen05 (PTX ISA "tcgen05.fence") ----
// before_thread_sync: order prior tcgen05 ops before a following thread barrier / mbarrier arrive;
// after_thread_sync: order following tcgen05 ops after a preceding barrier / mbarrier wait.
__device__ __forceinline__ void tcgen05_fence_before() {
  asm volatile("tcgen05.fence::before_thread_sync;" ::: "memory");
}
__device__ __forceinline__ void tcgen05_fence_after() {
  asm volatile("tcgen05.fence::after_thread_sync;" ::: "memory");
}

// ---- UMMA shared-memory descriptor ----
// PTX ISA 9.7.16.4.1 "Shared Memory Descriptor" (Table "Shared memory descriptor layout", 64 bits):
//   bits  0-13  matrix-descriptor-encode(matrix start address) = (addr & 0x3FFFF) >> 4
//   bits 16-29  matrix-descriptor-encode(leading dimension byte offset) (relative mode)
//   bits 32-45  matrix-descriptor-encode(stride dimension byte offset)
//   bits 46-48  fixed constant 0b001 (the sm100 descriptor "version"; wgmma has no such field)
//   bits 49-51  matrix base offset (0: pattern starts on a 1024-B boundary for 128B swizzle)
//   bit  52     leading dimension stride mode: 0 = relative byte offset
//   bits 53-60  fixed 0
//   bits 61-63  swizzling mode: 0 none, 1 128B with 32B atomicity, 2 = 128-Byte swizzling,
//               4 64B, 6 32B (NOT the sm90 encoding, where 128B is 1 in bits 62-63)
// Tile: the same K-major TMA box as on sm90 (rows of 128 B = 64 bf16/fp16, 128B swizzle, 8-row
// atoms of 1024 B; PTX ISA 9.7.16.3 "Major-ness supported by Strides", 5.5.7 "Swizzling Modes"):
// LBO "not used, assumed to be 1" for swizzled K-major (9.7.16.3.1.1 "Relative offset mode"),
// SBO = 1024 (8 rows x 128 B), base offset 0 (tile 1024-B aligned).
// Cross-checked against the table as quoted by Modular's MMASmemDescriptor docs, and the bit-field
// order of CUTLASS's UMMA::SmemDescriptor (start 14 / pad 2 / LBO 14 / pad 2 / SBO 14 / version /
// base offset 3 / lbo mode 1 / pad / layout type 3 with SWIZZLE_128B = 2): same positions.
__host__ __device__ constexpr u64 umma_desc_encode(u32 smem_addr) {
  return static_cast<u64>((smem_addr & 0x3FFFFu) >> 4)         // bits  0-13: start address
       | (static_cast<u64>(1u) << 16)                           // bits 16-29: LBO (unused, "assumed 1")
       | (static_cast<u64>(1024u >> 4) << 32)                   // bits 32-45: SBO = 1024 B
       | (static_cast<u64>(1u) << 46)                           // bits 46-48: fixed 0b001
       | (static_cast<u64>(2u) << 61);                          // bits 61-63: 2 = 128-Byte swizzling
}
__device__ __forceinline__ u64 umma_desc(const void* smem_tile) {
  return umma_desc_encode(smem_u32(smem_tile));
}
// k-th 16-element (32-byte) K slice of a 64-wide K tile: start address + 32*k, for the same reason
// as wgmma_desc_k in ptx_sm90a.cuh (the swizzle XOR is applied to the computed address; +32 k
// never reaches the row bits [7,10), so the base offset stays 0). k in [0, 4).
__device__ __forceinline__ u64 umma_desc_k(const void* smem_tile, int k) {
  return umma_desc(smem_tile) + static_cast<u64>(2 * k);   // start-address field is in 16-B units
}

// Descriptor of a B operand stored MN-major: K rows of n elements, n contiguous, as TMA boxes of
// {64 elements of n, rows} under the 128B swizzle, box b at byte b * box_bytes (FA's V tile: rows =
// keys, n = head_dim). The canonical MN-major 128B-swizzle layout of the tcgen05 "Shared Memory
// Matrix Layout" section is the wgmma one, ((T,8,m),(8,k)) : ((1,T,LBO),(8T,SBO)) in 16-byte units
// T: 64 contiguous elements of n, the next 64 at LBO; 8 rows of K at 128 B, the next 8 at SBO. So
// LBO = box_bytes and SBO = 1024, with this descriptor's version bits and layout code (above). The
// k-th 16-row K slice starts 16 * 128 B = 2048 B further: whole 1024-B swizzle atoms, base offset 0.
__device__ __forceinline__ u64 umma_desc_mn(const void* smem_tile, u32 box_bytes, int k) {
  return static_cast<u64>(((smem_u32(smem_tile) + 2048u * k) & 0x3FFFFu) >> 4)   // bits  0-13: start address
       | (static_cast<u64>(box_bytes >> 4) << 16)                                 // bits 16-29: LBO
       | (static_cast<u64>(1024u >> 4) << 32)                                     // bits 32-45: SBO = 1024 B
       | (static_cast<u64>(1u) << 46)                                             // bits 46-48: fixed 0b001
       | (static_cast<u64>(2u) << 61);                                            // bits 61-63: 128-Byte swizzling
}

// ---- UMMA instruction descriptor for .kind::f16 ----
// PTX ISA 9.7.16.4.2 "Instruction descriptor", Table "Instruction descriptor format for
// .kind::tf32, .kind::f16, .kind::f8f6f4 and .kind::i8" (32 bits):
//   bits  0-1 sparsity selector (0)   bit 2 sparsity (0 dense)   bit 3 saturate (0)
//   bits  4-5 dtype: F16 = 0, F32 = 1            bit 6 reserved
//   bits  7-9 atype: F16 = 0, BF16 = 1           bits 10-12 btype: F16 = 0, BF16 = 1
//   bit  13/14 negate A/B (0)                    bit 15/16 transpose A/B (0 = K-major)
//   bits 17-22 N >> 3                            bit 23 reserved
//   bits 24-28 M >> 4                            bit 29 reserved   bits 30-31 max shift (.ws only, 0)
// Cross-checked against CUTLASS's UMMA::InstrDescriptor bit-field comments (n_dim_ [17,23),
// m_dim_ [24,29)). Valid shapes for cta_group::1 dense kind::f16: M = 64 with N % 8 == 0 in
// [8, 256], M = 128 with N % 16 == 0 in [16, 256] (PTX ISA "tcgen05 Matrix shape"); K = 16.
// b_mn_major: B stored MN-major (N contiguous), "transpose B" = 1 (FA's V in O += P V); a_mn_major:
// A stored MN-major (M contiguous), "transpose A" = 1 (FA backward's dS, staged as dS^T, in dQ = dS K).
__host__ __device__ constexpr uint32_t umma_idesc_f16(int M, int N, bool bf16, bool b_mn_major = false,
                                                      bool a_mn_major = false) {
  return (1u << 4)                                              // dtype F32
       | ((bf16 ? 1u : 0u) << 7)                                // atype
       | ((bf16 ? 1u : 0u) << 10)                               // btype
       | ((a_mn_major ? 1u : 0u) << 15)                         // transpose A
       | ((b_mn_major ? 1u : 0u) << 16)                         // transpose B
       | (static_cast<uint32_t>(N >> 3) << 17)                  // N >> 3
       | (static_cast<uint32_t>(M >> 4) << 24);                 // M >> 4
}

// ---- UMMA issue (PTX ISA "tcgen05.mma") ----
// D[tmem] = (accumulate ? D : 0) + A[M x 16] * B[N x 16]^T, A and B from shared memory per
// descriptor. Issued by ONE thread (not warp-collective).
__device__ __forceinline__ void umma_f16(uint32_t tmem_d, u64 desc_a, u64 desc_b, uint32_t idesc, int accumulate) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %4, 0;\n\t"
      "tcgen05.mma.cta_group::1.kind::f16 [%0], %1, %2, %3, p;\n\t}"
      :: "r"(tmem_d), "l"(desc_a), "l"(desc_b), "r"(idesc), "r"(accumulate) : "memory");
}

// D[tmem] (+)= A[tmem] * B[N x 16]^T: A read from tensor memory (PTX ISA "tcgen05.mma", the [a-tmem]
// form), M lanes (row r in lane r) of 16 16-bit elements packed two a 32-bit column, so the k-th
// 16-element K slice starts 8 columns further.
__device__ __forceinline__ void umma_f16_ts(uint32_t tmem_d, uint32_t tmem_a, u64 desc_b, uint32_t idesc, int accumulate) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %4, 0;\n\t"
      "tcgen05.mma.cta_group::1.kind::f16 [%0], [%1], %2, %3, p;\n\t}"
      :: "r"(tmem_d), "r"(tmem_a), "l"(desc_b), "r"(idesc), "r"(accumulate) : "memory");
}

// The weight-stationary form (PTX ISA "tcgen05.mma", .ws; cta_group::1, M = 32, 64 or 128): A and B from
// shared memory. For M = 64 its D takes N / 2 columns of all 128 lanes: row r, column c in lane
// r + 64 (c / (N / 2)), column c % (N / 2) ("Data path layout organization", Layout E), where the dense
// M = 64 form leaves half of each warp's lanes unused (Layout F) and takes N columns.
__device__ __forceinline__ void umma_f16_ws(uint32_t tmem_d, u64 desc_a, u64 desc_b, uint32_t idesc, int accumulate) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %4, 0;\n\t"
      "tcgen05.mma.ws.cta_group::1.kind::f16 [%0], %1, %2, %3, p;\n\t}"
      :: "r"(tmem_d), "l"(desc_a), "l"(desc_b), "r"(idesc), "r"(accumulate) : "memory");
}
// Make `bar` track completion of all prior tcgen05 async ops issued by this thread: one arrival
// when they are done (PTX ISA "tcgen05.commit"). Same thread as umma_f16.
__device__ __forceinline__ void umma_commit(uint64_t* bar) {
  asm volatile("tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%0];"
               :: "r"(smem_u32(bar)) : "memory");
}

// ---- TMEM -> registers (PTX ISA "tcgen05.ld", shape 32x32b) ----
// Warp-collective. Thread `lane` of the warp gets r[j] = TMEM[lane base + lane][col + j], j < 32,
// where taddr = tmem_addr(base, 32 * (warp % 4), col): a warp may only access the 32-lane quarter
// (warp id % 4) of TMEM (PTX ISA "tcgen05 Matrix fragments / access restrictions").
// The registers are valid only after tmem_wait_ld().
__device__ __forceinline__ void tmem_ld_32x32b_x32(uint32_t taddr, uint32_t (&r)[32]) {
  asm volatile(
      "tcgen05.ld.sync.aligned.32x32b.x32.b32 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31"
      "}, [%32];"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]), "=r"(r[4]), "=r"(r[5]), "=r"(r[6]), "=r"(r[7]),
        "=r"(r[8]), "=r"(r[9]), "=r"(r[10]), "=r"(r[11]), "=r"(r[12]), "=r"(r[13]), "=r"(r[14]), "=r"(r[15]),
        "=r"(r[16]), "=r"(r[17]), "=r"(r[18]), "=r"(r[19]), "=r"(r[20]), "=r"(r[21]), "=r"(r[22]), "=r"(r[23]),
        "=r"(r[24]), "=r"(r[25]), "=r"(r[26]), "=r"(r[27]), "=r"(r[28]), "=r"(r[29]), "=r"(r[30]), "=r"(r[31])
      : "r"(taddr));
}

// Wait for all prior tcgen05.ld of this thread (PTX ISA "tcgen05.wait").
__device__ __forceinline__ void tmem_wait_ld() {
  asm volatile("tcgen05.wait::ld.sync.aligned;" ::: "memory");
}
// Same, and also pins the destination registers after the wait so the compiler cannot read them
// earlier (the ld asm only names them as its outputs).
template <int R> __device__ __forceinline__ void tmem_wait_ld(uint32_t (&r)[R]) {
  tmem_wait_ld();
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(r[i]) :: "memory");
}

// fp32 view of the same load: r[j] = TMEM[lane][col + j], j < 32 (one row of a 128-row tile per thread).
__device__ __forceinline__ void tmem_ld_32x32b_x32(uint32_t taddr, float* r) {
  uint32_t v[32];
  tmem_ld_32x32b_x32(taddr, v);
#pragma unroll
  for (int j = 0; j < 32; ++j) r[j] = __uint_as_float(v[j]);
}

// ---- registers -> TMEM (PTX ISA "tcgen05.st", shape 32x32b) ----
// Warp-collective, the same lane restriction as tcgen05.ld: thread `lane` writes
// TMEM[lane base + lane][col + j] = r[j], j < 32. Complete only after tmem_wait_st().
__device__ __forceinline__ void tmem_st_32x32b_x32(uint32_t taddr, const uint32_t* r) {
  asm volatile(
      "tcgen05.st.sync.aligned.32x32b.x32.b32 [%0], {"
      "%1, %2, %3, %4, %5, %6, %7, %8, "
      "%9, %10, %11, %12, %13, %14, %15, %16, "
      "%17, %18, %19, %20, %21, %22, %23, %24, "
      "%25, %26, %27, %28, %29, %30, %31, %32};"
      :: "r"(taddr), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3]), "r"(r[4]), "r"(r[5]), "r"(r[6]), "r"(r[7]),
         "r"(r[8]), "r"(r[9]), "r"(r[10]), "r"(r[11]), "r"(r[12]), "r"(r[13]), "r"(r[14]), "r"(r[15]),
         "r"(r[16]), "r"(r[17]), "r"(r[18]), "r"(r[19]), "r"(r[20]), "r"(r[21]), "r"(r[22]), "r"(r[23]),
         "r"(r[24]), "r"(r[25]), "r"(r[26]), "r"(r[27]), "r"(r[28]), "r"(r[29]), "r"(r[30]), "r"(r[31])
      : "memory");
}
__device__ __forceinline__ void tmem_st_32x32b_x32(uint32_t taddr, const float* r) {
  uint32_t v[32];
#pragma unroll
  for (int j = 0; j < 32; ++j) v[j] = __float_as_uint(r[j]);
  tmem_st_32x32b_x32(taddr, v);
}
// Wait for all prior tcgen05.st of this thread (PTX ISA "tcgen05.wait").
__device__ __forceinline__ void tmem_wait_st() {
  asm volatile("tcgen05.wait::st.sync.aligned;" ::: "memory");
}
// Compiler-only fence on registers a tcgen05.ld filled (after tmem_wait_ld): reads stay below the wait.
template <int R> __device__ __forceinline__ void reg_fence(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i]) :: "memory");
}

// ---- optional epilogue helper ----
// Store the fp32 accumulator of an M=128 (cta_group::1) UMMA, BN columns at TMEM column tmem_col0
// of `tmem_base`, to row-major C: TMEM lane i holds row i of D, column j of D is TMEM column
// tmem_col0 + j (PTX ISA "Data path layout organization", the M = 128 layout).
// Called by all 4 warps of a warpgroup (warp % 4 picks the lane quarter = rows 32*(warp%4)..+31);
// each thread stores one row, 32 columns at a time, with row/column guards.
template <int BN>
__device__ __forceinline__ void store_tmem_acc_m128(uint32_t tmem_base, uint32_t tmem_col0, float* C, int ldc,
                                                    int row0, int col0, int M, int N) {
  static_assert(BN % 32 == 0, "BN: multiple of 32");
  const int warp = (static_cast<int>(threadIdx.x) >> 5) & 3, lane = static_cast<int>(threadIdx.x) & 31;
  const int r = row0 + 32 * warp + lane;
#pragma unroll 1
  for (int c = 0; c < BN; c += 32) {
    uint32_t v[32];
    tmem_ld_32x32b_x32(tmem_addr(tmem_base, 32u * warp, tmem_col0 + c), v);
    tmem_wait_ld(v);
    if (r < M) {
      float* p = C + static_cast<long long>(r) * ldc + col0 + c;
#pragma unroll
      for (int j = 0; j < 32; ++j)
        if (col0 + c + j < N) p[j] = __uint_as_float(v[j]);
    }
  }
}


extern "C" __global__ void __launch_bounds__(512, 1) fa_fwd_b200(const __grid_constant__ CUtensorMap tmap_Q, const __grid_constant__ CUtensorMap tmap_K, const __grid_constant__ CUtensorMap tmap_V, float* __restrict__ O, float* __restrict__ LSE, int SQ, int SK, int H, int B) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = (unsigned char*)(((unsigned long long)smem_raw + 1023) & ~1023ull);
  const int warp = __shfl_sync(0xffffffffu, (int)threadIdx.x / 32, 0);
  const bool first_thread = threadIdx.x == 0;
  if (first_thread) {
    prefetch_tensormap(&tmap_Q);
    prefetch_tensormap(&tmap_K);
    prefetch_tensormap(&tmap_V);
  }
  const int q0 = blockIdx.x * 256;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int trips = SK / 128;
  if (first_thread) {
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133120) + s, 1);
      mbar_init((u64*)(smem + 133128) + s, 2);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133136) + s, 1);
      mbar_init((u64*)(smem + 133144) + s, 2);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133152) + s, 1);
      mbar_init((u64*)(smem + 133160) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133168) + s, 1);
      mbar_init((u64*)(smem + 133176) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133184) + s, 1);
      mbar_init((u64*)(smem + 133192) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133200) + s, 1);
      mbar_init((u64*)(smem + 133208) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133216) + s, 1);
      mbar_init((u64*)(smem + 133224) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133232) + s, 1);
      mbar_init((u64*)(smem + 133240) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133248) + s, 1);
      mbar_init((u64*)(smem + 133256) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133264) + s, 1);
      mbar_init((u64*)(smem + 133272) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133280) + s, 1);
      mbar_init((u64*)(smem + 133288) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133296) + s, 1);
      mbar_init((u64*)(smem + 133304) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133312) + s, 1);
      mbar_init((u64*)(smem + 133320) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133328) + s, 1);
      mbar_init((u64*)(smem + 133336) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133344) + s, 1);
      mbar_init((u64*)(smem + 133352) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133360) + s, 1);
      mbar_init((u64*)(smem + 133368) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133376) + s, 1);
      mbar_init((u64*)(smem + 133384) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133392) + s, 1);
      mbar_init((u64*)(smem + 133400) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133408) + s, 1);
      mbar_init((u64*)(smem + 133416) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 133424) + s, 1);
      mbar_init((u64*)(smem + 133432) + s, 1);
    }
    mbar_init((u64*)(smem + 133480), 2);  // one commit per role issuing tensor-memory MMAs
    mbar_init((u64*)(smem + 133440), 1);  // Q, loaded once
    fence_mbar_init();
  }
  if (warp == 0) {
    tmem_alloc((uint32_t*)(smem + 133488), 512);
    tmem_relinquish();
  }
  __syncthreads();
  tcgen05_fence_after();
  const u32 tmem_base = *(volatile u32*)(smem + 133488);
  if (warp >= 0 && warp < 4) {
    setmaxnreg_dec<24>();
    if (warp >= 0 && warp < 1) {  // role 0: 1 warp, setmaxnreg 24
      const bool leader = elect_one();  // issues the role's single-thread work and arrivals
      if (leader) { mbar_arrive_expect_tx((u64*)(smem + 133440), 65536); tma_load_4d(smem + 67584, &tmap_Q, (u64*)(smem + 133440), 0, head, q0, batch); tma_load_4d(smem + 67584 + 32768, &tmap_Q, (u64*)(smem + 133440), 0 + 64, head, q0, batch); }
      for (int k = 0; k < trips + 0; ++k) {
        {  // loadK (stage 0, offset 0)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133128) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // loadK.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) { mbar_arrive_expect_tx((u64*)(smem + 133120) + q % 1, 32768); tma_load_4d(smem + 0 + (q % 1) * 32768, &tmap_K, (u64*)(smem + 133120) + q % 1, 0, head, i * 128, batch); tma_load_4d(smem + 0 + (q % 1) * 32768 + 16384, &tmap_K, (u64*)(smem + 133120) + q % 1, 0 + 64, head, i * 128, batch); } } }  // loadK.full
          }
        }
        {  // loadV (stage 0, offset 2257)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133144) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // loadV.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) { mbar_arrive_expect_tx((u64*)(smem + 133136) + q % 1, 32768); tma_load_4d(smem + 32768 + (q % 1) * 32768, &tmap_V, (u64*)(smem + 133136) + q % 1, 0, head, i * 128, batch); tma_load_4d(smem + 32768 + (q % 1) * 32768 + 16384, &tmap_V, (u64*)(smem + 133136) + q % 1, 0 + 64, head, i * 128, batch); } } }  // loadV.full
          }
        }
      }
    }
  }
  if (warp >= 4 && warp < 8) {
    setmaxnreg_inc<208>();
    if (warp >= 4 && warp < 8) {  // role 1: 4 warps, setmaxnreg 208
      const bool leader = warp == 4 && elect_one();  // issues the role's single-thread work and arrivals
      const int row = 32 * (warp % 4) + (int)(threadIdx.x % 32);  // this thread's tile row = tensor-memory lane
      const u32 lanes = (u32)(32 * (warp % 4)) << 16;             // its warp's lane quarter (PTX ISA "tcgen05.ld")
      float r_rowsum_0[1][1];  // rowsum.0: 1 copy of this thread's row
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int j = 0; j < 1; ++j) r_rowsum_0[c][j] = 0.0f;
      float r_ldS_0[1][128];  // ldS.0: 1 copy of this thread's row
      float r_rowmax_0[1][2];  // rowmax.0: 1 copy of this thread's row
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int j = 0; j < 2; ++j) r_rowmax_0[c][j] = -INFINITY;
      float r_alpha_0[1][1];  // alpha.0: 1 copy of this thread's row
      mbar_wait((u64*)(smem + 133440), 0);  // Q has landed
      for (int k = 0; k < trips + 1; ++k) {
        {  // stP.0 (stage 1, offset 136)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133384) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tmem:stP.0>stP.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133424) + q % 1, ((u32)(q / 1) & 1u)); } }  // tmem:ldS.1>stP.0.full
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS_0[0]);  /* ldS.0 completed */ }
            {
              u32 packed[64];  // P in 16 bits, the lower column in the low half (cvt.rn.bf16x2.f32)
#pragma unroll
              for (int j = 0; j < 64; ++j) packed[j] = pack_16x2<true>(r_ldS_0[0][2 * j], r_ldS_0[0][2 * j + 1]);
#pragma unroll
              for (int j = 0; j < 64; j += 32) tmem_st_32x32b_x32(tmem_base + lanes + 64 + j, &packed[j]);
              tmem_wait_st();
            }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133376) + q % 1); } }  // tmem:stP.0>stP.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133432) + q % 1); } }  // tmem:ldS.1>stP.0.empty
          }
        }
        {  // pv.0 (stage 1, offset 232)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133136) + q % 1, ((u32)(q / 1) & 1u)); } }  // loadV.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133184) + q % 1, ((u32)(q / 1) & 1u)); } }  // rescale.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133224) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // pv.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133360) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:qk.1>pv.0.full
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* b_tile = (smem + 32768 + ((i - 0) % 1) * 32768);
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                const u32 a_tmem = tmem_base + 0 + 64 + 8 * ks;  // stP: 16-bit, two a column
                umma_f16_ts(tmem_base + 256, a_tmem, umma_desc_mn(b_tile, 16384, ks), umma_idesc_f16(128, 128, true, true, false), (i > 0 || ks > 0) ? 1 : 0);
              }
              umma_commit((u64*)(smem + 133464));  // pv.0's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133368) + q % 1); } }  // tc:qk.1>pv.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133144) + q % 1);  /* arrives when pv.0's MMAs complete */ } }  // loadV.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133192) + q % 1);  /* arrives when pv.0's MMAs complete */ } }  // rescale.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133216) + q % 1);  /* arrives when pv.0's MMAs complete */ } }  // pv.0.full
          }
        }
        {  // qk.0 (stage 0, offset 744)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133120) + q % 1, ((u32)(q / 1) & 1u)); } }  // loadK.full
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 133352) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:qk.0>pv.1.empty
            if (i - 1 >= 0 && i - 1 < trips) { tmem_wait_ld();  /* ldS.0 completed */ }
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* a_tile = smem + 67584;
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 1) * 32768);
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                umma_f16(tmem_base + 0, umma_desc_k(a_tile + (ks / 4) * 32768 + 0, ks % 4), umma_desc_k(b_tile + (ks / 4) * 16384, ks % 4), umma_idesc_f16(128, 128, true, false, false), ks > 0 ? 1 : 0);
              }
              umma_commit((u64*)(smem + 133448));  // qk.0's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 133344) + q % 1); } }  // tc:qk.0>pv.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133128) + q % 1);  /* arrives when qk.0's MMAs complete */ } }  // loadK.empty
          }
        }
        {  // rowsum.0 (stage 1, offset 1267)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133248) + q % 1, ((u32)(q / 1) & 1u)); } }  // alu:rescale.1>rowsum.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133272) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alu:rowsum.0>rowsum.1.empty
            {
              float l = 0.0f;  // l = alpha l + rowsum P
#pragma unroll
              for (int j = 0; j < 128; ++j) l += r_ldS_0[0][j];
              r_rowsum_0[0][0] = r_alpha_0[0][0] * r_rowsum_0[0][0] + l;
            }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133256) + q % 1); } }  // alu:rescale.1>rowsum.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133264) + q % 1); } }  // alu:rowsum.0>rowsum.1.full
          }
        }
        {  // ldS.0 (stage 0, offset 1644)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133392) + q % 1, ((u32)(q / 1) & 1u)); } }  // tmem:stP.1>ldS.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133416) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tmem:ldS.0>ldS.1.empty
            if (i - 0 >= 0 && i - 0 < trips) { mbar_wait((u64*)(smem + 133448), (u32)(i - 0) & 1u); tcgen05_fence_after();  /* qk.0 completed */ }
            {
#pragma unroll
              for (int j = 0; j < 128; j += 32) tmem_ld_32x32b_x32(tmem_base + lanes + 0 + j, &r_ldS_0[0][j]);  // S: tcgen05.ld, waited by its readers
            }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133400) + q % 1); } }  // tmem:stP.1>ldS.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133408) + q % 1); } }  // tmem:ldS.0>ldS.1.full
          }
        }
        {  // rowmax.0 (stage 0, offset 2176)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133280) + q % 1, ((u32)(q / 1) & 1u)); } }  // alu:rowsum.1>rowmax.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133304) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alu:rowmax.0>rowmax.1.empty
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS_0[0]); reg_fence(r_rowmax_0[0]);  /* ldS.0 completed */ }
            {
              const float m_old = r_rowmax_0[0][1];  // (m_old, m_new = max(m_old, rowmax S)): the row is this thread's
              float m = m_old;
#pragma unroll
              for (int j = 0; j < 128; ++j) m = fmaxf(m, r_ldS_0[0][j]);
              r_rowmax_0[0][0] = m_old;
              r_rowmax_0[0][1] = m;
            }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133288) + q % 1); } }  // alu:rowsum.1>rowmax.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133296) + q % 1); } }  // alu:rowmax.0>rowmax.1.full
          }
        }
        {  // alpha.0 (stage 0, offset 2637)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133160) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alpha.0.empty
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133312) + q % 1, ((u32)(q / 1) & 1u)); } }  // sfu:exp.1>alpha.0.full
            {
              const float m_new = r_rowmax_0[0][1];  // exp2(c (m_old - m_new)); 1 while the row has seen no key
              r_alpha_0[0][0] = m_new == -INFINITY ? 1.0f : ex2(1.275174308e-01f * (r_rowmax_0[0][0] - m_new));
            }
            { const int q = i - 0; float* slot = (float*)(smem + 65536 + (q % 1) * 512);  // into alpha.0's slot
#pragma unroll
              for (int j = 0; j < 1; ++j) slot[row * 1 + j] = r_alpha_0[0][j]; }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133152) + q % 1); } }  // alpha.0.full
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133320) + q % 1); } }  // sfu:exp.1>alpha.0.empty
          }
        }
        {  // exp.0 (stage 0, offset 2646)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133336) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // sfu:exp.0>alpha.1.empty
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS_0[0]); reg_fence(r_rowmax_0[0]);  /* ldS.0 completed */ }
            {
              const float cm = r_rowmax_0[0][1] == -INFINITY ? 0.0f : 1.275174308e-01f * r_rowmax_0[0][1];  // P = exp2(c S - c m_new), over S
#pragma unroll
              for (int j = 0; j < 128; ++j) r_ldS_0[0][j] = ex2(fmaf(r_ldS_0[0][j], 1.275174308e-01f, -cm));
            }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133328) + q % 1); } }  // sfu:exp.0>alpha.1.full
          }
        }
      }
      if (leader && trips > 0) umma_commit((u64*)(smem + 133480));  // the epilogue's accumulators
      {
        const int q_row = q0 + 0 + row;
        float sum = 0.0f, top = -INFINITY;
#pragma unroll
        for (int c = 0; c < 1; ++c) if (c == (trips - 1 + 1) % 1) sum = r_rowsum_0[c][0];  // the copies of iteration trips - 1
#pragma unroll
        for (int c = 0; c < 1; ++c) if (c == (trips - 1 + 1) % 1) top = r_rowmax_0[c][1];
        const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
        if (trips > 0) { mbar_wait((u64*)(smem + 133480), 0); tcgen05_fence_after(); }
        float* out = O + (((size_t)batch * SQ + q_row) * H + head) * 128;
#pragma unroll 1
        for (int j = 0; j < 128; j += 32) {
          float o[32];
          if (trips > 0) { tmem_ld_32x32b_x32(tmem_base + lanes + 256 + j, o); tmem_wait_ld(); reg_fence(o); }
#pragma unroll
          for (int e = 0; e < 32; ++e) if (q_row < SQ) out[j + e] = trips > 0 ? o[e] * inverse : 0.0f;
        }
        if (q_row < SQ) LSE[((size_t)batch * H + head) * SQ + q_row] = sum > 0.0f ? 1.275174308e-01f * top + log2f(sum) : -INFINITY;
      }
    }
  }
  if (warp >= 8 && warp < 12) {
    setmaxnreg_inc<208>();
    if (warp >= 8 && warp < 12) {  // role 2: 4 warps, setmaxnreg 208
      const bool leader = warp == 8 && elect_one();  // issues the role's single-thread work and arrivals
      const int row = 32 * (warp % 4) + (int)(threadIdx.x % 32);  // this thread's tile row = tensor-memory lane
      const u32 lanes = (u32)(32 * (warp % 4)) << 16;             // its warp's lane quarter (PTX ISA "tcgen05.ld")
      float r_alpha_1[1][1];  // alpha.1: 1 copy of this thread's row
      float r_rowsum_1[1][1];  // rowsum.1: 1 copy of this thread's row
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int j = 0; j < 1; ++j) r_rowsum_1[c][j] = 0.0f;
      float r_ldS_1[1][128];  // ldS.1: 1 copy of this thread's row
      float r_rowmax_1[1][2];  // rowmax.1: 1 copy of this thread's row
#pragma unroll
      for (int c = 0; c < 1; ++c)
#pragma unroll
        for (int j = 0; j < 2; ++j) r_rowmax_1[c][j] = -INFINITY;
      mbar_wait((u64*)(smem + 133440), 0);  // Q has landed
      for (int k = 0; k < trips + 1; ++k) {
        {  // alpha.1 (stage 1, offset 20)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133176) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alpha.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133328) + q % 1, ((u32)(q / 1) & 1u)); } }  // sfu:exp.0>alpha.1.full
            {
              const float m_new = r_rowmax_1[0][1];  // exp2(c (m_old - m_new)); 1 while the row has seen no key
              r_alpha_1[0][0] = m_new == -INFINITY ? 1.0f : ex2(1.275174308e-01f * (r_rowmax_1[0][0] - m_new));
            }
            { const int q = i - 0; float* slot = (float*)(smem + 66560 + (q % 1) * 512);  // into alpha.1's slot
#pragma unroll
              for (int j = 0; j < 1; ++j) slot[row * 1 + j] = r_alpha_1[0][j]; }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133168) + q % 1); } }  // alpha.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133336) + q % 1); } }  // sfu:exp.0>alpha.1.empty
          }
        }
        {  // exp.1 (stage 1, offset 29)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133320) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // sfu:exp.1>alpha.0.empty
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS_1[0]); reg_fence(r_rowmax_1[0]);  /* ldS.1 completed */ }
            {
              const float cm = r_rowmax_1[0][1] == -INFINITY ? 0.0f : 1.275174308e-01f * r_rowmax_1[0][1];  // P = exp2(c S - c m_new), over S
#pragma unroll
              for (int j = 0; j < 128; ++j) r_ldS_1[0][j] = ex2(fmaf(r_ldS_1[0][j], 1.275174308e-01f, -cm));
            }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133312) + q % 1); } }  // sfu:exp.1>alpha.0.full
          }
        }
        {  // stP.1 (stage 1, offset 1169)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133376) + q % 1, ((u32)(q / 1) & 1u)); } }  // tmem:stP.0>stP.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133400) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tmem:stP.1>ldS.0.empty
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS_1[0]);  /* ldS.1 completed */ }
            {
              u32 packed[64];  // P in 16 bits, the lower column in the low half (cvt.rn.bf16x2.f32)
#pragma unroll
              for (int j = 0; j < 64; ++j) packed[j] = pack_16x2<true>(r_ldS_1[0][2 * j], r_ldS_1[0][2 * j + 1]);
#pragma unroll
              for (int j = 0; j < 64; j += 32) tmem_st_32x32b_x32(tmem_base + lanes + 192 + j, &packed[j]);
              tmem_wait_st();
            }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133384) + q % 1); } }  // tmem:stP.0>stP.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133392) + q % 1); } }  // tmem:stP.1>ldS.0.full
          }
        }
        {  // pv.1 (stage 1, offset 1265)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133136) + q % 1, ((u32)(q / 1) & 1u)); } }  // loadV.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133200) + q % 1, ((u32)(q / 1) & 1u)); } }  // rescale.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133240) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // pv.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 133344) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:qk.0>pv.1.full
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* b_tile = (smem + 32768 + ((i - 0) % 1) * 32768);
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                const u32 a_tmem = tmem_base + 128 + 64 + 8 * ks;  // stP: 16-bit, two a column
                umma_f16_ts(tmem_base + 384, a_tmem, umma_desc_mn(b_tile, 16384, ks), umma_idesc_f16(128, 128, true, true, false), (i > 0 || ks > 0) ? 1 : 0);
              }
              umma_commit((u64*)(smem + 133472));  // pv.1's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 133352) + q % 1); } }  // tc:qk.0>pv.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133144) + q % 1);  /* arrives when pv.1's MMAs complete */ } }  // loadV.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133208) + q % 1);  /* arrives when pv.1's MMAs complete */ } }  // rescale.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133232) + q % 1);  /* arrives when pv.1's MMAs complete */ } }  // pv.1.full
          }
        }
        {  // rowsum.1 (stage 1, offset 1395)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133264) + q % 1, ((u32)(q / 1) & 1u)); } }  // alu:rowsum.0>rowsum.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133288) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alu:rowsum.1>rowmax.0.empty
            {
              float l = 0.0f;  // l = alpha l + rowsum P
#pragma unroll
              for (int j = 0; j < 128; ++j) l += r_ldS_1[0][j];
              r_rowsum_1[0][0] = r_alpha_1[0][0] * r_rowsum_1[0][0] + l;
            }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133272) + q % 1); } }  // alu:rowsum.0>rowsum.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133280) + q % 1); } }  // alu:rowsum.1>rowmax.0.full
          }
        }
        {  // qk.1 (stage 0, offset 1777)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133120) + q % 1, ((u32)(q / 1) & 1u)); } }  // loadK.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133368) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:qk.1>pv.0.empty
            if (i - 1 >= 0 && i - 1 < trips) { tmem_wait_ld();  /* ldS.1 completed */ }
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* a_tile = smem + 67584;
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 1) * 32768);
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                umma_f16(tmem_base + 128, umma_desc_k(a_tile + (ks / 4) * 32768 + 16384, ks % 4), umma_desc_k(b_tile + (ks / 4) * 16384, ks % 4), umma_idesc_f16(128, 128, true, false, false), ks > 0 ? 1 : 0);
              }
              umma_commit((u64*)(smem + 133456));  // qk.1's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133360) + q % 1); } }  // tc:qk.1>pv.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 133128) + q % 1);  /* arrives when qk.1's MMAs complete */ } }  // loadK.empty
          }
        }
        {  // ldS.1 (stage 0, offset 2677)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133408) + q % 1, ((u32)(q / 1) & 1u)); } }  // tmem:ldS.0>ldS.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133432) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tmem:ldS.1>stP.0.empty
            if (i - 0 >= 0 && i - 0 < trips) { mbar_wait((u64*)(smem + 133456), (u32)(i - 0) & 1u); tcgen05_fence_after();  /* qk.1 completed */ }
            {
#pragma unroll
              for (int j = 0; j < 128; j += 32) tmem_ld_32x32b_x32(tmem_base + lanes + 128 + j, &r_ldS_1[0][j]);  // S: tcgen05.ld, waited by its readers
            }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133416) + q % 1); } }  // tmem:ldS.0>ldS.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133424) + q % 1); } }  // tmem:ldS.1>stP.0.full
          }
        }
        {  // rowmax.1 (stage 0, offset 3209)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133296) + q % 1, ((u32)(q / 1) & 1u)); } }  // alu:rowmax.0>rowmax.1.full
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS_1[0]); reg_fence(r_rowmax_1[0]);  /* ldS.1 completed */ }
            {
              const float m_old = r_rowmax_1[0][1];  // (m_old, m_new = max(m_old, rowmax S)): the row is this thread's
              float m = m_old;
#pragma unroll
              for (int j = 0; j < 128; ++j) m = fmaxf(m, r_ldS_1[0][j]);
              r_rowmax_1[0][0] = m_old;
              r_rowmax_1[0][1] = m;
            }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133304) + q % 1); } }  // alu:rowmax.0>rowmax.1.empty
          }
        }
      }
      if (leader && trips > 0) umma_commit((u64*)(smem + 133480));  // the epilogue's accumulators
      {
        const int q_row = q0 + 128 + row;
        float sum = 0.0f, top = -INFINITY;
#pragma unroll
        for (int c = 0; c < 1; ++c) if (c == (trips - 1 + 1) % 1) sum = r_rowsum_1[c][0];  // the copies of iteration trips - 1
#pragma unroll
        for (int c = 0; c < 1; ++c) if (c == (trips - 1 + 1) % 1) top = r_rowmax_1[c][1];
        const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
        if (trips > 0) { mbar_wait((u64*)(smem + 133480), 0); tcgen05_fence_after(); }
        float* out = O + (((size_t)batch * SQ + q_row) * H + head) * 128;
#pragma unroll 1
        for (int j = 0; j < 128; j += 32) {
          float o[32];
          if (trips > 0) { tmem_ld_32x32b_x32(tmem_base + lanes + 384 + j, o); tmem_wait_ld(); reg_fence(o); }
#pragma unroll
          for (int e = 0; e < 32; ++e) if (q_row < SQ) out[j + e] = trips > 0 ? o[e] * inverse : 0.0f;
        }
        if (q_row < SQ) LSE[((size_t)batch * H + head) * SQ + q_row] = sum > 0.0f ? 1.275174308e-01f * top + log2f(sum) : -INFINITY;
      }
    }
  }
  if (warp >= 12 && warp < 16) {
    setmaxnreg_dec<64>();
    if (warp >= 12 && warp < 16) {  // role 3: 4 warps, setmaxnreg 64
      const bool leader = warp == 12 && elect_one();  // issues the role's single-thread work and arrivals
      const int row = 32 * (warp % 4) + (int)(threadIdx.x % 32);  // this thread's tile row = tensor-memory lane
      const u32 lanes = (u32)(32 * (warp % 4)) << 16;             // its warp's lane quarter (PTX ISA "tcgen05.ld")
      for (int k = 0; k < trips + 1; ++k) {
        {  // rescale.1 (stage 1, offset 232)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133168) + q % 1, ((u32)(q / 1) & 1u)); } }  // alpha.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133208) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // rescale.1.empty
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133232) + q % 1, ((u32)(q / 1) & 1u)); } }  // pv.1.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133256) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // alu:rescale.1>rowsum.0.empty
            {
              const float a = ((float*)(smem + 66560 + ((i - 0) % 1) * 512))[row * 1 + 0];  // O = alpha O in tensor memory: tcgen05.ld, multiply, tcgen05.st
#pragma unroll 1
              for (int j = 0; j < 128; j += 32) {
                float o[32];
                tmem_ld_32x32b_x32(tmem_base + lanes + 384 + j, o);
                tmem_wait_ld();
                reg_fence(o);
#pragma unroll
                for (int e = 0; e < 32; ++e) o[e] *= a;
                tmem_st_32x32b_x32(tmem_base + lanes + 384 + j, o);
              }
              tmem_wait_st();
            }
            tcgen05_fence_before(); named_bar_sync(4, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133176) + q % 1); } }  // alpha.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133200) + q % 1); } }  // rescale.1.full
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133240) + q % 1); } }  // pv.1.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133248) + q % 1); } }  // alu:rescale.1>rowsum.0.full
          }
        }
        {  // rescale.0 (stage 0, offset 2933)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133152) + q % 1, ((u32)(q / 1) & 1u)); } }  // alpha.0.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133192) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // rescale.0.empty
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 133216) + q % 1, ((u32)(q / 1) & 1u)); } }  // pv.0.full
            {
              const float a = ((float*)(smem + 65536 + ((i - 0) % 1) * 512))[row * 1 + 0];  // O = alpha O in tensor memory: tcgen05.ld, multiply, tcgen05.st
#pragma unroll 1
              for (int j = 0; j < 128; j += 32) {
                float o[32];
                tmem_ld_32x32b_x32(tmem_base + lanes + 256 + j, o);
                tmem_wait_ld();
                reg_fence(o);
#pragma unroll
                for (int e = 0; e < 32; ++e) o[e] *= a;
                tmem_st_32x32b_x32(tmem_base + lanes + 256 + j, o);
              }
              tmem_wait_st();
            }
            tcgen05_fence_before(); named_bar_sync(4, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133160) + q % 1); } }  // alpha.0.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133184) + q % 1); } }  // rescale.0.full
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 133224) + q % 1); } }  // pv.0.empty
          }
        }
      }
    }
  }
  __syncthreads();
  tcgen05_fence_before();
  __syncthreads();
  if (warp == 0) tmem_dealloc(tmem_base, 512);
}

