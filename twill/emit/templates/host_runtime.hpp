// twill host twin runtime: the device primitives the emitted control code calls, on CPU threads.
//
// One std::thread per role runs the same control code as the device kernel. Shared memory is one
// byte array laid out exactly as manifest.json's "smem" table; ring slots are written and read at
// those offsets. Each mbarrier keeps the hardware's state (PTX ISA, "mbarrier"): an expected arrival
// count, pending arrivals, a transaction count and the current phase. A phase completes when its
// pending arrivals and its transaction count both reach zero; try_wait.parity(P) succeeds while the
// current phase's parity differs from P (the phase with parity P has completed). A wait that does not
// succeed within the deadline reports a deadlock naming the role, the barrier and the parity, and
// exits 3. Mutex hand-offs give ThreadSanitizer the same happens-before edges the barriers give the
// hardware, so a missing or wrong wait shows up as a data race.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <array>
#include <vector>

typedef uint32_t u32;
typedef uint64_t u64;

struct Dim3 { int x, y, z; };

// A TMA descriptor's host counterpart: a row-major tensor of 16-bit elements (rank 2 to 4, unused
// dimensions 1) and its box, innermost dimension first.
struct CUtensorMap {
  const uint16_t* base;
  int dims[4];      // elements, innermost first
  int box[4];       // elements, innermost first
  int swizzle;      // bytes: 128 (128-byte swizzle) or 0
};

namespace twin {

struct Barrier {
  std::string name;
  u32 expected = 1, pending = 1, phase = 0;
  long long tx = 0;
  std::mutex m;
  std::condition_variable cv;
};

struct Cta {
  uint8_t* smem = nullptr;                 // the dynamic shared memory, base aligned to 1024
  std::map<size_t, Barrier*> barriers;     // by shared-memory offset
  std::vector<std::vector<float>> tmem;    // tensor memory: 128 lanes x columns (fp32)
  std::mutex sync_m;
  std::condition_variable sync_cv;
  int threads = 0, arrived = 0, generation = 0;
  std::mutex copies_m;
  std::vector<std::thread> copies;         // the TMA unit: one thread per copy in flight

  void join_copies() {
    std::lock_guard<std::mutex> lock(copies_m);
    for (std::thread& t : copies) t.join();
    copies.clear();
  }
};

struct Options {
  double timeout = 20.0;                   // seconds before a wait is declared a deadlock
  unsigned delay_seed = 0;                 // nonzero: random delays before TMA data lands
};

inline Options& options() { static Options o; return o; }
inline thread_local Cta* cta = nullptr;
inline thread_local int role = -1;
inline thread_local std::mt19937 rng;

inline Barrier& at(const void* p) {
  size_t offset = (const uint8_t*)p - cta->smem;
  auto it = cta->barriers.find(offset);
  if (it == cta->barriers.end()) {
    std::fprintf(stderr, "twin: role %d: no mbarrier at shared-memory offset %zu\n", role, offset);
    std::_Exit(4);
  }
  return *it->second;
}

inline void complete_if_done(Barrier& b) {
  if (b.pending == 0 && b.tx == 0) {
    b.phase += 1;
    b.pending = b.expected;
    b.cv.notify_all();
  }
}

inline void jitter() {
  if (options().delay_seed) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
}

}  // namespace twin

inline void mbar_init(u64* bar, u32 count) {
  twin::Barrier& b = twin::at(bar);
  std::lock_guard<std::mutex> lock(b.m);
  b.expected = b.pending = count;
  b.phase = 0;
  b.tx = 0;
}

inline void fence_mbar_init() {}
inline void fence_proxy_async() {}

inline void mbar_wait(u64* bar, u32 parity) {
  twin::Barrier& b = twin::at(bar);
  std::unique_lock<std::mutex> lock(b.m);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(twin::options().timeout);
  while ((b.phase & 1u) == parity) {
    if (b.cv.wait_until(lock, deadline) == std::cv_status::timeout && (b.phase & 1u) == parity) {
      std::fprintf(stderr, "deadlock: role %d waits on %s for parity %u (phase %u, %u arrivals and %lld "
                   "bytes pending)\n", twin::role, b.name.c_str(), parity, b.phase, b.pending, b.tx);
      std::fflush(stderr);
      std::_Exit(3);
    }
  }
}

inline void mbar_arrive(u64* bar) {
  twin::Barrier& b = twin::at(bar);
  std::lock_guard<std::mutex> lock(b.m);
  if (b.pending == 0) {
    std::fprintf(stderr, "twin: role %d: arrival on %s beyond its count\n", twin::role, b.name.c_str());
    std::_Exit(4);
  }
  b.pending -= 1;
  twin::complete_if_done(b);
}

inline void mbar_arrive_expect_tx(u64* bar, u32 bytes) {
  twin::Barrier& b = twin::at(bar);
  std::lock_guard<std::mutex> lock(b.m);
  b.tx += bytes;
  b.pending -= 1;
  twin::complete_if_done(b);
}

inline void mbar_complete_tx(u64* bar, u32 bytes) {
  twin::Barrier& b = twin::at(bar);
  std::lock_guard<std::mutex> lock(b.m);
  b.tx -= bytes;
  twin::complete_if_done(b);
}

// The CTA-wide barrier (__syncthreads) among the role threads.
inline void cta_sync() {
  twin::Cta& c = *twin::cta;
  std::unique_lock<std::mutex> lock(c.sync_m);
  int generation = c.generation;
  if (++c.arrived == c.threads) {
    c.arrived = 0;
    c.generation += 1;
    c.sync_cv.notify_all();
  } else {
    c.sync_cv.wait(lock, [&] { return c.generation != generation; });
  }
}

// The byte offset of element (row, col) of a box whose rows are row_bytes long, after the swizzle:
// 128-byte swizzle XORs the 16-byte chunk index (bits 4-6) with the row index within 8 rows (bits 7-9)
// (PTX ISA, "Tensor copy: swizzling modes").
inline size_t box_offset(int row, int col, int row_bytes, int elem_bytes, int swizzle) {
  size_t offset = (size_t)row * row_bytes + (size_t)col * elem_bytes;
  return swizzle == 128 ? offset ^ (((offset >> 7) & 7) << 4) : offset;
}

// cp.async.bulk.tensor.Nd with mbarrier::complete_tx: the box at coordinates c (innermost first);
// out of bounds reads zero. The box lands densely, innermost dimension fastest, rows of box[0]
// elements (swizzled), as on the device. As there, the copy is asynchronous: a thread of its own
// lands the bytes and completes the transaction, so nothing orders it with the issuing role or with
// other copies except the mbarrier.
inline void tma_load(void* dst, const CUtensorMap* map, u64* bar, std::array<int, 4> c) {
  twin::Cta* cta = twin::cta;
  unsigned seed = twin::rng();
  std::lock_guard<std::mutex> lock(cta->copies_m);
  cta->copies.emplace_back([=] {
    twin::cta = cta;
    twin::rng.seed(seed);
    twin::jitter();
    uint8_t* out = (uint8_t*)dst;
    const int* d = map->dims;
    const int* b = map->box;
    int row_bytes = b[0] * 2, row = 0;
    for (int z3 = 0; z3 < b[3]; ++z3)
      for (int z2 = 0; z2 < b[2]; ++z2)
        for (int z1 = 0; z1 < b[1]; ++z1, ++row)
          for (int x = 0; x < b[0]; ++x) {
            int p[4] = {c[0] + x, c[1] + z1, c[2] + z2, c[3] + z3};
            bool inside = true;
            size_t at = 0;
            for (int k = 3; k >= 0; --k) {
              inside = inside && p[k] >= 0 && p[k] < d[k];
              at = at * (size_t)d[k] + (size_t)p[k];
            }
            uint16_t v = inside ? map->base[at] : 0;
            std::memcpy(out + box_offset(row, x, row_bytes, 2, map->swizzle), &v, 2);
          }
    mbar_complete_tx(bar, (u32)(b[0] * b[1] * b[2] * b[3] * 2));
  });
}
inline void tma_load_2d(void* dst, const CUtensorMap* map, u64* bar, int c0, int c1) {
  tma_load(dst, map, bar, {c0, c1, 0, 0});
}
inline void tma_load_4d(void* dst, const CUtensorMap* map, u64* bar, int c0, int c1, int c2, int c3) {
  tma_load(dst, map, bar, {c0, c1, c2, c3});
}

inline float bf16_to_float(uint16_t v) {
  u32 bits = (u32)v << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float fp16_to_float(uint16_t v) {
  _Float16 h;
  std::memcpy(&h, &v, 2);
  return (float)h;
}

// Element (row, col) of a tile of `rows` rows stored as boxes of 64 16-bit columns side by side,
// each box rows x 128 bytes with the 128-byte swizzle (how TMA lays out a tile wider than 128 bytes).
template <bool BF16>
inline float boxed_at(const uint8_t* tile, int rows, int row, int col) {
  uint16_t v;
  std::memcpy(&v, tile + (size_t)(col / 64) * rows * 128 + box_offset(row, col % 64, 128, 2, 128), 2);
  return BF16 ? bf16_to_float(v) : fp16_to_float(v);
}

// The device's ex2_poly (ptx_common.cuh, FA4's emulated exp2): floor for its add rounding down (the
// same n for x < 128), the same fp32 Horner steps and exponent-field add.
inline float ex2_poly(float x, float c1, float c2, float c3) {
  x = std::max(x, -127.0f);
  const float n = std::floor(x);
  const float p = std::fma(std::fma(std::fma(c3, x - n, c2), x - n, c1), x - n, 1.0f);
  u32 bits;
  std::memcpy(&bits, &p, 4);
  bits += (u32)(int)n << 23;
  float y;
  std::memcpy(&y, &bits, 4);
  return y;
}

// fp32 rounded to the nearest 16-bit value (bf16 or fp16) and back, as the device's conversion.
template <bool BF16>
inline float round_16(float x) {
  if (BF16) {
    u32 bits;
    std::memcpy(&bits, &x, 4);
    if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&x, &bits, 4);
    return x;
  }
  return (float)(_Float16)x;
}

// Two values rounded to 16 bits in one 32-bit tensor-memory cell, the lower column in the low half
// (the A operand of tcgen05.mma read from tensor memory: 16-bit elements packed two a 32-bit cell),
// and half h of such a cell as fp32. The twin's cells are floats: the 32 bits are carried as they are.
template <bool BF16>
inline u32 bits_16(float x) {
  x = round_16<BF16>(x);
  if (BF16) { u32 bits; std::memcpy(&bits, &x, 4); return bits >> 16; }
  _Float16 h = (_Float16)x;
  uint16_t v;
  std::memcpy(&v, &h, 2);
  return v;
}
template <bool BF16>
inline float tmem_pack_16x2(float lo, float hi) {
  u32 cell = bits_16<BF16>(lo) | (bits_16<BF16>(hi) << 16);
  float f;
  std::memcpy(&f, &cell, 4);
  return f;
}
template <bool BF16>
inline float tmem_unpack_16(float cell, int h) {
  u32 bits;
  std::memcpy(&bits, &cell, 4);
  uint16_t v = (uint16_t)(bits >> (16 * h));
  return BF16 ? bf16_to_float(v) : fp16_to_float(v);
}

// D[m x n] (+)= A[m x k] B[n x k]^T over swizzled K-major tiles, fp32 accumulation: the tensor core's
// contract for one MMA (wgmma or tcgen05), executed synchronously.
// a and b are boxed tiles of a_rows and n rows; this MMA reads rows a_row .. a_row + m of a.
template <bool BF16>
inline void mma_tile(float* d, int ldd, const uint8_t* a, int a_rows, int a_row, const uint8_t* b, int m, int n,
                     int k, bool accumulate) {
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < n; ++c) {
      float sum = accumulate ? d[(size_t)r * ldd + c] : 0.0f;
      for (int kk = 0; kk < k; ++kk) sum += boxed_at<BF16>(a, a_rows, a_row + r, kk) * boxed_at<BF16>(b, n, c, kk);
      d[(size_t)r * ldd + c] = sum;
    }
}

// A register value staged for an MMA that reads it from shared memory: fp32 rows x cols (row-major)
// rounded to 16 bits and stored as the operand tiles are, boxes of 64 columns with the 128-byte swizzle.
template <bool BF16>
inline void stage_boxed(uint8_t* tile, const float* src, int rows, int cols) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      uint16_t v = (uint16_t)bits_16<BF16>(src[(size_t)r * cols + c]);
      std::memcpy(tile + (size_t)(c / 64) * rows * 128 + box_offset(r, c % 64, 128, 2, 128), &v, 2);
    }
}

// cp.reduce.async.bulk .add.f32 (TMA reduce): dst[row r, column c] += scale * src[r * cols + c] for
// the rows below `limit`, atomically with respect to other reductions (one lock for the twin).
inline void reduce_add(float* dst, size_t ld, const float* src, int rows, int cols, float scale, int limit) {
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  for (int r = 0; r < rows && r < limit; ++r)
    for (int c = 0; c < cols; ++c) dst[(size_t)r * ld + c] += scale * src[(size_t)r * cols + c];
}
