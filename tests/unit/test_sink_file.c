/* tests/unit/test_sink_file.c — export/sink_file: records appended as lines in
 * order across batches with mode 0600, rotation by size keeping max_files and
 * dropping the oldest, a batch larger than max_bytes kept whole, I/O errors as
 * ERR_IO with the reason, and what open() refuses. Each test works in a fresh
 * temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/sink.h"

struct fx {
    char dir[64];
    char path[128];
    struct exporter_config cfg;
    struct sink *sink;
    unsigned char rejected[16];
    struct sink_result res;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_sink_file.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sink_file_ops.close(f->sink);
    exporter_config_done(&f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int open_file_sink(struct fx *f, const char *url, const char *extra, struct err_detail *d)
{
    char text[512];
    snprintf(text, sizeof(text), "{\"id\":\"f\",\"type\":\"file\",\"url\":\"%s\"%s%s}", url,
             extra ? "," : "", extra ? extra : "");
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    exporter_config_done(&f->cfg);
    int r = exporter_config_from_json(doc, NULL, &f->cfg, d);
    json_decref(doc);
    if (r < 0)
        return r;
    return sink_file_ops.open(&f->cfg, &f->sink, d);
}

static void open_ok(struct fx *f, const char *extra)
{
    char url[160];
    snprintf(url, sizeof(url), "file://%s", f->path);
    struct err_detail d = {.msg = ""};
    int r = open_file_sink(f, url, extra, &d);
    if (r != 0)
        fail_msg("open: %d %s", r, d.msg);
}

/* Sends n records whose data are the given strings. */
static int send_lines(struct fx *f, const char *const *lines, size_t n)
{
    struct export_record rec[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        rec[i] = (struct export_record){.seq = (int64_t)i + 1,
                                        .id = "id",
                                        .time = "2026-11-22T09:14:03Z",
                                        .type = "token.request",
                                        .data = lines[i],
                                        .len = strlen(lines[i])};
    memset(f->rejected, 0, sizeof(f->rejected));
    f->res = (struct sink_result){.acked = 99, .rejected = f->rejected};
    struct export_batch b = {rec, n};
    return sink_file_ops.send(f->sink, &b, &f->res);
}

/* The whole content of `path` ("" when absent: check with exists()). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *s = calloc(1, 1 << 16);
    assert_non_null(s);
    if (fp) {
        size_t n = fread(s, 1, (1 << 16) - 1, fp);
        s[n] = '\0';
        fclose(fp);
    }
    return s;
}

static void assert_content(const char *path, const char *want)
{
    char *got = slurp(path);
    assert_string_equal(got, want);
    free(got);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void appends_lines_in_order(void **state)
{
    struct fx *f = *state;
    open_ok(f, NULL);
    assert_false(exists(f->path)); /* open() makes nothing */
    static const char *const a[] = {"{\"n\":1}", "{\"n\":2}"};
    static const char *const b[] = {"{\"n\":3}"};
    assert_int_equal(send_lines(f, a, 2), 0);
    assert_int_equal(f->res.acked, 2);
    assert_string_equal(f->res.error, "");
    assert_int_equal(send_lines(f, b, 1), 0);
    assert_int_equal(f->res.acked, 1);
    assert_content(f->path, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a new sink appends to what is there */
    sink_file_ops.close(f->sink);
    f->sink = NULL;
    open_ok(f, NULL);
    assert_int_equal(send_lines(f, b, 1), 0);
    assert_content(f->path, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":3}\n");
}

/* 9-byte lines (8 + "\n"), max_bytes 20: two lines fit, a third rotates. */
static void rotates_and_keeps_max_files(void **state)
{
    struct fx *f = *state;
    open_ok(f, "\"max_bytes\":20,\"max_files\":2");
    static const char *const l[] = {"line-001", "line-002", "line-003", "line-004",
                                    "line-005", "line-006", "line-007"};
    char p1[160], p2[160], p3[160];
    snprintf(p1, sizeof(p1), "%s.1", f->path);
    snprintf(p2, sizeof(p2), "%s.2", f->path);
    snprintf(p3, sizeof(p3), "%s.3", f->path);

    assert_int_equal(send_lines(f, l, 2), 0); /* 18 bytes */
    assert_false(exists(p1));
    assert_int_equal(send_lines(f, l + 2, 1), 0); /* 27 > 20: rotate first */
    assert_content(p1, "line-001\nline-002\n");
    assert_content(f->path, "line-003\n");
    assert_int_equal(send_lines(f, l + 3, 1), 0); /* 18: fits */
    assert_content(f->path, "line-003\nline-004\n");
    assert_int_equal(send_lines(f, l + 4, 1), 0);
    assert_content(p2, "line-001\nline-002\n");
    assert_content(p1, "line-003\nline-004\n");
    assert_content(f->path, "line-005\n");
    assert_int_equal(send_lines(f, l + 5, 2), 0); /* 27: rotate; the oldest is dropped */
    assert_content(p2, "line-003\nline-004\n");
    assert_content(p1, "line-005\n");
    assert_content(f->path, "line-006\nline-007\n");
    assert_false(exists(p3));
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void big_batch_stays_whole(void **state)
{
    struct fx *f = *state;
    open_ok(f, "\"max_bytes\":10,\"max_files\":1");
    static const char *const l[] = {"aaaaaaaa", "bbbbbbbb", "cccccccc"};
    char p1[160];
    snprintf(p1, sizeof(p1), "%s.1", f->path);
    assert_int_equal(send_lines(f, l, 3), 0); /* empty file: no rotation */
    assert_false(exists(p1));
    assert_content(f->path, "aaaaaaaa\nbbbbbbbb\ncccccccc\n");
    assert_int_equal(send_lines(f, l, 1), 0);
    assert_content(p1, "aaaaaaaa\nbbbbbbbb\ncccccccc\n");
    assert_content(f->path, "aaaaaaaa\n");
}

static void io_errors(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {.msg = ""};
    assert_int_equal(open_file_sink(f, "file:///nonexistent-dir-mcpauth/a.log", NULL, &d), 0);
    static const char *const l[] = {"x"};
    assert_int_equal(send_lines(f, l, 1), ERR_IO);
    assert_int_equal(f->res.acked, 0);
    assert_non_null(strstr(f->res.error, "No such file or directory"));
    assert_non_null(strstr(f->res.error, "/nonexistent-dir-mcpauth/a.log"));
    sink_file_ops.close(f->sink);
    f->sink = NULL;

    /* the path is a directory */
    char url[160];
    snprintf(url, sizeof(url), "file://%s", f->dir);
    assert_int_equal(open_file_sink(f, url, NULL, &d), 0);
    assert_int_equal(send_lines(f, l, 1), ERR_IO);
    assert_int_equal(f->res.acked, 0);
    assert_true(f->res.error[0] != '\0');
}

static void open_refuses(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {.msg = ""};
    struct sink *keep = (struct sink *)&d;
    f->sink = keep;
    assert_int_equal(open_file_sink(f, "file:///tmp/dir/", NULL, &d), ERR_INVAL);
    assert_ptr_equal(f->sink, keep);
    assert_int_equal(open_file_sink(f, "file:///", NULL, &d), ERR_INVAL);
    assert_ptr_equal(f->sink, keep);
    f->sink = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(appends_lines_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(rotates_and_keeps_max_files, setup, teardown),
        cmocka_unit_test_setup_teardown(big_batch_stays_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(io_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(open_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
