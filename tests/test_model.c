/* test_model.c: the model file through the public API (lib/libmlpviz.a, float32): bit-exact
 * round trips, the accessors, input normalisation, and a loader that refuses every damaged,
 * truncated, forged or absurd file with the right status and a message naming the file,
 * without crashing, leaking or allocating what the file merely claims. Fixtures live in a
 * mkdtemp directory that the group teardown removes. */
#define _GNU_SOURCE /* O_TMPFILE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlpviz.h"

static char tmp_dir[] = "/tmp/mlpviz-test-model-XXXXXX";

/* ---------------------------------------------------------------- fixtures */

enum { PATH_BYTES = 256 };
/* tmp_dir/name, written into out (PATH_BYTES long); returns out. */
static char *fixture_path(char *out, const char *name)
{
    snprintf(out, PATH_BYTES, "%s/%s", tmp_dir, name);
    return out;
}

/* Removes every entry of dir (one level deep is all the tests create), then dir itself. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[PATH_BYTES * 2];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (!lstat(path, &st) && S_ISDIR(st.st_mode)) {
            chmod(path, 0755);
            remove_tree(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Group fixtures: every test writes under one mkdtemp directory, removed at the end. */
static int setup_dir(void **state)
{
    (void)state;
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(tmp_dir);
    return 0;
}

/* Whole file as bytes; *size receives its length. */
static uint8_t *read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* Writes exactly these bytes to path (replacing it). */
/* The two files hold the same bytes. */
static void assert_same_bytes(const char *path_a, const char *path_b)
{
    size_t size_a, size_b;
    uint8_t *a = read_bytes(path_a, &size_a), *b = read_bytes(path_b, &size_b);
    assert_int_equal(size_a, size_b);
    assert_memory_equal(a, b, size_a);
    free(a);
    free(b);
}

static void write_bytes(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* Little-endian field access, as docs/model-format.md specifies. */
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32(uint8_t *p, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_u32(p, bits);
}

/* Rewrites the trailing CRC so that a deliberate edit gets past the CRC check and the
 * check that the edit is about is the one that must fire. */
static void fix_crc(uint8_t *data, size_t size)
{
    put_u32(data + size - 4, mv_crc32(0, data, size - 4));
}

/* Offset of the payload of the first section with this tag (walking the documented
 * layout: 12-byte header, then tag[4] + u64 length + payload); fails the test if absent. */
static size_t find_section(const uint8_t *data, size_t size, const char *tag, size_t *len)
{
    for (size_t pos = 12; pos + 12 <= size - 4;) {
        const size_t n = (size_t)get_u32(data + pos + 4) | (size_t)get_u32(data + pos + 8) << 32;
        if (!memcmp(data + pos, tag, 4)) {
            if (len)
                *len = n;
            return pos + 12;
        }
        pos += 12 + n;
    }
    fail_msg("section %s not found", tag);
    return 0;
}

/* data with `insert_len` bytes inserted at `at`; *size grows accordingly. */
static uint8_t *insert_bytes(const uint8_t *data, size_t *size, size_t at, const void *insert,
                             size_t insert_len)
{
    uint8_t *out = malloc(*size + insert_len);
    assert_non_null(out);
    memcpy(out, data, at);
    memcpy(out + at, insert, insert_len);
    memcpy(out + at + insert_len, data + at, *size - at);
    *size += insert_len;
    return out;
}

/* A model of the given shape with random weights, non-zero biases, a real input shape and
 * normalisation, names, metadata and extras. */
static mv_model *make_model(const char *widths, const char *act, const char *head, int channels,
                            uint64_t seed)
{
    mv_arch arch = {0};
    mv_activation a;
    assert_int_equal(mv_arch_parse_widths(&arch, widths), MV_OK);
    assert_int_equal(mv_activation_parse(&a, act), MV_OK);
    for (int l = 0; l + 1 < arch.n_layers; l++) arch.act[l] = a;
    assert_int_equal(mv_head_parse(&arch.head, head), MV_OK);
    mv_model *m;
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    mv_net_init(m->net, seed);
    for (size_t i = 0; i < m->net->p.count; i++)
        if (m->net->p.data[i] == 0) m->net->p.data[i] = (float)(i % 7) * 0.125f - 0.25f;
    m->channels = channels;
    m->height = arch.widths[0] / channels;
    m->width = 1;
    for (int c = 0; c < channels; c++) {
        m->mean[c] = 0.1f * (float)(c + 1);
        m->std[c] = 0.3f + 0.01f * (float)c;
    }
    const int n = m->n_classes;
    char **names = malloc(sizeof *names * (size_t)n);
    assert_non_null(names);
    for (int i = 0; i < n; i++) {
        names[i] = malloc(32);
        snprintf(names[i], 32, "label \"%d\" \xc3\xa9", i); /* quotes and UTF-8 survive */
    }
    assert_int_equal(mv_model_set_class_names(m, (const char *const *)names, n), MV_OK);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    assert_int_equal(mv_model_meta_set(m, "command", "mlpviz train --layers x"), MV_OK);
    assert_int_equal(mv_model_meta_set(m, "accuracy", "0.97"), MV_OK);
    const float moment[5] = {1.5f, -2.25f, 0, 1e-30f, 3e30f};
    assert_int_equal(mv_model_extra_set(m, "adam_m", moment, 5), MV_OK);
    return m;
}

/* A small model written to tmp_dir/name; *size and the bytes are returned. */
static uint8_t *small_model_file(const char *name, char *path, size_t *size, int with_extras)
{
    mv_model *m = make_model("4,3,2", "tanh", "ce", 1, 3);
    if (!with_extras) {
        free(m->extras[0].data);
        m->n_extras = 0;
    }
    assert_int_equal(mv_model_save(m, fixture_path(path, name)), MV_OK);
    mv_model_free(m);
    return read_bytes(path, size);
}

/* Bit-exact equality of everything a model file stores. */
static void assert_models_equal(const mv_model *a, const mv_model *b)
{
    const mv_arch *x = &a->net->arch, *y = &b->net->arch;
    assert_int_equal(x->n_layers, y->n_layers);
    for (int l = 0; l <= x->n_layers; l++) assert_int_equal(x->widths[l], y->widths[l]);
    for (int l = 0; l + 1 < x->n_layers; l++) {
        assert_int_equal(x->act[l].kind, y->act[l].kind);
        assert_memory_equal(&x->act[l].param, &y->act[l].param, sizeof(float));
    }
    assert_int_equal(x->head, y->head);
    assert_int_equal(a->net->p.count, b->net->p.count);
    assert_memory_equal(a->net->p.data, b->net->p.data, a->net->p.count * sizeof(mv_real));
    assert_int_equal(a->channels, b->channels);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->width, b->width);
    assert_memory_equal(a->mean, b->mean, sizeof(float) * (size_t)a->channels);
    assert_memory_equal(a->std, b->std, sizeof(float) * (size_t)a->channels);
    assert_int_equal(a->n_classes, b->n_classes);
    for (int i = 0; i < a->n_classes; i++)
        assert_string_equal(a->class_names[i], b->class_names[i]);
    assert_int_equal(a->n_meta, b->n_meta);
    for (int i = 0; i < a->n_meta; i++) {
        assert_string_equal(a->meta[i].key, b->meta[i].key);
        assert_string_equal(a->meta[i].value, b->meta[i].value);
    }
    assert_int_equal(a->n_extras, b->n_extras);
    for (int e = 0; e < a->n_extras; e++) {
        assert_string_equal(a->extras[e].name, b->extras[e].name);
        assert_int_equal(a->extras[e].count, b->extras[e].count);
        assert_memory_equal(a->extras[e].data, b->extras[e].data,
                            a->extras[e].count * sizeof(float));
    }
}

/* Loading path must fail with `status`, return no model, and say which file and why. */
static void expect_load_fails(const char *path, mv_status status, const char *reason)
{
    mv_model *m = (mv_model *)&m; /* not NULL: the loader must reset it */
    mv_status st = mv_model_load(&m, path);
    if (st != status)
        fail_msg("%s: status %d (%s), want %d; message: %s", path, st, mv_status_string(st),
                 status, mv_last_error());
    assert_null(m);
    if (!strstr(mv_last_error(), path))
        fail_msg("message does not name %s: %s", path, mv_last_error());
    if (reason && !strstr(mv_last_error(), reason))
        fail_msg("message lacks '%s': %s", reason, mv_last_error());
}

/* Writes bytes to tmp_dir/name, then expects the load to fail as described. */
static void expect_bytes_fail(const char *name, const uint8_t *data, size_t size,
                              mv_status status, const char *reason)
{
    char path[PATH_BYTES];
    write_bytes(fixture_path(path, name), data, size);
    expect_load_fails(path, status, reason);
}

/* ---------------------------------------------------------------- in memory */

/* mv_model_create gives the documented defaults; a bad shape gives no model. */
static void test_create_defaults(void **state)
{
    (void)state;
    mv_arch arch = {0};
    assert_int_equal(mv_arch_parse_widths(&arch, "6,4,3"), MV_OK);
    arch.act[0].kind = MV_ACT_RELU;
    mv_model *m;
    assert_int_equal(mv_model_create(&m, &arch), MV_OK);
    assert_int_equal(m->channels, 1);
    assert_int_equal(m->height, 6);
    assert_int_equal(m->width, 1);
    assert_true(m->mean[0] == 0 && m->std[0] == 1);
    assert_int_equal(m->n_classes, 3);
    assert_string_equal(m->class_names[0], "0");
    assert_string_equal(m->class_names[2], "2");
    assert_null(m->meta);
    assert_int_equal(m->n_meta, 0);
    assert_int_equal(m->n_extras, 0);
    assert_true(m->file.size == 0 && m->file.version == 0 && m->file.crc == 0);
    for (size_t i = 0; i < m->net->p.count; i++) assert_true(m->net->p.data[i] == 0);
    mv_model_free(m);
    mv_model_free(NULL);
    arch.widths[1] = 0;
    m = (mv_model *)&m;
    assert_int_equal(mv_model_create(&m, &arch), MV_ERR_ARG);
    assert_null(m);
}

/* Every head, hidden activations with parameters, 1 and 3 channels, 1 to 4 weight layers. */
static void test_round_trip_is_bit_exact(void **state)
{
    (void)state;
    static const struct {
        const char *widths, *act, *head;
        int channels;
    } cases[] = {
        {"784,32,10", "relu", "ce", 1},       {"12,8,6,4", "leaky_relu:0.2", "bce", 3},
        {"12,8,6,4", "scaled_relu:3.5", "mse", 1}, {"5,3", "relu", "mse", 1},
        {"48,7,5,4,2", "gelu", "ce", 3},      {"9,4,1", "softplus", "bce", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mv_model *m = make_model(cases[i].widths, cases[i].act, cases[i].head,
                                 cases[i].channels, 10 + i);
        char path[PATH_BYTES], name[32];
        snprintf(name, sizeof name, "round%zu.mlp", i);
        assert_int_equal(mv_model_save(m, fixture_path(path, name)), MV_OK);
        mv_model *back = NULL;
        if (mv_model_load(&back, path))
            fail_msg("case %zu: %s", i, mv_last_error());
        assert_models_equal(m, back);
        assert_string_equal(mv_model_meta_get(back, "accuracy"), "0.97");
        /* saving the loaded model gives the same bytes */
        char again[PATH_BYTES];
        assert_int_equal(mv_model_save(back, fixture_path(again, "again.mlp")), MV_OK);
        assert_same_bytes(path, again);
        mv_model_free(m);
        mv_model_free(back);
    }
}

/* mlpviz -> ONNX (mv_model_save_onnx) -> mlpviz (mv_model_load): the same network, bit for
 * bit (the first layer's columns go to CHW and back), the same input shape, normalisation,
 * names and metadata, and so bit-identical predictions. Every activation and head, 1 and 3
 * channels. */
static void test_onnx_round_trip_is_bit_exact(void **state)
{
    (void)state;
    static const struct {
        const char *widths, *acts, *head;
        int channels;
    } cases[] = {
        {"784,32,10", "relu", "ce", 1},
        {"48,16,14,12,10,9,8,7,6,5", "relu,leaky_relu:0.2,scaled_relu:1.5,gelu,tanh,softplus,"
                                     "sigmoid,identity", "ce", 3},
        {"12,8,6,4", "leaky_relu:0.1,gelu", "bce", 3},
        {"12,8,4", "scaled_relu:3.5", "mse", 1},
        {"6,3", "relu", "mse", 3},
        {"9,4,1", "softplus", "bce", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mv_model *m = make_model(cases[i].widths, "relu", cases[i].head, cases[i].channels,
                                 40 + i);
        mv_arch *arch = &m->net->arch;
        const char *s = cases[i].acts;
        for (int l = 0; l + 1 < arch->n_layers; l++) { /* one per layer, or one for all */
            char name[32];
            const size_t len = strcspn(s, ",");
            snprintf(name, sizeof name, "%.*s", (int)len, s);
            assert_int_equal(mv_activation_parse(&arch->act[l], name), MV_OK);
            s += s[len] == ',' ? len + 1 : 0;
        }
        char path[PATH_BYTES], name[32];
        snprintf(name, sizeof name, "round%zu.onnx", i);
        if (mv_model_save_onnx(m, fixture_path(path, name)))
            fail_msg("case %zu: %s", i, mv_last_error());
        mv_model *back = NULL;
        if (mv_model_load(&back, path))
            fail_msg("case %zu: %s", i, mv_last_error());
        assert_int_equal(back->file.format, MV_FORMAT_ONNX);
        /* the network, shape, normalisation, names and metadata (extras are not exported) */
        free(m->extras[0].data);
        m->n_extras = 0;
        const mv_arch *x = &m->net->arch, *y = &back->net->arch;
        assert_int_equal(x->n_layers, y->n_layers);
        for (int l = 0; l <= x->n_layers; l++) assert_int_equal(x->widths[l], y->widths[l]);
        for (int l = 0; l + 1 < x->n_layers; l++) {
            if (x->act[l].kind != y->act[l].kind)
                fail_msg("case %zu layer %d: %s came back as %s", i, l,
                         mv_act_name(x->act[l].kind), mv_act_name(y->act[l].kind));
            if (x->act[l].kind == MV_ACT_LEAKY_RELU || x->act[l].kind == MV_ACT_SCALED_RELU)
                assert_memory_equal(&x->act[l].param, &y->act[l].param, sizeof(float));
        }
        assert_int_equal(x->head, y->head);
        assert_int_equal(m->net->p.count, back->net->p.count);
        assert_memory_equal(m->net->p.data, back->net->p.data,
                            m->net->p.count * sizeof(mv_real));
        assert_int_equal(m->channels, back->channels);
        assert_int_equal(m->height, back->height);
        assert_int_equal(m->width, back->width);
        assert_memory_equal(m->mean, back->mean, sizeof(float) * (size_t)m->channels);
        assert_memory_equal(m->std, back->std, sizeof(float) * (size_t)m->channels);
        assert_int_equal(m->n_classes, back->n_classes);
        for (int k = 0; k < m->n_classes; k++)
            assert_string_equal(m->class_names[k], back->class_names[k]);
        for (int k = 0; k < m->n_meta; k++) {
            const char *v = mv_model_meta_get(back, m->meta[k].key);
            if (!v || strcmp(v, m->meta[k].value))
                fail_msg("case %zu: metadata %s = %s came back as %s", i, m->meta[k].key,
                         m->meta[k].value, v ? v : "(absent)");
        }
        /* predictions on seeded pixels, bit for bit */
        enum { N = 5 };
        const size_t D = (size_t)x->widths[0], K = (size_t)m->n_classes;
        float *pixels = malloc(sizeof *pixels * D * N), *p1 = malloc(sizeof *p1 * K * N),
              *p2 = malloc(sizeof *p2 * K * N);
        assert_true(pixels && p1 && p2);
        mv_rng rng;
        mv_rng_seed(&rng, 7 + i);
        for (size_t k = 0; k < D * N; k++) pixels[k] = (float)mv_rng_uniform(&rng);
        assert_int_equal(mv_model_predict(m, pixels, N, p1), MV_OK);
        assert_int_equal(mv_model_predict(back, pixels, N, p2), MV_OK);
        assert_memory_equal(p1, p2, sizeof *p1 * K * N);
        free(pixels);
        free(p1);
        free(p2);
        mv_model_free(m);
        mv_model_free(back);
    }
}

/* A load records the file's size, version and stored CRC as the bytes hold them. */
static void test_load_records_file_info(void **state)
{
    (void)state;
    mv_model *m = make_model("6,4,3", "relu", "ce", 1, 5);
    char path[PATH_BYTES];
    assert_int_equal(mv_model_save(m, fixture_path(path, "info.mlp")), MV_OK);
    size_t size;
    uint8_t *bytes = read_bytes(path, &size);
    mv_model *back = NULL;
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    assert_true(back->file.size == size);
    assert_int_equal(back->file.version, 1);
    const uint8_t *tail = bytes + size - 4;
    const uint32_t crc = tail[0] | tail[1] << 8 | tail[2] << 16 | (uint32_t)tail[3] << 24;
    assert_int_equal(back->file.crc, crc);
    assert_int_equal(back->file.crc, mv_crc32(0, bytes, size - 4));
    free(bytes);
    mv_model_free(m);
    mv_model_free(back);
}

/* The metadata entries joined as the file stores them ("key=value\n" each), in out. */
static const char *meta_text(const mv_model *m, char *out, size_t size)
{
    out[0] = 0;
    for (int i = 0; i < m->n_meta; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s=%s\n", m->meta[i].key,
                 m->meta[i].value);
    return out;
}

/* Keys are replaced in place, prefixes are not keys, bad keys and values are refused and
 * leave the entries as they were. */
static void test_meta_set_get(void **state)
{
    (void)state;
    char text[256];
    mv_model *m = make_model("4,2", "relu", "ce", 1, 1);
    assert_string_equal(meta_text(m, text, sizeof text),
                        "command=mlpviz train --layers x\naccuracy=0.97\n");
    assert_int_equal(m->n_meta, 2);
    assert_string_equal(m->meta[1].key, "accuracy");
    assert_string_equal(mv_model_meta_get(m, "command"), "mlpviz train --layers x");
    assert_null(mv_model_meta_get(m, "missing"));
    assert_null(mv_model_meta_get(m, "accurac")); /* a prefix is not a key */
    assert_null(mv_model_meta_get(m, NULL));
    assert_int_equal(mv_model_meta_set(m, "command", "replaced = with equals"), MV_OK);
    assert_string_equal(meta_text(m, text, sizeof text),
                        "command=replaced = with equals\naccuracy=0.97\n");
    assert_string_equal(mv_model_meta_get(m, "command"), "replaced = with equals");
    assert_string_equal(mv_model_meta_get(m, "accuracy"), "0.97");
    assert_int_equal(mv_model_meta_set(m, "empty", ""), MV_OK);
    assert_string_equal(mv_model_meta_get(m, "empty"), "");
    assert_string_equal(mv_model_meta_get(m, "accuracy"), "0.97");
    assert_int_equal(mv_model_meta_set(m, "a=b", "x"), MV_ERR_ARG);
    assert_int_equal(mv_model_meta_set(m, "a\nb", "x"), MV_ERR_ARG);
    assert_int_equal(mv_model_meta_set(m, "", "x"), MV_ERR_ARG);
    assert_int_equal(mv_model_meta_set(m, "k", "two\nlines"), MV_ERR_ARG);
    assert_int_equal(mv_model_meta_set(m, "accuracy", "two\nlines"), MV_ERR_ARG);
    assert_string_equal(meta_text(m, text, sizeof text),
                        "command=replaced = with equals\naccuracy=0.97\nempty=\n");
    /* a value stays valid while other keys change, and asking again gives the same string */
    const char *a = mv_model_meta_get(m, "command");
    assert_int_equal(mv_model_meta_set(m, "more", "1"), MV_OK);
    assert_int_equal(mv_model_meta_set(m, "accuracy", "0.98"), MV_OK);
    assert_ptr_equal(mv_model_meta_get(m, "command"), a);
    assert_string_equal(a, "replaced = with equals");
    assert_string_equal(mv_model_meta_get(m, "accuracy"), "0.98");
    mv_model_free(m);
}

/* Entries filled in directly: a duplicate key survives save and load in its place (get sees
 * the first), and an entry the file could not give back makes the save fail. */
static void test_meta_entries_round_trip(void **state)
{
    (void)state;
    char path[PATH_BYTES], text[256], again[256];
    mv_model *m = make_model("4,2", "relu", "ce", 1, 2);
    assert_int_equal(mv_model_meta_set(m, "command", "first"), MV_OK);
    mv_model_meta *grown = realloc(m->meta, (size_t)(m->n_meta + 1) * sizeof *grown);
    assert_non_null(grown);
    m->meta = grown;
    m->meta[m->n_meta++] = (mv_model_meta){strdup("command"), strdup("second=2")};
    assert_int_equal(mv_model_save(m, fixture_path(path, "dup.mlp")), MV_OK);
    mv_model *back = NULL;
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    assert_int_equal(back->n_meta, 3);
    assert_string_equal(meta_text(back, text, sizeof text), meta_text(m, again, sizeof again));
    assert_string_equal(text, "command=first\naccuracy=0.97\ncommand=second=2\n");
    assert_string_equal(mv_model_meta_get(back, "command"), "first");
    free(m->meta[2].key);
    m->meta[2].key = strdup("bad=key");
    assert_int_equal(mv_model_save(m, fixture_path(path, "dup.mlp")), MV_ERR_ARG);
    mv_model *still = NULL;
    assert_int_equal(mv_model_load(&still, path), MV_OK); /* the earlier file is untouched */
    assert_int_equal(still->n_meta, 3);
    mv_model_free(still);
    mv_model_free(back);
    mv_model_free(m);
}

/* mv_model_clone copies every field into memory of its own: the clone equals the original
 * (even all four means and deviations, duplicate metadata keys in place, every extra), saves
 * to the same bytes, has no file info, and changing it leaves the original as it was. */
/* Reordering the classes moves each class's score function with its name: the probability
 * of a named class is unchanged, whatever its position; names not the model's are refused
 * and leave the model as it was. */
static void test_reorder_classes_by_name(void **state)
{
    (void)state;
    mv_model *m = make_model("6,5,3", "tanh", "ce", 3, 4);
    free(m->extras[0].data); /* make_model's optimizer moment would keep the old order */
    m->n_extras = 0;
    const char *const names[3] = {"cat", "dog", "emu"}, *const order[3] = {"emu", "cat", "dog"};
    assert_int_equal(mv_model_set_class_names(m, names, 3), MV_OK);
    const float pixels[6] = {0.1f, 0.9f, 0.3f, 0.5f, 0.7f, 0.2f};
    float before[3], after[3];
    assert_int_equal(mv_model_predict(m, pixels, 1, before), MV_OK);
    assert_true(before[0] != before[1] && before[1] != before[2]);
    assert_int_equal(mv_model_reorder_classes(m, order, 3), MV_OK);
    assert_int_equal(mv_model_predict(m, pixels, 1, after), MV_OK);
    for (int k = 0; k < 3; k++) assert_string_equal(m->class_names[k], order[k]);
    /* equal up to the softmax's sum, now added in another order */
    assert_float_equal(after[0], before[2], 1e-6);
    assert_float_equal(after[1], before[0], 1e-6);
    assert_float_equal(after[2], before[1], 1e-6);
    const char *const foreign[3] = {"emu", "cat", "gnu"}, *const twice[3] = {"emu", "cat", "cat"};
    assert_int_equal(mv_model_reorder_classes(m, foreign, 3), MV_ERR_ARG);
    assert_non_null(strstr(mv_last_error(), "'gnu'"));
    assert_int_equal(mv_model_reorder_classes(m, twice, 3), MV_ERR_ARG);
    float still[3];
    assert_int_equal(mv_model_predict(m, pixels, 1, still), MV_OK);
    assert_memory_equal(still, after, sizeof still); /* the refusals changed nothing */
    assert_string_equal(m->class_names[0], "emu");
    const float sd[1] = {1};
    assert_int_equal(mv_model_extra_set(m, "class.sd", sd, 1), MV_OK);
    assert_int_equal(mv_model_reorder_classes(m, names, 3), MV_ERR_ARG); /* extras */
    mv_model_free(m);
}

static void test_clone_is_deep(void **state)
{
    (void)state;
    char path[PATH_BYTES], again[PATH_BYTES];
    mv_model *made = make_model("12,5,4,3", "leaky_relu:0.2", "bce", 3, 9);
    const float spread[3] = {0.5f, -1, 7};
    assert_int_equal(mv_model_extra_set(made, "class.sd", spread, 3), MV_OK);
    assert_int_equal(mv_model_extra_set(made, "empty", NULL, 0), MV_OK);
    mv_model_meta *grown = realloc(made->meta, (size_t)(made->n_meta + 1) * sizeof *grown);
    assert_non_null(grown);
    made->meta = grown;
    made->meta[made->n_meta++] = (mv_model_meta){strdup("command"), strdup("second")};
    assert_int_equal(mv_model_save(made, fixture_path(path, "clone-src.mlp")), MV_OK);
    mv_model *m = NULL, *copy = NULL;
    assert_int_equal(mv_model_load(&m, path), MV_OK); /* a source with file info */
    assert_true(m->file.size > 0);
    m->mean[3] = 0.75f; /* past the channels: copied all the same */
    m->std[3] = 2.5f;
    assert_int_equal(mv_model_clone(&copy, m), MV_OK);
    assert_models_equal(copy, m);
    assert_memory_equal(copy->mean, m->mean, sizeof copy->mean);
    assert_memory_equal(copy->std, m->std, sizeof copy->std);
    assert_int_equal(copy->n_meta, 3);
    assert_string_equal(copy->meta[2].value, "second");
    assert_int_equal(copy->n_extras, 3);
    assert_true(copy->file.size == 0 && copy->file.version == 0 && copy->file.crc == 0);
    assert_int_equal(mv_model_save(copy, fixture_path(again, "clone.mlp")), MV_OK);
    assert_same_bytes(path, again);
    /* nothing is shared: change every part of the copy, the original keeps its values */
    assert_true(copy->net != m->net && copy->net->p.data != m->net->p.data);
    copy->net->p.data[0] += 1;
    copy->class_names[0][0] = '#';
    copy->meta[0].value[0] = '#';
    copy->meta[2].key[0] = '#';
    copy->extras[1].data[0] = 42;
    copy->mean[0] = 9;
    assert_int_equal(mv_model_set_class_names(copy, (const char *const *)made->class_names, 3),
                     MV_OK);
    assert_int_equal(mv_model_meta_set(copy, "accuracy", "0.5"), MV_OK);
    mv_model_free(made);
    made = NULL;
    mv_model *fresh = NULL;
    assert_int_equal(mv_model_load(&fresh, path), MV_OK);
    assert_models_equal(m, fresh);
    assert_true(m->mean[0] == fresh->mean[0] && m->mean[3] == 0.75f);
    mv_model_free(fresh);
    mv_model_free(copy);
    /* a model with neither metadata nor extras, and no model at all */
    mv_model *bare = NULL;
    mv_arch arch = {0};
    assert_int_equal(mv_arch_parse_widths(&arch, "3,2"), MV_OK);
    assert_int_equal(mv_model_create(&bare, &arch), MV_OK);
    assert_int_equal(mv_model_clone(&copy, bare), MV_OK);
    assert_models_equal(copy, bare);
    assert_null(copy->meta);
    mv_model_free(copy);
    mv_model_free(bare);
    copy = m; /* not NULL: a failure must clear it */
    assert_int_equal(mv_model_clone(&copy, NULL), MV_ERR_ARG);
    assert_null(copy);
    mv_model_free(m);
}

/* Replace by name, the 32-array limit, name limits, empty arrays, non-finite data refused,
 * and all 32 survive a round trip. */
static void test_extras_set_get(void **state)
{
    (void)state;
    mv_model *m = make_model("4,2", "relu", "ce", 1, 1);
    size_t count = 99;
    assert_null(mv_model_extra_get(m, "nope", &count));
    assert_int_equal(count, 0);
    const float *got = mv_model_extra_get(m, "adam_m", &count);
    assert_non_null(got);
    assert_int_equal(count, 5);
    assert_true(got[1] == -2.25f);
    const float longer[7] = {1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(mv_model_extra_set(m, "adam_m", longer, 7), MV_OK); /* replaces */
    assert_int_equal(m->n_extras, 1);
    got = mv_model_extra_get(m, "adam_m", &count);
    assert_int_equal(count, 7);
    assert_memory_equal(got, longer, sizeof longer);
    char name[40];
    for (int e = 1; e < MV_MODEL_MAX_EXTRAS; e++) {
        snprintf(name, sizeof name, "extra%d", e);
        assert_int_equal(mv_model_extra_set(m, name, longer, 1 + (size_t)e % 7), MV_OK);
    }
    assert_int_equal(mv_model_extra_set(m, "one_too_many", longer, 2), MV_ERR_ARG);
    assert_int_equal(mv_model_extra_set(m, "extra3", longer, 2), MV_OK); /* replace still ok */
    assert_int_equal(mv_model_extra_set(m, "x23456789012345678901234567890123", longer, 1),
                     MV_ERR_ARG);
    assert_int_equal(mv_model_extra_set(m, "", longer, 1), MV_ERR_ARG);
    assert_int_equal(mv_model_extra_set(m, "extra5", NULL, 3), MV_ERR_ARG);
    assert_int_equal(mv_model_extra_set(m, "extra5", NULL, 0), MV_OK); /* empty is a value */
    assert_non_null(mv_model_extra_get(m, "extra5", &count));
    assert_int_equal(count, 0);
    const float bad[2] = {1, NAN};
    assert_int_equal(mv_model_extra_set(m, "extra4", bad, 2), MV_ERR_NUMERIC);
    char path[PATH_BYTES];
    assert_int_equal(mv_model_save(m, fixture_path(path, "extras.mlp")), MV_OK);
    mv_model *back;
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    assert_models_equal(m, back);
    mv_model_free(back);
    mv_model_free(m);
}

/* Count, empty and over-long names are refused without touching the current names. */
static void test_class_names(void **state)
{
    (void)state;
    mv_model *m = make_model("4,3", "relu", "ce", 1, 1);
    const char *three[] = {"cat", "dog", "bird"}, *two[] = {"a", "b"}, *empty[] = {"a", "", "c"};
    assert_int_equal(mv_model_set_class_names(m, three, 3), MV_OK);
    assert_string_equal(m->class_names[2], "bird");
    assert_int_equal(mv_model_set_class_names(m, two, 2), MV_ERR_ARG);
    assert_int_equal(mv_model_set_class_names(m, empty, 3), MV_ERR_ARG);
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    const char *too_long[] = {"a", long_name, "c"};
    assert_int_equal(mv_model_set_class_names(m, too_long, 3), MV_ERR_ARG);
    assert_string_equal(m->class_names[0], "cat"); /* failures leave the names alone */
    mv_model_free(m);
}

/* (pixel - mean[c]) / std[c] with c = k % channels, for 1 and 3 channels (HWC). */
static void test_prepare_input(void **state)
{
    (void)state;
    mv_model *gray = make_model("4,2", "relu", "ce", 1, 1);
    gray->mean[0] = 0.5f;
    gray->std[0] = 0.25f;
    const float px[8] = {0, 0.5f, 1, 0.75f, 0.25f, 0.5f, 0.5f, 1}; /* [2][2][2][1] */
    mv_real x[8];
    mv_model_prepare_input(gray, px, x, 2);
    const mv_real want_gray[8] = {-2, 0, 2, 1, -1, 0, 0, 2};
    for (int i = 0; i < 8; i++) assert_true(x[i] == want_gray[i]);

    mv_model *rgb = make_model("12,2", "relu", "ce", 3, 1); /* 3 channels x 2 x 2 */
    rgb->height = rgb->width = 2;
    const float mean[3] = {0.5f, 0.25f, 0}, std[3] = {0.5f, 0.25f, 2};
    memcpy(rgb->mean, mean, sizeof mean);
    memcpy(rgb->std, std, sizeof std);
    float pixels[12]; /* [1][2][2][3]: channel = k % 3 */
    mv_real y[12];
    for (int k = 0; k < 12; k++) pixels[k] = (float)k / 8;
    mv_model_prepare_input(rgb, pixels, y, 1);
    for (int k = 0; k < 12; k++) {
        const int c = k % 3;
        const float want = ((float)k / 8 - mean[c]) / std[c];
        if (y[k] != want)
            fail_msg("x[%d] = %g, want %g", k, (double)y[k], (double)want);
    }
    mv_model_free(gray);
    mv_model_free(rgb);
}

/* A file assembled by hand from docs/model-format.md: the writer and reader must agree with
 * the document, not only with each other. */
static void test_hand_built_file_follows_the_document(void **state)
{
    (void)state;
    uint8_t f[256];
    size_t n = 0;
    const uint8_t magic[8] = {0x89, 'M', 'L', 'P', '\r', '\n', 0x1A, '\n'};
#define PUT_TAG(t, len) (memcpy(f + n, t, 4), put_u32(f + n + 4, len), put_u32(f + n + 8, 0), n += 12)
#define PUT32(v) (put_u32(f + n, (uint32_t)(v)), n += 4)
#define PUTF(v) (put_f32(f + n, v), n += 4)
    memcpy(f, magic, 8);
    n = 8;
    PUT32(1);
    PUT_TAG("ARCH", 4 + 4 * 3 + 8 + 4);
    PUT32(2), PUT32(2), PUT32(2), PUT32(2); /* 2 layers: 2 -> 2 -> 2 */
    PUT32(4), PUTF(0.5f);                   /* leaky_relu, alpha 0.5 */
    PUT32(2);                               /* mse */
    PUT_TAG("INPT", 20);
    PUT32(1), PUT32(1), PUT32(2), PUTF(0.25f), PUTF(2);
    PUT_TAG("CLAS", 4 + 5 + 6);
    PUT32(2), PUT32(1), f[n++] = 'a', PUT32(2), f[n++] = 'b', f[n++] = 'c';
    PUT_TAG("meta", 4);
    memcpy(f + n, "k=v\n", 4), n += 4;
    PUT_TAG("WGHT", 8 + 4 * 12);
    PUT32(12), PUT32(0);
    for (int i = 0; i < 12; i++) PUTF((float)i - 6);
    PUT_TAG("zzzz", 3); /* an optional section from the future: skipped */
    f[n++] = 1, f[n++] = 2, f[n++] = 3;
    PUT_TAG("xtra", 4 + 2 + 8 + 4);
    PUT32(2), f[n++] = 'm', f[n++] = '1', PUT32(1), PUT32(0), PUTF(7);
    PUT32(mv_crc32(0, f, n));
    char path[PATH_BYTES];
    write_bytes(fixture_path(path, "hand.mlp"), f, n);
    mv_model *m;
    if (mv_model_load(&m, path))
        fail_msg("%s", mv_last_error());
    assert_int_equal(m->net->arch.n_layers, 2);
    assert_int_equal(m->net->arch.act[0].kind, MV_ACT_LEAKY_RELU);
    assert_true(m->net->arch.act[0].param == 0.5f);
    assert_int_equal(m->net->arch.head, MV_HEAD_IDENTITY_MSE);
    assert_int_equal(m->height * m->width, 2);
    assert_true(m->mean[0] == 0.25f && m->std[0] == 2);
    assert_string_equal(m->class_names[1], "bc");
    assert_string_equal(mv_model_meta_get(m, "k"), "v");
    assert_true(m->net->p.W[0][0] == -6 && m->net->p.b[0][1] == -1 && m->net->p.b[1][1] == 5);
    size_t count;
    assert_true(mv_model_extra_get(m, "m1", &count)[0] == 7 && count == 1);
    mv_model_free(m);
    /* The same bytes with version 2 are refused, naming both versions. */
    put_u32(f + 8, 2);
    put_u32(f + n - 4, mv_crc32(0, f, n - 4));
    expect_bytes_fail("hand2.mlp", f, n, MV_ERR_FORMAT, "version 2");
    assert_non_null(strstr(mv_last_error(), "version 1"));
#undef PUT_TAG
#undef PUT32
#undef PUTF
}

/* ---------------------------------------------------------------- damaged files */

/* A missing file and a directory: MV_ERR_IO naming the path. */
static void test_missing_file(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    expect_load_fails(fixture_path(path, "does-not-exist.mlp"), MV_ERR_IO,
                      "No such file or directory");
    expect_load_fails(tmp_dir, MV_ERR_IO, "not a regular file");
}

/* Every prefix of a valid file, from empty to one byte short, fails cleanly. */
static void test_truncation_at_every_length(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("whole.mlp", path, &size, 1);
    for (size_t cut = 0; cut < size; cut++) {
        write_bytes(fixture_path(path, "cut.mlp"), data, cut);
        mv_model *m = NULL;
        mv_status st = mv_model_load(&m, path);
        if (st != MV_ERR_FORMAT || m || !strstr(mv_last_error(), path))
            fail_msg("cut at %zu of %zu: status %d, message %s", cut, size, st,
                     mv_last_error());
        const char *why = cut < 16 ? "too short" : "CRC mismatch";
        if (!strstr(mv_last_error(), why))
            fail_msg("cut at %zu: message lacks '%s': %s", cut, why, mv_last_error());
    }
    free(data);
}

/* Every cut with a recomputed CRC: now the section walker, not the CRC, must notice. The
 * model has no extras, so its last section (WGHT) is required and no cut is a valid file. */
static void test_truncation_past_the_crc(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("whole2.mlp", path, &size, 0);
    uint8_t *cut = malloc(size);
    assert_non_null(cut);
    for (size_t body = 12; body < size - 4; body++) {
        memcpy(cut, data, body);
        put_u32(cut + body, mv_crc32(0, cut, body));
        write_bytes(fixture_path(path, "cut2.mlp"), cut, body + 4);
        mv_model *m = NULL;
        mv_status st = mv_model_load(&m, path);
        if (st != MV_ERR_FORMAT || m || !strstr(mv_last_error(), path))
            fail_msg("body cut at %zu of %zu: status %d, message %s", body, size - 4, st,
                     mv_last_error());
        if (!strstr(mv_last_error(), "truncated") && !strstr(mv_last_error(), "missing"))
            fail_msg("body cut at %zu: %s", body, mv_last_error());
    }
    free(cut);
    free(data);
}

/* A single flipped bit anywhere is caught: by the magic, the version, or the CRC. */
static void test_bit_flip_at_every_byte(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("flip.mlp", path, &size, 1);
    for (size_t at = 0; at < size; at++) {
        data[at] ^= (uint8_t)(1u << (at % 8));
        write_bytes(fixture_path(path, "flipped.mlp"), data, size);
        data[at] ^= (uint8_t)(1u << (at % 8));
        mv_model *m = NULL;
        mv_status st = mv_model_load(&m, path);
        const char *why = at < 8 ? "not an mlpviz model" : at < 12 ? "version" : "CRC mismatch";
        if (st != MV_ERR_FORMAT || m || !strstr(mv_last_error(), why) ||
            !strstr(mv_last_error(), path))
            fail_msg("bit flip at byte %zu: status %d, message %s", at, st, mv_last_error());
    }
    free(data);
}

/* Text, a PNG-like header, and a file whose CR LF became LF in a text-mode copy. */
static void test_wrong_magic_and_text_mode(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("magic.mlp", path, &size, 0);
    expect_bytes_fail("text.mlp", (const uint8_t *)"hello, world\n", 13, MV_ERR_FORMAT,
                      "not an mlpviz model");
    uint8_t *png = malloc(size);
    memcpy(png, data, size);
    memcpy(png, "\x89PNG", 4);
    expect_bytes_fail("png.mlp", png, size, MV_ERR_FORMAT, "wrong magic");
    /* CR LF -> LF, as a text-mode copy does */
    memcpy(png, data, size);
    memmove(png + 4, png + 5, size - 5);
    expect_bytes_fail("crlf.mlp", png, size - 1, MV_ERR_FORMAT, "line endings");
    free(png);
    free(data);
}

/* The version check fires (CRC fixed up so it is not the CRC), naming both versions. */
static void test_future_version(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("future.mlp", path, &size, 1);
    put_u32(data + 8, 7);
    fix_crc(data, size);
    expect_bytes_fail("v7.mlp", data, size, MV_ERR_FORMAT, "format version 7 is newer");
    assert_non_null(strstr(mv_last_error(), "reads (version 1)"));
    put_u32(data + 8, 0);
    fix_crc(data, size);
    expect_bytes_fail("v0.mlp", data, size, MV_ERR_FORMAT, "version 0");
    free(data);
}

/* Loads path in a child whose address space is capped near its current size: a loader that
 * allocated what the forged width claims (gigabytes) would fail with MV_ERR_NOMEM there,
 * where it must fail with MV_ERR_FORMAT before allocating. Returns the child's status, or
 * -1 when the cap cannot be applied (AddressSanitizer reserves terabytes of address space). */
static int load_with_capped_memory(const char *path)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)path;
    return -1;
#else
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *statm = fopen("/proc/self/statm", "r");
        if (!statm || fscanf(statm, "%ld", &pages) != 1)
            _exit(100);
        fclose(statm);
        const rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
        struct rlimit limit = {cap, cap};
        if (setrlimit(RLIMIT_AS, &limit))
            _exit(101);
        mv_model *m = NULL;
        mv_status st = mv_model_load(&m, path);
        mv_model_free(m);
        _exit((int)st);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
#endif
}

/* Forged widths, layer counts, activation kinds and heads, each with a valid CRC; a width
 * that claims gigabytes fails before any allocation of that size. */
static void test_absurd_width(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("wide.mlp", path, &size, 1);
    const size_t arch = find_section(data, size, "ARCH", NULL);
    put_u32(data + arch + 8, 1u << 20); /* widths[1]: the largest width validation allows */
    fix_crc(data, size);
    expect_bytes_fail("wide1.mlp", data, size, MV_ERR_FORMAT, "architecture needs");
    /* 1024 -> 2^20 -> 2 claims 4 GiB of weights in a file of a few hundred bytes */
    put_u32(data + arch + 4, 1024);
    fix_crc(data, size);
    expect_bytes_fail("wide-capped.mlp", data, size, MV_ERR_FORMAT, "architecture needs");
    const int child = load_with_capped_memory(fixture_path(path, "wide-capped.mlp"));
    if (child >= 0 && child != MV_ERR_FORMAT)
        fail_msg("with capped memory the load returned %d, not MV_ERR_FORMAT (%d): it "
                 "allocated what the file claims before checking it", child, MV_ERR_FORMAT);
    put_u32(data + arch + 4, 4);
    put_u32(data + arch + 8, 0xFFFFFFFFu);
    fix_crc(data, size);
    expect_bytes_fail("wide2.mlp", data, size, MV_ERR_FORMAT, "bad architecture");
    put_u32(data + arch + 8, 0);
    fix_crc(data, size);
    expect_bytes_fail("wide3.mlp", data, size, MV_ERR_FORMAT, "bad architecture");
    put_u32(data + arch + 8, 3);
    put_u32(data + arch, 1000); /* layer count */
    fix_crc(data, size);
    expect_bytes_fail("layers.mlp", data, size, MV_ERR_FORMAT, "1000 weight layers");
    put_u32(data + arch, 2);
    put_u32(data + arch + 16, 99); /* activation kind */
    fix_crc(data, size);
    expect_bytes_fail("act.mlp", data, size, MV_ERR_FORMAT, "unknown activation");
    put_u32(data + arch + 16, 1);
    put_u32(data + arch + 24, 3); /* head */
    fix_crc(data, size);
    expect_bytes_fail("head.mlp", data, size, MV_ERR_FORMAT, "head");
    free(data);
}

/* NaN/Inf weights, biases, means and extras, and std <= 0, each with a valid CRC. */
static void test_non_finite_values(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("nan.mlp", path, &size, 1);
    const size_t weights = find_section(data, size, "WGHT", NULL);
    put_f32(data + weights + 8 + 4 * 5, NAN); /* W0[1][1] of a 4 -> 3 layer */
    fix_crc(data, size);
    expect_bytes_fail("nan1.mlp", data, size, MV_ERR_NUMERIC, "W0[1][1]");
    put_f32(data + weights + 8 + 4 * 5, 0.5f);
    put_f32(data + weights + 8 + 4 * 13, INFINITY); /* b0[1] */
    fix_crc(data, size);
    expect_bytes_fail("inf.mlp", data, size, MV_ERR_NUMERIC, "b0[1]");
    put_f32(data + weights + 8 + 4 * 13, 0.5f);
    const size_t input = find_section(data, size, "INPT", NULL);
    put_f32(data + input + 12, NAN); /* mean[0] */
    fix_crc(data, size);
    expect_bytes_fail("mean.mlp", data, size, MV_ERR_NUMERIC, "mean");
    put_f32(data + input + 12, 0.5f);
    put_f32(data + input + 16, 0); /* std[0] */
    fix_crc(data, size);
    expect_bytes_fail("std0.mlp", data, size, MV_ERR_FORMAT, "std must be > 0");
    put_f32(data + input + 16, -1);
    fix_crc(data, size);
    expect_bytes_fail("stdneg.mlp", data, size, MV_ERR_FORMAT, "std must be > 0");
    put_f32(data + input + 16, 1);
    size_t extra_len;
    const size_t extra = find_section(data, size, "xtra", &extra_len);
    put_f32(data + extra + extra_len - 4, NAN);
    fix_crc(data, size);
    expect_bytes_fail("extranan.mlp", data, size, MV_ERR_NUMERIC, "adam_m");
    free(data);
}

/* Absurd, overrunning, empty and NUL-holding names, and a wrong count, with valid CRCs. */
static void test_bad_class_names(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("names.mlp", path, &size, 1);
    const size_t names = find_section(data, size, "CLAS", NULL);
    const uint32_t first_len = get_u32(data + names + 4);
    put_u32(data + names + 4, 0x7FFFFFF0u);
    fix_crc(data, size);
    expect_bytes_fail("name-absurd.mlp", data, size, MV_ERR_FORMAT, "absurd length");
    put_u32(data + names + 4, 200); /* plausible, but past the section's end */
    fix_crc(data, size);
    expect_bytes_fail("name-past.mlp", data, size, MV_ERR_FORMAT, "past the end");
    put_u32(data + names + 4, 0);
    fix_crc(data, size);
    expect_bytes_fail("name-empty.mlp", data, size, MV_ERR_FORMAT, "class name 0");
    put_u32(data + names + 4, first_len);
    data[names + 8] = 0; /* a NUL inside a name */
    fix_crc(data, size);
    expect_bytes_fail("name-nul.mlp", data, size, MV_ERR_FORMAT, "NUL");
    data[names + 8] = 'x';
    put_u32(data + names, 3); /* count != 2 outputs */
    fix_crc(data, size);
    expect_bytes_fail("name-count.mlp", data, size, MV_ERR_FORMAT, "3 class names for 2");
    put_u32(data + names, 0x7FFFFFFFu);
    fix_crc(data, size);
    expect_bytes_fail("name-count2.mlp", data, size, MV_ERR_FORMAT, "class names for 2");
    free(data);
}

/* Shape mismatch, channel count, duplicate, unknown required (refused) and unknown optional
 * (skipped) sections, an overlong length, a missing section, and bad extras. */
static void test_bad_sections(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size;
    uint8_t *data = small_model_file("sections.mlp", path, &size, 1);
    size_t input_len;
    const size_t input = find_section(data, size, "INPT", &input_len);
    /* the input shape must multiply out to the input width */
    put_u32(data + input + 4, 3);
    fix_crc(data, size);
    expect_bytes_fail("shape.mlp", data, size, MV_ERR_FORMAT, "does not give");
    put_u32(data + input + 4, 4);
    put_u32(data + input, 5); /* channels */
    fix_crc(data, size);
    expect_bytes_fail("channels.mlp", data, size, MV_ERR_FORMAT, "5 channels");
    put_u32(data + input, 1);
    fix_crc(data, size);

    /* a second copy of INPT */
    size_t n = size;
    uint8_t *dup = insert_bytes(data, &n, input - 12, data + input - 12, 12 + input_len);
    fix_crc(dup, n);
    expect_bytes_fail("dup.mlp", dup, n, MV_ERR_FORMAT, "duplicate section 'INPT'");
    free(dup);
    /* an unknown required section, then an unknown optional one (which loads) */
    const uint8_t required[12] = {'Z', 'Z', 'Z', 'Z'}, optional[12] = {'z', 'z', 'z', 'z'};
    n = size;
    uint8_t *extra = insert_bytes(data, &n, input - 12, required, 12);
    fix_crc(extra, n);
    expect_bytes_fail("req.mlp", extra, n, MV_ERR_FORMAT, "unknown required section 'ZZZZ'");
    memcpy(extra + input - 12, optional, 4);
    fix_crc(extra, n);
    write_bytes(fixture_path(path, "opt.mlp"), extra, n);
    mv_model *m;
    assert_int_equal(mv_model_load(&m, path), MV_OK);
    mv_model_free(m);
    free(extra);
    /* a section length running past the end */
    put_u32(data + input - 8, 0xFFFFFFFFu);
    fix_crc(data, size);
    expect_bytes_fail("long.mlp", data, size, MV_ERR_FORMAT, "truncated section 'INPT'");
    put_u32(data + input - 8, (uint32_t)input_len);
    /* a missing required section: rename CLAS to an optional tag */
    const size_t names = find_section(data, size, "CLAS", NULL);
    memcpy(data + names - 12, "clas", 4);
    fix_crc(data, size);
    expect_bytes_fail("noclas.mlp", data, size, MV_ERR_FORMAT, "missing required section 'CLAS'");
    memcpy(data + names - 12, "CLAS", 4);
    /* an extra with an absurd name length, and one whose count does not match */
    size_t extra_len;
    const size_t x = find_section(data, size, "xtra", &extra_len);
    put_u32(data + x, 1000);
    fix_crc(data, size);
    expect_bytes_fail("xname.mlp", data, size, MV_ERR_FORMAT, "absurd");
    put_u32(data + x, 6);
    put_u32(data + x + 4 + 6, 1u << 30);
    fix_crc(data, size);
    expect_bytes_fail("xcount.mlp", data, size, MV_ERR_FORMAT, "does not match");
    free(data);
}

/* Metadata without its final newline, with a NUL, or with an empty key. */
static void test_bad_metadata(void **state)
{
    (void)state;
    char path[PATH_BYTES];
    size_t size, len;
    uint8_t *data = small_model_file("meta.mlp", path, &size, 1);
    const size_t meta = find_section(data, size, "meta", &len);
    data[meta + len - 1] = 'x'; /* no final newline */
    fix_crc(data, size);
    expect_bytes_fail("meta1.mlp", data, size, MV_ERR_FORMAT, "newline");
    data[meta + len - 1] = '\n';
    data[meta] = 0;
    fix_crc(data, size);
    expect_bytes_fail("meta2.mlp", data, size, MV_ERR_FORMAT, "NUL");
    data[meta] = '=';
    fix_crc(data, size);
    expect_bytes_fail("meta3.mlp", data, size, MV_ERR_FORMAT, "empty key");
    free(data);
}

/* ---------------------------------------------------------------- saving */

/* Names of the entries of dir other than `keep`, joined by spaces ("" when none). */
static void stray_files(const char *dir, const char *keep, char *out, size_t size)
{
    out[0] = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep))
            snprintf(out + strlen(out), size - strlen(out), "%s ", e->d_name);
    closedir(d);
}

/* Saves that cannot even start, or fail at the rename, leave no temporary file behind. */
static void test_save_into_missing_directory(void **state)
{
    (void)state;
    mv_model *m = make_model("4,2", "relu", "ce", 1, 1);
    char path[PATH_BYTES], stray[512];
    assert_int_equal(mv_model_save(m, fixture_path(path, "no/such/dir/m.mlp")), MV_ERR_IO);
    assert_non_null(strstr(mv_last_error(), path));
    assert_non_null(strstr(mv_last_error(), "No such file or directory"));
    /* a directory that is a file */
    write_bytes(fixture_path(path, "plain"), (const uint8_t *)"x", 1);
    assert_int_equal(mv_model_save(m, fixture_path(path, "plain/m.mlp")), MV_ERR_IO);
    assert_non_null(strstr(mv_last_error(), "Not a directory"));
    /* a target that is a directory: the temporary file is made, the rename fails */
    char sub[PATH_BYTES];
    assert_int_equal(mkdir(fixture_path(sub, "savedir"), 0755), 0);
    fixture_path(path, "savedir/target");
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(mv_model_save(m, path), MV_ERR_IO);
    assert_non_null(strstr(mv_last_error(), path));
    stray_files(sub, "target", stray, sizeof stray);
    assert_string_equal(stray, "");
    mv_model_free(m);
}

/* mv_model_save_onnx refuses an inconsistent model and fails to write into a missing
 * directory, with the path in the message and no file or temporary file left. */
static void test_onnx_save_failures(void **state)
{
    (void)state;
    mv_model *m = make_model("12,4,3", "relu", "ce", 3, 2);
    char sub[PATH_BYTES], path[PATH_BYTES], stray[512];
    assert_int_equal(mkdir(fixture_path(sub, "onnxfail"), 0755), 0);
    assert_int_equal(mv_model_save_onnx(m, fixture_path(path, "onnxfail/no/m.onnx")), MV_ERR_IO);
    assert_non_null(strstr(mv_last_error(), path));
    m->net->p.W[1][2] = NAN;
    assert_int_equal(mv_model_save_onnx(m, fixture_path(path, "onnxfail/nan.onnx")),
                     MV_ERR_NUMERIC);
    assert_non_null(strstr(mv_last_error(), path));
    stray_files(sub, "", stray, sizeof stray);
    assert_string_equal(stray, "");
    mv_model_free(m);
}

/* Saves m to path in a child limited to `max_bytes` per file (SIGXFSZ ignored, so write()
 * fails with EFBIG): a failure after the temporary file exists. Returns the save status. */
static int save_with_file_size_limit(const mv_model *m, const char *path, rlim_t max_bytes)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {max_bytes, max_bytes};
        if (setrlimit(RLIMIT_FSIZE, &limit))
            _exit(100);
        _exit((int)mv_model_save(m, path));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A save replaces the file; a save that fails half-way, is refused, or (not as root) meets
 * a read-only directory leaves the earlier file byte for byte. */
static void test_save_replaces_and_failures_keep_the_old_file(void **state)
{
    (void)state;
    char dir[PATH_BYTES], path[PATH_BYTES * 2], stray[512];
    assert_int_equal(mkdir(fixture_path(dir, "replace"), 0755), 0);
    snprintf(path, sizeof path, "%s/model.mlp", dir);
    mv_model *small = make_model("4,2", "relu", "ce", 1, 1);
    mv_model *big = make_model("64,32,10", "relu", "ce", 1, 2);
    assert_int_equal(mv_model_save(small, path), MV_OK);
    assert_int_equal(mv_model_save(big, path), MV_OK); /* replaces */
    mv_model *back;
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    assert_models_equal(big, back);
    mv_model_free(back);
    size_t old_size, now_size;
    uint8_t *old = read_bytes(path, &old_size);

    /* a write that fails half-way (file size limit) */
    assert_int_equal(save_with_file_size_limit(small, path, 64), MV_ERR_IO);
    uint8_t *now = read_bytes(path, &now_size);
    assert_int_equal(now_size, old_size);
    assert_memory_equal(now, old, old_size);
    free(now);
    stray_files(dir, "model.mlp", stray, sizeof stray);
    assert_string_equal(stray, "");

    /* a model that cannot be saved (NaN weight) is refused before anything is written */
    small->net->p.data[3] = NAN;
    assert_int_equal(mv_model_save(small, path), MV_ERR_NUMERIC);
    assert_non_null(strstr(mv_last_error(), path));
    small->net->p.data[3] = 0.5f;
    small->channels = 3; /* 3 x 4 x 1 is not 4 inputs */
    assert_int_equal(mv_model_save(small, path), MV_ERR_ARG);
    small->channels = 1;

    /* a read-only directory: only meaningful when permissions bind (not for root) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(dir, 0555), 0);
        assert_int_equal(mv_model_save(small, path), MV_ERR_IO);
        assert_non_null(strstr(mv_last_error(), "Permission denied"));
        assert_int_equal(chmod(dir, 0755), 0);
    }
    now = read_bytes(path, &now_size);
    assert_int_equal(now_size, old_size);
    assert_memory_equal(now, old, old_size);
    free(now);
    free(old);
    mv_model_free(small);
    mv_model_free(big);
}

/* Whether dir's filesystem can make unnamed files and lock them: where it cannot, the writer
 * names its temporary file from the start and a killed writer leaves it behind. */
static int unnamed_files_work_in(const char *dir)
{
    const int fd = open(dir, O_TMPFILE | O_WRONLY, 0600);
    if (fd < 0)
        return 0;
    const int locks = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return locks;
}

/* A writer test's paths: a new directory `name` in the fixture, the model.mlp in it, and the
 * hidden name the writer links the complete file to before its rename. */
typedef struct {
    char dir[PATH_BYTES], path[PATH_BYTES * 2], link[PATH_BYTES * 2];
} writer_paths;

/* Makes w's directory; skips the test where it cannot hold unnamed files. */
static void writer_fixture(writer_paths *w, const char *name)
{
    assert_int_equal(mkdir(fixture_path(w->dir, name), 0755), 0);
    if (!unnamed_files_work_in(w->dir))
        skip();
    snprintf(w->path, sizeof w->path, "%s/model.mlp", w->dir);
    snprintf(w->link, sizeof w->link, "%s/.model.mlp.mlpviz-tmp", w->dir);
}

/* The model at path, loaded and compared with want. */
static void assert_saved_model(const char *path, const mv_model *want)
{
    mv_model *back;
    assert_int_equal(mv_model_load(&back, path), MV_OK);
    assert_models_equal(want, back);
    mv_model_free(back);
}

/* A writer killed in the middle of its write (SIGXFSZ at its default action, as a plain
 * `ulimit -f` does) leaves no file at all: the data had no name yet. */
static void test_killed_writer_leaves_nothing(void **state)
{
    (void)state;
    writer_paths w;
    char stray[512];
    writer_fixture(&w, "killed");
    mv_model *small = make_model("4,2", "relu", "ce", 1, 1);
    mv_model *big = make_model("64,32,10", "relu", "ce", 1, 2);
    assert_int_equal(mv_model_save(small, w.path), MV_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_DFL);
        struct rlimit limit = {4096, 4096};
        _exit(setrlimit(RLIMIT_FSIZE, &limit) ? 100 : (int)mv_model_save(big, w.path));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGXFSZ);
    stray_files(w.dir, "model.mlp", stray, sizeof stray);
    assert_string_equal(stray, "");
    assert_saved_model(w.path, small);
    mv_model_free(small);
    mv_model_free(big);
}

/* The name a complete file takes just before its rename, left by a writer killed between the
 * two (no lock held on it), is cleared by the next save of the same target. */
static void test_abandoned_link_name_is_removed(void **state)
{
    (void)state;
    writer_paths w;
    char stray[512];
    writer_fixture(&w, "abandoned");
    write_bytes(w.link, (const uint8_t *)"left by a killed writer", 23);
    mv_model *m = make_model("4,3,2", "tanh", "ce", 1, 3);
    assert_int_equal(mv_model_save(m, w.path), MV_OK);
    stray_files(w.dir, "model.mlp", stray, sizeof stray);
    assert_string_equal(stray, "");
    assert_saved_model(w.path, m);
    mv_model_free(m);
}

/* A live writer of the same target holds the lock on its link name until it has renamed it.
 * One that keeps holding it (here for the whole save: stopped, say) is left alone: the save
 * still succeeds, by a named temporary file, and the other writer's file is still there. */
static void test_live_link_name_is_left_alone(void **state)
{
    (void)state;
    writer_paths w;
    char stray[512];
    writer_fixture(&w, "live");
    int ready[2], done[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the other writer: its file named and locked until the save is over */
        char byte;
        close(ready[0]); /* (and done[1]: a parent that fails its asserts ends the read) */
        close(done[1]);
        const int fd = open(w.link, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 || flock(fd, LOCK_EX) || write(ready[1], "x", 1) != 1 ||
            read(done[0], &byte, 1) != 1)
            _exit(100);
        _exit(access(w.link, F_OK) == 0 ? 0 : 1);
    }
    char byte;
    assert_int_equal(read(ready[0], &byte, 1), 1);
    mv_model *m = make_model("4,2", "sigmoid", "bce", 1, 4);
    assert_int_equal(mv_model_save(m, w.path), MV_OK);
    assert_int_equal(write(done[1], "x", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* its file was not removed under it */
    assert_saved_model(w.path, m);
    stray_files(w.dir, "model.mlp", stray, sizeof stray);
    assert_string_equal(stray, ".model.mlp.mlpviz-tmp ");
    for (int i = 0; i < 2; i++) close(ready[i]), close(done[i]);
    mv_model_free(m);
}

/* Writers of one target at the same time, each saving again and again: every save succeeds
 * (none removes another's file between its link and its rename), the last one stands whole,
 * and nothing is left beside it. */
static void test_concurrent_writers_of_one_target(void **state)
{
    (void)state;
    enum { WRITERS = 4, SAVES = 40 };
    writer_paths w;
    char stray[512];
    writer_fixture(&w, "concurrent");
    mv_model *models[WRITERS];
    pid_t pids[WRITERS];
    for (int i = 0; i < WRITERS; i++) models[i] = make_model("16,8,3", "relu", "ce", 1, 10 + i);
    for (int i = 0; i < WRITERS; i++) {
        assert_true((pids[i] = fork()) >= 0);
        if (pids[i] == 0) {
            int failed = 0;
            for (int k = 0; k < SAVES; k++) failed += mv_model_save(models[i], w.path) != MV_OK;
            _exit(failed);
        }
    }
    for (int i = 0; i < WRITERS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status))
            fail_msg("writer %d: %d of %d saves failed", i, WEXITSTATUS(status), SAVES);
    }
    mv_model *back;
    assert_int_equal(mv_model_load(&back, w.path), MV_OK);
    int matches = 0;
    for (int i = 0; i < WRITERS; i++)
        matches += !memcmp(back->net->p.data, models[i]->net->p.data,
                           sizeof(float) * (size_t)back->net->p.count);
    assert_int_equal(matches, 1);
    mv_model_free(back);
    stray_files(w.dir, "model.mlp", stray, sizeof stray);
    assert_string_equal(stray, "");
    for (int i = 0; i < WRITERS; i++) mv_model_free(models[i]);
}

/* What is not a regular file at the link name (a directory, a symbolic link, a FIFO) is never
 * removed, followed or opened for good: the save succeeds by a named temporary file. */
static void test_link_name_squatters_are_left_alone(void **state)
{
    (void)state;
    static const char *const kinds[] = {"directory", "symlink", "fifo"};
    for (int k = 0; k < 3; k++) {
        writer_paths w;
        char name[64], outside[PATH_BYTES * 2], stray[512];
        snprintf(name, sizeof name, "squatter-%s", kinds[k]);
        writer_fixture(&w, name);
        snprintf(outside, sizeof outside, "%s/outside", w.dir);
        write_bytes(outside, (const uint8_t *)"not to be touched", 17);
        assert_int_equal(k == 0   ? mkdir(w.link, 0755)
                         : k == 1 ? symlink(outside, w.link)
                                  : mkfifo(w.link, 0644),
                         0);
        struct stat before, after;
        assert_int_equal(lstat(w.link, &before), 0);
        mv_model *m = make_model("4,2", "relu", "ce", 1, 20 + k);
        if (mv_model_save(m, w.path) != MV_OK)
            fail_msg("%s at the link name: %s", kinds[k], mv_last_error());
        assert_saved_model(w.path, m);
        assert_int_equal(lstat(w.link, &after), 0);
        assert_true((before.st_mode & S_IFMT) == (after.st_mode & S_IFMT));
        assert_true(before.st_ino == after.st_ino);
        size_t size;
        uint8_t *kept = read_bytes(outside, &size);
        assert_int_equal(size, 17);
        assert_memory_equal(kept, "not to be touched", 17);
        free(kept);
        assert_int_equal(unlink(outside), 0);
        stray_files(w.dir, "model.mlp", stray, sizeof stray);
        assert_string_equal(stray, ".model.mlp.mlpviz-tmp ");
        mv_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_round_trip_is_bit_exact),
        cmocka_unit_test(test_onnx_round_trip_is_bit_exact),
        cmocka_unit_test(test_onnx_save_failures),
        cmocka_unit_test(test_load_records_file_info),
        cmocka_unit_test(test_meta_set_get),
        cmocka_unit_test(test_meta_entries_round_trip),
        cmocka_unit_test(test_clone_is_deep),
        cmocka_unit_test(test_reorder_classes_by_name),
        cmocka_unit_test(test_extras_set_get),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_prepare_input),
        cmocka_unit_test(test_hand_built_file_follows_the_document),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_truncation_at_every_length),
        cmocka_unit_test(test_truncation_past_the_crc),
        cmocka_unit_test(test_bit_flip_at_every_byte),
        cmocka_unit_test(test_wrong_magic_and_text_mode),
        cmocka_unit_test(test_future_version),
        cmocka_unit_test(test_absurd_width),
        cmocka_unit_test(test_non_finite_values),
        cmocka_unit_test(test_bad_class_names),
        cmocka_unit_test(test_bad_sections),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_save_into_missing_directory),
        cmocka_unit_test(test_save_replaces_and_failures_keep_the_old_file),
        cmocka_unit_test(test_killed_writer_leaves_nothing),
        cmocka_unit_test(test_abandoned_link_name_is_removed),
        cmocka_unit_test(test_live_link_name_is_left_alone),
        cmocka_unit_test(test_concurrent_writers_of_one_target),
        cmocka_unit_test(test_link_name_squatters_are_left_alone),
    };
    return cmocka_run_group_tests_name("model file", tests, setup_dir, teardown_dir);
}
