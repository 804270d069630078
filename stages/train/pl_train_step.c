// Data-parallel training step with a fixed-order gradient tree over micro-batches (see pl_train_step.h).
#include "pl_train_step.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_mpi.h"
#include "pl_train_tensor.h"

#define PL_STEP_ADD_CHUNK 65536          // floats per task of an element-wise add
#define PL_STEP_COMM_CHUNK (1 << 20)     // floats per MPI round of the tree combine

typedef struct Node {
    int start, size;
    float *buf;
} Node;


struct PlTrainStep {
    PlTrainObjective obj;
    PlThreadPool *pool;
    PlTrainStepOptions o;
    int threads, rank, size, M, mb, first, end;
    size_t L;                    // floats of every reduced buffer: the gradient, then (padded) the statistics
    float **freebufs;            // buffers not in use (threads + tree depth of them in all)
    int nfree, nbufs;
    float **leaf;                // (threads) the leaf gradient each task writes
    Node *stack;                 // this rank's tree nodes, in micro-batch order
    int nstack, max_stack;
    float *total;                // the summed gradient (MPI modes)
    double *slot_loss;           // (threads) the loss sum of each task of a round
    double *mb_loss;             // (M) loss sum of every micro-batch
    int *counts;                 // (size) tree nodes per rank
    int *gcounts, *gdispls;      // (size) MPI_Gatherv layout of one chunk, in floats
    int *mcounts, *mdispls;      // (size) micro-batches per rank and the first of each (the loss gather)
    Node *all_nodes;             // rank 0: every rank's nodes (buffers point into recv)
    int n_all;
    float *send, *recv;
    // per-run state read by tasks
    int round_first;
    const void *batch;
    float *add_dst;
    const float *add_src[64];    // add_sum_into's terms (a counter's stack is never 64 deep)
    int add_n;
    size_t add_len;
};

static void range_of(int M, int size, int r, int *a, int *b) {
    *a = (int)((int64_t)M * r / size);
    *b = (int)((int64_t)M * (r + 1) / size);
}

// The nodes a binary counter over leaves [a, b) ends with (and the deepest stack it reaches): written to out
// (start, size) when out is not NULL. Returns the node count.
static int counter_nodes(int a, int b, Node *out, int *max_depth) {
    Node st[64];
    int n = 0, deepest = 0;
    for (int i = a; i < b; i++) {
        st[n++] = (Node){i, 1, NULL};
        while (n >= 2 && st[n - 2].size == st[n - 1].size && st[n - 2].start % (2 * st[n - 2].size) == 0 &&
               st[n - 2].start + st[n - 2].size == st[n - 1].start) {
            st[n - 2].size *= 2;
            n--;
        }
        if (n + 1 > deepest) deepest = n + 1;   // + 1: the merge needs the new leaf while n nodes are held
    }
    if (out) memcpy(out, st, (size_t)n * sizeof *st);
    if (max_depth) *max_depth = deepest;
    return n;
}

static void task_add(void *ctx, int task, int thread) {
    (void)thread;
    PlTrainStep *s = ctx;
    size_t a = (size_t)task * PL_STEP_ADD_CHUNK, b = a + PL_STEP_ADD_CHUNK;
    if (b > s->add_len) b = s->add_len;
    float *restrict d = s->add_dst;
    float v[256];   // the running sum of 256 elements, in L1
    for (size_t i0 = a; i0 < b; i0 += 256) {
        size_t n = b - i0 < 256 ? b - i0 : 256;
        const float *restrict x0 = s->add_src[0] + i0;
        for (size_t i = 0; i < n; i++) v[i] = x0[i];
        for (int t = 1; t < s->add_n; t++) {
            const float *restrict x = s->add_src[t] + i0;
            for (size_t i = 0; i < n; i++) v[i] = x[i] + v[i];
        }
        for (size_t i = 0; i < n; i++) d[i0 + i] += v[i];
    }
}

// dst[i] = dst[i] + (src[n-1][i] + (... + (src[1][i] + src[0][i]))), every sum rounded to float as it is formed (so
// the bits of n pairwise add_into passes in that order, in one pass over the data).
static void add_sum_into(PlTrainStep *s, float *dst, const float *const *src, int n, size_t len) {
    s->add_dst = dst;
    for (int t = 0; t < n; t++) s->add_src[t] = src[t];
    s->add_n = n;
    s->add_len = len;
    pl_threadpool_run(s->pool, task_add, s, (int)((len + PL_STEP_ADD_CHUNK - 1) / PL_STEP_ADD_CHUNK));
}

static void add_into(PlTrainStep *s, float *dst, const float *src, size_t len) { add_sum_into(s, dst, &src, 1, len); }

// Value of tree node (start, k) from the given nodes (which partition [0, M) into tree nodes); NULL when empty.
// Sums land in the left child's buffer.
static float *tree_value(PlTrainStep *s, Node *nodes, int n, int start, int k, size_t len) {
    if (start >= s->M) return NULL;
    for (int i = 0; i < n; i++)
        if (nodes[i].start == start && nodes[i].size == k) return nodes[i].buf;
    if (k <= 1) return NULL;   // unreachable when the nodes partition [0, M)
    float *l = tree_value(s, nodes, n, start, k / 2, len);
    float *r = tree_value(s, nodes, n, start + k / 2, k / 2, len);
    if (l && r) add_into(s, l, r, len);
    return l ? l : r;
}

static int tree_root(int M) {
    int k = 1;
    while (k < M) k *= 2;
    return k;
}

void pl_train_step_destroy(PlTrainStep *s) {
    if (!s) return;
    for (int i = 0; i < s->nfree; i++) free(s->freebufs[i]);
    for (int i = 0; i < s->nstack; i++) free(s->stack[i].buf);
    if (s->leaf)
        for (int i = 0; i < s->threads; i++) free(s->leaf[i]);
    free(s->freebufs);
    free(s->leaf);
    free(s->stack);
    free(s->total);
    free(s->slot_loss);
    free(s->mb_loss);
    free(s->counts);
    free(s->gcounts);
    free(s->gdispls);
    free(s->mcounts);
    free(s->mdispls);
    free(s->all_nodes);
    free(s->send);
    free(s->recv);
    free(s);
}

// The reduced buffers' length: the gradient, then the statistics from a 16-float boundary (the gradient alone when
// there are none).
static size_t reduced_floats(const PlTrainObjective *obj) {
    return obj->stat_floats ? ((obj->param_floats + 15) & ~(size_t)15) + obj->stat_floats : obj->param_floats;
}

PlStatus pl_train_step_create(const PlTrainObjective *obj, PlThreadPool *pool, const PlTrainStepOptions *o,
                              PlTrainStep **out) {
    *out = NULL;
    if (o->global_batch < 1) return PL_FAIL(PL_ERR_ARG, "global batch %d must be >= 1", o->global_batch);
    if (obj->micro_batch < 1 || obj->workers < 1 || !obj->microbatch)
        return PL_FAIL(PL_ERR_ARG, "objective '%s': micro-batch and workers must be >= 1", obj->name);
    PlTrainStep *s = pl_calloc(1, sizeof *s);
    if (!s) return PL_ERR_NOMEM;
    s->obj = *obj;
    s->pool = pool;
    s->o = *o;
    s->threads = pl_threadpool_size(pool);
    if (s->threads > obj->workers) s->threads = obj->workers;
    s->L = reduced_floats(obj);
    s->mb = obj->micro_batch;
    s->M = (o->global_batch + s->mb - 1) / s->mb;
    s->size = 1;
    if (o->use_mpi) {
        PlStatus st = PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &s->rank));
        if (st == PL_OK) st = PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &s->size));
        if (st != PL_OK) {
            free(s);
            return st;
        }
    }
    range_of(s->M, s->size, s->rank, &s->first, &s->end);
    int depth = 0;
    counter_nodes(s->first, s->end, NULL, &depth);
    s->max_stack = depth;
    s->nbufs = s->threads + depth;
    s->freebufs = pl_calloc((size_t)s->nbufs, sizeof *s->freebufs);
    s->leaf = pl_calloc((size_t)s->threads, sizeof *s->leaf);
    s->stack = pl_calloc((size_t)depth + 1, sizeof *s->stack);
    s->slot_loss = pl_calloc((size_t)s->threads, sizeof *s->slot_loss);
    s->mb_loss = pl_calloc((size_t)s->M, sizeof *s->mb_loss);
    s->counts = pl_calloc((size_t)s->size, sizeof *s->counts);
    s->gcounts = pl_calloc((size_t)s->size, sizeof *s->gcounts);
    s->gdispls = pl_calloc((size_t)s->size, sizeof *s->gdispls);
    s->mcounts = pl_calloc((size_t)s->size, sizeof *s->mcounts);
    s->mdispls = pl_calloc((size_t)s->size, sizeof *s->mdispls);
    PlStatus st = PL_OK;
    if (!s->freebufs || !s->leaf || !s->stack || !s->slot_loss || !s->mb_loss || !s->counts || !s->gcounts ||
        !s->gdispls || !s->mcounts || !s->mdispls)
        st = PL_ERR_NOMEM;
    for (int i = 0; i < s->threads && st == PL_OK; i++) {
        s->leaf[i] = pl_train_alloc_slab(s->L);
        if (!s->leaf[i]) st = PL_ERR_NOMEM;
    }
    for (int i = 0; i < depth && st == PL_OK; i++) {
        s->freebufs[s->nfree] = pl_train_alloc_slab(s->L);
        if (!s->freebufs[s->nfree++]) st = PL_ERR_NOMEM;
    }
    if (st == PL_OK && s->size > 1) {
        s->total = pl_train_alloc_slab(s->L);
        int nloc = counter_nodes(s->first, s->end, NULL, NULL), n_all = 0;
        for (int r = 0; r < s->size; r++) {
            int a, b;
            range_of(s->M, s->size, r, &a, &b);
            s->counts[r] = counter_nodes(a, b, NULL, NULL);
            s->mcounts[r] = b - a;
            s->mdispls[r] = a;
            n_all += s->counts[r];
        }
        s->n_all = n_all;
        s->all_nodes = pl_calloc((size_t)n_all + 1, sizeof *s->all_nodes);
        s->send = pl_malloc(((size_t)nloc + 1) * PL_STEP_COMM_CHUNK * sizeof(float));
        if (s->rank == 0) s->recv = pl_malloc(((size_t)n_all + 1) * PL_STEP_COMM_CHUNK * sizeof(float));
        if (!s->total || !s->all_nodes || !s->send || (s->rank == 0 && !s->recv)) st = PL_ERR_NOMEM;
        for (int r = 0, k = 0; r < s->size && st == PL_OK; r++) {
            int a, b;
            range_of(s->M, s->size, r, &a, &b);
            counter_nodes(a, b, s->all_nodes + k, NULL);
            k += s->counts[r];
        }
    }
    if (st != PL_OK) {
        double mib = (double)s->nbufs * s->L * 4 / 1048576.0;
        pl_train_step_destroy(s);
        return PL_FAIL(PL_ERR_NOMEM, "cannot allocate the gradient buffers (%.0f MiB)", mib);
    }
    *out = s;
    return PL_OK;
}

// What create allocates and the step writes: nbufs gradient slabs; with several ranks the summed gradient, and of the
// gather buffers (tree mode) one chunk per node, this rank's (send) and on rank 0 every rank's (recv).
static double buffer_bytes(size_t P, int nbufs, int size, int rank, int allreduce, int nloc, int n_all) {
    double b = (double)nbufs * P * sizeof(float);
    if (size > 1) {
        double chunk = (double)(P < PL_STEP_COMM_CHUNK ? P : PL_STEP_COMM_CHUNK) * sizeof(float);
        b += (double)P * sizeof(float);
        if (!allreduce) b += chunk * (nloc + (rank == 0 ? n_all : 0));
    }
    return b;
}

double pl_train_step_bytes_for(const PlTrainObjective *obj, int threads, const PlTrainStepOptions *o, int rank,
                               int ranks, int *samples) {
    if (samples) *samples = 0;
    if (o->global_batch < 1 || threads < 1 || obj->micro_batch < 1) return 0.0;
    if (!o->use_mpi) rank = 0, ranks = 1;
    if (threads > obj->workers) threads = obj->workers;
    int mb = obj->micro_batch, M = (o->global_batch + mb - 1) / mb, a, b, depth = 0, n_all = 0;
    range_of(M, ranks, rank, &a, &b);
    int nloc = counter_nodes(a, b, NULL, &depth);
    for (int r = 0; ranks > 1 && r < ranks; r++) {
        int ra, rb;
        range_of(M, ranks, r, &ra, &rb);
        n_all += counter_nodes(ra, rb, NULL, NULL);
    }
    if (samples) {   // as pl_train_step_rank_samples
        int first = a * mb, end = b * mb < o->global_batch ? b * mb : o->global_batch;
        *samples = end > first ? end - first : 0;
    }
    return buffer_bytes(reduced_floats(obj), threads + depth, ranks, rank, o->allreduce, nloc, n_all);
}

static PlStatus task_micro(void *ctx, int task, int thread) {
    PlTrainStep *s = ctx;
    int i = s->round_first + task;
    int first = i * s->mb, n = s->o.global_batch - first < s->mb ? s->o.global_batch - first : s->mb;
    int off = first - s->first * s->mb;   // sample offset within this rank's share
    float scale = 1.0f / (float)((double)s->o.global_batch * s->obj.loss_norm);
    float *leaf = s->leaf[task];
    PlProfSlot *prof = pl_train_profile_worker(s->o.profile, thread);   // the layers' time is subtracted from it
    PlProfMark mk = pl_prof_begin(prof);
    PlStatus st = s->obj.microbatch(s->obj.ctx, thread, s->batch, off, n, scale, leaf,
                                    s->obj.stat_floats ? leaf + (s->L - s->obj.stat_floats) : NULL, &s->slot_loss[task]);
    pl_prof_end(prof, mk, PL_PROF_HEAD, 0.0);
    return st;
}

void pl_train_step_rank_samples(const PlTrainStep *s, int *first, int *count) {
    int a = s->first * s->mb, b = s->end * s->mb;
    if (b > s->o.global_batch) b = s->o.global_batch;
    if (a > b) a = b;
    *first = a;
    *count = b - a;
}

// Push leaf buffer `task` as micro-batch node (i, 1), merging the finished sibling pairs it completes. A leaf that
// completes d pairs (t_0 the leaf, t_1 .. t_d the nodes below it on the stack) merges them in one pass,
// t_d + (t_(d-1) + (... + (t_1 + t_0))): element by element the additions of d pairwise merges, in their order.
static void push_leaf(PlTrainStep *s, int task, int i) {
    s->stack[s->nstack++] = (Node){i, 1, s->leaf[task]};
    s->leaf[task] = s->freebufs[--s->nfree];
    int top = s->nstack - 1, d = 0;
    Node cur = s->stack[top];
    while (top - d - 1 >= 0) {
        const Node *l = &s->stack[top - d - 1];
        if (!(l->size == cur.size && l->start % (2 * l->size) == 0 && l->start + l->size == cur.start)) break;
        cur = (Node){l->start, 2 * l->size, l->buf};
        d++;
    }
    if (d == 0) return;
    const float *src[64];
    for (int t = 0; t < d; t++) src[t] = s->stack[top - t].buf;
    add_sum_into(s, s->stack[top - d].buf, src, d, s->L);
    for (int t = 0; t < d; t++) s->freebufs[s->nfree++] = s->stack[top - t].buf;
    s->stack[top - d].size = cur.size;
    s->nstack = top - d + 1;
}

static void release_stack(PlTrainStep *s) {
    for (int i = 0; i < s->nstack; i++) s->freebufs[s->nfree++] = s->stack[i].buf;
    s->nstack = 0;
}

static PlStatus reduce_tree_mpi(PlTrainStep *s) {
    int root = tree_root(s->M);
    for (size_t c0 = 0; c0 < s->L; c0 += PL_STEP_COMM_CHUNK) {
        size_t len = s->L - c0 < PL_STEP_COMM_CHUNK ? s->L - c0 : PL_STEP_COMM_CHUNK;
        for (int i = 0; i < s->nstack; i++) memcpy(s->send + (size_t)i * len, s->stack[i].buf + c0, len * sizeof(float));
        for (int r = 0, nodes_before = 0; r < s->size; r++) {
            s->gcounts[r] = s->counts[r] * (int)len;
            s->gdispls[r] = nodes_before * (int)len;
            nodes_before += s->counts[r];
        }
        PL_TRY(PL_MPI_CHECK(MPI_Gatherv(s->send, s->nstack * (int)len, MPI_FLOAT, s->recv, s->gcounts, s->gdispls,
                                        MPI_FLOAT, 0, MPI_COMM_WORLD)));
        if (s->rank == 0) {
            for (int i = 0; i < s->n_all; i++) s->all_nodes[i].buf = s->recv + (size_t)i * len;
            float *v = tree_value(s, s->all_nodes, s->n_all, 0, root, len);
            memcpy(s->total + c0, v, len * sizeof(float));
        }
        PL_TRY(PL_MPI_CHECK(MPI_Bcast(s->total + c0, (int)len, MPI_FLOAT, 0, MPI_COMM_WORLD)));
    }
    return PL_OK;
}

static PlStatus reduce_allreduce(PlTrainStep *s) {
    if (s->nstack == 0)
        memset(s->total, 0, s->L * sizeof(float));
    else
        memcpy(s->total, s->stack[0].buf, s->L * sizeof(float));
    for (int i = 1; i < s->nstack; i++) add_into(s, s->total, s->stack[i].buf, s->L);
    for (size_t c0 = 0; c0 < s->L; c0 += PL_STEP_COMM_CHUNK) {
        int len = (int)(s->L - c0 < PL_STEP_COMM_CHUNK ? s->L - c0 : PL_STEP_COMM_CHUNK);
        PL_TRY(PL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, s->total + c0, len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD)));
    }
    return PL_OK;
}

PlStatus pl_train_step_run(PlTrainStep *s, const void *batch, float **grad, const float **stats, double *loss) {
    s->batch = batch;
    if (s->obj.begin_step) s->obj.begin_step(s->obj.ctx);
    release_stack(s);
    PlStatus bad = PL_OK;
    for (int i0 = s->first; i0 < s->end && bad == PL_OK; i0 += s->threads) {
        int n = s->end - i0 < s->threads ? s->end - i0 : s->threads;
        s->round_first = i0;
        if ((bad = pl_threadpool_run_checked(s->pool, task_micro, s, n)) != PL_OK) break;
        PlProfMark mk = pl_prof_begin(pl_train_profile_main(s->o.profile));
        for (int j = 0; j < n; j++) {
            s->mb_loss[i0 + j] = s->slot_loss[j];
            push_leaf(s, j, i0 + j);
        }
        pl_prof_end(pl_train_profile_main(s->o.profile), mk, PL_PROF_REDUCE, 0.0);
    }
    // every rank learns whether any failed before the collective reduce
    if (s->size > 1) bad = pl_mpi_agree(bad, "computing the micro-batches");
    if (bad != PL_OK) return bad;
    float *sum;
    PlProfMark mk = pl_prof_begin(pl_train_profile_main(s->o.profile));
    if (s->size > 1) {
        PL_TRY(s->o.allreduce ? reduce_allreduce(s) : reduce_tree_mpi(s));
        PL_TRY(PL_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DOUBLE, s->mb_loss, s->mcounts, s->mdispls,
                                           MPI_DOUBLE, MPI_COMM_WORLD)));
        sum = s->total;
    } else {
        sum = tree_value(s, s->stack, s->nstack, 0, tree_root(s->M), s->L);
    }
    pl_prof_end(pl_train_profile_main(s->o.profile), mk, PL_PROF_REDUCE, 0.0);
    *grad = sum;
    if (stats) *stats = s->obj.stat_floats ? sum + (s->L - s->obj.stat_floats) : NULL;
    double total = 0.0;
    for (int i = 0; i < s->M; i++) total += s->mb_loss[i];
    *loss = total / ((double)s->o.global_batch * s->obj.loss_norm);
    return PL_OK;
}
