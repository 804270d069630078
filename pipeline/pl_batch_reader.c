// The program's batch reader thread (see pl_batch_reader.h): prepares requested steps of the attached source, lowest
// step first, one at a time, into slot step % slots.
#include "pl_batch_reader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "pl_clock.h"

struct PlReaderThread {
    const PlBatchSource *src;         // NULL while detached
    int slots;                        // the source's ring
    int64_t want[PL_BATCH_SLOTS_MAX], have[PL_BATCH_SLOTS_MAX];   // step requested / ready in each slot (-1: none)
    int busy;                         // a prepare is running (outside the lock)
    PlStatus st[PL_BATCH_SLOTS_MAX];
    char msg[PL_BATCH_SLOTS_MAX][512];
    int64_t batches;                  // prepared since attach
    double prepare_s, wait_s;         // time spent preparing them; time the loop waited for one
    int quit;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *reader_main(void *arg) {
    PlReaderThread *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        int k = -1;
        for (int j = 0; r->src && j < r->slots; j++)   // the lowest requested step first: steps are prepared in order
            if (r->want[j] >= 0 && r->want[j] != r->have[j] && (k < 0 || r->want[j] < r->want[k])) k = j;
        if (k < 0) {
            if (r->quit) break;
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int64_t step = r->want[k];
        const PlBatchSource *src = r->src;
        r->busy = 1;
        pthread_mutex_unlock(&r->mu);
        double t0 = pl_clock_now();
        PlStatus st = src->prepare(src->ctx, step, k);
        double dt = pl_clock_now() - t0;
        pthread_mutex_lock(&r->mu);
        r->busy = 0;
        r->batches++;
        r->prepare_s += dt;
        r->st[k] = st;
        if (st != PL_OK) snprintf(r->msg[k], sizeof r->msg[k], "%s", pl_error_message());
        r->have[k] = step;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static PlStatus reader_attach(void *self, const PlBatchSource *src) {
    PlReaderThread *r = self;
    pthread_mutex_lock(&r->mu);
    if (src->slots < 2 || src->slots > PL_BATCH_SLOTS_MAX) {
        pthread_mutex_unlock(&r->mu);
        return PL_FAIL(PL_ERR_INTERNAL, "a batch source with %d slots (2..%d)", src->slots, PL_BATCH_SLOTS_MAX);
    }
    r->src = src;
    r->slots = src->slots;
    for (int k = 0; k < PL_BATCH_SLOTS_MAX; k++) r->want[k] = r->have[k] = -1;
    r->batches = 0;
    r->prepare_s = r->wait_s = 0.0;
    pthread_mutex_unlock(&r->mu);
    return PL_OK;
}

static void reader_request(void *self, int64_t step) {
    PlReaderThread *r = self;
    pthread_mutex_lock(&r->mu);
    int k = (int)(step % r->slots);
    if (r->want[k] != step) {
        r->want[k] = step;
        r->have[k] = -1;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static PlStatus reader_wait(void *self, int64_t step) {
    PlReaderThread *r = self;
    double t0 = pl_clock_now();
    pthread_mutex_lock(&r->mu);
    int k = (int)(step % r->slots);
    while (r->have[k] != step) pthread_cond_wait(&r->cv, &r->mu);
    PlStatus st = r->st[k];
    r->wait_s += pl_clock_now() - t0;
    pthread_mutex_unlock(&r->mu);
    if (st != PL_OK) return PL_FAIL(st, "%s", r->msg[k]);
    return PL_OK;
}

static void reader_stats(void *self, int64_t *batches, double *prepare_s, double *wait_s) {
    PlReaderThread *r = self;
    pthread_mutex_lock(&r->mu);
    *batches = r->batches;
    *prepare_s = r->prepare_s;
    *wait_s = r->wait_s;
    pthread_mutex_unlock(&r->mu);
}

static void reader_detach(void *self) {
    PlReaderThread *r = self;
    pthread_mutex_lock(&r->mu);
    for (int k = 0; k < PL_BATCH_SLOTS_MAX; k++) r->want[k] = -1;
    while (r->busy) pthread_cond_wait(&r->cv, &r->mu);
    r->src = NULL;
    pthread_mutex_unlock(&r->mu);
}

PlStatus pl_batch_reader_start(PlReaderThread **out, PlBatchReader *iface) {
    *out = NULL;
    PlReaderThread *r = pl_calloc(1, sizeof *r);
    if (!r) return PL_ERR_NOMEM;
    r->slots = 2;
    for (int k = 0; k < PL_BATCH_SLOTS_MAX; k++) r->want[k] = r->have[k] = -1;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return PL_FAIL(PL_ERR_INTERNAL, "cannot create the reader thread's lock");
    }
    if (pthread_cond_init(&r->cv, NULL) != 0 || pthread_create(&r->th, NULL, reader_main, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        free(r);
        return PL_FAIL(PL_ERR_INTERNAL, "cannot start the reader thread");
    }
    *iface = (PlBatchReader){r, reader_attach, reader_request, reader_wait, reader_detach, reader_stats};
    *out = r;
    return PL_OK;
}

void pl_batch_reader_stop(PlReaderThread *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    for (int k = 0; k < PL_BATCH_SLOTS_MAX; k++) r->want[k] = -1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
