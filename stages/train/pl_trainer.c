// The one training loop (see pl_trainer.h): schedule, step, optimizer, finiteness stops, train.jsonl, checkpoints,
// resume and stop requests, with every rank agreeing on each failure before the next collective.
#include "pl_trainer.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_clock.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_mpi.h"

static PlStatus log_write_failed(const PlTrainerOptions *o) {
    char path[4096], note[512];
    snprintf(path, sizeof path, "%s/train.jsonl", o->out_dir);
    pl_fs_space_note(path, note, sizeof note);
    return PL_FAIL(PL_ERR_IO, "cannot write %s: %s%s", path, strerror(errno), note);
}

// train.jsonl: on a resume keep the lines of steps before `start` (rewritten atomically), then append.
static PlStatus log_open(const PlTrainerOptions *o, int64_t start, FILE **fp) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train.jsonl", o->out_dir);
    char *old = NULL;
    size_t size = 0;
    if (start > 0 && pl_file_read_all(path, (size_t)1 << 30, &old, &size) == PL_OK) {
        size_t keep = 0;
        for (char *p = old; p < old + size;) {
            char *eol = memchr(p, '\n', (size_t)(old + size - p));
            if (!eol) break;
            long long s;
            if (sscanf(p, "{\"step\": %lld", &s) != 1 || s >= start) break;
            keep = (size_t)(eol + 1 - old);
            p = eol + 1;
        }
        PlStatus st = pl_file_write_atomic(path, old, keep);
        free(old);
        PL_TRY(st);
    } else {
        free(old);
        PL_TRY(pl_file_write_atomic(path, "", 0));
    }
    *fp = fopen(path, "a");
    if (!*fp) return log_write_failed(o);
    return PL_OK;
}

// One line of train.jsonl, flushed (a full file system is reported at the step it happens).
// With a weight-decay schedule the line also has the step's "wd".
static PlStatus log_step(FILE *log, const PlTrainerOptions *o, PlOptim *op, int64_t step, long long epoch,
                         double loss, double lr, double gnorm, double img_per_s) {
    errno = 0;
    int n = fprintf(log, "{\"step\": %lld, \"epoch\": %lld, \"loss\": %.9g, \"lr\": %.9g, ", (long long)step, epoch,
                    loss, lr);
    if (n >= 0 && o->wd_schedule) n = fprintf(log, "\"wd\": %.9g, ", pl_optim_weight_decay(op));
    if (n >= 0) n = fprintf(log, "\"grad_norm\": %.9g, \"img_per_s\": %.4g}\n", gnorm, img_per_s);
    if (n < 0 || fflush(log) != 0 || ferror(log)) return log_write_failed(o);
    return PL_OK;
}

// The epoch's own line (PlTrainerHooks.epoch_log), when the hook has something to say.
static PlStatus log_epoch(FILE *log, const PlTrainerOptions *o, const PlTrainerHooks *h, int64_t step, int epoch) {
    char line[2048] = "";
    h->epoch_log(h->ctx, epoch, line, sizeof line);
    if (!line[0]) return PL_OK;
    errno = 0;
    int n = fprintf(log, "{\"step\": %lld, \"epoch\": %d, %s}\n", (long long)step, epoch, line);
    if (n < 0 || fflush(log) != 0 || ferror(log)) return log_write_failed(o);
    return PL_OK;
}

// Every rank learns whether any got a stop request (SIGTERM before a time limit).
static PlStatus stop_requested(const PlTrainerOptions *o, int *any) {
    int mine = o->stop && *o->stop;
    *any = mine;
    if (o->use_mpi) PL_TRY(PL_MPI_CHECK(MPI_Allreduce(&mine, any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD)));
    return PL_OK;
}

// "the last good checkpoint (step S) is kept in DIR/checkpoint.safetensors" (or that there is none yet).
static const char *kept_note(const PlTrainerOptions *o, int64_t good_step) {
    static _Thread_local char note[4200];
    if (good_step > 0)
        snprintf(note, sizeof note, "the last good checkpoint (step %lld) is kept in %s/%s", (long long)good_step,
                 o->out_dir, PL_TRAIN_CKPT_NAME);
    else
        snprintf(note, sizeof note, "no checkpoint of this run was written (lower --lr, or --clip)");
    return note;
}

// The batch of `step`: from the reader (asking for the next one meanwhile), or prepared here.
static PlStatus next_batch(const PlBatchSource *src, const PlBatchReader *rd, int64_t step, int64_t total,
                           const void **batch) {
    const int slots = src->slots;
    if (rd) {
        rd->request(rd->self, step);
        for (int64_t s = step + 1; s < step + slots && s < total; s++) rd->request(rd->self, s);   // read ahead
        PL_TRY(rd->wait(rd->self, step));
    } else {
        PL_TRY(src->prepare(src->ctx, step, (int)(step % slots)));
    }
    *batch = src->batch(src->ctx, (int)(step % slots));
    return PL_OK;
}

// End of epoch: its mean loss, then the caller's hook (validation).
static PlStatus epoch_end(const PlTrainerHooks *h, PlTrainState *fs) {
    if (fs->n_epochs >= fs->cap_epochs) return PL_FAIL(PL_ERR_INTERNAL, "epoch history overflow");
    int e = fs->n_epochs++;
    fs->epoch_loss[e] = fs->loss_steps ? fs->loss_sum / (double)fs->loss_steps : 0.0;
    fs->loss_sum = 0.0;
    fs->loss_steps = 0;
    return h && h->epoch_end ? h->epoch_end(h->ctx, e, fs) : PL_OK;
}

// One optimizer step and its checks; *gnorm the gradient norm, *lr the rate used.
static PlStatus train_one(PlVitTrain *t, PlTrainStep *step, PlOptim *op, const void *batch, const PlTrainerHooks *h,
                          const PlTrainerOptions *o, int64_t s, int64_t good_step, double *loss, double *lr,
                          double *gnorm) {
    float *grad = NULL;
    const float *stats = NULL;
    PL_TRY(pl_train_step_run(step, batch, &grad, &stats, loss));
    // every rank holds the same loss, gradient and weights, so these checks stop every rank at the same step
    if (!isfinite(*loss))
        return PL_FAIL(PL_ERR_NUMERIC, "the loss is %s at step %lld (epoch %lld); stopped, %s",
                       isnan(*loss) ? "NaN" : "infinite", (long long)s, (long long)(s * o->batch / o->epoch_samples),
                       kept_note(o, good_step));
    *lr = pl_lr_at(s, o->total_steps, o->warmup_steps, o->peak_lr, o->min_lr, o->schedule_constant);
    if (o->wd_schedule)
        PL_TRY(pl_optim_set_weight_decay(op, pl_cosine_schedule_at(s, o->total_steps, 0, o->wd_base, o->wd_final, 0.0)));
    PlProfSlot *prof = pl_train_profile_main(o->profile);
    PlProfMark mk = pl_prof_begin(prof);
    pl_optim_step(op, pl_vit_train_params(t), grad, *lr, o->pool, gnorm);
    if (!isfinite(*gnorm))
        return PL_FAIL(PL_ERR_NUMERIC, "the gradient norm is not finite at step %lld; stopped, %s", (long long)s,
                       kept_note(o, good_step));
    // e.g. AdamW's moments overflowed: the update noticed it; the full check names the tensor
    PlStatus st = pl_optim_nonfinite(op) ? pl_train_ckpt_check_finite(t, op, NULL) : PL_OK;
    pl_prof_end(prof, mk, PL_PROF_OPTIM, 0.0);
    if (st != PL_OK) return pl_error_wrap("after step %lld: stopped, %s", (long long)s, kept_note(o, good_step));
    mk = pl_prof_begin(prof);
    if (h && h->after_step) st = h->after_step(h->ctx, s, stats);
    pl_prof_end(prof, mk, PL_PROF_HOOKS, 0.0);
    return st;
}

PlStatus pl_trainer_run(PlVitTrain *t, PlTrainStep *step, PlOptim *op, const PlBatchSource *src,
                        const PlBatchReader *rd, const PlTrainerHooks *h, const PlTrainerOptions *o,
                        PlTrainState *fs, PlTrainerResult *r) {
    memset(r, 0, sizeof *r);
    const int64_t total = o->total_steps, E = o->epoch_samples, B = o->batch;
    if (total < 1 || E < 1 || B < 1) return PL_FAIL(PL_ERR_ARG, "training needs steps, samples and a batch");
    int rank = 0;
    if (o->use_mpi) PL_TRY(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
    char ckpt_path[4096];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/%s", o->out_dir, PL_TRAIN_CKPT_NAME);
    int64_t s0 = 0;
    PlStatus st = PL_OK;
    if (o->resume && access(ckpt_path, F_OK) == 0) {   // every rank reads it (a shared file system)
        st = pl_train_ckpt_read(ckpt_path, t, op, &o->keys, &s0, fs);
        if (st == PL_OK && !o->quiet && rank == 0)
            pl_log_info("resuming %s at step %lld of %lld", ckpt_path, (long long)s0, (long long)total);
    }
    r->start_step = s0;
    int attached = 0;
    if (st == PL_OK && rd) attached = (st = rd->attach(rd->self, src)) == PL_OK;
    FILE *log = NULL;
    if (st == PL_OK && rank == 0) st = log_open(o, s0, &log);
    if (o->use_mpi) st = pl_mpi_agree(st, "setting up the training");
    double t_start = pl_clock_now();
    int64_t done_here = 0, good_step = s0;   // good_step: the step of the newest checkpoint written
    for (int64_t s = s0; s < total && st == PL_OK; s++) {
        double t0 = pl_clock_now(), loss = 0.0, lr = 0.0, gnorm = 0.0;
        const void *batch = NULL;
        pl_train_profile_enable(o->profile, 1);
        PlProfMark mk = pl_prof_begin(pl_train_profile_main(o->profile));
        st = next_batch(src, rd, s, total, &batch);
        if (o->use_mpi) st = pl_mpi_agree(st, "preparing the batch");
        pl_prof_end(pl_train_profile_main(o->profile), mk, PL_PROF_DATA, 0.0);
        if (st == PL_OK) st = train_one(t, step, op, batch, h, o, s, good_step, &loss, &lr, &gnorm);
        pl_train_profile_enable(o->profile, 0);
        if (st != PL_OK) break;
        if (o->profile) {   // the first step of a run warms pages and caches: profiled are the steps after it
            o->profile->step_sec += pl_clock_now() - t0;
            o->profile->steps++;
            if (s == s0 && s + 1 < total) pl_train_profile_reset(o->profile);
        }
        done_here++;
        if (s == s0) r->first_loss = loss;
        r->last_loss = loss;
        fs->loss_sum += loss;
        fs->loss_steps++;
        double dt = pl_clock_now() - t0;
        if (log) st = log_step(log, o, op, s, (long long)(s * B / E), loss, lr, gnorm, B / (dt > 0 ? dt : 1e-9));
        int is_epoch_end = (s + 1) * B / E > s * B / E;
        if (st == PL_OK && (is_epoch_end || s + 1 == total)) st = epoch_end(h, fs);
        if (st == PL_OK && log && (is_epoch_end || s + 1 == total) && h && h->epoch_log)
            st = log_epoch(log, o, h, s, fs->n_epochs - 1);
        int due = (o->checkpoint_every > 0 && (s + 1) % o->checkpoint_every == 0) || is_epoch_end || s + 1 == total;
        int stop = 0;
        PlStatus ss = stop_requested(o, &stop);
        if (st == PL_OK) st = ss;
        if (st == PL_OK && (due || stop) && rank == 0) st = pl_train_ckpt_write(ckpt_path, t, op, &o->keys, s + 1, fs);
        // rank 0's log and checkpoint writes may fail alone: every rank learns it before the next step's collectives
        if (o->use_mpi) st = pl_mpi_agree(st, "writing the training log or checkpoint");
        if (st != PL_OK) break;
        if (due || stop) good_step = s + 1;
        if (stop && s + 1 < total)
            st = PL_FAIL(PL_ERR_INTERRUPTED, "stopped by a signal after step %lld of %lld; the checkpoint in %s "
                         "resumes it (--resume)", (long long)(s + 1), (long long)total, o->out_dir);
        if (!o->quiet && rank == 0 && (s % 10 == 0 || s + 1 == total))
            pl_log_info("step %lld/%lld loss %.5f lr %.3g %.2f img/s", (long long)s + 1, (long long)total, loss, lr,
                        B / (dt > 0 ? dt : 1e-9));
    }
    double elapsed = pl_clock_now() - t_start;
    r->img_per_s = done_here > 0 && elapsed > 0 ? (double)done_here * B / elapsed : 0.0;
    if (log && fclose(log) != 0 && st == PL_OK) st = log_write_failed(o);
    if (attached) rd->detach(rd->self);
    return st;
}
