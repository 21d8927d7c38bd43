"""NVRTC compile checks of the device primitives in twill/emit/templates (no GPU needed).

Hand-written, minimal warp-specialized GEMM kernels (the kernel ABI of the emitter: two tensor
maps, C, M, N, K) that include the .cuh files, compiled for sm_90a and sm_100a with NVRTC's
embedded ptxas: compile OK, no spills, no stack, no C75xx diagnostics, and the SASS has the
instructions the primitives are meant to produce. Skipped when the cuda extra is missing.
"""

from __future__ import annotations

import re

import pytest

from twill.emit import nvrtc as nv
from twill.emit.emit import wgmma_wrapper

pytestmark = pytest.mark.skipif(not (nv.nvrtc_available() and nv.sass_available()),
                                reason="NVRTC / nvdisasm not available (install the cuda extra)")


# The TMA producer's loop, the same in both test kernels: wait for the slot, expect A's and B's
# bytes on its full barrier, issue both loads.
PRODUCER_LOOP = r"""
#define PRODUCER_LOOP \
  for (int kb = 0; kb < kblocks; ++kb) { \
    const int s = kb % STAGES; \
    const u32 phase = (kb / STAGES) & 1; \
    mbar_wait(&empty[s], phase ^ 1); \
    mbar_arrive_expect_tx(&full[s], A_BYTES + B_BYTES); \
    tma_load_2d(sA + s * A_BYTES, &tmap_A, &full[s], kb * BK, blockIdx.x * BM); \
    tma_load_2d(sB + s * B_BYTES, &tmap_B, &full[s], kb * BK, blockIdx.y * BN); \
  }
"""


def _source(arch_header: str, body: str) -> str:
    wrappers = [wgmma_wrapper(128, "bf16")] if arch_header == "ptx_sm90a.cuh" else []
    return "\n".join([nv.read_template("ptx_common.cuh"), nv.read_template(arch_header), *wrappers, PRODUCER_LOOP,
                      body])


# --------------------------------------------------------------------------------------------
# sm_90a: one TMA producer warp (in a producer warpgroup that gives registers back) and one
# consumer warpgroup doing 4 x wgmma m64n128k16 per 64-wide k-block through a 2-slot ring.

SM90_KERNEL = r"""
#define BM 64
#define BN 128
#define BK 64
#define STAGES 2
#define A_BYTES (BM * BK * 2)
#define B_BYTES (BN * BK * 2)

// Golden values of the descriptor encoders (see ptx_sm90a.cuh for the bit layout).
static_assert(wgmma_desc_encode(0x400u) == 0x4000004000010040ull, "wgmma descriptor bits");
static_assert(wgmma_desc_encode(0x400u + 32u) == wgmma_desc_encode(0x400u) + 2u, "k16 step = +32 B");

extern "C" __global__ void __launch_bounds__(256, 1)
gemm_sm90_test(const __grid_constant__ CUtensorMap tmap_A, const __grid_constant__ CUtensorMap tmap_B,
               float* __restrict__ C, int M, int N, int K) {
  extern __shared__ unsigned char smem_raw[];
  // TMA 128B-swizzled slots start on 1024-B boundaries (descriptor base offset 0).
  unsigned char* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  unsigned char* sA = smem;
  unsigned char* sB = smem + STAGES * A_BYTES;
  __shared__ alignas(8) uint64_t full[STAGES];
  __shared__ alignas(8) uint64_t empty[STAGES];

  const int warp = threadIdx.x / 32;
  const int wg = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    prefetch_tensormap(&tmap_A);
    prefetch_tensormap(&tmap_B);
    for (int s = 0; s < STAGES; ++s) { mbar_init(&full[s], 1); mbar_init(&empty[s], 1); }
    fence_mbar_init();
  }
  __syncthreads();
  const int kblocks = K / BK;

  if (wg == 0) {                       // producer warpgroup: warp 0 issues TMA, the rest idle
    setmaxnreg_dec<40>();
    if (warp == 0 && elect_one()) {
      PRODUCER_LOOP
    }
  } else {                             // consumer warpgroup
    setmaxnreg_inc<232>();
    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;
    wgmma_fence_acc(acc);
    for (int kb = 0; kb < kblocks; ++kb) {
      const int s = kb % STAGES;
      const u32 phase = (kb / STAGES) & 1;
      mbar_wait(&full[s], phase);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < BK / 16; ++k)
        wgmma_m64n128k16_f32_bf16_ss(acc, wgmma_desc_k(sA + s * A_BYTES, k), wgmma_desc_k(sB + s * B_BYTES, k), 1);
      wgmma_commit();
      wgmma_wait<1>();                 // k-block kb-1 has finished reading its slot
      if (kb > 0 && (threadIdx.x % 128) == 0) mbar_arrive(&empty[(kb - 1) % STAGES]);
    }
    wgmma_wait<0>();
    wgmma_fence_acc(acc);
    store_acc_m64n<BN>(acc, C, N, blockIdx.x * BM, blockIdx.y * BN, M, N);
  }
}
"""

# --------------------------------------------------------------------------------------------
# sm_100a: warp 0 = TMA producer, warp 1 = TMEM allocator + single-thread UMMA issuer committing
# to the empty barriers, then all 4 warps read the 128x128 fp32 accumulator from TMEM and store.

SM100_KERNEL = r"""
#define BM 128
#define BN 128
#define BK 64
#define STAGES 2
#define A_BYTES (BM * BK * 2)
#define B_BYTES (BN * BK * 2)

static_assert(umma_desc_encode(0x400u) == 0x4000404000010040ull, "UMMA smem descriptor bits");
static_assert(umma_idesc_f16(128, 128, true) == 0x08200490u, "UMMA instruction descriptor, bf16");
static_assert(umma_idesc_f16(64, 256, false) == 0x04400010u, "UMMA instruction descriptor, fp16");

extern "C" __global__ void __launch_bounds__(128, 1)
gemm_sm100_test(const __grid_constant__ CUtensorMap tmap_A, const __grid_constant__ CUtensorMap tmap_B,
                float* __restrict__ C, int M, int N, int K) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  unsigned char* sA = smem;
  unsigned char* sB = smem + STAGES * A_BYTES;
  __shared__ alignas(8) uint64_t full[STAGES];
  __shared__ alignas(8) uint64_t empty[STAGES];
  __shared__ alignas(8) uint64_t done;
  __shared__ uint32_t tmem_slot;

  const int warp = threadIdx.x / 32;
  if (threadIdx.x == 0) {
    prefetch_tensormap(&tmap_A);
    prefetch_tensormap(&tmap_B);
    for (int s = 0; s < STAGES; ++s) { mbar_init(&full[s], 1); mbar_init(&empty[s], 1); }
    mbar_init(&done, 1);
    fence_mbar_init();
  }
  if (warp == 1) { tmem_alloc(&tmem_slot, BN); tmem_relinquish(); }
  tcgen05_fence_before();
  __syncthreads();
  tcgen05_fence_after();
  const uint32_t tmem = tmem_slot;
  const int kblocks = K / BK;

  if (warp == 0) {
    if (elect_one()) {
      PRODUCER_LOOP
    }
  } else if (warp == 1) {
    if (elect_one()) {
      constexpr uint32_t idesc = umma_idesc_f16(BM, BN, true);
      for (int kb = 0; kb < kblocks; ++kb) {
        const int s = kb % STAGES;
        const u32 phase = (kb / STAGES) & 1;
        mbar_wait(&full[s], phase);
        tcgen05_fence_after();
#pragma unroll
        for (int k = 0; k < BK / 16; ++k)
          umma_f16(tmem, umma_desc_k(sA + s * A_BYTES, k), umma_desc_k(sB + s * B_BYTES, k), idesc,
                   (kb > 0 || k > 0) ? 1 : 0);
        umma_commit(&empty[s]);        // slot s free once these MMAs have read it
      }
      umma_commit(&done);              // accumulator complete
    }
  }
  __syncwarp();
  mbar_wait(&done, 0);
  __syncwarp();
  tcgen05_fence_after();
  store_tmem_acc_m128<BN>(tmem, 0, C, N, blockIdx.x * BM, blockIdx.y * BN, M, N);
  tcgen05_fence_before();
  __syncthreads();
  if (warp == 1) tmem_dealloc(tmem, BN);
}
"""


@pytest.fixture(scope="module")
def sm90():
    result = nv.compile_cuda(_source("ptx_sm90a.cuh", SM90_KERNEL), "sm_90a", name="gemm_sm90_test.cu")
    return result, nv.sass(result.cubin)


@pytest.fixture(scope="module")
def sm100():
    result = nv.compile_cuda(_source("ptx_sm100a.cuh", SM100_KERNEL), "sm_100a", name="gemm_sm100_test.cu")
    return result, nv.sass(result.cubin)


def _clean(result: nv.CompileResult, kernel: str) -> None:
    assert result.cubin[:4] == b"\x7fELF"
    assert set(result.kernels) == {kernel}, result.log
    res = result.kernels[kernel]
    assert (res.spill_stores, res.spill_loads, res.stack) == (0, 0, 0), result.log
    assert result.diagnostics == [], result.log
    assert res.registers > 0 and result.seconds > 0


def test_sm90a_warp_specialized_wgmma(sm90):
    result, text = sm90
    _clean(result, "gemm_sm90_test")
    assert ".target sm_90a" in result.ptx
    assert "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16" in result.ptx
    classes = nv.sass_classes(text)
    for name in ("UTMALDG", "HGMMA", "SYNCS", "USETMAXREG", "WARPGROUP"):
        assert classes.get(name, 0) > 0, (name, classes)
    assert classes.get("HGMMA.64x128x16.F32.BF16", 0) >= 4, classes
    assert sorted(nv.setmaxnreg_values(text)) == [40, 232]     # read from the SASS immediates
    # the same counts are visible in the PTX
    assert sorted(int(v) for v in re.findall(r"setmaxnreg\.(?:inc|dec)\.sync\.aligned\.u32\s+(\d+)", result.ptx)) \
        == [40, 232]


def test_sm100a_warp_specialized_umma(sm100):
    result, text = sm100
    _clean(result, "gemm_sm100_test")
    assert "tcgen05.mma.cta_group::1.kind::f16" in result.ptx
    classes = nv.sass_classes(text)
    assert classes.get("UTMALDG", 0) > 0, classes
    assert any(k.startswith("UTC") and k.endswith("MMA") and "." not in k for k in classes), classes
    for name in ("UTCBAR", "LDTM", "SYNCS"):
        assert classes.get(name, 0) > 0, (name, classes)


def test_summary_for_manifest(sm90):
    result, _ = sm90
    summary = result.summary()
    assert summary["kernel"] == "gemm_sm90_test" and summary["stack"] == 0
    assert summary["setmaxnreg"] and "HGMMA" in summary["sass_classes"]
    assert summary["diagnostics"] == []


def test_wgmma_rejected_on_sm100a():
    with pytest.raises(nv.CompileError, match="wgmma"):
        nv.compile_cuda(_source("ptx_sm90a.cuh", SM90_KERNEL), "sm_100a")


def test_setmaxnreg_without_launch_bounds_is_diagnosed():
    src = _source("ptx_sm90a.cuh", SM90_KERNEL.replace("__launch_bounds__(256, 1)", ""))
    result = nv.compile_cuda(src, "sm_90a")
    assert "C7508" in [code for code, _ in result.diagnostics], result.log


def test_sass_parsers_on_text():
    text = """
        /*1540*/                   USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xe8 ;
        /*1590*/                   USETMAXREG.DEALLOC.CTAPOOL 0x28 ;
        /*15a0*/               @P0 HGMMA.64x128x16.F32.BF16 R24, gdesc[UR4], R24, gsb0 ;
        /*15b0*/              @!P1 SYNCS.PHASECHK.TRANS64.TRYWAIT P1, [UR4+0x8], R3 ;
        /*15c0*/                   IMAD.MOV.U32 R7, RZ, RZ, 0x3f800000 ;
    """
    assert nv.setmaxnreg_values(text) == [232, 40]
    classes = nv.sass_classes(text)
    assert classes["USETMAXREG"] == 2 and classes["HGMMA"] == 1 and classes["SYNCS"] == 1 and classes["IMAD"] == 1
    assert classes["HGMMA.64x128x16.F32.BF16"] == 1 and classes["SYNCS.PHASECHK.TRANS64.TRYWAIT"] == 1
    assert "IMAD.MOV.U32" not in classes
