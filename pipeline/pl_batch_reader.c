// The program's batch reader thread (see pl_batch_reader.h): prepares requested steps of the attached source, lowest
// step first, one at a time, into slot step % 2.
#include "pl_batch_reader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct PlReaderThread {
    const PlBatchSource *src;         // NULL while detached
    int64_t want[2], have[2];         // step requested / ready in each slot (-1: none)
    int busy;                         // a prepare is running (outside the lock)
    PlStatus st[2];
    char msg[2][512];
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
        for (int j = 0; r->src && j < 2; j++)   // the lowest requested step first: steps are prepared in order
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
        PlStatus st = src->prepare(src->ctx, step, k);
        pthread_mutex_lock(&r->mu);
        r->busy = 0;
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
    r->src = src;
    for (int k = 0; k < 2; k++) r->want[k] = r->have[k] = -1;
    pthread_mutex_unlock(&r->mu);
    return PL_OK;
}

static void reader_request(void *self, int64_t step) {
    PlReaderThread *r = self;
    int k = (int)(step % 2);
    pthread_mutex_lock(&r->mu);
    if (r->want[k] != step) {
        r->want[k] = step;
        r->have[k] = -1;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static PlStatus reader_wait(void *self, int64_t step) {
    PlReaderThread *r = self;
    int k = (int)(step % 2);
    pthread_mutex_lock(&r->mu);
    while (r->have[k] != step) pthread_cond_wait(&r->cv, &r->mu);
    PlStatus st = r->st[k];
    pthread_mutex_unlock(&r->mu);
    if (st != PL_OK) return PL_FAIL(st, "%s", r->msg[k]);
    return PL_OK;
}

static void reader_detach(void *self) {
    PlReaderThread *r = self;
    pthread_mutex_lock(&r->mu);
    r->want[0] = r->want[1] = -1;
    while (r->busy) pthread_cond_wait(&r->cv, &r->mu);
    r->src = NULL;
    pthread_mutex_unlock(&r->mu);
}

PlStatus pl_batch_reader_start(PlReaderThread **out, PlBatchReader *iface) {
    *out = NULL;
    PlReaderThread *r = pl_calloc(1, sizeof *r);
    if (!r) return PL_ERR_NOMEM;
    r->want[0] = r->want[1] = r->have[0] = r->have[1] = -1;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return PL_FAIL(PL_ERR_INTERNAL, "cannot create the reader thread's lock");
    }
    if (pthread_cond_init(&r->cv, NULL) != 0 || pthread_create(&r->th, NULL, reader_main, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        free(r);
        return PL_FAIL(PL_ERR_INTERNAL, "cannot start the reader thread");
    }
    *iface = (PlBatchReader){r, reader_attach, reader_request, reader_wait, reader_detach};
    *out = r;
    return PL_OK;
}

void pl_batch_reader_stop(PlReaderThread *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    r->want[0] = r->want[1] = -1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
