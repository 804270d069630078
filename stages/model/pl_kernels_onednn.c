// The `onednn` backend of the kernel interface (pl_kernels.h): oneDNN matmul primitives in FP32 and BF16 (FP32
// accumulation), created once per shape and reused, nn.Linear weights converted and reordered into the layout the
// primitive prefers once (mat_create), bias / exact GELU / residual add fused as post-ops.
//
// BF16 on CPUs without BF16 dot-product instructions (no AVX512-BF16 or AMX in oneDNN's effective ISA: Skylake,
// Cascade Lake, Ice Lake, Zen 3): oneDNN's own BF16 matmul there is an emulation (gemm:jit) that runs ~2.5x slower
// than FP32 and whose rows depend on how many rows one call has, which would break the row independence promised
// below. So on such CPUs this backend "widens": every BF16 operand becomes an exact FP32 copy (A rounded to BF16
// first where it comes as FP32) in the calling thread's buffer and the FP32 primitives compute it. The products and
// the FP32 accumulation are those BF16 promises; the speed is FP32's, and a warning says so once.
//
// Threads: oneDNN is built on OpenMP (Debian's libdnnl). Every thread that calls this backend first sets its own
// OpenMP thread count to 1, so each primitive runs single-threaded on the calling thread inside protloc's pool and no
// OpenMP team ever starts next to it (one pool per process). Each calling thread gets a slot (a oneDNN stream and one
// set of memory objects per plan), so executing a primitive allocates nothing.
// Primitives live in a process-wide table keyed by shape (never freed before exit; the ViT's blocks share theirs); a
// PlKernelMat owns its packed weights.
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_dispatch.h"
#include "pl_kernels.h"
#include "pl_log.h"

#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
void omp_set_num_threads(int n);   // libgomp (oneDNN's runtime); declared here to avoid -fopenmp on the whole library
#endif

#define ONEDNN_SLOTS 256       // calling threads with their own stream and memory objects
#define ONEDNN_GEMM_PLANS 4096 // shapes in the process-wide gemm table (open addressing)

enum { ARG_SRC, ARG_WEI, ARG_BIAS, ARG_DST, ARG_SCRATCH, ARG_COUNT };

// One primitive for one shape, and its memory objects per calling thread.
typedef struct OnednnPlan {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md[ARG_COUNT];
    int has_bias;
    size_t scratch_bytes;   // the primitive's scratchpad (user mode: each calling thread passes its own)
    _Atomic(dnnl_memory_t) mem[ONEDNN_SLOTS][ARG_COUNT];   // created by the slot's own thread on its first call
} OnednnPlan;

static dnnl_engine_t onednn_engine;
static dnnl_status_t onednn_engine_status = dnnl_runtime_error;
static pthread_once_t onednn_once = PTHREAD_ONCE_INIT;
static dnnl_stream_t onednn_streams[ONEDNN_SLOTS];
// Each slot's scratchpad buffer, grown (by its own thread only) to the largest scratchpad its plans need: with the
// scratchpad in user mode a primitive holds no mutable state, so threads may execute the same one at once.
static void *onednn_scratch[ONEDNN_SLOTS];
static size_t onednn_scratch_size[ONEDNN_SLOTS];
// Each slot's FP32 buffer for widened BF16 operands (see the top), grown by its own thread to the largest need.
static void *onednn_widen[ONEDNN_SLOTS];
static size_t onednn_widen_size[ONEDNN_SLOTS];
static atomic_int onednn_next_slot;
static _Thread_local int onednn_slot_plus1;   // 0 = this thread has no slot yet, -1 = none to be had

static void onednn_init_engine(void) { onednn_engine_status = dnnl_engine_create(&onednn_engine, dnnl_cpu, 0); }

// The calling thread's slot (creating its stream and setting its OpenMP threads to 1 on first use); -1 when the
// slots are exhausted or oneDNN cannot start (callers then create per-call objects).
static int onednn_slot(void) {
    if (onednn_slot_plus1 > 0) return onednn_slot_plus1 - 1;
    if (onednn_slot_plus1 < 0) return -1;
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
    omp_set_num_threads(1);
#endif
    int s = atomic_fetch_add(&onednn_next_slot, 1);
    if (s >= ONEDNN_SLOTS || dnnl_stream_create(&onednn_streams[s], onednn_engine, dnnl_stream_default_flags) != dnnl_success) {
        onednn_slot_plus1 = -1;
        return -1;
    }
    onednn_slot_plus1 = s + 1;
    return s;
}

static PlStatus onednn_ready(void) {
    pthread_once(&onednn_once, onednn_init_engine);
    if (onednn_engine_status != dnnl_success)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "oneDNN cannot create a CPU engine (status %d)", (int)onednn_engine_status);
    return PL_OK;
}

static int onednn_widened_flag;
static pthread_once_t onednn_widened_once = PTHREAD_ONCE_INIT;

// Whether oneDNN's effective ISA has BF16 dot products (AVX512-BF16, or AMX which includes it).
static int onednn_isa_has_bf16(void) {
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    return (isa & bf16) == bf16;
}

static void onednn_widened_init(void) {
    onednn_widened_flag = !onednn_isa_has_bf16();
    if (onednn_widened_flag)
        pl_log_warn("onednn: this CPU has no BF16 dot-product instructions (AVX512-BF16): BF16 runs as FP32 products "
                    "of BF16-rounded operands, no faster than --precision fp32");
}

// Whether BF16 is widened to FP32 on this CPU (see the top; ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI shows it on any
// AVX-512 CPU).
static int onednn_bf16_widened(void) {
    pthread_once(&onednn_widened_once, onednn_widened_init);
    return onednn_widened_flag;
}

// A buffer of at least `bytes` (> 0), 64-byte aligned, for the calling thread: slot `slot`'s entry of bufs/sizes,
// grown (by that slot's thread only) to the largest request once, then never again; without a slot (slot < 0) one
// allocated for this call, returned in *own for the caller to free. NULL when out of memory.
static void *onednn_slot_buffer(void **bufs, size_t *sizes, int slot, size_t bytes, void **own) {
    *own = NULL;
    if (slot < 0) return posix_memalign(own, 64, bytes) == 0 ? *own : (*own = NULL);
    if (sizes[slot] < bytes) {
        free(bufs[slot]);
        sizes[slot] = 0;
        if (posix_memalign(&bufs[slot], 64, bytes) != 0) bufs[slot] = NULL;
        else sizes[slot] = bytes;
    }
    return bufs[slot];
}

// The calling thread's widening buffer of at least n (> 0) floats (onednn_slot_buffer; *own to free).
static float *onednn_widen_buffer(size_t n, void **own) {
    return onednn_slot_buffer(onednn_widen, onednn_widen_size, onednn_slot(), n * sizeof(float), own);
}

// dst (rows, cols), row stride ldd = the BF16 src (row stride lds) widened exactly.
static void onednn_widen_rows(float *dst, size_t ldd, const uint16_t *src, size_t lds, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) dst[r * ldd + j] = pl_bf16_to_f32(src[r * lds + j]);
}

// dst (rows, cols) = the FP32 src rounded to BF16 (nearest even) and widened back.
static void onednn_round_rows(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++) dst[r * ldd + j] = pl_bf16_to_f32(pl_bf16_from_f32(src[r * lds + j]));
}

// 2-D memory descriptor (rows, cols) with the given strides.
static dnnl_status_t onednn_md(dnnl_memory_desc_t *md, int rows, int cols, dnnl_data_type_t dt, long rs, long cs) {
    dnnl_dims_t dims = {rows, cols}, strides = {rs, cs};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

// A matmul primitive dst (m, n) = scale * src (m, k) wei (k, n) [+ bias] [then gelu | then + sum_scale * dst].
// wei_md may be a blocked layout from a previous primitive. On success *plan owns the primitive.
static PlStatus onednn_plan_create(const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                                   const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst, float scale,
                                   float sum_scale, int gelu, OnednnPlan **out) {
    *out = NULL;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    OnednnPlan *p = NULL;
    dnnl_status_t s = dnnl_matmul_desc_init(&desc, src, wei, bias, dst);
    if (s == dnnl_success) s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && scale != 1.0f) s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
    if (s == dnnl_success && (sum_scale != 0.0f || gelu)) {
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success && sum_scale != 0.0f) s = dnnl_post_ops_append_sum(po, sum_scale);
        if (s == dnnl_success && gelu) s = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &desc, attr, onednn_engine, NULL);
    if (s == dnnl_success) {
        p = calloc(1, sizeof *p);
        if (!p) s = dnnl_out_of_memory;
    }
    if (s == dnnl_success) s = dnnl_primitive_create(&p->prim, pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (p && p->prim) dnnl_primitive_destroy(p->prim);
        free(p);
        return PL_FAIL(PL_ERR_UNSUPPORTED, "oneDNN has no matmul for (%lld x %lld) x (%lld x %lld) %s (status %d)",
                       (long long)src->dims[0], (long long)src->dims[1], (long long)wei->dims[0],
                       (long long)wei->dims[1], src->data_type == dnnl_bf16 ? "bf16" : "f32", (int)s);
    }
    p->md[ARG_SRC] = *src;
    p->md[ARG_WEI] = *wei;
    if (bias) p->md[ARG_BIAS] = *bias;
    p->md[ARG_DST] = *dst;
    p->has_bias = bias != NULL;
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (sp) {
        p->md[ARG_SCRATCH] = *sp;
        p->scratch_bytes = dnnl_memory_desc_get_size(sp);
    }
    dnnl_primitive_desc_destroy(pd);
    *out = p;
    return PL_OK;
}

// Run plan p on these buffers on the calling thread. Returns non-zero only if oneDNN fails (callers fall back).
static int onednn_plan_run(OnednnPlan *p, const void *src, const void *wei, const void *bias, void *dst) {
    static const int arg_id[ARG_COUNT] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD};
    dnnl_exec_arg_t args[ARG_COUNT];
    dnnl_memory_t own[ARG_COUNT] = {0};
    int slot = onednn_slot(), nargs = 0, bad = 0;
    void *scratch = NULL, *own_scratch = NULL;
    if (p->scratch_bytes) {
        scratch = onednn_slot_buffer(onednn_scratch, onednn_scratch_size, slot, p->scratch_bytes, &own_scratch);
        if (!scratch) return 1;
    }
    const void *ptr[ARG_COUNT] = {src, wei, bias, dst, scratch};
    dnnl_stream_t stream = NULL;
    int own_stream = slot < 0;
    if (own_stream) bad |= dnnl_stream_create(&stream, onednn_engine, dnnl_stream_default_flags) != dnnl_success;
    else stream = onednn_streams[slot];
    for (int a = 0; a < ARG_COUNT && !bad; a++) {
        if ((a == ARG_BIAS && !p->has_bias) || (a == ARG_SCRATCH && !p->scratch_bytes)) continue;
        dnnl_memory_t m = slot >= 0 ? atomic_load_explicit(&p->mem[slot][a], memory_order_relaxed) : NULL;
        if (!m) {
            bad |= dnnl_memory_create(&m, &p->md[a], onednn_engine, DNNL_MEMORY_NONE) != dnnl_success;
            if (bad) break;
            if (slot >= 0) atomic_store_explicit(&p->mem[slot][a], m, memory_order_relaxed);
            else own[a] = m;
        }
        bad |= dnnl_memory_set_data_handle(m, (void *)ptr[a]) != dnnl_success;
        args[nargs].arg = arg_id[a];
        args[nargs].memory = m;
        nargs++;
    }
    if (!bad) bad |= dnnl_primitive_execute(p->prim, stream, nargs, args) != dnnl_success;
    for (int a = 0; a < ARG_COUNT; a++)
        if (own[a]) dnnl_memory_destroy(own[a]);
    if (own_stream && stream) dnnl_stream_destroy(stream);
    free(own_scratch);
    return bad;
}

// ---- a process-wide table of plans keyed by shape (GEMMs and linears; identical shapes share one primitive) ----
// One key for both uses: kind 0 = a general GEMM (a, b in memory), kind 1 = a prepared linear (whose weight layout
// follows from (n, k, dt): mat_pick_layout is deterministic), with its flags and whether it has a bias. dt: 0 FP32,
// 1 BF16, 2 a widened BF16 linear (an FP32 primitive on the thread's widened copy of A, with an FP32 C (m, n)).
typedef struct GemmKey {
    int kind, dt, ta, tb, m, n, k, lda, ldb, ldc, flags, has_bias;
    float alpha, beta;
} GemmKey;

typedef struct GemmEntry {
    GemmKey key;
    OnednnPlan *plan;   // NULL: creating it failed (the shape falls back to the portable path, every time)
} GemmEntry;

static GemmEntry *gemm_table[ONEDNN_GEMM_PLANS];
static pthread_mutex_t gemm_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t gemm_hash(const GemmKey *k) {
    const unsigned char *b = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ b[i]) * 1099511628211ull;
    return (size_t)(h % ONEDNN_GEMM_PLANS);
}

static PlStatus gemm_plan_make(const GemmKey *key, const dnnl_memory_desc_t *wei_md, OnednnPlan **out);

// The plan for this shape (created on first use; wei_md: a linear's weight layout); NULL when oneDNN has none (the
// failure is remembered, and recorded as this thread's error) or the table is full.
static OnednnPlan *gemm_plan(const GemmKey *key, const dnnl_memory_desc_t *wei_md) {
    if (onednn_ready() != PL_OK) return NULL;
    size_t h = gemm_hash(key);
    pthread_mutex_lock(&gemm_lock);
    OnednnPlan *plan = NULL;
    for (size_t probe = 0; probe < ONEDNN_GEMM_PLANS; probe++) {
        size_t i = (h + probe) % ONEDNN_GEMM_PLANS;
        GemmEntry *e = gemm_table[i];
        if (e && memcmp(&e->key, key, sizeof *key) == 0) {
            plan = e->plan;
            break;
        }
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e) break;
            e->key = *key;
            if (gemm_plan_make(key, wei_md, &e->plan) != PL_OK && key->kind == 0) {
                pl_log_warn("onednn: %s; using a plain loop for this shape", pl_error_message());
                pl_error_clear();
            }
            gemm_table[i] = e;
            plan = e->plan;
            break;
        }
    }
    pthread_mutex_unlock(&gemm_lock);
    return plan;
}

static PlStatus gemm_plan_make(const GemmKey *key, const dnnl_memory_desc_t *wei_md, OnednnPlan **out) {
    dnnl_memory_desc_t a, b, bias, c;
    dnnl_data_type_t dt = key->dt == 1 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t bdims = {1, key->n};
    int bf16_out = key->dt == 1 && (key->flags & PL_LINEAR_BF16_OUT);
    int ok = onednn_md(&a, key->m, key->k, dt, key->ta ? 1 : key->lda, key->ta ? key->lda : 1) == dnnl_success &&
             onednn_md(&c, key->m, key->n, bf16_out ? dnnl_bf16 : dnnl_f32, key->ldc, 1) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&bias, 2, bdims, dnnl_f32, dnnl_ab) == dnnl_success;
    if (key->kind == 0)
        ok = ok && onednn_md(&b, key->k, key->n, dt, key->tb ? 1 : key->ldb, key->tb ? key->ldb : 1) == dnnl_success;
    else
        b = *wei_md;
    if (!ok) return PL_FAIL(PL_ERR_INTERNAL, "onednn: memory descriptors for %dx%dx%d", key->m, key->n, key->k);
    return onednn_plan_create(&a, &b, key->has_bias ? &bias : NULL, &c, key->alpha, key->beta,
                              (key->flags & PL_LINEAR_GELU) != 0, out);
}

// Portable fallback (a shape oneDNN refuses): plain loops, double accumulation of FP32 products, fixed order.
static void gemm_fallback(int ta, int tb, int m, int n, int k, float alpha, const void *a, int lda, const void *b, int ldb,
                          float beta, float *c, int ldc, int bf16) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                size_t ia = ta ? (size_t)p * lda + i : (size_t)i * lda + p, ib = tb ? (size_t)j * ldb + p : (size_t)p * ldb + j;
                float x = bf16 ? pl_bf16_to_f32(((const uint16_t *)a)[ia]) : ((const float *)a)[ia];
                float y = bf16 ? pl_bf16_to_f32(((const uint16_t *)b)[ib]) : ((const float *)b)[ib];
                s += (double)x * y;
            }
            float *cij = c + (size_t)i * ldc + j;
            *cij = (float)(alpha * s) + (beta != 0.0f ? beta * *cij : 0.0f);
        }
}

static void onednn_gemm_any(int dt, int ta, int tb, int m, int n, int k, float alpha, const void *a, int lda,
                            const void *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    GemmKey key;
    memset(&key, 0, sizeof key);   // padding bytes take part in the hash and the compare
    key.kind = 0;
    key.dt = dt;
    key.ta = !!ta;
    key.tb = !!tb;
    key.m = m;
    key.n = n;
    key.k = k;
    key.lda = lda;
    key.ldb = ldb;
    key.ldc = ldc;
    key.alpha = alpha;
    key.beta = beta;
    if (k <= 0) {   // C = beta C
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = beta != 0.0f ? beta * c[(size_t)i * ldc + j] : 0.0f;
        return;
    }
    OnednnPlan *p = gemm_plan(&key, NULL);
    if (!p || onednn_plan_run(p, a, b, NULL, c) != 0) gemm_fallback(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, dt);
}

static void onednn_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                        int ldb, float beta, float *c, int ldc) {
    onednn_gemm_any(0, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void onednn_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha, const uint16_t *a, int lda,
                             const uint16_t *b, int ldb, float beta, float *c, int ldc) {
    if (!onednn_bf16_widened() || m <= 0 || n <= 0 || k <= 0) {
        onednn_gemm_any(1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    // widened: A and B as stored (transposed or not) into one FP32 buffer, then the FP32 GEMM
    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    size_t na = (size_t)ar * ac, nb = (size_t)br * bc;
    void *own = NULL;
    float *buf = onednn_widen_buffer(na + nb, &own);
    if (!buf) {
        gemm_fallback(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 1);
        return;
    }
    onednn_widen_rows(buf, (size_t)ac, a, (size_t)lda, (size_t)ar, (size_t)ac);
    onednn_widen_rows(buf + na, (size_t)bc, b, (size_t)ldb, (size_t)br, (size_t)bc);
    onednn_gemm_any(0, ta, tb, m, n, k, alpha, buf, ac, buf + na, bc, beta, c, ldc);
    free(own);
}

// ---- prepared nn.Linear weights ----
struct PlKernelMat {
    int n, k;
    PlPrecision precision;
    int widened;                 // BF16 widened to FP32 on this CPU (see the top): data holds FP32 of BF16 values
    dnnl_memory_desc_t wei_md;   // the layout `data` is in (plain (k, n) view of w^T, or a blocked one)
    void *data;                  // packed weights (f32 or bf16)
    int owns_data;               // 0: data borrows the caller's FP32 weight (the plain layout)
    const float *bias;           // borrowed (n), or NULL
};

// The plain layout of w^T: a (k, n) view of the row-major (n, k) weight.
static dnnl_status_t mat_plain_md(dnnl_memory_desc_t *md, int n, int k, dnnl_data_type_t dt) {
    return onednn_md(md, k, n, dt, 1, k);
}

// One reorder of src (memory src_md at src_ptr) into dst_md at dst_ptr.
static PlStatus mat_reorder(const dnnl_memory_desc_t *src_md, const void *src_ptr, const dnnl_memory_desc_t *dst_md,
                            void *dst_ptr) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, src_md, onednn_engine, dst_md, onednn_engine, NULL);
    if (s == dnnl_success) s = dnnl_primitive_create(&prim, pd);
    if (s == dnnl_success) s = dnnl_memory_create(&from, src_md, onednn_engine, (void *)src_ptr);
    if (s == dnnl_success) s = dnnl_memory_create(&to, dst_md, onednn_engine, dst_ptr);
    if (s == dnnl_success) s = dnnl_stream_create(&stream, onednn_engine, dnnl_stream_default_flags);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        s = dnnl_primitive_execute(prim, stream, 2, args);
        if (s == dnnl_success) s = dnnl_stream_wait(stream);
    }
    if (stream) dnnl_stream_destroy(stream);
    if (to) dnnl_memory_destroy(to);
    if (from) dnnl_memory_destroy(from);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success ? PL_OK : PL_FAIL(PL_ERR_UNSUPPORTED, "oneDNN cannot reorder the weights (status %d)", (int)s);
}

static void onednn_mat_destroy(PlKernelMat *mat) {
    if (!mat) return;
    if (mat->owns_data) free(mat->data);
    free(mat);
}

// The weight layout: the one oneDNN's matmul prefers for a typical row count (its brgemm kernels want blocked, for
// BF16 pair-interleaved, weights), in the mat's precision; the plain layout if that is what it picks.
static PlStatus mat_pick_layout(PlKernelMat *mat, dnnl_data_type_t dt, dnnl_memory_desc_t *out) {
    const int m = 256;
    dnnl_memory_desc_t src, wei, bias, dst;
    dnnl_dims_t wdims = {mat->k, mat->n}, bdims = {1, mat->n};
    dnnl_status_t s = onednn_md(&src, m, mat->k, dt, mat->k, 1);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&wei, 2, wdims, dt, dnnl_format_tag_any);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&bias, 2, bdims, dnnl_f32, dnnl_ab);
    if (s == dnnl_success) s = onednn_md(&dst, m, mat->n, dnnl_f32, mat->n, 1);
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    if (s == dnnl_success) s = dnnl_matmul_desc_init(&desc, &src, &wei, mat->bias ? &bias : NULL, &dst);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &desc, NULL, onednn_engine, NULL);
    if (s == dnnl_success) {
        const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if (w) *out = *w;
        else s = dnnl_runtime_error;
        dnnl_primitive_desc_destroy(pd);
    }
    if (s != dnnl_success)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "oneDNN has no %s matmul on this CPU for a (%d, %d) weight (status %d)",
                       dt == dnnl_bf16 ? "BF16" : "FP32", mat->n, mat->k, (int)s);
    return PL_OK;
}

static PlStatus onednn_mat_create(const float *w, const float *bias, int n, int k, PlPrecision precision,
                                  PlKernelMat **out) {
    *out = NULL;
    PL_TRY(onednn_ready());
    if (n < 1 || k < 1) return PL_FAIL(PL_ERR_ARG, "onednn: weight shape (%d, %d)", n, k);
    PlKernelMat *mat = calloc(1, sizeof *mat);
    if (!mat) return PL_ERR_NOMEM;
    mat->n = n;
    mat->k = k;
    mat->precision = precision;
    mat->bias = bias;
    mat->widened = precision == PL_PRECISION_BF16 && onednn_bf16_widened();
    dnnl_data_type_t dt = precision == PL_PRECISION_BF16 && !mat->widened ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t plain_f32, plain_dt;
    float *rounded = NULL;   // widened: w rounded to BF16, as FP32
    PlStatus st = mat_pick_layout(mat, dt, &mat->wei_md);
    if (st == PL_OK && mat->widened) {
        rounded = malloc((size_t)n * (size_t)k * sizeof *rounded);
        if (!rounded) st = PL_FAIL(PL_ERR_NOMEM, "onednn: %zu MiB for a widened BF16 weight", ((size_t)n * k * 4) >> 20);
        else onednn_round_rows(rounded, (size_t)k, w, (size_t)k, (size_t)n, (size_t)k);
    }
    if (st == PL_OK && (mat_plain_md(&plain_f32, n, k, dnnl_f32) != dnnl_success ||
                        mat_plain_md(&plain_dt, n, k, dt) != dnnl_success))
        st = PL_FAIL(PL_ERR_INTERNAL, "onednn: weight descriptors");
    if (st == PL_OK && !mat->widened && dt == dnnl_f32 && dnnl_memory_desc_equal(&mat->wei_md, &plain_f32)) {
        mat->data = (void *)w;   // FP32 and the plain layout: borrow the weights as they are
    } else if (st == PL_OK) {
        size_t bytes = dnnl_memory_desc_get_size(&mat->wei_md);
        if (posix_memalign(&mat->data, 64, (bytes + 63) & ~(size_t)63) != 0) {
            mat->data = NULL;
            st = PL_FAIL(PL_ERR_NOMEM, "onednn: %zu MiB for packed weights", bytes >> 20);
        } else {
            mat->owns_data = 1;
            memset(mat->data, 0, bytes);   // padding of blocked layouts must be zero
            // f32 -> bf16 rounds to nearest even
            st = mat_reorder(&plain_f32, rounded ? rounded : w, &mat->wei_md, mat->data);
        }
    }
    free(rounded);
    if (st != PL_OK) {
        onednn_mat_destroy(mat);
        return st;
    }
    *out = mat;
    return PL_OK;
}

// The table key of mat's linear for (m, lda, ldc, flags). BF16: A is converted into the thread's scratch, packed (m, k),
// unless it comes as BF16 already. Widened BF16: A is always a packed FP32 copy, and C FP32 (a packed (m, n) copy
// when C is BF16).
static GemmKey mat_key(const PlKernelMat *mat, int m, int lda, int ldc, int flags) {
    GemmKey key;
    memset(&key, 0, sizeof key);
    key.kind = 1;
    key.dt = mat->widened ? 2 : mat->precision == PL_PRECISION_BF16;
    key.m = m;
    key.n = mat->n;
    key.k = mat->k;
    key.lda = key.dt == 2 || (key.dt && !(flags & PL_LINEAR_BF16_IN)) ? mat->k : lda;
    key.ldc = key.dt == 2 && (flags & PL_LINEAR_BF16_OUT) ? mat->n : ldc;
    key.flags = flags & (PL_LINEAR_ACCUMULATE | PL_LINEAR_GELU | PL_LINEAR_BF16_IN | PL_LINEAR_BF16_OUT);
    key.has_bias = mat->bias != NULL;
    key.alpha = 1.0f;
    key.beta = (flags & PL_LINEAR_ACCUMULATE) ? 1.0f : 0.0f;
    return key;
}

static PlStatus onednn_mat_plan(PlKernelMat *mat, int m, int lda, int ldc, int flags) {
    if ((flags & PL_LINEAR_ACCUMULATE) && (flags & (PL_LINEAR_GELU | PL_LINEAR_BF16_OUT)))
        return PL_FAIL(PL_ERR_ARG, "linear: accumulating into a GELU or BF16 output is not supported");
    if ((flags & (PL_LINEAR_BF16_IN | PL_LINEAR_BF16_OUT)) && mat->precision != PL_PRECISION_BF16)
        return PL_FAIL(PL_ERR_ARG, "linear: BF16 operands need a BF16 weight");
    if (m < 1) return PL_FAIL(PL_ERR_ARG, "linear: %d rows", m);
    GemmKey key = mat_key(mat, m, lda, ldc, flags);
    if (!gemm_plan(&key, &mat->wei_md))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "onednn: no %s matmul for linear (%d x %d) x (%d x %d)",
                       pl_precision_name(mat->precision), m, mat->k, mat->k, mat->n);
    return PL_OK;
}

// linear() of a widened mat (see the top) with its plan p: A as packed FP32 BF16 values in the thread's buffer, the
// FP32 primitive, and for a BF16 C the FP32 result rounded into it. Non-zero when it could not run.
static int linear_widened(const PlKernelMat *mat, OnednnPlan *p, int m, const void *a, int lda, int flags, void *c,
                          int ldc) {
    size_t k = (size_t)mat->k, n = (size_t)mat->n, na = (size_t)m * k;
    size_t nc = (flags & PL_LINEAR_BF16_OUT) ? (size_t)m * n : 0;
    void *own = NULL;
    float *buf = onednn_widen_buffer(na + nc, &own);
    if (!buf) return 1;
    if (flags & PL_LINEAR_BF16_IN) onednn_widen_rows(buf, k, a, (size_t)lda, (size_t)m, k);
    else onednn_round_rows(buf, k, a, (size_t)lda, (size_t)m, k);
    int bad = onednn_plan_run(p, buf, mat->data, mat->bias, nc ? (void *)(buf + na) : c) != 0;
    if (!bad && nc) pl_bf16_from_f32_rows(c, (size_t)ldc, buf + na, n, (size_t)m, n);
    free(own);
    return bad;
}

static void onednn_linear(const PlKernelMat *mat, int m, const void *a, int lda, int flags, void *c, int ldc,
                          void *scratch) {
    if (m <= 0) return;
    GemmKey key = mat_key(mat, m, lda, ldc, flags);
    OnednnPlan *p = gemm_plan(&key, &mat->wei_md);
    const void *src = a;
    int bad = !p;
    if (p && mat->widened) {
        bad = linear_widened(mat, p, m, a, lda, flags, c, ldc);
    } else if (p) {
        if (mat->precision == PL_PRECISION_BF16 && !(flags & PL_LINEAR_BF16_IN)) {
            pl_bf16_from_f32_rows(scratch, (size_t)mat->k, a, (size_t)lda, (size_t)m, (size_t)mat->k);
            src = scratch;
        }
        bad = onednn_plan_run(p, src, mat->data, mat->bias, c) != 0;
    }
    if (bad) {
        // not reached after mat_plan succeeded for this shape; never leave C silently stale
        pl_log_error("onednn: linear (%d x %d) x (%d x %d) could not run; its output is NaN", m, mat->k, mat->k, mat->n);
        pl_error_clear();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < mat->n; j++) {
                if (flags & PL_LINEAR_BF16_OUT) ((uint16_t *)c)[(size_t)i * ldc + j] = 0x7fc0;   // BF16 NaN
                else ((float *)c)[(size_t)i * ldc + j] = NAN;
            }
    }
}

// 512-row calls measured fastest for the ViT's linears (ViT-B/16 at 512², 2 threads: 87% of the FMA peak against 79%
// with 256-row calls on 48-row boundaries; docs/performance.md)
static const PlKernels onednn_kernels = {"onednn",         1,                  512, onednn_gemm, onednn_gemm_bf16,
                                         onednn_mat_create, onednn_mat_destroy, onednn_mat_plan, onednn_linear};

// Whether oneDNN computes this precision on this CPU: it prepares a small weight.
static PlStatus onednn_probe(PlPrecision precision) {
    static const float w[64 * 64];
    PlKernelMat *mat = NULL;
    PL_TRY(onednn_mat_create(w, NULL, 64, 64, precision, &mat));
    onednn_mat_destroy(mat);
    return PL_OK;
}

// auto's rule (docs/performance.md has the measurements): BF16 needs oneDNN; FP32 runs on oneDNN where the CPU has
// AVX-512 (its packed-weight matmul with fused post-ops: 85% of the FMA peak on ViT-S/16 against OpenBLAS's 77% on
// Zen 4, and OpenBLAS falls to its Haswell kernels where OPENBLAS_CORETYPE=Haswell is set), on OpenBLAS (rank 1)
// elsewhere.
static int onednn_auto_rank(PlPrecision precision) {
    return precision == PL_PRECISION_BF16 || pl_cpu_level() >= PL_CPU_AVX512 ? 2 : 0;
}

static void onednn_version(char *buf, size_t size) {
    const dnnl_version_t *v = dnnl_version();   // the library linked, not the header compiled against
    const char *rt = v->cpu_runtime == DNNL_RUNTIME_OMP   ? "OpenMP"
                     : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "sequential"
                     : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB"
                                                          : "other";
    int hash = v->hash && v->hash[0] && strcmp(v->hash, "N/A") != 0;   // Debian's build has none
    snprintf(buf, size, "oneDNN %d.%d.%d (CPU runtime %s%s%s%s)", v->major, v->minor, v->patch, rt, hash ? ", git " : "",
             hash ? v->hash : "", onednn_isa_has_bf16() ? "" : "; BF16 widened to FP32: no AVX512-BF16");
}

const PlKernelsBackend pl_kernels_onednn_backend = {
    .name = "onednn",
    .description = "oneDNN matmul, FP32 and BF16 (FP32 accumulation); packed weights, bias/GELU/residual fused",
    .probe = onednn_probe,
    .auto_rank = onednn_auto_rank,
    .kernels = &onednn_kernels,
    .version = onednn_version,
    .single_thread = NULL,   // each calling thread sets its own OpenMP threads to 1 (onednn_slot)
    .options = NULL,
};

