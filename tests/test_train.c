/* test_train.c: optimizers and schedules against hand-computed updates, the validation
 * split, normalisation, and training end to end: accuracy on synthetic classes, bitwise
 * reproducibility across thread counts and across an interruption, divergence handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "mlpviz.h"
#include "synthetic.h"

#define CLOSE(a, b) assert_true(fabs((double)(a) - (double)(b)) <= 1e-6 * (1 + fabs((double)(b))))

/* ------------------------------------------------------------------ optimizers */

/* A 1-layer 2->1 network: parameters W = (w0, w1), b. */
static mv_arch tiny_arch(void)
{
    mv_arch arch = {.n_layers = 1, .widths = {2, 1}, .head = MV_HEAD_IDENTITY_MSE};
    return arch;
}

static void run_steps(mv_opt_kind kind, double weight_decay, int steps, float *theta_out)
{
    mv_arch arch = tiny_arch();
    mv_params *p, *g;
    mv_optimizer *opt;
    mv_opt_config cfg;
    mv_opt_defaults(&cfg, kind);
    cfg.weight_decay = weight_decay;
    assert_int_equal(mv_params_create(&p, &arch), MV_OK);
    assert_int_equal(mv_params_create(&g, &arch), MV_OK);
    assert_int_equal(mv_optimizer_create(&opt, &cfg, &arch), MV_OK);
    p->W[0][0] = 1.0f, p->W[0][1] = -2.0f, p->b[0][0] = 0.5f;
    for (int s = 0; s < steps; s++) {
        g->W[0][0] = 0.5f, g->W[0][1] = 0.25f, g->b[0][0] = -1.0f;
        mv_optimizer_step(opt, &arch, p, g, 0.1);
    }
    memcpy(theta_out, p->data, sizeof(float) * 3);
    mv_params_free(p);
    mv_params_free(g);
    mv_optimizer_free(opt);
}

static void test_optimizer_updates_by_hand(void **state)
{
    (void)state;
    float t[3];
    run_steps(MV_OPT_SGD, 0, 1, t); /* theta - lr g */
    CLOSE(t[0], 1 - 0.1 * 0.5);
    CLOSE(t[2], 0.5 + 0.1);
    run_steps(MV_OPT_SGD, 0.1, 1, t); /* decay on weights, not on the bias */
    CLOSE(t[0], 1 - 0.1 * (0.5 + 0.1 * 1));
    CLOSE(t[2], 0.5 + 0.1);
    run_steps(MV_OPT_MOMENTUM, 0, 2, t); /* v1 = g, v2 = 0.9 g + g */
    CLOSE(t[0], 1 - 0.1 * 0.5 - 0.1 * 1.9 * 0.5);
    run_steps(MV_OPT_NESTEROV, 0, 1, t); /* v1 = g; theta -= lr (g + mu v1) */
    CLOSE(t[1], -2 - 0.1 * (0.25 + 0.9 * 0.25));
    run_steps(MV_OPT_ADAM, 0, 1, t); /* first step moves each weight by ~lr sign(g) */
    CLOSE(t[0], 1 - 0.1 * 0.5 / (0.5 + 1e-8));
    CLOSE(t[2], 0.5 + 0.1 * 1 / (1 + 1e-8));
    run_steps(MV_OPT_ADAM, 0, 3, t); /* constant gradient: bias-corrected steps stay lr */
    assert_true(fabs(t[0] - (1 - 0.3)) < 1e-5);
    run_steps(MV_OPT_ADAMW, 0.1, 1, t); /* decoupled decay: theta (1 - lr wd) - step */
    CLOSE(t[0], 1 * (1 - 0.1 * 0.1) - 0.1);
    run_steps(MV_OPT_ADAM, 0.1, 1, t); /* coupled: the decay enters the moments */
    CLOSE(t[0], 1 - 0.1);
    CLOSE(t[2], 0.5 + 0.1);
}

static void test_optimizer_names_and_limits(void **state)
{
    (void)state;
    mv_opt_kind kind;
    for (int k = 0; k < MV_OPT_COUNT; k++) {
        assert_int_equal(mv_opt_parse(&kind, mv_opt_name((mv_opt_kind)k)), MV_OK);
        assert_int_equal(kind, k);
    }
    assert_int_equal(mv_opt_parse(&kind, "rmsprop"), MV_ERR_ARG);
    mv_opt_config cfg;
    mv_opt_defaults(&cfg, MV_OPT_MOMENTUM);
    cfg.momentum = 1.0;
    mv_optimizer *opt;
    mv_arch arch = tiny_arch();
    assert_int_equal(mv_optimizer_create(&opt, &cfg, &arch), MV_ERR_ARG);
    assert_null(opt);
}

static void test_lr_schedules(void **state)
{
    (void)state;
    mv_lr_config c = {.kind = MV_LR_CONST, .lr = 0.1, .step_every = 2, .gamma = 0.5};
    CLOSE(mv_lr_at(&c, 57, 10, 100), 0.1);
    c.warmup_epochs = 1; /* 10 warm-up steps: lr (s + 1) / 10 */
    CLOSE(mv_lr_at(&c, 0, 10, 100), 0.01);
    CLOSE(mv_lr_at(&c, 9, 10, 100), 0.1);
    c.kind = MV_LR_STEP;
    c.warmup_epochs = 0;
    CLOSE(mv_lr_at(&c, 19, 10, 100), 0.1);  /* epoch 1 */
    CLOSE(mv_lr_at(&c, 20, 10, 100), 0.05); /* epoch 2 */
    CLOSE(mv_lr_at(&c, 45, 10, 100), 0.025);
    c.kind = MV_LR_COSINE;
    c.min_lr = 0.001;
    CLOSE(mv_lr_at(&c, 0, 10, 101), 0.1);
    CLOSE(mv_lr_at(&c, 50, 10, 101), 0.001 + 0.099 * 0.5);
    CLOSE(mv_lr_at(&c, 100, 10, 101), 0.001);
    /* a warm-up shorter than one step never exceeds the peak */
    c.warmup_epochs = 0.01;
    CLOSE(mv_lr_at(&c, 0, 10, 101), 0.1);
    /* cosine after 2 warm-up epochs: warm-up steps rise to the peak, then the decay spans
     * the remaining steps */
    c.warmup_epochs = 2;
    CLOSE(mv_lr_at(&c, 9, 10, 101), 0.05);
    CLOSE(mv_lr_at(&c, 20, 10, 101), 0.1);
    CLOSE(mv_lr_at(&c, 100, 10, 101), 0.001);
    mv_lr_schedule kind;
    assert_int_equal(mv_lr_parse(&kind, "cosine"), MV_OK);
    assert_int_equal(kind, MV_LR_COSINE);
    assert_int_equal(mv_lr_parse(&kind, "linear"), MV_ERR_ARG);
}

/* ------------------------------------------------------------------ data helpers */

static void test_split_and_normalisation(void **state)
{
    (void)state;
    mv_dataset *data, *train, *val, *train2, *val2;
    assert_int_equal(synth_dataset(25, 8, 3, &data), MV_OK);
    assert_int_equal(mv_dataset_split(data, 0.2, 7, &train, &val), MV_OK);
    assert_int_equal(val->count, 20);
    assert_int_equal(train->count, 80);
    assert_string_equal(val->class_names[2], "rings");
    assert_int_equal(mv_dataset_split(data, 0.2, 7, &train2, &val2), MV_OK);
    assert_memory_equal(val->pixels, val2->pixels, sizeof(float) * 20 * 64);
    /* every image lands on exactly one side: the pixel sums add up */
    double all = 0, parts = 0;
    for (int i = 0; i < 100 * 64; i++) all += data->pixels[i];
    for (int i = 0; i < 80 * 64; i++) parts += train->pixels[i];
    for (int i = 0; i < 20 * 64; i++) parts += val->pixels[i];
    assert_true(fabs(all - parts) < 1e-6 * all);
    mv_dataset *a, *b;
    assert_int_equal(mv_dataset_split(data, 0, 7, &a, &b), MV_ERR_ARG);

    mv_arch arch = {.n_layers = 1, .widths = {64, 4}, .head = MV_HEAD_SOFTMAX_CE};
    mv_model *model;
    assert_int_equal(mv_model_create(&model, &arch), MV_OK);
    model->channels = 1, model->height = 8, model->width = 8;
    mv_model_fit_normalisation(model, data);
    double sq = 0, mean = all / (100 * 64);
    for (int i = 0; i < 100 * 64; i++) sq += (data->pixels[i] - mean) * (data->pixels[i] - mean);
    CLOSE(model->mean[0], mean);
    assert_true(fabs(model->std[0] - sqrt(sq / (100 * 64))) < 1e-5);
    mv_real x[64];
    mv_model_prepare_input(model, data->pixels, x, 1);
    CLOSE(x[5], (data->pixels[5] - model->mean[0]) / model->std[0]);
    mv_model_free(model);
    mv_dataset_free(data);
    mv_dataset_free(train);
    mv_dataset_free(val);
    mv_dataset_free(train2);
    mv_dataset_free(val2);
}

/* ------------------------------------------------------------------ training */

typedef struct {
    mv_dataset *train, *val;
    mv_model *model;
    mv_train_config cfg;
    char dir[64];
    char ckpt[128];
} run;

static void on_batch(const mv_train_progress *p, void *user);

static int stop_flag;
static long stop_at_batch; /* counts batches across epochs; 0 = never */
static long batches_seen;

static void on_batch(const mv_train_progress *p, void *user)
{
    (void)user;
    if (p->metrics)
        return;
    if (++batches_seen == stop_at_batch)
        stop_flag = 1;
}

static int should_stop(void *user)
{
    (void)user;
    return stop_flag;
}

static void run_setup(run *r, const char *hidden, float dropout, int shift)
{
    memset(r, 0, sizeof *r);
    /* 61 per class: 244 images, so that batches of 16 leave a partial last batch */
    assert_int_equal(synth_dataset(61, 12, 11, &r->train), MV_OK);
    assert_int_equal(synth_dataset(25, 12, 12, &r->val), MV_OK);
    mv_arch arch = {0};
    char widths[64];
    snprintf(widths, sizeof widths, "144,%s,4", hidden);
    assert_int_equal(mv_arch_parse_widths(&arch, widths), MV_OK);
    for (int l = 0; l < arch.n_layers - 1; l++) arch.act[l] = (mv_activation){MV_ACT_RELU, 0};
    assert_int_equal(mv_model_create(&r->model, &arch), MV_OK);
    assert_int_equal(mv_model_set_class_names(r->model, synth_class_names, SYNTH_CLASSES), MV_OK);
    r->model->channels = 1, r->model->height = 12, r->model->width = 12;
    mv_net_init(r->model->net, 5);
    mv_model_fit_normalisation(r->model, r->train);
    mv_train_defaults(&r->cfg);
    r->cfg.epochs = 6;
    r->cfg.batch = 16;
    r->cfg.lr.lr = 3e-3;
    r->cfg.dropout = dropout;
    r->cfg.shift = shift;
    r->cfg.flip = shift > 0;
    r->cfg.progress = on_batch;
    r->cfg.should_stop = should_stop;
    strcpy(r->dir, "/tmp/mlpviz-train-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->ckpt, sizeof r->ckpt, "%s/run.ckpt", r->dir);
    r->cfg.checkpoint_path = r->ckpt;
    stop_flag = 0;
    stop_at_batch = 0;
    batches_seen = 0;
}

static void run_free(run *r)
{
    char path[160];
    snprintf(path, sizeof path, "%s/run.ckpt", r->dir);
    unlink(path);
    rmdir(r->dir);
    mv_dataset_free(r->train);
    mv_dataset_free(r->val);
    mv_model_free(r->model);
}

static void test_learns_synthetic_classes(void **state)
{
    (void)state;
    run r;
    run_setup(&r, "32", 0.1f, 0);
    int interrupted = 1;
    assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
    assert_false(interrupted);
    double accuracy, loss;
    long confusion[16];
    assert_int_equal(mv_evaluate(r.model, r.val, &accuracy, &loss, confusion), MV_OK);
    if (accuracy < 0.98)
        fail_msg("validation accuracy %.3f < 0.98", accuracy);
    long total = 0;
    for (int i = 0; i < 16; i++) total += confusion[i];
    assert_int_equal(total, r.val->count);
    assert_non_null(mv_model_meta_get(r.model, "val.accuracy"));
    assert_string_equal(mv_model_meta_get(r.model, "train.epochs"), "6");
    /* the checkpoint of the last epoch is a loadable model */
    mv_model *ck;
    assert_int_equal(mv_model_load(&ck, r.ckpt), MV_OK);
    assert_string_equal(mv_model_meta_get(ck, "train.epoch"), "6");
    mv_model_free(ck);
    run_free(&r);
}

/* Trains with the given thread count and interruption point; returns the weights. */
static float *train_weights(int threads, long interrupt_at, size_t *count)
{
    run r;
    /* 144 x 480 weights: the optimizer's parallel branch runs too */
    run_setup(&r, "480,16", 0.2f, 1);
    omp_set_num_threads(threads);
    int interrupted = 0;
    stop_at_batch = interrupt_at;
    mv_status st = mv_train(r.model, r.train, r.val, &r.cfg, &interrupted);
    assert_int_equal(st, MV_OK);
    if (interrupt_at) {
        assert_true(interrupted);
        mv_model *ck;
        assert_int_equal(mv_model_load(&ck, r.ckpt), MV_OK);
        /* a fresh process would start from a fresh model: scramble ours to prove the
         * weights come from the checkpoint */
        mv_net_init(r.model->net, 999);
        r.cfg.resume = ck;
        stop_at_batch = 0;
        stop_flag = 0;
        assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
        assert_false(interrupted);
        mv_model_free(ck);
    }
    omp_set_num_threads(omp_get_num_procs());
    *count = r.model->net->p.count;
    float *w = malloc(sizeof *w * *count);
    assert_non_null(w);
    memcpy(w, r.model->net->p.data, sizeof *w * *count);
    run_free(&r);
    return w;
}

static void test_bitwise_reproducible(void **state)
{
    (void)state;
    size_t n1, n2, n3;
    float *one = train_weights(1, 0, &n1);
    float *two = train_weights(2, 0, &n2);
    float *resumed = train_weights(2, 23, &n3); /* mid-epoch 2 of 16 batches each */
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    assert_memory_equal(one, two, sizeof *one * n1);
    assert_memory_equal(one, resumed, sizeof *one * n1);
    free(one);
    free(two);
    free(resumed);
}

static void test_resume_refuses_other_settings(void **state)
{
    (void)state;
    run r;
    run_setup(&r, "16", 0, 0);
    r.cfg.epochs = 2;
    int interrupted;
    assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
    mv_model *ck;
    assert_int_equal(mv_model_load(&ck, r.ckpt), MV_OK);
    r.cfg.resume = ck;
    r.cfg.seed = 2;
    assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "same command"));
    mv_model_free(ck);
    run_free(&r);
}

static void test_divergence_keeps_last_good_weights(void **state)
{
    (void)state;
    run r;
    run_setup(&r, "16", 0, 0);
    r.cfg.opt.kind = MV_OPT_SGD;
    r.cfg.lr.lr = 1e4; /* explodes within the first epochs */
    int interrupted;
    assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_ERR_NUMERIC);
    assert_non_null(strstr(mv_last_error(), "diverged"));
    for (size_t i = 0; i < r.model->net->p.count; i++)
        assert_true(isfinite(r.model->net->p.data[i]));
    run_free(&r);
}

static void test_keep_best_restores_best_epoch(void **state)
{
    (void)state;
    run r;
    run_setup(&r, "16", 0, 0);
    r.cfg.keep_best = 1;
    r.cfg.epochs = 4;
    int interrupted;
    assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
    const char *kept = mv_model_meta_get(r.model, "train.kept_epoch");
    assert_non_null(kept);
    /* the model holds exactly the weights the last checkpoint kept as the best */
    mv_model *ck;
    assert_int_equal(mv_model_load(&ck, r.ckpt), MV_OK);
    size_t n;
    const float *best = mv_model_extra_get(ck, "train.best", &n);
    assert_non_null(best);
    assert_int_equal(n, r.model->net->p.count);
    assert_memory_equal(best, r.model->net->p.data, sizeof *best * n);
    mv_model_free(ck);
    double accuracy;
    assert_int_equal(mv_evaluate(r.model, r.val, &accuracy, NULL, NULL), MV_OK);
    /* the recorded figure is the accuracy of the weights the model now holds */
    CLOSE(accuracy, atof(mv_model_meta_get(r.model, "val.accuracy")));
    run_free(&r);
}

/* Without validation there is no best epoch: the checkpoint's "best" weights are the
 * initial ones, never uninitialised memory. */
static void test_checkpoint_state_is_defined(void **state)
{
    (void)state;
    run r;
    run_setup(&r, "16", 0, 0);
    r.cfg.epochs = 2;
    const size_t P = r.model->net->p.count;
    float *initial = malloc(sizeof *initial * P);
    assert_non_null(initial);
    memcpy(initial, r.model->net->p.data, sizeof *initial * P);
    int interrupted;
    assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_OK);
    mv_model *ck;
    assert_int_equal(mv_model_load(&ck, r.ckpt), MV_OK);
    size_t n;
    const float *best = mv_model_extra_get(ck, "train.best", &n);
    assert_non_null(best);
    assert_memory_equal(best, initial, sizeof *initial * P);
    assert_non_null(mv_model_meta_get(ck, "train.history"));
    mv_model_free(ck);
    free(initial);
    run_free(&r);
}

static void test_rejects_mismatched_data(void **state)
{
    (void)state;
    run r;
    run_setup(&r, "16", 0, 0);
    free(r.val->class_names[1]);
    r.val->class_names[1] = strdup("zigzag");
    int interrupted;
    assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "zigzag"));
    r.cfg.epochs = 0;
    assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
    run_free(&r);
}

/* One step of the test's own attack on pixels p [D] around clean [D]: eps/4 down the
 * log-probability gradient g, by sign (L-inf) or along g / |g| (L2), then back into the ball
 * of radius eps and into [0, 1]. */
static void attack_step(float *p, const float *clean, const mv_real *g, int D, double eps, int l2)
{
    double norm = 0, dist = 0;
    for (int j = 0; j < D; j++) norm += (double)g[j] * g[j];
    norm = sqrt(norm) + 1e-30;
    for (int j = 0; j < D; j++) {
        const double step = l2 ? eps / 4 * g[j] / norm : g[j] > 0 ? eps / 4 : g[j] < 0 ? -eps / 4 : 0;
        double v = p[j] - step;
        if (!l2)
            v = fmin(fmax(v, clean[j] - eps), clean[j] + eps);
        p[j] = (float)v;
        dist += (v - clean[j]) * (v - clean[j]);
    }
    const double shrink = l2 && sqrt(dist) > eps ? eps / sqrt(dist) : 1;
    for (int j = 0; j < D; j++)
        p[j] = (float)fmin(fmax(clean[j] + shrink * (p[j] - clean[j]), 0), 1);
}

/* Accuracy on data under a PGD attack of radius eps (pixel units, L-inf or L2) written here
 * with the public input gradient, independently of the trainer's own: 10 steps. */
static double attacked_accuracy(const mv_model *m, const mv_dataset *d, double eps, int l2)
{
    const int D = 144, n = d->count;
    mv_workspace *ws;
    assert_int_equal(mv_workspace_create(&ws, &m->net->arch, 1), MV_OK);
    float p[144];
    mv_real x[144], g[144];
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const float *clean = d->pixels + (size_t)i * D;
        memcpy(p, clean, sizeof p);
        for (int step = 0; step < 10; step++) {
            mv_model_prepare_input(m, p, x, 1);
            assert_int_equal(mv_input_grad(m->net, ws, x, 1, (mv_target){MV_OBJ_LOGPROB, 0},
                                           &d->labels[i], g, NULL), MV_OK);
            attack_step(p, clean, g, D, eps, l2);
        }
        float probs[4];
        assert_int_equal(mv_model_predict(m, p, 1, probs), MV_OK);
        int top = 0;
        for (int k = 1; k < 4; k++) top = probs[k] > probs[top] ? k : top;
        correct += top == d->labels[i];
    }
    mv_workspace_free(ws);
    return (double)correct / n;
}

/* PGD training (Madry et al.) buys accuracy under attack; FGSM runs; bad settings are
 * refused; the adversarial run is recorded in the model. */
static void test_adversarial_training_resists_attack(void **state)
{
    (void)state;
    const double eps = 0.1;
    double attacked[2];
    for (int robust = 0; robust < 2; robust++) {
        run r;
        run_setup(&r, "64", 0, 0);
        r.cfg.epochs = 8;
        if (robust) {
            r.cfg.adv_steps = 5;
            r.cfg.adv_eps = eps;
        }
        int interrupted = 0;
        assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
        attacked[robust] = attacked_accuracy(r.model, r.val, eps, 0);
        const char *adv = mv_model_meta_get(r.model, "train.adversarial");
        if (robust)
            assert_string_equal(adv, "pgd eps=0.1 steps=5");
        else
            assert_null(adv);
        run_free(&r);
    }
    print_message("accuracy under attack: %.3f clean-trained, %.3f pgd-trained\n", attacked[0], attacked[1]);
    if (!(attacked[1] > attacked[0] + 0.2))
        fail_msg("accuracy under attack: %.3f clean-trained, %.3f pgd-trained", attacked[0],
                 attacked[1]);
    run r;
    run_setup(&r, "16", 0, 0);
    r.cfg.epochs = 1;
    r.cfg.adv_steps = 1; /* FGSM */
    r.cfg.adv_eps = eps;
    int interrupted = 0;
    assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_OK);
    assert_string_equal(mv_model_meta_get(r.model, "train.adversarial"), "fgsm eps=0.1 steps=1");
    r.cfg.adv_eps = 0;
    assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
    r.cfg.adv_eps = 1.5;
    assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
    run_free(&r);
}

/* ------------------------------------------------------------------ the L2 threat model */

/* A 3-channel model of 2x2 pixels with a different scaling per channel, so that a step or a
 * projection that forgets the per-channel std (or squares it once too often) is caught. */
static mv_model *l2_model(void)
{
    mv_arch arch = {0};
    assert_int_equal(mv_arch_parse_widths(&arch, "12,3"), MV_OK);
    mv_model *m;
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    m->channels = 3, m->height = 2, m->width = 2;
    const float mean[3] = {0.2f, 0.5f, 0.7f}, std[3] = {0.1f, 0.3f, 2.0f};
    memcpy(m->mean, mean, sizeof mean);
    memcpy(m->std, std, sizeof std);
    return m;
}

/* Pixel-space L2 distance between two network-space rows of the model. */
static double pixel_distance(const mv_model *m, const mv_real *a, const mv_real *b)
{
    double sum = 0;
    for (int i = 0; i < 12; i++) {
        const double d = (double)(a[i] - b[i]) * m->std[i % 3];
        sum += d * d;
    }
    return sqrt(sum);
}

/* The L2 step is the steepest ascent of a linear function under the pixel L2 metric: it
 * moves exactly `length` pixels, and raises g . x by length |g / std|, the most any move of
 * that length can (Cauchy-Schwarz); random moves of the same length raise it less. A
 * displacement step moves along the displacement, also exactly `length`. */
static void test_l2_step_is_steepest_ascent(void **state)
{
    (void)state;
    mv_model *m = l2_model();
    mv_rng rng;
    mv_rng_seed(&rng, 7);
    mv_real x[12], x0[12], g[12], v[12];
    double best = 0;
    for (int i = 0; i < 12; i++) {
        x0[i] = x[i] = (mv_real)(0.1 * mv_rng_normal(&rng));
        g[i] = (mv_real)mv_rng_normal(&rng);
        const double pixel_grad = g[i] / m->std[i % 3];
        best += pixel_grad * pixel_grad;
    }
    best = 0.5 * sqrt(best);
    mv_step_l2(m, x, g, 0.5, 1);
    assert_true(fabs(pixel_distance(m, x, x0) - 0.5) < 1e-5);
    double rise = 0;
    for (int i = 0; i < 12; i++) rise += (double)g[i] * (x[i] - x0[i]);
    if (fabs(rise - best) > 1e-4 * best)
        fail_msg("the L2 step raised g.x by %.6f, the steepest ascent raises it by %.6f", rise,
                 best);
    for (int trial = 0; trial < 20; trial++) {
        mv_real y[12];
        memcpy(y, x0, sizeof y);
        for (int i = 0; i < 12; i++) v[i] = (mv_real)mv_rng_normal(&rng);
        mv_step_l2(m, y, v, 0.5, 0);
        assert_true(fabs(pixel_distance(m, y, x0) - 0.5) < 1e-5);
        double other = 0, cos_num = 0, a2 = 0, b2 = 0;
        for (int i = 0; i < 12; i++) {
            other += (double)g[i] * (y[i] - x0[i]);
            cos_num += (double)(y[i] - x0[i]) * v[i];
            a2 += (double)(y[i] - x0[i]) * (y[i] - x0[i]);
            b2 += (double)v[i] * v[i];
        }
        assert_true(other < rise);
        assert_true(cos_num / sqrt(a2 * b2) > 1 - 1e-5); /* along v, network units */
    }
    memcpy(v, x0, sizeof v);
    memset(g, 0, sizeof g);
    mv_step_l2(m, x0, g, 0.5, 1); /* a zero gradient moves nothing */
    assert_memory_equal(x0, v, sizeof v);
    mv_model_free(m);
}

/* The projection lands on the ball's surface (or inside the pixel range within it), leaves a
 * point inside the ball where it is, and always keeps the pixels in [0, 1]. */
static void test_l2_projection(void **state)
{
    (void)state;
    mv_model *m = l2_model();
    mv_rng rng;
    mv_rng_seed(&rng, 8);
    for (int trial = 0; trial < 50; trial++) {
        mv_real clean[12], x[12], inside[12];
        for (int i = 0; i < 12; i++) { /* a clean image in the middle of the pixel range */
            const int c = i % 3;
            clean[i] = (mv_real)((0.3 + 0.4 * mv_rng_uniform(&rng) - m->mean[c]) / m->std[c]);
            x[i] = clean[i];
        }
        mv_real v[12];
        for (int i = 0; i < 12; i++) v[i] = (mv_real)mv_rng_normal(&rng);
        memcpy(inside, clean, sizeof inside);
        mv_step_l2(m, inside, v, 0.1, 0); /* 0.1 from clean: inside a ball of 0.2 */
        mv_step_l2(m, x, v, trial < 25 ? 0.3 : 5.0, 0);
        mv_project_l2(m, 0.2, clean, x);
        const double d = pixel_distance(m, x, clean);
        assert_true(d <= 0.2 + 1e-5);
        if (trial < 25) /* 0.3 along v shrinks to 0.2 without meeting the range's edges */
            assert_true(fabs(d - 0.2) < 1e-5);
        for (int i = 0; i < 12; i++) {
            const double pixel = x[i] * m->std[i % 3] + m->mean[i % 3];
            assert_true(pixel >= -1e-6 && pixel <= 1 + 1e-6);
        }
        mv_real kept[12];
        memcpy(kept, inside, sizeof kept);
        mv_project_l2(m, 0.2, clean, kept);
        for (int i = 0; i < 12; i++) assert_true(fabs(kept[i] - inside[i]) < 1e-6);
    }
    mv_model_free(m);
}

/* L2 PGD training buys accuracy under an L2 attack; it is recorded in the model, gives the
 * same bits on 1 and 2 threads (rows are perturbed in parallel), and bad radii are refused. */
static void test_l2_adversarial_training(void **state)
{
    (void)state;
    const double eps = 1.5;
    double attacked[2];
    float *weights[2] = {NULL, NULL};
    size_t count = 0;
    for (int robust = 0; robust < 2; robust++) {
        run r;
        run_setup(&r, "64", 0, 0);
        r.cfg.epochs = 8;
        if (robust) {
            r.cfg.adv_steps = 5;
            r.cfg.adv_eps = eps;
            r.cfg.adv_norm = MV_ADV_L2;
        }
        int interrupted = 0;
        assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
        attacked[robust] = attacked_accuracy(r.model, r.val, eps, 1);
        const char *adv = mv_model_meta_get(r.model, "train.adversarial");
        if (robust)
            assert_string_equal(adv, "pgd l2 eps=1.5 steps=5");
        run_free(&r);
    }
    print_message("accuracy under an L2 attack: %.3f clean-trained, %.3f l2-pgd-trained\n",
                  attacked[0], attacked[1]);
    if (!(attacked[1] > attacked[0] + 0.2))
        fail_msg("accuracy under an L2 attack: %.3f clean-trained, %.3f l2-pgd-trained",
                 attacked[0], attacked[1]);
    for (int threads = 1; threads <= 2; threads++) { /* batches of 512 x 144 go parallel */
        run r;
        run_setup(&r, "32", 0, 0);
        r.cfg.epochs = 2, r.cfg.batch = 512, r.cfg.adv_steps = 3, r.cfg.adv_eps = eps;
        r.cfg.adv_norm = MV_ADV_L2;
        omp_set_num_threads(threads);
        int interrupted = 0;
        assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_OK);
        count = r.model->net->p.count;
        weights[threads - 1] = malloc(sizeof(float) * count);
        assert_non_null(weights[threads - 1]);
        memcpy(weights[threads - 1], r.model->net->p.data, sizeof(float) * count);
        if (threads == 2) {
            r.cfg.adv_eps = 0;
            assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
            r.cfg.adv_eps = 1.5, r.cfg.adv_norm = (mv_adv_norm)7;
            assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
        }
        run_free(&r);
    }
    omp_set_num_threads(omp_get_num_procs());
    assert_memory_equal(weights[0], weights[1], sizeof(float) * count);
    free(weights[0]);
    free(weights[1]);
}

/* Gaussian noise augmentation: it changes what is learnt (so it is applied), the model still
 * learns the classes, the run is recorded and reproducible, and bad values are refused. */
static void test_noise_augmentation(void **state)
{
    (void)state;
    float *weights[3];
    size_t count = 0;
    for (int k = 0; k < 3; k++) {
        run r;
        run_setup(&r, "32", 0, 0);
        r.cfg.noise_aug = k == 0 ? 0 : 0.2;
        int interrupted = 0;
        assert_int_equal(mv_train(r.model, r.train, r.val, &r.cfg, &interrupted), MV_OK);
        double accuracy;
        assert_int_equal(mv_evaluate(r.model, r.val, &accuracy, NULL, NULL), MV_OK);
        if (accuracy < 0.9)
            fail_msg("noise %.1f: validation accuracy %.3f < 0.9", r.cfg.noise_aug, accuracy);
        const char *noise = mv_model_meta_get(r.model, "train.noise_aug");
        if (k)
            assert_string_equal(noise, "0.2");
        else
            assert_null(noise);
        count = r.model->net->p.count;
        weights[k] = malloc(sizeof(float) * count);
        assert_non_null(weights[k]);
        memcpy(weights[k], r.model->net->p.data, sizeof(float) * count);
        if (k == 2) {
            r.cfg.noise_aug = -0.1;
            assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
            r.cfg.noise_aug = NAN;
            assert_int_equal(mv_train(r.model, r.train, NULL, &r.cfg, &interrupted), MV_ERR_ARG);
        }
        run_free(&r);
    }
    assert_true(memcmp(weights[0], weights[1], sizeof(float) * count) != 0);
    assert_memory_equal(weights[1], weights[2], sizeof(float) * count);
    for (int k = 0; k < 3; k++) free(weights[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optimizer_updates_by_hand),
        cmocka_unit_test(test_optimizer_names_and_limits),
        cmocka_unit_test(test_lr_schedules),
        cmocka_unit_test(test_split_and_normalisation),
        cmocka_unit_test(test_learns_synthetic_classes),
        cmocka_unit_test(test_bitwise_reproducible),
        cmocka_unit_test(test_resume_refuses_other_settings),
        cmocka_unit_test(test_divergence_keeps_last_good_weights),
        cmocka_unit_test(test_keep_best_restores_best_epoch),
        cmocka_unit_test(test_checkpoint_state_is_defined),
        cmocka_unit_test(test_rejects_mismatched_data),
        cmocka_unit_test(test_adversarial_training_resists_attack),
        cmocka_unit_test(test_l2_step_is_steepest_ascent),
        cmocka_unit_test(test_l2_projection),
        cmocka_unit_test(test_l2_adversarial_training),
        cmocka_unit_test(test_noise_augmentation),
    };
    return cmocka_run_group_tests_name("training", tests, NULL, NULL);
}
