#!/bin/bash
# mutation.sh: proves that the test suite bites. Each mutant plants one classic backprop bug
# in a scratch copy of the tree; the suite (make check) must fail on every one of them, and
# must pass on the unmodified copy first. Run by `make mutation` and by CI.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# name | file | sed program (applied alone; it must change the file)
mutants=(
  "tanh derivative sign flipped|src/activations.c|s/g\[i\] \*= 1 - a\[i\] \* a\[i\];/g[i] *= 1 + a[i] * a[i];/"
  "sigmoid derivative loses (1 - a)|src/activations.c|s/g\[i\] \*= a\[i\] \* (1 - a\[i\]);/g[i] *= a[i];/"
  "leaky relu slope dropped|src/activations.c|s/g\[i\] \*= z\[i\] > 0 ? 1 : p;/g[i] *= z[i] > 0 ? 1 : 0;/"
  "gelu derivative misses z*pdf|src/activations.c|s/g\[i\] \*= cdf + z\[i\] \* pdf;/g[i] *= cdf + 0 * z[i] * pdf;/"
  "W instead of W^T in delta.W|src/layers.c|s/axpy(delta\[(size_t)r \* n_out + o\], w, din + (size_t)r \* n_in + c0, width);/{ (void)w; for (int i = 0; i < width; i++) din[(size_t)r * n_in + c0 + i] += delta[(size_t)r * n_out + o] * W[(size_t)(c0 + i) * n_out + o]; }/"
  "bias gradient missing|src/layers.c|s/db\[o\] = bias_sum;/db[o] = 0;/"
  "forward ignores the bias|src/layers.c|s/= b\[o\] + dot(/= 0 * b[o] + dot(/"
  "activation derivative dropped in backward|src/net.c|s/mv_act_backward(arch->act\[l - 1\]/if (0) mv_act_backward(arch->act[l - 1]/"
  "off-by-one: backward stops before layer 0|src/net.c|/^static void backward_layers/,/^}/ s/l >= 0; l--/l >= 1; l--/"
  "pre-activation instead of activation as layer input|src/net.c|/^static const mv_real \*layer_input/,/^}/ s/ws->a\[l - 1\];/ws->z[l - 1];/"
  "dropout mask ignored in backward|src/net.c|s/din\[i\] \*= ws->mask\[l - 1\]\[i\];/din[i] *= 1;/"
  "input gradient seeded one layer too high|src/net.c|s/top = target.layer;/top = target.layer + 1;/"
  "softmax-CE gradient sign flipped|src/losses.c|s/delta\[j\] = (a\[j\] \* ysum - y\[j\]) \* inv_batch;/delta[j] = (y[j] - a[j] * ysum) * inv_batch;/"
  "BCE gradient averaged twice|src/losses.c|s/delta\[j\] = (a\[j\] - y\[j\]) \* inv_batch;/delta[j] = (a[j] - y[j]) * inv_batch * inv_batch;/"
  "MSE gradient without the factor 2|src/losses.c|s/delta\[j\] = 2 \* (z\[j\] - y\[j\]) \* inv_batch;/delta[j] = (z[j] - y[j]) * inv_batch;/"
  "log-softmax seed misses -p|src/losses.c|s/delta\[j\] = (j == k) - a\[j\];/delta[j] = (j == k);/"
  "PGD descends the loss|src/train.c|s/(g > 0 ? step : g < 0 ? -step : 0)/(g > 0 ? -step : g < 0 ? step : 0)/"
  "L2 projection never shrinks onto the ball|src/train.c|s/norm2 > eps \* eps ? eps \/ sqrt(norm2) : 1;/norm2 > eps * eps ? 1 : 1;/"
  "L2 step divides the gradient by std once|src/train.c|s/v\[i\] \* scale \/ (std \* std)/v[i] * scale \/ std/"
  "k-means lower bounds never shrink|src/classmixture.c|s/for (int j = 0; j < M; j++) lower\[j\] -= km->move\[j\];/for (int j = 0; j < M; j++) lower[j] -= 0;/"
  "mixture sd not reordered|src/classmixture.c|s/ws->sq\[(size_t)order\[m\] \* R + i\]/ws->sq[(size_t)m * R + i]/"
  "TV gradient misses the left neighbour|src/visualize.c|s/if (x > 0) minus_grad -= lx\[c\] \/ left;/if (x < 0) minus_grad -= lx[c] \/ left;/"
  "octave projection skipped|src/visualize.c|s/    const int w = o->w, h = o->h;/    return; const int w = o->w, h = o->h;/"
  "percentile clipping inverted|src/visualize.c|s/if (measure\[q\] < threshold)/if (measure[q] > threshold)/"
  "margin seeds the runner-up with +1|src/losses.c|s/delta\[j\] = -1;/delta[j] = 1;/"
  "diversity gradient misses its radial part|src/visualize.c|s/((sum\[i\] - ur\[i\]) - dot \* ur\[i\])/(sum[i] - ur[i])/"
  "stop-prob never stops a row|src/visualize.c|s/            a->stopped\[r\] = 1;/            a->stopped[r] = 0;/"
  "AVX2 forward: tail mask one lane short|src/gemm.c|s/const __m256i m = lanes_below(K - k);/const __m256i m = lanes_below(K - k - 1);/"
  "AVX2 tile stores a lane past the width|src/gemm.c|s/WIDTH > 8 ? WIDTH - 8 : 0);/WIDTH > 8 ? WIDTH - 7 : 0);/"
  "AVX2 resumed chains restart from zero|src/gemm.c|s/    if (resume) {/    if (0 \&\& resume) {/"
  "AVX2 single row skips negative deltas|src/gemm.c|s/if (d\[o\] == 0)/if (d[o] <= 0)/"
  "AVX2 delta transposed with a wrong stride|src/gemm.c|s/dst\[(size_t)o \* B + r\] = src/dst[(size_t)o * B + (r % 4)] = src/"
  "AVX2 single-row forward loses the bias|src/gemm.c|s/z\[0\] = b\[0\] + fold_lanes(c0)/z[0] = fold_lanes(c0)/"
  "atomic write names its file from the start|src/fileio.c|s/proc_fds_visible = access(\"\/proc\/self\/fd\", X_OK) == 0;/proc_fds_visible = 0;/"
  "atomic write removes a live writer's file|src/fileio.c|s/        else if (locked)/        else/"
  "ONNX writer keeps the HWC column order|src/onnx_write.c|s/dst\[(size_t)c \* (size_t)HW + (size_t)p\]/dst[(size_t)p * (size_t)C + (size_t)c]/"
  "ONNX writer drops LeakyRelu's alpha|src/onnx_write.c|s/\"alpha\", 1, 0, act.param/\"alpha\", 1, 0, 0.01f/"
  "objective trace sums the smoothing samples|src/visualize.c|s/add_scores(a, 1.0 \/ c->smooth_samples);/add_scores(a, 1.0);/"
  "chunk tree adds a left sibling's first half twice|src/gemm.c|s/c##i##0 = _mm256_add_ps(_mm256_load_ps(left + i \* 16), c##i##0);/c##i##0 = _mm256_add_ps(_mm256_load_ps(left + i * 16), _mm256_add_ps(_mm256_load_ps(left + i * 16), c##i##0));/"
  "a process's slice of the tree drops the right subtrees|src/share.c|s/out\[i\] = left\[i\] + right\[i\];/out[i] = left[i] + 0 * right[i];/"
  "per-image draws keyed by the process's own row|src/train.c|s/mv_seed_mix(epoch_seed, (uint64_t)t->perm\[first + t->row0 + r\])/mv_seed_mix(epoch_seed, (uint64_t)r + 0 * (uint64_t)first)/"
  "8-bit pixels read as b / 256|src/prefetch.c|s/value\[b\] = b \/ 255.0f;/value[b] = b \/ 256.0f;/"
  "the prefetch thread fills the batch lent out|src/prefetch.c|/^static void \*reader_main/,/^}/ s/p->rows\[!p->lent\]/p->rows[p->lent]/"
  "a streamed folder skips the load's decoding pass|src/data.c|s/            ok\[i\] = 0;$/            ok[i] = storage == MV_STORAGE_STREAM; if (ok[i]) continue;/"
  "HTML escaper lets '<' through|src/cli/cli_html.c|s/case '<': fputs(\"\&lt;\", out); break;/case '<': fputc('<', out); break;/"
  "GIF loops once, not forever|src/cli/cli_gif.c|s/forever\[3\] = {1, 0, 0}/forever[3] = {1, 1, 0}/"
)

cp -a src tests scripts models Makefile "$scratch"/
[ -d build ] && cp -a build "$scratch"/
[ -d bin ] && cp -a bin "$scratch"/
[ -d lib ] && cp -a lib "$scratch"/

# Builds the scratch copy (status 3 when it does not compile), then runs the suite
# (status 1 when it fails).
run_suite() {
    (cd "$scratch" && make -s all tests >"$scratch/log" 2>&1) || return 3
    # The slow suites (legibility, hostile inputs, crash safety, determinism) are left out:
    # they test files and processes; the mutants are caught sooner by the others.
    (cd "$scratch" && MLPVIZ_QUICK=1 MLPVIZ_FAIL_FAST=1 make -s check >"$scratch/log" 2>&1) ||
        return 1
}

echo "mutation: baseline (no mutant) must pass"
if ! run_suite; then
    tail -n 20 "$scratch/log"
    echo "mutation: the unmodified suite fails; fix that first"
    exit 1
fi

caught=0
missed=0
for m in "${mutants[@]}"; do
    IFS='|' read -r name file program <<<"$m"
    cp "$root/$file" "$scratch/$file"
    sed -i "$program" "$scratch/$file"
    if cmp -s "$root/$file" "$scratch/$file"; then
        echo "MISSED (mutant did not apply, fix its pattern): $name"
        missed=$((missed + 1))
        continue
    fi
    run_suite
    status=$?
    if [ "$status" -eq 0 ]; then
        echo "MISSED: $name ($file) -- the suite still passes"
        missed=$((missed + 1))
    elif [ "$status" -eq 3 ]; then
        echo "MISSED (mutant does not compile, fix it): $name"
        grep -m1 'error:' "$scratch/log"
        missed=$((missed + 1))
    else
        why=$(grep -m1 -E '^ERROR|^not ok|error:' "$scratch/log" | cut -c1-100)
        echo "caught: $name  [$why]"
        caught=$((caught + 1))
    fi
    cp "$root/$file" "$scratch/$file"
    touch "$scratch/$file"
done
echo "mutation: $caught of ${#mutants[@]} planted bugs caught, $missed missed"
[ "$missed" -eq 0 ]
