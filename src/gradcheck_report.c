/* gradcheck_report.c: the precision-free parts of gradient checking: defaults, the error
 * measure and the verdicts. mv_gradcheck() itself, which reaches both compiled variants, is
 * in gradcheck_driver.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

double mv_rel_error(double a, double b, double floor)
{
    double denom = fmax(fmax(fabs(a), fabs(b)), floor);
    return denom > 0 ? fabs(a - b) / denom : 0;
}

void mv_gradcheck_defaults(mv_gradcheck_config *config, const mv_arch *arch)
{
    memset(config, 0, sizeof *config);
    config->arch = *arch;
    config->batch = 4;
    config->seed = 1;
    config->samples = 64;
    config->step = 0; /* chosen per precision by mv_gradcheck */
    config->floor = 1e-4;
    config->target.kind = MV_OBJ_LOGIT;
}

int mv_gradcheck_zero_tensor(const mv_gradcheck_report *report)
{
    for (int t = 0; t < report->n_tensors; t++)
        if (report->tensor[t].max_abs_grad == 0)
            return t;
    return -1;
}
