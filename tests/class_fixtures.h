/* class_fixtures.h: the datasets and models that the class-statistics and class-mixture
 * suites fill in themselves (cmocka assertions inside: for tests only). */
#ifndef MV_CLASS_FIXTURES_H
#define MV_CLASS_FIXTURES_H

#include "mlpviz.h"

/* An empty dataset of n images of C x H x W in K classes named "c0".., to be filled: pixels
 * and labels allocated, not set. Released with mv_dataset_free. */
mv_dataset *fixture_dataset(int n, int C, int H, int W, int K);

/* A one-layer model taking C x H x W images into K (<= 8) classes named like the dataset's.
 * Released with mv_model_free. */
mv_model *fixture_model(int C, int H, int W, int K);

/* The model's extra `name`, which must exist with `expect` values. Borrowed. */
const float *fixture_extra(const mv_model *m, const char *name, size_t expect);

#endif
