/* golden_cases.h: the fixed networks whose gradients are frozen in tests/golden/. */
#ifndef MV_GOLDEN_CASES_H
#define MV_GOLDEN_CASES_H

#include "internal.h"

#define GOLDEN_CASES (MV_ACT_COUNT * MV_HEAD_COUNT)

/* Config of case i (every activation x every head, objectives in rotation) and its file
 * name, "<act>-<head>.txt". */
void golden_case(int i, mv_gradcheck_config *config, char *name, size_t name_size);

/* Analytic gradients of a case in this build's precision, as mv_gradcheck_analytic lays
 * them out. *out belongs to the caller (free). */
mv_status golden_compute(const mv_gradcheck_config *config, double **out, size_t *count);

#endif
