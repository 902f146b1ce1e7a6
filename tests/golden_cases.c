/* golden_cases.c: see golden_cases.h. */
#include <stdio.h>

#include "golden_cases.h"

void golden_case(int i, mv_gradcheck_config *config, char *name, size_t name_size)
{
    static const float params[MV_ACT_COUNT] = {[MV_ACT_LEAKY_RELU] = 0.1f,
                                               [MV_ACT_SCALED_RELU] = 5.0f};
    const mv_act_kind act = (mv_act_kind)(i / MV_HEAD_COUNT);
    const mv_head head = (mv_head)(i % MV_HEAD_COUNT);
    mv_arch arch = {.n_layers = 3, .widths = {7, 6, 5, 4}, .head = head};
    arch.act[0] = arch.act[1] = (mv_activation){act, params[act]};
    mv_gradcheck_defaults(config, &arch);
    config->batch = 3;
    config->seed = 1000 + (uint64_t)i;
    /* Rotate through the objectives the golden files were made with; the mse head has no
     * log-probability. */
    static const mv_objective kinds[] = {MV_OBJ_LOGIT, MV_OBJ_OUTPUT, MV_OBJ_LOGPROB,
                                         MV_OBJ_HIDDEN};
    config->target.kind = kinds[i % (int)(sizeof kinds / sizeof *kinds)];
    if (config->target.kind == MV_OBJ_LOGPROB && head == MV_HEAD_IDENTITY_MSE)
        config->target.kind = MV_OBJ_OUTPUT;
    config->target.layer = i % 2;
    snprintf(name, name_size, "%s-%s.txt", mv_act_name(act), mv_head_name(head));
}

mv_status golden_compute(const mv_gradcheck_config *config, double **out, size_t *count)
{
    return MV_VARIANT(mv_gradcheck_analytic)(config, out, count);
}
