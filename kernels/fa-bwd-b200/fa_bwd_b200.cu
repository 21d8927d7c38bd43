// fa_bwd_b200: fa-bwd on b200 (sm100a), emitted by twill.
// Schedule: II 2330 cycles, 2 stages, 3 roles, 7 channels.
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


extern "C" __global__ void __launch_bounds__(384, 1) fa_bwd_b200(const __grid_constant__ CUtensorMap tmap_Q, const __grid_constant__ CUtensorMap tmap_K, const __grid_constant__ CUtensorMap tmap_V, const __grid_constant__ CUtensorMap tmap_dO, const float* __restrict__ LSE, const float* __restrict__ Delta, const __grid_constant__ CUtensorMap tmap_dQ, float* __restrict__ dK, float* __restrict__ dV, int SQ, int SK, int H, int B) {
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
    for (int s = 0; s < 2; ++s) {
      mbar_init((u64*)(smem + 180224) + s, 1);
      mbar_init((u64*)(smem + 180240) + s, 1);
    }
    for (int s = 0; s < 2; ++s) {
      mbar_init((u64*)(smem + 180256) + s, 1);
      mbar_init((u64*)(smem + 180272) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 180288) + s, 1);
      mbar_init((u64*)(smem + 180296) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 180304) + s, 1);
      mbar_init((u64*)(smem + 180312) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 180320) + s, 1);
      mbar_init((u64*)(smem + 180328) + s, 1);
    }
    for (int s = 0; s < 1; ++s) {
      mbar_init((u64*)(smem + 180336) + s, 1);
      mbar_init((u64*)(smem + 180344) + s, 1);
    }
    for (int s = 0; s < 2; ++s) {
      mbar_init((u64*)(smem + 180352) + s, 1);
      mbar_init((u64*)(smem + 180368) + s, 1);
    }
    mbar_init((u64*)(smem + 180440), 2);  // one commit per role issuing tensor-memory MMAs
    mbar_init((u64*)(smem + 180384), 1);  // K, loaded once
    mbar_init((u64*)(smem + 180392), 1);  // V, loaded once
    fence_mbar_init();
  }
  if (warp == 0) {
    tmem_alloc((uint32_t*)(smem + 180448), 512);
    tmem_relinquish();
  }
  __syncthreads();
  tcgen05_fence_after();
  const u32 tmem_base = *(volatile u32*)(smem + 180448);
  if (warp >= 0 && warp < 4) {
    setmaxnreg_dec<24>();
    if (warp >= 0 && warp < 1) {  // role 0: 1 warp, setmaxnreg 24
      const bool leader = elect_one();  // issues the role's single-thread work and arrivals
      if (leader) { mbar_arrive_expect_tx((u64*)(smem + 180384), 32768); tma_load_4d(smem + 114688, &tmap_K, (u64*)(smem + 180384), 0, head, kv0, batch); tma_load_4d(smem + 114688 + 16384, &tmap_K, (u64*)(smem + 180384), 0 + 64, head, kv0, batch); }
      if (leader) { mbar_arrive_expect_tx((u64*)(smem + 180392), 32768); tma_load_4d(smem + 147456, &tmap_V, (u64*)(smem + 180392), 0, head, kv0, batch); tma_load_4d(smem + 147456 + 16384, &tmap_V, (u64*)(smem + 180392), 0 + 64, head, kv0, batch); }
      for (int k = 0; k < trips + 0; ++k) {
        {  // loadQ (stage 0, offset 0)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180240) + q % 2, ((u32)(q / 2) & 1u) ^ 1u); } }  // loadQ.empty
            { const int q = i - 2; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180352) + q % 2, ((u32)(q / 2) & 1u)); } }  // tma:storeDQ>loadQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) { mbar_arrive_expect_tx((u64*)(smem + 180224) + q % 2, 16384); tma_load_4d(smem + 0 + (q % 2) * 16384, &tmap_Q, (u64*)(smem + 180224) + q % 2, 0, head, i * 64, batch); tma_load_4d(smem + 0 + (q % 2) * 16384 + 8192, &tmap_Q, (u64*)(smem + 180224) + q % 2, 0 + 64, head, i * 64, batch); } } }  // loadQ.full
            { const int q = i - 2; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 180368) + q % 2); } }  // tma:storeDQ>loadQ.empty
          }
        }
        {  // loadDO (stage 0, offset 30)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180272) + q % 2, ((u32)(q / 2) & 1u) ^ 1u); } }  // loadDO.empty
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 180344) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tma:loadDO>storeDQ.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) { mbar_arrive_expect_tx((u64*)(smem + 180256) + q % 2, 16384); tma_load_4d(smem + 32768 + (q % 2) * 16384, &tmap_dO, (u64*)(smem + 180256) + q % 2, 0, head, i * 64, batch); tma_load_4d(smem + 32768 + (q % 2) * 16384 + 8192, &tmap_dO, (u64*)(smem + 180256) + q % 2, 0 + 64, head, i * 64, batch); } } }  // loadDO.full
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 180336) + q % 1); } }  // tma:loadDO>storeDQ.full
          }
        }
      }
    }
  }
  if (warp >= 4 && warp < 8) {
    setmaxnreg_inc<256>();
    if (warp >= 4 && warp < 8) {  // role 1: 4 warps, setmaxnreg 256
      const bool leader = warp == 4 && elect_one();  // issues the role's single-thread work and arrivals
      const int row = 32 * (warp % 4) + (int)(threadIdx.x % 32);  // this thread's tile row = tensor-memory lane
      const u32 lanes = (u32)(32 * (warp % 4)) << 16;             // its warp's lane quarter (PTX ISA "tcgen05.ld")
      float r_ldS[1][64];  // ldS: 1 copy of this thread's row
      float r_ldDP[1][64];  // ldDP: 1 copy of this thread's row
      mbar_wait((u64*)(smem + 180384), 0);  // K has landed
      mbar_wait((u64*)(smem + 180392), 0);  // V has landed
      for (int k = 0; k < trips + 1; ++k) {
        {  // dv (stage 1, offset 4)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180256) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadDO.full
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180320) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dq>dv.full
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* b_tile = (smem + 32768 + ((i - 0) % 2) * 16384);
#pragma unroll
              for (int ks = 0; ks < 4; ++ks) {
                const u32 a_tmem = tmem_base + 0 + 32 + 8 * ks;  // stP: 16-bit, two a column
                umma_f16_ts(tmem_base + 128, a_tmem, umma_desc_mn(b_tile, 8192, ks), umma_idesc_f16(128, 128, true, true, false), (i > 0 || ks > 0) ? 1 : 0);
              }
              umma_commit((u64*)(smem + 180416));  // dv's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 1; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 180328) + q % 1); } }  // tc:dq>dv.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 180272) + q % 2);  /* arrives when dv's MMAs complete */ } }  // loadDO.empty
          }
        }
        {  // dk (stage 1, offset 260)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180224) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadQ.full
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 2) * 16384);
#pragma unroll
              for (int ks = 0; ks < 4; ++ks) {
                const u32 a_tmem = tmem_base + 64 + 32 + 8 * ks;  // stP: 16-bit, two a column
                umma_f16_ts(tmem_base + 256, a_tmem, umma_desc_mn(b_tile, 8192, ks), umma_idesc_f16(128, 128, true, true, false), (i > 0 || ks > 0) ? 1 : 0);
              }
              umma_commit((u64*)(smem + 180424));  // dk's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 180240) + q % 2);  /* arrives when dk's MMAs complete */ } }  // loadQ.empty
          }
        }
        {  // s (stage 0, offset 648)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180224) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadQ.full
            if (i - 1 >= 0 && i - 1 < trips) { tmem_wait_ld();  /* ldS completed */ }
            if (i - 1 >= 0 && i - 1 < trips) { mbar_wait((u64*)(smem + 180416), (u32)(i - 1) & 1u); tcgen05_fence_after();  /* dv completed */ }
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* a_tile = smem + 114688;
              const unsigned char* b_tile = (smem + 0 + ((i - 0) % 2) * 16384);
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                umma_f16(tmem_base + 0, umma_desc_k(a_tile + (ks / 4) * 16384 + 0, ks % 4), umma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), umma_idesc_f16(128, 64, true, false, false), ks > 0 ? 1 : 0);
              }
              umma_commit((u64*)(smem + 180400));  // s's completion, for its own role's waits
            }
            __syncwarp();
          }
        }
        {  // dp (stage 0, offset 904)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180256) + q % 2, ((u32)(q / 2) & 1u)); } }  // loadDO.full
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 180312) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dp>dq.empty
            if (i - 1 >= 0 && i - 1 < trips) { tmem_wait_ld();  /* ldDP completed */ }
            if (i - 1 >= 0 && i - 1 < trips) { mbar_wait((u64*)(smem + 180424), (u32)(i - 1) & 1u); tcgen05_fence_after();  /* dk completed */ }
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* a_tile = smem + 147456;
              const unsigned char* b_tile = (smem + 32768 + ((i - 0) % 2) * 16384);
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                umma_f16(tmem_base + 64, umma_desc_k(a_tile + (ks / 4) * 16384 + 0, ks % 4), umma_desc_k(b_tile + (ks / 4) * 8192, ks % 4), umma_idesc_f16(128, 64, true, false, false), ks > 0 ? 1 : 0);
              }
              umma_commit((u64*)(smem + 180408));  // dp's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 1; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 180304) + q % 1); } }  // tc:dp>dq.full
          }
        }
        {  // ldS (stage 0, offset 1292)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            if (i - 0 >= 0 && i - 0 < trips) { mbar_wait((u64*)(smem + 180400), (u32)(i - 0) & 1u); tcgen05_fence_after();  /* s completed */ }
            if (i - 1 >= 0 && i - 1 < trips) { tmem_wait_ld(); reg_fence(r_ldS[0]);  /* ldDP completed */ }
            {
#pragma unroll
              for (int j = 0; j < 64; j += 32) tmem_ld_32x32b_x32(tmem_base + lanes + 0 + j, &r_ldS[0][j]);  // S^T: tcgen05.ld, waited by its readers
            }
          }
        }
        {  // ldDP (stage 0, offset 1548)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            if (i - 1 >= 0 && i - 1 < trips) { tmem_wait_ld(); reg_fence(r_ldDP[0]);  /* ldS completed */ }
            if (i - 0 >= 0 && i - 0 < trips) { mbar_wait((u64*)(smem + 180408), (u32)(i - 0) & 1u); tcgen05_fence_after();  /* dp completed */ }
            {
#pragma unroll
              for (int j = 0; j < 64; j += 32) tmem_ld_32x32b_x32(tmem_base + lanes + 64 + j, &r_ldDP[0][j]);  // dP^T: tcgen05.ld, waited by its readers
            }
          }
        }
        {  // p (stage 0, offset 1578)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldS[0]);  /* ldS completed */ }
            // P^T = exp2(c S^T - LSE_i), over S^T's registers (one FFMA and one MUFU.EX2 each)
{
              const float4* column = (const float4*)(LSE + ((size_t)batch * H + head) * SQ + (size_t)i * 64);
#pragma unroll
              for (int j4 = 0; j4 < 16; ++j4) {
                const float4 values = __ldg(column + j4);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                  const int j = 4 * j4 + e;
                  const float value = e == 0 ? values.x : e == 1 ? values.y : e == 2 ? values.z : values.w;
                  r_ldS[0][j] = ex2(fmaf(r_ldS[0][j], 1.275174308e-01f, -value));
                }
              }
            }
          }
        }
        {  // ds (stage 0, offset 2148)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            if (i - 0 >= 0 && i - 0 < trips) { tmem_wait_ld(); reg_fence(r_ldDP[0]); reg_fence(r_ldS[0]);  /* ldDP completed */ }
            // dS^T = P^T (dP^T - Delta_i), over dP^T's registers
{
              const float4* column = (const float4*)(Delta + ((size_t)batch * H + head) * SQ + (size_t)i * 64);
#pragma unroll
              for (int j4 = 0; j4 < 16; ++j4) {
                const float4 values = __ldg(column + j4);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                  const int j = 4 * j4 + e;
                  const float value = e == 0 ? values.x : e == 1 ? values.y : e == 2 ? values.z : values.w;
                  r_ldDP[0][j] = r_ldS[0][j] * (r_ldDP[0][j] - value);
                }
              }
            }
          }
        }
        {  // stP (stage 0, offset 2286)
          const int i = k - 0;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180296) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // stP.empty
            {  // P^T and dS^T in 16 bits (cvt.rn.bf16x2.f32, the lower query in the low half) over the upper half of S^T's and dP^T's columns
              u32 p16[32], ds16[32];
#pragma unroll
              for (int w = 0; w < 32; ++w) {
                p16[w] = pack_16x2<true>(r_ldS[0][2 * w], r_ldS[0][2 * w + 1]);
                ds16[w] = pack_16x2<true>(r_ldDP[0][2 * w], r_ldDP[0][2 * w + 1]);
              }
#pragma unroll
              for (int w = 0; w < 32; w += 32) {
                tmem_st_32x32b_x32(tmem_base + lanes + 0 + 32 + w, &p16[w]);
                tmem_st_32x32b_x32(tmem_base + lanes + 64 + 32 + w, &ds16[w]);
              }
              // dS^T into stP's slot for dQ's A (MN-major: KV row r holds 64 contiguous queries a box, query
              // c at byte 128 r + 16 ((c % 64 / 8) ^ (r % 8)) + 2 (c % 8) of box c / 64: the 128-byte swizzle)
              unsigned char* tile = (smem + 65536 + ((i - 0) % 1) * 16384);
#pragma unroll
              for (int c = 0; c < 64; c += 8)
                *(uint4*)(tile + (c / 64) * 16384 + 128 * row + 16 * (((c % 64) / 8) ^ (row % 8))) =
                    make_uint4(ds16[c / 2], ds16[c / 2 + 1], ds16[c / 2 + 2], ds16[c / 2 + 3]);
              fence_proxy_async();  // tcgen05.mma reads the tile through the async proxy
              tmem_wait_st();
            }
            tcgen05_fence_before(); named_bar_sync(2, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 180288) + q % 1); } }  // stP.full
          }
        }
      }
      if (leader && trips > 0) umma_commit((u64*)(smem + 180440));  // the epilogue's accumulators
      {  // dV, KV rows kv0 + 0 ..
        const int kv_row = kv0 + 0 + row;
        if (trips > 0) { mbar_wait((u64*)(smem + 180440), 0); tcgen05_fence_after(); }
        float* out = dV + (((size_t)batch * SK + kv_row) * H + head) * 128;
#pragma unroll 1
        for (int j = 0; j < 128; j += 32) {
          float o[32];
          if (trips > 0) { tmem_ld_32x32b_x32(tmem_base + lanes + 128 + j, o); tmem_wait_ld(); reg_fence(o); }
#pragma unroll
          for (int e = 0; e < 32; ++e) if (kv_row < SK) out[j + e] = trips > 0 ? o[e] : 0.0f;
        }
      }
      {  // scale dK, KV rows kv0 + 0 ..
        const int kv_row = kv0 + 0 + row;
        if (trips > 0) { mbar_wait((u64*)(smem + 180440), 0); tcgen05_fence_after(); }
        float* out = dK + (((size_t)batch * SK + kv_row) * H + head) * 128;
#pragma unroll 1
        for (int j = 0; j < 128; j += 32) {
          float o[32];
          if (trips > 0) { tmem_ld_32x32b_x32(tmem_base + lanes + 256 + j, o); tmem_wait_ld(); reg_fence(o); }
#pragma unroll
          for (int e = 0; e < 32; ++e) if (kv_row < SK) out[j + e] = trips > 0 ? 8.838834765e-02f * o[e] : 0.0f;
        }
      }
    }
  }
  if (warp >= 8 && warp < 12) {
    setmaxnreg_dec<128>();
    if (warp >= 8 && warp < 12) {  // role 2: 4 warps, setmaxnreg 128
      const bool leader = warp == 8 && elect_one();  // issues the role's single-thread work and arrivals
      const int row = 32 * (warp % 4) + (int)(threadIdx.x % 32);  // this thread's tile row = tensor-memory lane
      const u32 lanes = (u32)(32 * (warp % 4)) << 16;             // its warp's lane quarter (PTX ISA "tcgen05.ld")
      mbar_wait((u64*)(smem + 180384), 0);  // K has landed
      mbar_wait((u64*)(smem + 180392), 0);  // V has landed
      for (int k = 1; k < trips + 1; ++k) {
        {  // dq (stage 1, offset 1160)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180288) + q % 1, ((u32)(q / 1) & 1u)); } }  // stP.full
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 180304) + q % 1, ((u32)(q / 1) & 1u)); } }  // tc:dp>dq.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180328) + q % 1, ((u32)(q / 1) & 1u) ^ 1u); } }  // tc:dq>dv.empty
            if (i - 2 >= 0 && i - 2 < trips) { /* storeDQ: its body waited for the reduce's reads */ }
            if (leader) {
              tcgen05_fence_after();
              const unsigned char* a_tile = (smem + 65536 + ((i - 0) % 1) * 16384);
              const unsigned char* b_tile = smem + 114688;
#pragma unroll
              for (int ks = 0; ks < 8; ++ks) {
                umma_f16_ws(tmem_base + 384 + (i % 2) * 64, umma_desc_mn(a_tile, 16384, ks), umma_desc_mn(b_tile, 16384, ks), umma_idesc_f16(64, 128, true, true, true), ks > 0 ? 1 : 0);
              }
              umma_commit((u64*)(smem + 180432));  // dq's completion, for its own role's waits
            }
            __syncwarp();
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 180312) + q % 1); } }  // tc:dp>dq.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 180320) + q % 1); } }  // tc:dq>dv.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) umma_commit((u64*)(smem + 180296) + q % 1);  /* arrives when dq's MMAs complete */ } }  // stP.empty
          }
        }
        {  // storeDQ (stage 1, offset 1804)
          const int i = k - 1;
          if (i >= 0 && i < trips) {
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { mbar_wait((u64*)(smem + 180336) + q % 1, ((u32)(q / 1) & 1u)); } }  // tma:loadDO>storeDQ.full
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { mbar_wait((u64*)(smem + 180368) + q % 2, ((u32)(q / 2) & 1u) ^ 1u); } }  // tma:storeDQ>loadQ.empty
            if (i - 0 >= 0 && i - 0 < trips) { mbar_wait((u64*)(smem + 180432), (u32)(i - 0) & 1u); tcgen05_fence_after();  /* dq completed */ }
            {  // dQ += scale dQ_i: each part from tensor memory (lane L: query L % 64, its columns from
               // 128 (L / 64) / (128 / 64) on), scaled into the fp32 slot, row-major 64 x 128, then a TMA reduce-add
              float* tile = (float*)(smem + 81920 + ((i - 0) % 1) * 32768);
              const int query = row % 64;
#pragma unroll 1
              for (int d = 0; d < 64; d += 32) {
                float v[32];
                tmem_ld_32x32b_x32(tmem_base + lanes + 384 + (i % 2) * 64 + d, v);
                tmem_wait_ld();
                reg_fence(v);
                float* to = tile + 0 + query * 128 + 64 * (row / 64) + d;
#pragma unroll
                for (int e = 0; e < 32; e += 4)
                  *(float4*)(to + e) = make_float4(8.838834765e-02f * v[e], 8.838834765e-02f * v[e + 1], 8.838834765e-02f * v[e + 2], 8.838834765e-02f * v[e + 3]);
              }
              fence_proxy_async();  // the TMA reduce reads the slot through the async proxy
              tcgen05_fence_before();
              named_bar_sync(3, 128);  // every thread's rows are in the slot
              if (leader) {
                tma_reduce_add_4d(&tmap_dQ, tile + 0, 0, head, i * 64, batch);
                bulk_commit_group();
                bulk_wait_group_read<0>();
              }
              named_bar_sync(3, 128);  // the slot has been read: free for the next block
            }
            tcgen05_fence_before(); named_bar_sync(3, 128);  // every warp of the role is done
            { const int q = i - 0; if (q >= 0 && q < trips - 1) { if (leader) mbar_arrive((u64*)(smem + 180344) + q % 1); } }  // tma:loadDO>storeDQ.empty
            { const int q = i - 0; if (q >= 0 && q < trips - 0) { if (leader) mbar_arrive((u64*)(smem + 180352) + q % 2); } }  // tma:storeDQ>loadQ.full
          }
        }
      }
      if (leader && trips > 0) umma_commit((u64*)(smem + 180440));  // the epilogue's accumulators
    }
  }
  __syncthreads();
  tcgen05_fence_before();
  __syncthreads();
  if (warp == 0) tmem_dealloc(tmem_base, 512);
}

