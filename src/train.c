/* train.c: the training loop, learning-rate schedules, checkpoints and evaluation.
 *
 * Reproducibility is the rule here. Every random choice of a step (the epoch's shuffle, the
 * batch's shifts, flips and dropout masks) is drawn from a generator seeded by (seed, epoch,
 * batch) alone, so a run resumed from a checkpoint replays exactly what an uninterrupted run
 * does, and the kernels reduce in a fixed order whatever the thread count. Nothing that
 * varies between runs (time, host, paths) goes into the model. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "internal.h"

/* ------------------------------------------------------------------ schedules */

static const char *const lr_names[MV_LR_COUNT] = {"const", "step", "cosine"};

mv_status mv_lr_parse(mv_lr_schedule *kind, const char *text)
{
    for (int i = 0; i < MV_LR_COUNT; i++)
        if (strcmp(text, lr_names[i]) == 0) {
            *kind = (mv_lr_schedule)i;
            return MV_OK;
        }
    return mv_fail(MV_ERR_ARG, "unknown learning-rate schedule '%s' (const, step, cosine)", text);
}

double mv_lr_at(const mv_lr_config *c, long step, long steps_per_epoch, long total_steps)
{
    const double warmup = c->warmup_epochs * (double)steps_per_epoch;
    if (step < warmup) /* a fractional warm-up never overshoots the peak */
        return c->lr * fmin(1, (double)(step + 1) / warmup);
    switch (c->kind) {
    case MV_LR_STEP: {
        const long epoch = step / (steps_per_epoch > 0 ? steps_per_epoch : 1);
        return c->lr * pow(c->gamma, (double)(epoch / (c->step_every > 0 ? c->step_every : 1)));
    }
    case MV_LR_COSINE: {
        const double span = (double)total_steps - warmup;
        const double t = span > 1 ? ((double)step - warmup) / (span - 1) : 1;
        return c->min_lr + (c->lr - c->min_lr) * 0.5 * (1 + cos(M_PI * fmin(t, 1)));
    }
    default:
        return c->lr;
    }
}

void mv_train_defaults(mv_train_config *config)
{
    memset(config, 0, sizeof *config);
    config->epochs = 10;
    config->batch = 128;
    mv_opt_defaults(&config->opt, MV_OPT_ADAM);
    config->lr = (mv_lr_config){.kind = MV_LR_CONST, .lr = 1e-3, .step_every = 10,
                                .gamma = 0.1, .min_lr = 0};
    config->seed = 1;
}

/* ------------------------------------------------------------------ the trainer */

typedef struct {
    const mv_train_config *cfg;
    const mv_dataset *train, *val;
    mv_model *model;
    int D, K;                 /* input width, classes */
    long steps_per_epoch, total_steps;
    mv_workspace *ws;
    mv_optimizer *opt;
    mv_share *share;          /* this process's part of every batch (share.c) */
    mv_prefetch *prefetch;    /* the next batch's rows, read ahead (prefetch.c) */
    long fetched;             /* the batch of this epoch the prefetcher holds, or -1 */
    int grad_chunks;
    int cap;                  /* rows of the largest batch */
    /* Rows of the current batch this process computes, [batch] at most ("local" rows): */
    int row0, local;          /* the first row of the batch, and how many */
    mv_real *x;               /* [local][D] */
    mv_real *y;               /* [local][K] one-hot */
    mv_real *x_clean;         /* [local][D] the batch before adversarial perturbation */
    mv_real *grad_x;          /* [local][D] dLoss/dx for the perturbation */
    mv_rng *rngs;             /* [local] each row's generator, from (seed, epoch, image) */
    uint64_t *drop_seeds;     /* [local] each row's dropout seed */
    double *losses;           /* [2][cap] the batch's row losses, gathered; then the local ones */
    unsigned char *hits;      /* [2][cap] the rows' correct guesses, likewise */
    int *perm;                /* [train count] this epoch's order */
    /* progress, saved in checkpoints */
    int epoch;                /* epochs completed */
    long next_batch;          /* first batch not yet trained in epoch `epoch` */
    double loss_sum;          /* over the current epoch's trained rows */
    long correct, seen;
    mv_epoch_metrics *history;/* [cfg->epochs], the first `epoch` filled */
    float *best;              /* [params] weights of the best validation accuracy */
    double best_accuracy;
    int best_epoch;
    float *last_good;         /* [params] weights at the end of the last completed epoch */
    uint64_t fingerprint;
} trainer;

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

/* CRC-32 of a dataset's pixels as floats, read BLOCK images at a time (a batch: the memory
 * of a streamed run stays that of its batches) whatever its storage. */
static mv_status pixels_crc(const mv_dataset *d, int BLOCK, uint32_t *crc)
{
    const size_t D = (size_t)d->channels * d->height * d->width;
    float *rows = malloc(sizeof *rows * D * (size_t)BLOCK);
    int *index = malloc(sizeof *index * (size_t)BLOCK);
    mv_status st = rows && index ? MV_OK : mv_fail(MV_ERR_NOMEM, "cannot allocate a block");
    *crc = 0;
    for (int first = 0; st == MV_OK && first < d->count; first += BLOCK) {
        const int n = d->count - first < BLOCK ? d->count - first : BLOCK;
        for (int i = 0; i < n; i++) index[i] = first + i;
        if ((st = mv_dataset_read_rows(d, index, n, rows)) == MV_OK)
            *crc = mv_crc32(*crc, rows, sizeof *rows * D * (size_t)n);
    }
    free(rows);
    free(index);
    return st;
}

/* Everything a resumed run must share with the run that wrote the checkpoint: shape, data,
 * settings (the epoch count may grow: the steps already taken stay valid for a constant or
 * step schedule). Never the number of processes: a run resumes on another. */
static mv_status run_fingerprint(const trainer *t, uint64_t *out)
{
    const mv_train_config *c = t->cfg;
    uint64_t h = 0xCBF29CE484222325ull;
    h = hash_bytes(h, &t->model->net->arch, sizeof t->model->net->arch);
    const double numbers[] = {c->opt.momentum, c->opt.beta1, c->opt.beta2, c->opt.eps,
                              c->opt.weight_decay, c->lr.lr, c->lr.warmup_epochs, c->lr.gamma,
                              c->lr.min_lr, c->dropout, c->label_smoothing, c->adv_eps,
                              c->adv_step_size};
    const long integers[] = {c->batch, c->opt.kind, c->lr.kind, c->lr.step_every, c->shift,
                             c->flip, c->keep_best, t->train->count, t->val ? t->val->count : -1,
                             c->lr.kind == MV_LR_COSINE ? c->epochs : 0, c->adv_steps,
                             t->grad_chunks};
    h = hash_bytes(h, numbers, sizeof numbers);
    h = hash_bytes(h, integers, sizeof integers);
    if (c->adv_norm != MV_ADV_LINF || c->noise_aug > 0) { /* hashed only when used: the
                                                             checkpoints of earlier runs resume */
        const double later[] = {(double)c->adv_norm, c->noise_aug};
        h = hash_bytes(h, later, sizeof later);
    }
    h = hash_bytes(h, t->model->mean, sizeof t->model->mean);
    h = hash_bytes(h, t->model->std, sizeof t->model->std);
    /* The data itself: resuming on other images of the same count must be refused. */
    const mv_dataset *sets[2] = {t->train, t->val};
    for (int k = 0; k < 2 && sets[k]; k++) {
        const mv_dataset *d = sets[k];
        uint32_t crc;
        mv_status st = pixels_crc(d, t->cap, &crc);
        if (st)
            return st;
        h = hash_bytes(h, d->labels, sizeof *d->labels * (size_t)d->count);
        h = mv_seed_mix(h, crc);
    }
    *out = hash_bytes(h, &c->seed, sizeof c->seed);
    return MV_OK;
}

/* Before the first step: every process must train on the same data with the same settings,
 * or the processes would silently compute different things. */
static mv_status check_same_run(const trainer *t)
{
    const int n = mv_dist_size();
    if (n == 1)
        return MV_OK;
    typedef struct {
        uint64_t fingerprint;
        long count, val_count;
    } seen;
    const seen own = {t->fingerprint, t->train->count, t->val ? t->val->count : -1};
    seen *all = calloc((size_t)n, sizeof *all);
    mv_status st = all ? mv_dist_allgather(&own, sizeof own, all)
                       : mv_fail(MV_ERR_NOMEM, "cannot allocate the data check");
    for (int r = 1; st == MV_OK && r < n; r++)
        if (memcmp(&all[r], &all[0], sizeof *all) != 0)
            st = mv_fail(MV_ERR_ARG, "rank %d sees other data or settings than rank 0 (%ld "
                                     "training and %ld validation images against %ld and %ld, "
                                     "fingerprint %016llx against %016llx): every process must "
                                     "read the same files with the same options", r,
                         all[r].count, all[r].val_count, all[0].count, all[0].val_count,
                         (unsigned long long)all[r].fingerprint,
                         (unsigned long long)all[0].fingerprint);
    free(all);
    return st;
}

static mv_status check_inputs(const mv_model *m, const mv_dataset *d, const char *which)
{
    if (d->channels != m->channels || d->height != m->height || d->width != m->width)
        return mv_fail(MV_ERR_ARG, "%s images are %dx%dx%d but the model takes %dx%dx%d", which,
                       d->width, d->height, d->channels, m->width, m->height, m->channels);
    if (d->n_classes != m->n_classes)
        return mv_fail(MV_ERR_ARG, "%s data has %d classes, the model %d", which, d->n_classes,
                       m->n_classes);
    for (int k = 0; k < d->n_classes; k++)
        if (strcmp(d->class_names[k], m->class_names[k]) != 0)
            return mv_fail(MV_ERR_ARG, "%s class %d is '%s' but the model's is '%s'", which, k,
                           d->class_names[k], m->class_names[k]);
    if (d->count < 1)
        return mv_fail(MV_ERR_ARG, "%s data holds no image", which);
    return MV_OK;
}

static mv_status check_config(const mv_train_config *c)
{
    if (c->epochs < 1 || c->batch < 1 || c->batch > (1 << 20))
        return mv_fail(MV_ERR_ARG, "epochs and batch must be positive (got %d, %d)", c->epochs,
                       c->batch);
    if (!(c->lr.lr > 0) || !isfinite(c->lr.lr) || !(c->lr.min_lr >= 0) ||
        !(c->lr.warmup_epochs >= 0) || !(c->lr.gamma > 0) || (unsigned)c->lr.kind >= MV_LR_COUNT)
        return mv_fail(MV_ERR_ARG, "learning-rate settings out of range (lr > 0, gamma > 0, "
                                   "warm-up and min lr >= 0)");
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 1))
        return mv_fail(MV_ERR_ARG, "label smoothing must be in [0, 1), got %g",
                       (double)c->label_smoothing);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return mv_fail(MV_ERR_ARG, "dropout must be in [0, 1), got %g", (double)c->dropout);
    if (c->shift < 0 || c->shift > 64)
        return mv_fail(MV_ERR_ARG, "shift must be 0..64 pixels, got %d", c->shift);
    /* An L-inf radius above 1 allows every image; an L2 one is bounded only by the
     * diagonal of the pixel cube, sqrt(D). */
    const int l2 = c->adv_norm == MV_ADV_L2;
    const double max_eps = l2 ? 1e4 : 1;
    if ((unsigned)c->adv_norm >= MV_ADV_NORM_COUNT || c->adv_steps < 0 || c->adv_steps > 1000 ||
        (c->adv_steps > 0 && !(c->adv_eps > 0 && c->adv_eps <= max_eps)) ||
        !(c->adv_step_size >= 0 && c->adv_step_size <= max_eps))
        return mv_fail(MV_ERR_ARG, "adversarial training needs 0..1000 steps, a radius in "
                                   "(0, %g] and a step size in [0, %g] (got %d, %g, %g)",
                       max_eps, max_eps, c->adv_steps, c->adv_eps, c->adv_step_size);
    if (!(c->noise_aug >= 0 && c->noise_aug <= 10))
        return mv_fail(MV_ERR_ARG, "noise augmentation must be in [0, 10], got %g", c->noise_aug);
    return MV_OK;
}

static void trainer_free(trainer *t)
{
    mv_workspace_free(t->ws);
    mv_optimizer_free(t->opt);
    mv_share_free(t->share);
    mv_prefetch_free(t->prefetch);
    free(t->x);
    free(t->y);
    free(t->x_clean);
    free(t->grad_x);
    free(t->rngs);
    free(t->drop_seeds);
    free(t->losses);
    free(t->hits);
    free(t->perm);
    free(t->history);
    free(t->best);
    free(t->last_good);
}

static mv_status trainer_init(trainer *t, mv_model *model, const mv_dataset *train,
                              const mv_dataset *val, const mv_train_config *cfg)
{
    memset(t, 0, sizeof *t);
    *t = (trainer){.cfg = cfg, .train = train, .val = val, .model = model, .best_accuracy = -1};
    mv_status st = check_config(cfg);
    if (st || (st = check_inputs(model, train, "training")) ||
        (val && (st = check_inputs(model, val, "validation"))))
        return st;
    const mv_arch *arch = &model->net->arch;
    t->D = arch->widths[0];
    t->K = arch->widths[arch->n_layers];
    t->steps_per_epoch = (train->count + cfg->batch - 1) / cfg->batch;
    t->total_steps = t->steps_per_epoch * cfg->epochs;
    const int B = cfg->batch < train->count ? cfg->batch : train->count;
    const size_t P = model->net->p.count;
    t->grad_chunks = cfg->grad_chunks ? cfg->grad_chunks : MV_DEFAULT_GRAD_CHUNKS;
    t->fetched = -1;
    if ((st = mv_workspace_create(&t->ws, arch, B)) ||
        (st = mv_share_create(&t->share, arch, t->grad_chunks)) ||
        (st = mv_prefetch_create(&t->prefetch, train, B)) ||
        (st = mv_optimizer_create(&t->opt, &cfg->opt, arch)))
        return st;
    t->x = malloc(sizeof *t->x * (size_t)B * t->D);
    t->y = malloc(sizeof *t->y * (size_t)B * t->K);
    t->rngs = malloc(sizeof *t->rngs * (size_t)B);
    t->drop_seeds = malloc(sizeof *t->drop_seeds * (size_t)B);
    t->cap = B;
    t->losses = malloc(sizeof *t->losses * 2 * (size_t)B);
    t->hits = malloc(sizeof *t->hits * 2 * (size_t)B);
    if (cfg->adv_steps > 0) {
        t->x_clean = malloc(sizeof *t->x_clean * (size_t)B * t->D);
        t->grad_x = malloc(sizeof *t->grad_x * (size_t)B * t->D);
        if (!t->x_clean || !t->grad_x)
            return mv_fail(MV_ERR_NOMEM, "cannot allocate the adversarial-training buffers");
    }
    t->perm = malloc(sizeof *t->perm * (size_t)train->count);
    t->history = calloc((size_t)cfg->epochs, sizeof *t->history);
    t->best = malloc(sizeof *t->best * P);
    t->last_good = malloc(sizeof *t->last_good * P);
    if (!t->x || !t->y || !t->rngs || !t->drop_seeds || !t->losses || !t->hits || !t->perm ||
        !t->history || !t->best || !t->last_good)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the training buffers");
    memcpy(t->last_good, model->net->p.data, sizeof *t->last_good * P);
    memcpy(t->best, model->net->p.data, sizeof *t->best * P);
    return run_fingerprint(t, &t->fingerprint);
}

/* ------------------------------------------------------------------ checkpoints */

static mv_status meta_printf(mv_model *m, const char *key, const char *fmt, ...)
    MV_PRINTF(3, 4);

static mv_status meta_printf(mv_model *m, const char *key, const char *fmt, ...)
{
    char value[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    return mv_model_meta_set(m, key, value);
}

/* The per-epoch figures as exact text: 7 hexadecimal floats per completed epoch, so that a
 * resumed run reports (and records) the very numbers an uninterrupted one does. malloc'd. */
static char *history_text(const trainer *t)
{
    char *text = malloc((size_t)t->epoch * 7 * 32 + 1);
    if (!text)
        return NULL;
    size_t at = 0;
    text[0] = 0;
    for (int e = 0; e < t->epoch; e++) {
        const mv_epoch_metrics *h = &t->history[e];
        const double row[7] = {h->epoch, h->lr, h->train_loss, h->train_accuracy, h->val_loss,
                               h->val_accuracy, h->seconds};
        for (int k = 0; k < 7; k++)
            at += (size_t)sprintf(text + at, "%s%a", at ? " " : "", row[k]);
    }
    return text;
}

/* Reads history_text back into t->history[0 .. epochs). */
static mv_status parse_history(trainer *t, const char *text, int epochs)
{
    const char *p = text ? text : "";
    for (int e = 0; e < epochs; e++) {
        double row[7];
        for (int k = 0; k < 7; k++) {
            char *end;
            row[k] = strtod(p, &end);
            if (end == p)
                return mv_fail(MV_ERR_FORMAT, "checkpoint history ends before epoch %d", e + 1);
            p = end;
        }
        t->history[e] = (mv_epoch_metrics){(int)row[0], row[1], row[2], row[3], row[4], row[5],
                                           row[6]};
    }
    return MV_OK;
}

/* The model as it stands plus everything needed to continue: optimizer moments, progress
 * counters (exact, as hexadecimal floats), history, best and last good weights. */
static mv_status build_checkpoint(const trainer *t, mv_model **out)
{
    const mv_model *m = t->model;
    const size_t P = m->net->p.count;
    mv_model *ck;
    mv_status st = mv_model_clone(&ck, m);
    if (st)
        return st;
    char *history = history_text(t);
    if (!history) {
        mv_model_free(ck);
        return mv_fail(MV_ERR_NOMEM, "cannot allocate the checkpoint");
    }
    if ((st = meta_printf(ck, "train.epoch", "%d", t->epoch)) ||
        (st = meta_printf(ck, "train.batch", "%ld", t->next_batch)) ||
        (st = meta_printf(ck, "train.loss_sum", "%a", t->loss_sum)) ||
        (st = meta_printf(ck, "train.correct", "%ld", t->correct)) ||
        (st = meta_printf(ck, "train.seen", "%ld", t->seen)) ||
        (st = meta_printf(ck, "train.opt_step", "%ld", t->opt->step)) ||
        (st = meta_printf(ck, "train.best_accuracy", "%a", t->best_accuracy)) ||
        (st = meta_printf(ck, "train.best_epoch", "%d", t->best_epoch)) ||
        (st = meta_printf(ck, "train.fingerprint", "%016llx",
                          (unsigned long long)t->fingerprint)) ||
        (st = mv_model_extra_set(ck, "opt.m", t->opt->m, P)) ||
        (st = mv_model_extra_set(ck, "opt.v", t->opt->v, P)) ||
        (st = mv_model_extra_set(ck, "train.best", t->best, P)) ||
        (st = mv_model_extra_set(ck, "train.last_good", t->last_good, P)) ||
        (st = mv_model_meta_set(ck, "train.history", history))) {
        free(history);
        mv_model_free(ck);
        return st;
    }
    free(history);
    *out = ck;
    return MV_OK;
}

/* In a job of several processes, a failure of any process becomes everyone's (collective);
 * alone, st itself. */
static mv_status agreed(mv_status st)
{
    if (mv_dist_size() == 1)
        return st;
    if (mv_dist_agree(st) < 0)
        return MV_OK;
    return st ? st : MV_ERR_IO;
}

/* Collective: each process updates only its slice of the moments, rank 0 needs them all. */
static mv_status write_checkpoint(trainer *t)
{
    if (!t->cfg->checkpoint_path)
        return MV_OK;
    mv_status st = mv_share_gather_slices(t->share, t->opt->m);
    if (st == MV_OK)
        st = mv_share_gather_slices(t->share, t->opt->v);
    if (st == MV_OK && mv_dist_rank() == 0) {
        mv_model *ck = NULL;
        st = build_checkpoint(t, &ck);
        if (st == MV_OK)
            st = mv_model_save(ck, t->cfg->checkpoint_path);
        mv_model_free(ck);
    }
    return agreed(st);
}

/* Reads one number of a checkpoint's meta (integers in decimal or hexadecimal with 0x,
 * doubles exactly as written by %a), failing with a message when it is absent. */
static mv_status meta_number(const mv_model *ck, const char *key, double *out)
{
    const char *value = mv_model_meta_get(ck, key);
    char *end;
    if (value)
        *out = strtod(value, &end);
    if (!value || end == value || *end)
        return mv_fail(MV_ERR_FORMAT, "checkpoint lacks a valid '%s'", key);
    return MV_OK;
}

static mv_status meta_long(const mv_model *ck, const char *key, long *out)
{
    double v = 0;
    mv_status st = meta_number(ck, key, &v);
    if (st)
        return st;
    if (v != floor(v) || fabs(v) > 1e15)
        return mv_fail(MV_ERR_FORMAT, "checkpoint's '%s' is not a whole number", key);
    *out = (long)v;
    return MV_OK;
}

static mv_status restore_extra(const mv_model *ck, const char *name, float *dst, size_t count)
{
    size_t n;
    const float *src = mv_model_extra_get(ck, name, &n);
    if (!src || n != count)
        return mv_fail(MV_ERR_FORMAT, "checkpoint lacks '%s' of %zu values", name, count);
    memcpy(dst, src, sizeof *dst * count);
    return MV_OK;
}

static mv_status trainer_resume(trainer *t, const mv_model *ck)
{
    const char *fingerprint = mv_model_meta_get(ck, "train.fingerprint");
    if (!fingerprint)
        return mv_fail(MV_ERR_FORMAT, "not a checkpoint: no training state in it");
    if (strtoull(fingerprint, NULL, 16) != t->fingerprint)
        return mv_fail(MV_ERR_ARG, "the checkpoint was made with other data or settings "
                                   "(architecture, batch, optimizer, schedule, seed...): resume "
                                   "with the same command");
    if (ck->net->p.count != t->model->net->p.count)
        return mv_fail(MV_ERR_ARG, "the checkpoint's network has another shape");
    const size_t P = t->model->net->p.count;
    long epoch, best_epoch;
    mv_status st;
    if ((st = meta_long(ck, "train.epoch", &epoch)) ||
        (st = meta_long(ck, "train.batch", &t->next_batch)) ||
        (st = meta_number(ck, "train.loss_sum", &t->loss_sum)) ||
        (st = meta_long(ck, "train.correct", &t->correct)) ||
        (st = meta_long(ck, "train.seen", &t->seen)) ||
        (st = meta_long(ck, "train.opt_step", &t->opt->step)) ||
        (st = meta_number(ck, "train.best_accuracy", &t->best_accuracy)) ||
        (st = meta_long(ck, "train.best_epoch", &best_epoch)) ||
        (st = restore_extra(ck, "opt.m", t->opt->m, P)) ||
        (st = restore_extra(ck, "opt.v", t->opt->v, P)) ||
        (st = restore_extra(ck, "train.best", t->best, P)) ||
        (st = restore_extra(ck, "train.last_good", t->last_good, P)))
        return st;
    if (epoch < 0 || epoch > t->cfg->epochs || t->next_batch < 0 ||
        t->next_batch > t->steps_per_epoch)
        return mv_fail(MV_ERR_FORMAT, "checkpoint progress (epoch %ld, batch %ld) does not fit "
                                      "this run of %d epochs", epoch, t->next_batch,
                       t->cfg->epochs);
    t->epoch = (int)epoch;
    t->best_epoch = (int)best_epoch;
    if ((st = parse_history(t, mv_model_meta_get(ck, "train.history"), t->epoch)))
        return st;
    memcpy(t->model->net->p.data, ck->net->p.data, sizeof(float) * P);
    return MV_OK;
}

/* ------------------------------------------------------------------ one epoch */

/* This epoch's order of the training images: Fisher-Yates from (seed, epoch). */
static void shuffle(trainer *t)
{
    mv_rng rng;
    mv_rng_seed(&rng, mv_seed_mix(t->cfg->seed, 0x5u + (uint64_t)t->epoch));
    const int n = t->train->count;
    for (int i = 0; i < n; i++) t->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)mv_rng_below(&rng, (uint32_t)i + 1);
        const int tmp = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = tmp;
    }
}

/* Copies src [H][W][C] into dst shifted by (dx, dy) and optionally mirrored; pixels
 * shifted in from outside are 0. */
static void augment(const trainer *t, const float *src, float *dst, const int *move)
{
    const int H = t->train->height, W = t->train->width, C = t->train->channels;
    const int dx = move[0], dy = move[1], flip = move[2];
    for (int yy = 0; yy < H; yy++)
        for (int xx = 0; xx < W; xx++) {
            const int sy = yy - dy, sx0 = xx - dx, sx = flip ? W - 1 - sx0 : sx0;
            float *d = dst + ((size_t)yy * W + xx) * C;
            if (sy < 0 || sy >= H || sx0 < 0 || sx0 >= W)
                for (int c = 0; c < C; c++) d[c] = 0;
            else
                memcpy(d, src + ((size_t)sy * W + sx) * C, sizeof *d * (size_t)C);
        }
}

/* Seeds the generator of each of this process's rows from (seed, epoch, image): what is drawn
 * for an image (its shift and flip, noise, attack start, dropout masks) depends on nothing
 * else, neither its place in the batch nor the process computing it. */
static void seed_rows(trainer *t, long first)
{
    const uint64_t epoch_seed = mv_seed_mix(t->cfg->seed, 0xBA7Cu + (uint64_t)t->epoch);
    for (int r = 0; r < t->local; r++)
        mv_rng_seed(&t->rngs[r],
                    mv_seed_mix(epoch_seed, (uint64_t)t->perm[first + t->row0 + r]));
}

/* Fills t->x and t->y with this process's rows of the batch starting at `first` of this
 * epoch's order, from their pixels [local][D]. Each row draws its moves from its own
 * generator and is copied, augmented and normalised apart from the others, so the rows go
 * to the threads (an augmented row is built in its own slot of x, then normalised in place). */
static void assemble_batch(trainer *t, long first, const float *pixels)
{
    const size_t D = (size_t)t->D;
    const int *image = t->perm + first + t->row0; /* pixels NULL: the dataset's own floats */
    const int s = t->cfg->shift, flip = t->cfg->flip, augmented = s > 0 || flip;
    const float smooth = t->cfg->label_smoothing, floor = smooth / (float)t->K;
    for (size_t i = 0; i < (size_t)t->local * t->K; i++) t->y[i] = floor;
    MV_FOR_EACH(int, r, t->local, (size_t)t->local * D > MV_PARALLEL_ROW_VALUES, {
        const float *src = pixels ? pixels + r * D : t->train->pixels + (size_t)image[r] * D;
        mv_real *x = t->x + r * D;
        if (augmented) {
            mv_rng *rng = &t->rngs[r];
            int move[3];
            move[0] = s ? (int)mv_rng_below(rng, 2 * (uint32_t)s + 1) - s : 0;
            move[1] = s ? (int)mv_rng_below(rng, 2 * (uint32_t)s + 1) - s : 0;
            move[2] = flip ? (int)(mv_rng_next(rng) >> 63) : 0;
            augment(t, src, x, move);
            src = x;
        }
        mv_model_prepare_input(t->model, src, x, 1);
    });
    for (int r = 0; r < t->local; r++) {
        const int label = t->train->labels[t->perm[first + t->row0 + r]];
        t->y[(size_t)r * t->K + label] = 1 - smooth + floor;
    }
}

/* Keeps x[i] inside the eps-box around the clean input and inside the image range, both in
 * network units: pixel p maps to (p - mean) / std, per channel. */
static mv_real project(const trainer *t, size_t i, mv_real x)
{
    const int c = (int)(i % (size_t)t->model->channels);
    const double mean = t->model->mean[c], std = t->model->std[c];
    const double eps = t->cfg->adv_eps / std, lo = (0 - mean) / std, hi = (1 - mean) / std;
    const double low = fmax(t->x_clean[i] - eps, lo), high = fmin(t->x_clean[i] + eps, hi);
    return (mv_real)fmin(fmax(x, low), high);
}

void mv_project_l2(const mv_model *m, double eps, const mv_real *clean, mv_real *x)
{
    const int C = m->channels;
    const size_t D = (size_t)m->net->arch.widths[0];
    double norm2 = 0;
    for (size_t i = 0; i < D; i++) {
        const double d = (double)(x[i] - clean[i]) * m->std[i % C];
        norm2 += d * d;
    }
    const double shrink = norm2 > eps * eps ? eps / sqrt(norm2) : 1;
    for (size_t i = 0; i < D; i++) {
        const int c = (int)(i % (size_t)C);
        const double mean = m->mean[c], std = m->std[c];
        const double v = clean[i] + shrink * (double)(x[i] - clean[i]);
        x[i] = (mv_real)fmin(fmax(v, (0 - mean) / std), (1 - mean) / std);
    }
}

void mv_step_l2(const mv_model *m, mv_real *x, const mv_real *v, double length, int gradient)
{
    const int C = m->channels;
    const size_t D = (size_t)m->net->arch.widths[0];
    double norm2 = 0;
    for (size_t i = 0; i < D; i++) {
        const double std = m->std[i % C], p = gradient ? v[i] / std : v[i] * std;
        norm2 += p * p;
    }
    if (!(norm2 > 0))
        return;
    const double scale = length / sqrt(norm2);
    for (size_t i = 0; i < D; i++) {
        const double std = m->std[i % C];
        /* the pixel move is p_i scale; in network units, p_i scale / std */
        x[i] += (mv_real)(gradient ? v[i] * scale / (std * std) : v[i] * scale);
    }
}

/* The attack's random start: a uniform point of the L-inf box, or of the L2 ball (a
 * Gaussian direction, radius eps u^(1/D)). Each row from its own generator. */
static void random_start(trainer *t)
{
    const mv_train_config *c = t->cfg;
    const int C = t->model->channels;
    const size_t D = (size_t)t->D;
    if (c->adv_norm == MV_ADV_LINF) {
        for (int r = 0; r < t->local; r++)
            for (size_t i = r * D; i < (r + 1) * D; i++) {
                const double u = 2 * mv_rng_uniform(&t->rngs[r]) - 1;
                t->x[i] = project(t, i, t->x[i] + (mv_real)(u * c->adv_eps / t->model->std[i % C]));
            }
        return;
    }
    for (int r = 0; r < t->local; r++) {
        mv_rng *rng = &t->rngs[r];
        mv_real *direction = t->grad_x + r * D; /* scratch until the first gradient */
        for (size_t i = 0; i < D; i++) /* isotropic in pixels, as a network displacement */
            direction[i] = (mv_real)(mv_rng_normal(rng) / t->model->std[i % C]);
        const double radius = c->adv_eps * pow(mv_rng_uniform(rng), 1.0 / (double)D);
        mv_step_l2(t->model, t->x + r * D, direction, radius, 0);
        mv_project_l2(t->model, c->adv_eps, t->x_clean + r * D, t->x + r * D);
    }
}

/* Replaces the batch in t->x by adversarial inputs: projected gradient ascent on the loss
 * inside the L-inf ball (sign steps) or the L2 ball (normalised steps), from a random point
 * of the ball; one step from the clean input is FGSM (or its L2 form). The attack runs
 * without dropout, so it sees the network that will be judged. */
static void perturb_batch(trainer *t, int batch_rows)
{
    const mv_train_config *c = t->cfg;
    const mv_net *net = t->model->net;
    const int rows = t->local, L = net->arch.n_layers;
    const size_t n = (size_t)rows * (size_t)t->D;
    const int fgsm = c->adv_steps == 1, C = t->model->channels;
    const double alpha = c->adv_step_size > 0 ? c->adv_step_size
                         : fgsm               ? c->adv_eps
                                              : 2.5 * c->adv_eps / c->adv_steps;
    memcpy(t->x_clean, t->x, sizeof *t->x * n);
    if (!fgsm)
        random_start(t);
    for (int k = 0; k < c->adv_steps; k++) {
        /* the loss's gradient as a part of the whole batch's mean, on any process */
        mv_forward(net, t->ws, t->x, rows);
        mv_head_loss_rows(net->arch.head, t->ws->z[L - 1], t->ws->a[L - 1], t->y,
                          t->ws->top_delta, rows, t->K, batch_rows, NULL);
        mv_backward(net, t->ws, t->x, rows, NULL, t->grad_x);
        if (c->adv_norm == MV_ADV_L2) {
            /* rows are independent: one thread per row, no shared sum */
            const size_t D = (size_t)t->D;
            MV_FOR_EACH(int, r, rows, n > MV_PARALLEL_ROW_VALUES, {
                mv_step_l2(t->model, t->x + r * D, t->grad_x + r * D, alpha, 1);
                mv_project_l2(t->model, c->adv_eps, t->x_clean + r * D, t->x + r * D);
            });
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            const mv_real g = t->grad_x[i], step = (mv_real)(alpha / t->model->std[i % C]);
            t->x[i] = project(t, i, t->x[i] + (g > 0 ? step : g < 0 ? -step : 0));
        }
    }
}

/* Gaussian noise of sd noise_aug pixels on every input, each row from its own generator. */
static void add_noise(trainer *t)
{
    const int C = t->model->channels;
    const size_t D = (size_t)t->D;
    MV_FOR_EACH(int, r, t->local, (size_t)t->local * D > MV_PARALLEL_ROW_VALUES, {
        for (size_t i = r * D; i < (r + 1) * D; i++)
            t->x[i] += (mv_real)(t->cfg->noise_aug * mv_rng_normal(&t->rngs[r]) /
                                 t->model->std[i % C]);
    });
}

/* Asks the prefetcher for this process's rows of batch b of the epoch. */
static mv_status start_fetch(trainer *t, long b)
{
    const long first = b * t->cfg->batch;
    const int rows = (int)(first + t->cfg->batch <= t->train->count ? t->cfg->batch
                                                                    : t->train->count - first);
    int row0, count;
    mv_share_rows(t->share, rows, &row0, &count);
    t->fetched = b;
    return mv_prefetch_start(t->prefetch, t->perm + first + row0, count);
}

/* This process's pixels of batch b [local][D] (borrowed), and the next batch's read begun;
 * NULL for a dataset of floats in memory, which assemble_batch reads in place (a copy less). */
static mv_status fetch_rows(trainer *t, long b, const float **pixels)
{
    if (t->train->storage == MV_STORAGE_FLOAT) { /* in memory as floats: read in place */
        *pixels = NULL;
        return MV_OK;
    }
    mv_status st = t->fetched == b ? MV_OK : start_fetch(t, b);
    if (st == MV_OK)
        st = mv_prefetch_take(t->prefetch, pixels);
    t->fetched = -1;
    if (st == MV_OK && b + 1 < t->steps_per_epoch)
        st = start_fetch(t, b + 1);
    return agreed(st); /* a process that cannot read its images stops them all */
}

/* Forward and backward over this process's rows: their losses and hits into the second half
 * of t->losses and t->hits, the gradient subtrees into the share's nodes. */
static void compute_rows(trainer *t, int batch_rows, long first)
{
    const mv_net *net = t->model->net;
    const int L = net->arch.n_layers, n = t->local;
    double *losses = t->losses + t->cap;
    unsigned char *hits = t->hits + t->cap;
    int n_nodes;
    const mv_grad_node *nodes = mv_share_nodes(t->share, &n_nodes);
    if (n == 0) { /* a short last batch can leave a process no row: its sums are zero */
        for (int k = 0; k < n_nodes; k++)
            memset(nodes[k].grads->data, 0, sizeof(float) * nodes[k].grads->count);
        return;
    }
    for (int r = 0; r < n; r++) t->drop_seeds[r] = mv_rng_next(&t->rngs[r]);
    mv_forward_train_rows(net, t->ws, t->x, n, t->cfg->dropout, t->drop_seeds);
    mv_head_loss_rows(net->arch.head, t->ws->z[L - 1], t->ws->a[L - 1], t->y, t->ws->top_delta,
                      n, t->K, batch_rows, losses);
    mv_backward_nodes(net, t->ws, t->x, n, nodes, n_nodes, NULL);
    const mv_real *out = t->ws->a[L - 1];
    for (int r = 0; r < n; r++)
        hits[r] = mv_index_of_max(out + (size_t)r * t->K, t->K) ==
                  t->train->labels[t->perm[first + t->row0 + r]];
}

/* One optimizer step on batch b of the current epoch, shared by the processes. */
static mv_status train_batch(trainer *t, long b)
{
    const mv_net *net = t->model->net;
    const long first = b * t->cfg->batch;
    const int rows = (int)(first + t->cfg->batch <= t->train->count ? t->cfg->batch
                                                                    : t->train->count - first);
    const float *pixels;
    mv_share_batch(t->share, rows, &t->row0, &t->local);
    mv_status st = fetch_rows(t, b, &pixels);
    if (st)
        return st;
    seed_rows(t, first);
    assemble_batch(t, first, pixels);
    if (t->cfg->noise_aug > 0)
        add_noise(t);
    if (t->cfg->adv_steps > 0 && t->local > 0)
        perturb_batch(t, rows);
    compute_rows(t, rows, first);
    const mv_params *grads;
    if ((st = mv_share_gather_rows(t->share, t->losses + t->cap, sizeof *t->losses,
                                   t->losses)) ||
        (st = mv_share_gather_rows(t->share, t->hits + t->cap, 1, t->hits)) ||
        (st = mv_share_reduce(t->share, &grads)))
        return st;
    double loss = 0; /* in row order, as mv_loss sums */
    for (int r = 0; r < rows; r++) loss += t->losses[r];
    loss /= rows;
    if (!isfinite(loss))
        return mv_fail(MV_ERR_NUMERIC, "the loss became %g at epoch %d, batch %ld: training "
                                       "diverged (try a lower --lr)", loss, t->epoch + 1, b + 1);
    size_t lo, hi;
    mv_share_slice(t->share, &lo, &hi);
    const long step = t->epoch * t->steps_per_epoch + b;
    mv_optimizer_step_range(t->opt, &net->arch, &t->model->net->p, grads,
                            mv_lr_at(&t->cfg->lr, step, t->steps_per_epoch, t->total_steps),
                            lo, hi);
    if ((st = mv_share_gather_slices(t->share, t->model->net->p.data)))
        return st;
    for (int r = 0; r < rows; r++) t->correct += t->hits[r];
    t->loss_sum += loss * rows;
    t->seen += rows;
    return MV_OK;
}

/* ------------------------------------------------------------------ evaluation, metrics */

/* One block of evaluation: the mean loss over its rows as mv_loss gives it, its hits. */
typedef struct {
    double loss;
    long correct;
} block_result;

/* The loss is summed by blocks of EVAL_BLOCK images (a block's mean, then the blocks in
 * order), which fixes its bits; a block is read and computed in pieces of at most `piece`
 * images, which bounds the memory (a streamed dataset's rows). */
enum { EVAL_BLOCK = 256 };

typedef struct {
    const mv_model *model;
    const mv_dataset *data;
    mv_workspace *ws;
    mv_real *x, *y;           /* [piece][D], [piece][K] (y zero between pieces) */
    double *losses;           /* [piece] */
    int *index;               /* [piece] */
    long *confusion;          /* may be NULL */
} evaluator;

/* Images [first, first + rows) into the block's running loss total and hits. */
static mv_status evaluate_piece(evaluator *e, int first, int rows, double *total,
                                block_result *res)
{
    const mv_arch *arch = &e->model->net->arch;
    const int K = arch->widths[arch->n_layers], L = arch->n_layers;
    for (int r = 0; r < rows; r++) e->index[r] = first + r;
    mv_status st = mv_dataset_read_rows(e->data, e->index, rows, e->x);
    if (st)
        return st;
    mv_model_prepare_input(e->model, e->x, e->x, rows);
    for (int r = 0; r < rows; r++) e->y[(size_t)r * K + e->data->labels[first + r]] = 1;
    mv_forward(e->model->net, e->ws, e->x, rows);
    mv_head_loss_rows(arch->head, e->ws->z[L - 1], e->ws->a[L - 1], e->y, NULL, rows, K, rows,
                      e->losses);
    for (int r = 0; r < rows; r++) {
        const int truth = e->data->labels[first + r];
        const int guess = mv_index_of_max(e->ws->a[L - 1] + (size_t)r * K, K);
        *total += e->losses[r]; /* in row order, as mv_loss sums */
        res->correct += guess == truth;
        if (e->confusion)
            e->confusion[(size_t)truth * K + guess]++;
        e->y[(size_t)r * K + truth] = 0;
    }
    return MV_OK;
}

/* Blocks [lo, hi) of EVAL_BLOCK images of data into out[0 .. hi - lo), read `piece` images
 * at a time, and the confusion counts added (may be NULL). */
static mv_status evaluate_blocks(const mv_model *model, const mv_dataset *data, int lo, int hi,
                                 int piece, block_result *out, long *confusion)
{
    const mv_arch *arch = &model->net->arch;
    const int D = arch->widths[0], K = arch->widths[arch->n_layers];
    piece = piece < EVAL_BLOCK ? piece : EVAL_BLOCK;
    piece = piece < data->count ? piece : data->count;
    evaluator e = {.model = model, .data = data, .confusion = confusion,
                   .x = malloc(sizeof(mv_real) * (size_t)piece * D),
                   .y = calloc((size_t)piece * K, sizeof(mv_real)),
                   .losses = malloc(sizeof(double) * (size_t)piece),
                   .index = malloc(sizeof(int) * (size_t)piece)};
    mv_status st = e.x && e.y && e.losses && e.index
                       ? mv_workspace_create(&e.ws, arch, piece)
                       : mv_fail(MV_ERR_NOMEM, "cannot allocate evaluation buffers");
    for (int blk = lo; st == MV_OK && blk < hi; blk++) {
        const int first = blk * EVAL_BLOCK;
        const int rows = data->count - first < EVAL_BLOCK ? data->count - first : EVAL_BLOCK;
        double total = 0;
        out[blk - lo] = (block_result){0};
        for (int at = 0; st == MV_OK && at < rows; at += piece)
            st = evaluate_piece(&e, first + at, rows - at < piece ? rows - at : piece, &total,
                                &out[blk - lo]);
        out[blk - lo].loss = total / rows;
    }
    free(e.x);
    free(e.y);
    free(e.losses);
    free(e.index);
    mv_workspace_free(e.ws);
    return st;
}

/* Accuracy and mean loss from every block's result, summed in block order. */
static void total_blocks(const mv_dataset *data, const block_result *res, int blocks,
                         double *accuracy, double *loss)
{
    long correct = 0;
    double loss_sum = 0;
    for (int blk = 0; blk < blocks; blk++) {
        const int first = blk * EVAL_BLOCK;
        const int rows = data->count - first < EVAL_BLOCK ? data->count - first : EVAL_BLOCK;
        loss_sum += res[blk].loss * rows;
        correct += res[blk].correct;
    }
    *accuracy = (double)correct / data->count;
    if (loss)
        *loss = loss_sum / data->count;
}

mv_status mv_evaluate(const mv_model *model, const mv_dataset *data, double *accuracy,
                      double *loss, long *confusion)
{
    mv_status st = check_inputs(model, data, "evaluation");
    if (st)
        return st;
    const int blocks = (data->count + EVAL_BLOCK - 1) / EVAL_BLOCK;
    const int K = model->net->arch.widths[model->net->arch.n_layers];
    block_result *res = calloc((size_t)blocks, sizeof *res);
    if (!res)
        return mv_fail(MV_ERR_NOMEM, "cannot allocate evaluation buffers");
    if (confusion)
        memset(confusion, 0, sizeof *confusion * (size_t)K * K);
    if ((st = evaluate_blocks(model, data, 0, blocks, EVAL_BLOCK, res, confusion)) == MV_OK)
        total_blocks(data, res, blocks, accuracy, loss);
    free(res);
    return st;
}

/* mv_evaluate without the confusion matrix, its blocks shared by the processes of the job
 * (collective): the same figures, bit for bit, as one process computes. */
static mv_status evaluate_shared(const trainer *t, const mv_dataset *data, double *accuracy,
                                 double *loss)
{
    const int n = mv_dist_size(), rank = mv_dist_rank();
    const int blocks = (data->count + EVAL_BLOCK - 1) / EVAL_BLOCK;
    const int lo = (int)((long)rank * blocks / n), hi = (int)((long)(rank + 1) * blocks / n);
    block_result *res = calloc((size_t)blocks, sizeof *res);
    size_t *bytes = malloc(sizeof *bytes * (size_t)n);
    mv_status st = res && bytes ? MV_OK : mv_fail(MV_ERR_NOMEM, "cannot allocate evaluation");
    if (st == MV_OK)
        st = evaluate_blocks(t->model, data, lo, hi, t->cap, res + lo, NULL);
    if ((st = agreed(st)) == MV_OK && n > 1) {
        for (int r = 0; r < n; r++)
            bytes[r] = sizeof *res * (size_t)((long)(r + 1) * blocks / n - (long)r * blocks / n);
        block_result *mine = malloc(sizeof *mine * (size_t)(hi - lo + 1));
        st = mine ? MV_OK : mv_fail(MV_ERR_NOMEM, "cannot allocate evaluation");
        if (st == MV_OK) {
            memcpy(mine, res + lo, sizeof *mine * (size_t)(hi - lo));
            st = mv_dist_allgatherv(mine, bytes, res);
        }
        free(mine);
    }
    if (st == MV_OK)
        total_blocks(data, res, blocks, accuracy, loss);
    free(res);
    free(bytes);
    return st;
}

/* Rewrites the metrics CSV from the history, atomically. */
static mv_status write_metrics_file(const trainer *t)
{
    const char *path = t->cfg->metrics_path;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return mv_fail(MV_ERR_NOMEM, "%s: cannot format the metrics", path);
    fprintf(f, "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds\n");
    for (int e = 0; e < t->epoch; e++) {
        const mv_epoch_metrics *h = &t->history[e];
        fprintf(f, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.3f\n", h->epoch, h->lr, h->train_loss,
                h->train_accuracy, h->val_loss, h->val_accuracy, h->seconds);
    }
    if (fclose(f)) {
        free(text);
        return mv_fail(MV_ERR_NOMEM, "%s: cannot format the metrics", path);
    }
    const mv_status st = mv_write_file_atomic(path, text, size);
    free(text);
    return st;
}

/* Rank 0 writes the metrics; a failure stops every process (collective). */
static mv_status write_metrics(const trainer *t)
{
    if (!t->cfg->metrics_path)
        return MV_OK;
    return agreed(mv_dist_rank() == 0 ? write_metrics_file(t) : MV_OK);
}

/* Measures, records, keeps the best weights, and writes the checkpoint and metrics. */
static mv_status finish_epoch(trainer *t, double seconds)
{
    const size_t P = t->model->net->p.count;
    for (size_t i = 0; i < P; i++) /* the last step may have blown the weights up */
        if (!isfinite(t->model->net->p.data[i]))
            return mv_fail(MV_ERR_NUMERIC, "weights became infinite or NaN at the end of epoch "
                                           "%d: training diverged (try a lower --lr)",
                           t->epoch + 1);
    mv_epoch_metrics *h = &t->history[t->epoch];
    *h = (mv_epoch_metrics){.epoch = t->epoch + 1, .train_loss = t->loss_sum / t->seen,
                            .train_accuracy = (double)t->correct / t->seen, .val_loss = -1,
                            .val_accuracy = -1, .seconds = seconds};
    h->lr = mv_lr_at(&t->cfg->lr, (t->epoch + 1) * t->steps_per_epoch - 1, t->steps_per_epoch,
                     t->total_steps);
    mv_status st;
    if (t->val && (st = evaluate_shared(t, t->val, &h->val_accuracy, &h->val_loss)))
        return st;
    if (t->val && h->val_accuracy > t->best_accuracy) {
        t->best_accuracy = h->val_accuracy;
        t->best_epoch = t->epoch + 1;
        memcpy(t->best, t->model->net->p.data, sizeof(float) * P);
    }
    memcpy(t->last_good, t->model->net->p.data, sizeof(float) * P);
    t->epoch++;
    t->next_batch = 0;
    t->loss_sum = 0;
    t->correct = t->seen = 0;
    if ((st = write_checkpoint(t)) || (st = write_metrics(t)))
        return st;
    if (t->cfg->progress && mv_dist_rank() == 0) {
        mv_train_progress p = {.epoch = t->epoch, .epochs = t->cfg->epochs,
                               .loss = h->train_loss, .accuracy = h->train_accuracy,
                               .metrics = h};
        t->cfg->progress(&p, t->cfg->user);
    }
    return MV_OK;
}

/* batches_done: batches trained in this epoch by this process (not restored ones). */
static void report_batch(const trainer *t, long b, double started, long rows_this_run,
                         long batches_done)
{
    if (!t->cfg->progress || mv_dist_rank() != 0)
        return;
    const double elapsed = omp_get_wtime() - started;
    const long remaining = (t->cfg->epochs - t->epoch) * t->steps_per_epoch - (b + 1);
    mv_train_progress p = {.epoch = t->epoch + 1, .epochs = t->cfg->epochs, .batch = b + 1,
                           .batches = t->steps_per_epoch, .loss = t->loss_sum / t->seen,
                           .accuracy = (double)t->correct / t->seen,
                           .samples_per_second = elapsed > 0 ? rows_this_run / elapsed : 0,
                           .eta_seconds = elapsed / batches_done * remaining};
    t->cfg->progress(&p, t->cfg->user);
}

/* Whether any process was asked to stop (collective: they all stop after the same batch). */
static mv_status asked_to_stop(const trainer *t, int *stopped)
{
    const int mine = t->cfg->should_stop && t->cfg->should_stop(t->cfg->user);
    const int n = mv_dist_size();
    *stopped = mine;
    if (n == 1)
        return MV_OK;
    int *all = malloc(sizeof *all * (size_t)n);
    mv_status st = all ? mv_dist_allgather(&mine, sizeof mine, all)
                       : mv_fail(MV_ERR_NOMEM, "cannot allocate the stop flags");
    for (int r = 0; st == MV_OK && r < n; r++) *stopped |= all[r];
    free(all);
    return st;
}

/* Trains the rest of the current epoch; *stopped is set when interrupted. */
static mv_status run_epoch(trainer *t, int *stopped)
{
    const double started = omp_get_wtime();
    const long seen_before = t->seen, first_batch = t->next_batch;
    shuffle(t);
    for (long b = t->next_batch; b < t->steps_per_epoch; b++) {
        mv_status st = train_batch(t, b);
        if (st)
            return st;
        t->next_batch = b + 1;
        report_batch(t, b, started, t->seen - seen_before, b + 1 - first_batch);
        if ((st = asked_to_stop(t, stopped)))
            return st;
        if (*stopped)
            return write_checkpoint(t);
    }
    return finish_epoch(t, omp_get_wtime() - started);
}

/* Final figures in the model's meta: only what the run determines, never times. */
static mv_status record_results(trainer *t)
{
    const mv_epoch_metrics *last = &t->history[t->epoch - 1];
    mv_model *m = t->model;
    mv_status st;
    if ((st = meta_printf(m, "train.epochs", "%d", t->epoch)) ||
        (st = meta_printf(m, "train.seed", "%llu", (unsigned long long)t->cfg->seed)) ||
        (st = meta_printf(m, "train.loss", "%.6f", last->train_loss)) ||
        (st = meta_printf(m, "train.accuracy", "%.6f", last->train_accuracy)))
        return st;
    const int l2 = t->cfg->adv_norm == MV_ADV_L2;
    if (t->cfg->adv_steps > 0 &&
        (st = meta_printf(m, "train.adversarial", "%s%s eps=%g steps=%d",
                          t->cfg->adv_steps == 1 ? "fgsm" : "pgd", l2 ? " l2" : "",
                          t->cfg->adv_eps, t->cfg->adv_steps)))
        return st;
    if (t->cfg->noise_aug > 0 &&
        (st = meta_printf(m, "train.noise_aug", "%g", t->cfg->noise_aug)))
        return st;
    if (!t->val)
        return MV_OK;
    if (t->cfg->keep_best && t->best_epoch > 0) {
        memcpy(m->net->p.data, t->best, sizeof(float) * m->net->p.count);
        if ((st = meta_printf(m, "train.kept_epoch", "%d", t->best_epoch)))
            return st;
    }
    const double acc = t->cfg->keep_best && t->best_epoch ? t->best_accuracy : last->val_accuracy;
    return meta_printf(m, "val.accuracy", "%.6f", acc);
}

mv_status mv_train(mv_model *model, const mv_dataset *train, const mv_dataset *val,
                   const mv_train_config *config, int *interrupted)
{
    trainer t;
    int stopped = 0;
    mv_status st = trainer_init(&t, model, train, val, config);
    if (st == MV_OK && config->resume)
        st = trainer_resume(&t, config->resume);
    if ((st = agreed(st)) == MV_OK)
        st = check_same_run(&t);
    /* A kill between an epoch's checkpoint and its metrics leaves the CSV an epoch behind;
     * when that was the last epoch no later epoch would rewrite it. */
    if (st == MV_OK && config->resume)
        st = write_metrics(&t);
    while (st == MV_OK && !stopped && t.epoch < config->epochs)
        st = run_epoch(&t, &stopped);
    if (st == MV_ERR_NUMERIC) { /* keep the last completed epoch's weights, and say how many */
        memcpy(model->net->p.data, t.last_good, sizeof(float) * model->net->p.count);
        if (t.epoch > 0)
            meta_printf(model, "train.epochs", "%d", t.epoch);
    }
    if (st == MV_OK && !stopped && t.epoch > 0)
        st = record_results(&t);
    if (interrupted)
        *interrupted = stopped;
    trainer_free(&t);
    return st;
}
