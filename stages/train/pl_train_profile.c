// Per-phase profile of training steps: slots, self-time marks and the printed table (see pl_train_profile.h).
#include "pl_train_profile.h"

#include <stdlib.h>
#include <string.h>

#include "pl_clock.h"

static const char *const phase_names[PL_PROF_PHASES] = {
    [PL_PROF_DATA] = "data (batch wait)",
    [PL_PROF_PATCH_FWD] = "patch embed forward",
    [PL_PROF_PATCH_BWD] = "patch embed weight grad",
    [PL_PROF_QKV_FWD] = "qkv forward",
    [PL_PROF_QKV_DX] = "qkv input grad",
    [PL_PROF_QKV_DW] = "qkv weight grad",
    [PL_PROF_PROJ_FWD] = "proj forward",
    [PL_PROF_PROJ_DX] = "proj input grad",
    [PL_PROF_PROJ_DW] = "proj weight grad",
    [PL_PROF_FC1_FWD] = "fc1 forward",
    [PL_PROF_FC1_DX] = "fc1 input grad",
    [PL_PROF_FC1_DW] = "fc1 weight grad",
    [PL_PROF_FC2_FWD] = "fc2 forward",
    [PL_PROF_FC2_DX] = "fc2 input grad",
    [PL_PROF_FC2_DW] = "fc2 weight grad",
    [PL_PROF_ATTN_FWD] = "attention forward",
    [PL_PROF_ATTN_BWD] = "attention backward",
    [PL_PROF_LN_FWD] = "layernorm forward",
    [PL_PROF_LN_BWD] = "layernorm backward",
    [PL_PROF_GELU_FWD] = "gelu forward",
    [PL_PROF_GELU_BWD] = "gelu backward",
    [PL_PROF_RESIDUAL] = "residual, bias, copies",
    [PL_PROF_BF16] = "bf16 conversions",
    [PL_PROF_HEAD] = "head, loss, rest of micro-batch",
    [PL_PROF_REDUCE] = "gradient reduce",
    [PL_PROF_OPTIM] = "optimizer",
    [PL_PROF_HOOKS] = "after-step hooks (EMA)",
};

static int loop_phase(PlProfPhase ph) {
    return ph == PL_PROF_DATA || ph == PL_PROF_REDUCE || ph == PL_PROF_OPTIM || ph == PL_PROF_HOOKS;
}

PlStatus pl_train_profile_create(int workers, PlTrainProfile **out) {
    *out = NULL;
    if (workers < 1) return PL_FAIL(PL_ERR_ARG, "a profile needs at least one worker");
    PlTrainProfile *p = pl_calloc(1, sizeof *p);
    PlProfSlot *s = pl_calloc((size_t)workers + 1, sizeof *s);
    if (!p || !s) {
        free(p);
        free(s);
        return PL_FAIL(PL_ERR_NOMEM, "cannot allocate the training profile");
    }
    p->workers = workers;
    p->slot = s;
    pl_train_profile_reset(p);   // off until the loop's first step
    *out = p;
    return PL_OK;
}

void pl_train_profile_destroy(PlTrainProfile *p) {
    if (!p) return;
    free(p->slot);
    free(p);
}

void pl_train_profile_reset(PlTrainProfile *p) {
    if (!p) return;
    for (int i = 0; i <= p->workers; i++) {
        int on = p->slot[i].on;
        memset(&p->slot[i], 0, sizeof p->slot[i]);
        p->slot[i].linear = PL_PROF_HEAD;
        p->slot[i].on = on;
    }
    p->step_sec = 0.0;
    p->steps = 0;
}

void pl_train_profile_enable(PlTrainProfile *p, int on) {
    if (!p) return;
    for (int i = 0; i <= p->workers; i++) p->slot[i].on = on;
}

PlProfSlot *pl_train_profile_main(PlTrainProfile *p) { return p ? &p->slot[p->workers] : NULL; }

PlProfSlot *pl_train_profile_worker(PlTrainProfile *p, int worker) {
    return p && worker >= 0 && worker < p->workers ? &p->slot[worker] : NULL;
}

PlProfMark pl_prof_begin(const PlProfSlot *s) {
    if (!s || !s->on) return (PlProfMark){0.0, 0.0};
    return (PlProfMark){pl_clock_now(), s->inner};
}

void pl_prof_end(PlProfSlot *s, PlProfMark m, PlProfPhase phase, double flop) {
    if (!s || !s->on) return;
    double dt = pl_clock_now() - m.t;
    s->sec[phase] += dt - (s->inner - m.inner);
    s->inner = m.inner + dt;
    s->flop[phase] += flop;
}

void pl_prof_linear(PlProfSlot *s, PlProfPhase fwd_phase) {
    if (s) s->linear = fwd_phase;
}

const char *pl_prof_phase_name(PlProfPhase phase) {
    return (int)phase >= 0 && (int)phase < PL_PROF_PHASES ? phase_names[phase] : "?";
}

double pl_train_profile_phase_sec(const PlTrainProfile *p, PlProfPhase phase) {
    if (!p || p->steps < 1) return 0.0;
    if (loop_phase(phase)) return p->slot[p->workers].sec[phase] / (double)p->steps;
    double sum = 0.0;
    for (int i = 0; i < p->workers; i++) sum += p->slot[i].sec[phase];
    return sum / p->workers / (double)p->steps;
}

double pl_train_profile_phase_flop(const PlTrainProfile *p, PlProfPhase phase) {
    if (!p || p->steps < 1) return 0.0;
    double sum = 0.0;
    for (int i = 0; i <= p->workers; i++) sum += p->slot[i].flop[phase];
    return sum / (double)p->steps;
}

double pl_train_profile_rest_sec(const PlTrainProfile *p) {
    if (!p || p->steps < 1) return 0.0;
    double claimed = 0.0;
    for (int ph = 0; ph < PL_PROF_PHASES; ph++) claimed += pl_train_profile_phase_sec(p, (PlProfPhase)ph);
    return p->step_sec / (double)p->steps - claimed;
}

int pl_train_profile_print(const PlTrainProfile *p, const char *title, FILE *f) {
    if (!p || p->steps < 1) return fprintf(f, "%s: no step profiled\n", title) < 0 ? -1 : 0;
    double step = p->step_sec / (double)p->steps, flop_all = 0.0;
    int bad = fprintf(f, "\n%s: %ld steps, %.1f ms/step, %d worker thread(s)\n\n| phase | ms/step | share | GFLOP/s |\n"
                         "|---|---:|---:|---:|\n", title, p->steps, 1e3 * step, p->workers) < 0;
    for (int ph = 0; ph < PL_PROF_PHASES; ph++) {
        double sec = pl_train_profile_phase_sec(p, (PlProfPhase)ph), fl = pl_train_profile_phase_flop(p, (PlProfPhase)ph);
        flop_all += fl;
        if (sec <= 0.0 && fl <= 0.0) continue;
        char rate[32] = "";
        if (fl > 0.0 && sec > 0.0) snprintf(rate, sizeof rate, "%.1f", fl / sec * 1e-9);
        bad |= fprintf(f, "| %s | %.2f | %.1f%% | %s |\n", phase_names[ph], 1e3 * sec, 100.0 * sec / step, rate) < 0;
    }
    double rest = pl_train_profile_rest_sec(p);
    bad |= fprintf(f, "| rest of the step (pool waits, idle workers, logging) | %.2f | %.1f%% | |\n", 1e3 * rest,
                   100.0 * rest / step) < 0;
    bad |= fprintf(f, "| **whole step** | %.2f | 100%% | %.1f |\n", 1e3 * step, flop_all / step * 1e-9) < 0;
    return bad ? -1 : 0;
}
