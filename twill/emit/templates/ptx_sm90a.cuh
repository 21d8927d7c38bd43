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
