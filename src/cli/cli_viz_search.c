/* cli_viz_search.c: `mlpviz visualize --search N`: random settings around the given ones,
 * each run on every target, ranked by: every image at >= 0.99 for its own model, then
 * the judge's mean probability, then the model's own; the winner becomes the run's settings and is written as a preset file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_viz.h"

/* Picks one of n values, uniformly. */
#define PICK(rng, values) ((values)[mv_rng_below((rng), sizeof(values) / sizeof *(values))])

/* Trial 0 is the given setting, so the search never ends worse than where it started; the
 * others draw every regularizer from the ranges that make sense on small images. */
static void sample_setting(const mv_viz_config *base, int has_stats, int trial, mv_viz_config *c)
{
    *c = *base;
    /* no hooks: a trial reports nothing while it runs, and its result, this included, holds
     * no pointer when the processes of a job exchange it */
    c->on_frame = NULL;
    c->on_step = NULL;
    c->on_scores = NULL;
    c->user = NULL;
    if (trial == 0)
        return;
    static const double lrs[] = {0.002, 0.003, 0.005, 0.01, 0.02}, decays[] = {0, 0.001, 0.002, 0.005, 0.01};
    static const int blur_everies[] = {0, 2, 4, 8}, jitters[] = {0, 1, 2}, octaves[] = {1, 2, 3};
    static const double sigmas[] = {0.3, 0.5, 0.8, 1.0}, grad_blurs[] = {0, 0.5, 1, 1.5, 2};
    static const double pcts[] = {0, 0, 10, 30};
    static const mv_viz_init starts[] = {MV_INIT_GRAY, MV_INIT_MEAN, MV_INIT_CLASS_MEAN,
                                         MV_INIT_CLASS_SAMPLE};
    static const mv_viz_optimizer optimizers[] = {MV_PIXOPT_PLAIN, MV_PIXOPT_PLAIN, MV_PIXOPT_ADAM};
    mv_rng rng;
    mv_rng_seed(&rng, base->seed * 0x9E3779B97F4A7C15ull + (uint64_t)trial);
    c->step = MV_STEP_NORMALIZED;
    c->lr = PICK(&rng, lrs);
    c->decay = PICK(&rng, decays);
    c->decay_to = MV_DECAY_TO_START;
    c->blur_every = PICK(&rng, blur_everies);
    c->blur_sigma = PICK(&rng, sigmas);
    c->grad_blur = PICK(&rng, grad_blurs);
    c->jitter = PICK(&rng, jitters);
    c->octaves = PICK(&rng, octaves);
    c->norm_pct = PICK(&rng, pcts);
    c->contrib_pct = 0;
    c->optimizer = PICK(&rng, optimizers);
    const int n_starts = has_stats && c->objective != MV_OBJ_HIDDEN_PRE ? 4 : 2;
    c->init = starts[mv_rng_below(&rng, (uint32_t)n_starts)];
}

typedef struct {
    mv_viz_config cfg;
    double judge_mean, own_mean; /* target probabilities (own: the score for units) */
    double own_min;              /* the least convinced image's own probability */
    int recognized;              /* images the judge (else the model) puts in their class */
    mv_status status;
    char message[256];
} trial_result;

/* Convincing its own model (every image at >= 0.99) comes first, then the judge. */
static int better(const trial_result *a, const trial_result *b)
{
    const int a_ok = a->own_min >= 0.99, b_ok = b->own_min >= 0.99;
    if (a_ok != b_ok)
        return a_ok;
    if (a->judge_mean != b->judge_mean)
        return a->judge_mean > b->judge_mean;
    return a->own_mean > b->own_mean;
}

/* Runs one setting into images [rows][D]; judge_probs [rows][K] is scratch. */
static void run_trial(trial_result *t, const mv_model *m, const mv_model *judge,
                      const int *targets, int rows, float *images, mv_viz_result *results,
                      float *judge_probs)
{
    t->status = mv_visualize(m, &t->cfg, targets, rows, NULL, images, results);
    if (t->status == MV_OK && judge)
        t->status = mv_model_predict(judge, images, rows, judge_probs);
    if (t->status) {
        snprintf(t->message, sizeof t->message, "%s", mv_last_error());
        return;
    }
    const int units = t->cfg.objective == MV_OBJ_HIDDEN_PRE;
    t->own_min = units ? 1 : results[0].prob;
    for (int r = 0; r < rows; r++) {
        t->own_mean += (units ? results[r].score : results[r].prob) / rows;
        if (!units && results[r].prob < t->own_min)
            t->own_min = results[r].prob;
        if (judge && !units) {
            const float *p = judge_probs + (size_t)r * judge->n_classes;
            t->judge_mean += p[targets[r]] / rows;
            t->recognized += mv_index_of_max(p, judge->n_classes) == targets[r];
        } else {
            t->recognized += results[r].top_class == targets[r];
        }
    }
}

static int write_search_report(const viz_options *o, const trial_result *t, int n, int best)
{
    char *text = NULL, path[4096], flags[1024];
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) {
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
    fprintf(f, "trial,judge_mean,own_mean,own_min,recognized,settings\n"); /* no comma in flags */
    for (int i = 0; i < n; i++) {
        viz_config_flags(&t[i].cfg, flags, sizeof flags);
        fprintf(f, "%d,%.6f,%.6f,%.6f,%d,%s\n", i, t[i].judge_mean, t[i].own_mean, t[i].own_min,
                t[i].recognized, flags);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/search.csv", o->out);
    int rc = mv_write_file_atomic(path, text, size) != MV_OK;
    free(text);
    viz_config_flags(&t[best].cfg, flags, sizeof flags);
    char preset[2048];
    int len = snprintf(preset, sizeof preset,
                             "# mlpviz visualize --search %d: trial %d on %s, judge mean %.4f, "
                             "own mean %.4f\n%s\n",
                             n, best, o->model_path, t[best].judge_mean, t[best].own_mean, flags);
    len = len < (int)sizeof preset ? len : (int)sizeof preset - 1;
    snprintf(path, sizeof path, "%s/preset.txt", o->out);
    if (!rc)
        rc = mv_write_file_atomic(path, preset, (size_t)len) != MV_OK;
    if (rc)
        cli_error("visualize", "%s", mv_last_error());
    return rc;
}

/* The contact sheet: one row per trial (its first seed's images), labelled with its scores. */
static int write_search_sheet(const viz_options *o, const mv_model *m, const trial_result *t,
                              int n, const float *sheet_images, int n_targets,
                              const char *const *names)
{
    char (*labels)[32] = calloc((size_t)n, sizeof *labels);
    const char **rows = calloc((size_t)n, sizeof *rows);
    int rc = MV_EXIT_FAIL;
    if (labels && rows) {
        for (int i = 0; i < n; i++) {
            snprintf(labels[i], sizeof labels[i], "#%d %.2f %.2f", i, t[i].judge_mean,
                     t[i].own_mean);
            rows[i] = labels[i];
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/search.png", o->out);
        rc = viz_write_sheet(path, m, 2, sheet_images, n, n_targets, names, rows,
                             "mlpviz visualize --search");
    } else {
        cli_error("visualize", "out of memory");
    }
    free(labels);
    free(rows);
    return rc;
}

/* Runs trial i of t [n] for every i, their first images in sheet [n][n_targets][D]. Trials
 * are independent runs; each runs single-threaded inside (nested regions are serial), and
 * none depends on the thread count, so the winner does not either. */
static void run_trials(trial_result *t, int n, const mv_model *m, const mv_model *judge,
                       const int *targets, int rows, int n_targets, float *sheet)
{
    const int K = judge ? judge->n_classes : 1;
    const size_t D = (size_t)m->width * m->height * m->channels;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        float *images = malloc(sizeof *images * D * (size_t)rows);
        float *judged = malloc(sizeof *judged * (size_t)rows * K);
        mv_viz_result *results = malloc(sizeof *results * (size_t)rows);
        if (images && judged && results) {
            run_trial(&t[i], m, judge, targets, rows, images, results, judged);
            memcpy(sheet + (size_t)i * n_targets * D, images, sizeof *sheet * D * n_targets);
        } else {
            t[i].status = MV_ERR_NOMEM;
            snprintf(t[i].message, sizeof t[i].message, "out of memory");
        }
        free(images);
        free(judged);
        free(results);
    }
}

/* Collective: this process's block of the trials (all of them alone), its failures agreed on,
 * then every trial's result and sheet row on every process. */
static int shared_trials(trial_result *t, int n, const mv_model *m, const mv_model *judge,
                         const int *targets, int rows, int n_targets, float *sheet)
{
    const size_t D = (size_t)m->width * m->height * m->channels;
    viz_share s;
    int rc = viz_share_items(&s, n) ? MV_EXIT_FAIL : MV_EXIT_OK;
    if (rc)
        cli_error("visualize", "out of memory for %d trials", n);
    rc = cli_job_agree("visualize", rc);
    if (rc)
        return rc;
    const int first = s.first[mv_dist_rank()], count = s.count[mv_dist_rank()];
    trial_result *mine = t + first; /* computed in place; sent from a copy, since MPI
                                     * may not send from the buffer it gathers into */
    float *my_sheet = sheet + (size_t)first * n_targets * D;
    run_trials(mine, count, m, judge, targets, rows, n_targets, my_sheet);
    for (int i = 0; i < count && !rc; i++)
        if (mine[i].status) {
            cli_error("visualize", "--search trial %d: %s", first + i, mine[i].message);
            rc = MV_EXIT_FAIL;
        }
    rc = cli_job_agree("visualize", rc);
    const size_t sheet_row = D * (size_t)n_targets, some = (size_t)(count ? count : 1);
    trial_result *sent = rc ? NULL : malloc(sizeof *sent * some);
    float *sent_sheet = rc ? NULL : malloc(sizeof *sent_sheet * sheet_row * some);
    if (!rc && (!sent || !sent_sheet)) {
        cli_error("visualize", "out of memory for the search's results");
        rc = MV_EXIT_FAIL;
    }
    rc = cli_job_agree("visualize", rc);
    if (!rc) {
        memcpy(sent, mine, sizeof *sent * (size_t)count);
        memcpy(sent_sheet, my_sheet, sizeof *sent_sheet * sheet_row * (size_t)count);
        rc = viz_share_gather(&s, sent, sizeof *sent, 1, t);
    }
    if (!rc)
        rc = viz_share_gather(&s, sent_sheet, sizeof *sent_sheet * sheet_row, 1, sheet);
    free(sent);
    free(sent_sheet);
    viz_share_free(&s);
    return rc;
}

int viz_search(viz_options *o, const mv_model *m, const mv_model *judge, const int *targets,
               int rows, int n_targets)
{
    const int n = o->search;
    const size_t D = (size_t)m->width * m->height * m->channels;
    trial_result *t = calloc((size_t)n, sizeof *t);
    float *sheet = malloc(sizeof *sheet * D * (size_t)n * n_targets);
    char **names = calloc((size_t)n_targets, sizeof *names);
    if (!t || !sheet || !names) {
        free(t);
        free(sheet);
        free(names);
        cli_error("visualize", "out of memory");
        return MV_EXIT_FAIL;
    }
    const int has_stats = mv_model_has_class_stats(m, NULL);
    for (int i = 0; i < n; i++) sample_setting(&o->viz, has_stats, i, &t[i].cfg);
    int rc = shared_trials(t, n, m, judge, targets, rows, n_targets, sheet), best = 0;
    for (int i = 1; i < n && !rc; i++)
        if (better(&t[i], &t[best]))
            best = i;
    char buf[64];
    for (int k = 0; k < n_targets; k++)
        names[k] = o->units ? (snprintf(buf, sizeof buf, "%d", targets[k]), strdup(buf))
                            : strdup(m->class_names[targets[k]]);
    const int writer = mv_dist_rank() == 0; /* in a job, rank 0 alone writes and reports */
    if (!rc && writer)
        cli_ensure_dir(o->out);
    if (!rc && writer)
        rc = write_search_report(o, t, n, best) ||
                     write_search_sheet(o, m, t, n, sheet, n_targets, (const char *const *)names)
                 ? MV_EXIT_FAIL
                 : MV_EXIT_OK;
    rc = cli_job_agree("visualize", rc); /* then every process goes on with the winner */
    if (!rc && writer)
        fprintf(stderr, "mlpviz visualize: search: trial %d of %d wins (judge mean %.4f, own "
                        "mean %.4f); preset in %s/preset.txt\n",
                best, n, t[best].judge_mean, t[best].own_mean, o->out);
    if (!rc)
        o->viz = t[best].cfg;
    for (int k = 0; k < n_targets; k++) free(names[k]);
    free(names);
    free(t);
    free(sheet);
    return rc;
}
