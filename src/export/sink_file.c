/* export/sink_file.c — the file sink: appends each record and a newline to a local
 * file (file:///ABSOLUTE/PATH), for a log shipper to pick up or for an air-gapped
 * archive.
 *
 * The invariant: a batch is acknowledged only once it is on disk. One write()
 * loop per batch, then fsync(); a failed or short write is cut off again
 * (ftruncate to the size before the batch), so the file never holds a partial
 * line that the next batch would run into. Creating or rotating the file also
 * fsyncs the directory, so the new name survives a crash.
 *
 * Rotation by size: when the file is not empty and the batch would take it past
 * cfg->max_bytes, PATH.(k) becomes PATH.(k+1) for k = max_files-1 .. 1 (the
 * rename over PATH.(max_files) drops the oldest), PATH becomes PATH.1 and a new
 * PATH is created. A batch larger than max_bytes still goes whole into one file.
 *
 * The file is opened lazily by send(), so a missing directory at start is an
 * ERR_IO of the first send (retried), not a refusal of the exporter. */
#include "export/sink.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sink {
    char *path;
    char *dir; /* the directory that holds path, to fsync after renames */
    int64_t max_bytes;
    int max_files;
    enum audit_format format;
    int fd; /* -1 until the first send, and after an error */
    off_t size;
    struct buf out; /* the batch, reused */
};

static void close_(struct sink *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s->dir);
    buf_done(&s->out);
    free(s);
}

/* "file: <what> <path>: <strerror(e)>" in res->error; returns ERR_IO. */
static int io_error(struct sink_result *res, const char *what, const char *path, int e)
{
    char eb[128];
    const char *msg = strerror_r(e, eb, sizeof(eb));
    snprintf(res->error, sizeof(res->error), "file: %s %s: %s", what, path, msg);
    return ERR_IO;
}

static int fsync_dir(struct sink *s, struct sink_result *res)
{
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return io_error(res, "open directory", s->dir, errno);
    int r = fsync(dfd) == 0 ? 0 : io_error(res, "fsync directory", s->dir, errno);
    close(dfd);
    return r;
}

/* Opens PATH for appending, creating it (and making its name durable) if needed. */
static int open_file(struct sink *s, struct sink_result *res)
{
    for (;;) {
        s->fd = open(s->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (s->fd >= 0)
            break;
        if (errno != ENOENT)
            return io_error(res, "open", s->path, errno);
        s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd >= 0) {
            int r = fsync_dir(s, res);
            if (r < 0) {
                close(s->fd);
                s->fd = -1;
                return r;
            }
            break;
        }
        if (errno != EEXIST) /* EEXIST: created meanwhile by someone else, open it */
            return io_error(res, "create", s->path, errno);
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        int e = errno;
        close(s->fd);
        s->fd = -1;
        return io_error(res, "stat", s->path, e);
    }
    s->size = st.st_size;
    return 0;
}

static int rotate(struct sink *s, struct sink_result *res)
{
    size_t n = strlen(s->path) + 16;
    char *from = malloc(n), *to = malloc(n);
    int r = 0;
    if (!from || !to) {
        snprintf(res->error, sizeof(res->error), "file: %s", err_message(ERR_NOMEM));
        r = ERR_IO;
        goto out;
    }
    close(s->fd);
    s->fd = -1;
    for (int k = s->max_files - 1; k >= 1; k--) {
        snprintf(from, n, "%s.%d", s->path, k);
        snprintf(to, n, "%s.%d", s->path, k + 1);
        if (rename(from, to) != 0 && errno != ENOENT) {
            r = io_error(res, "rename", from, errno);
            goto out;
        }
    }
    snprintf(to, n, "%s.1", s->path);
    if (rename(s->path, to) != 0 && errno != ENOENT) {
        r = io_error(res, "rename", s->path, errno);
        goto out;
    }
    r = open_file(s, res); /* fsyncs the directory: the renames and the new file */
out:
    free(from);
    free(to);
    return r;
}

static int send_(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    res->acked = 0;
    res->error[0] = '\0';
    if (!b->n)
        return 0;
    const char *term = audit_format_terminator(s->format);
    if (!term)
        term = "\n";
    buf_reset(&s->out);
    int r = 0;
    for (size_t i = 0; r == 0 && i < b->n; i++)
        if ((r = buf_append(&s->out, b->rec[i].data, b->rec[i].len)) == 0)
            r = buf_puts(&s->out, term);
    if (r < 0) {
        snprintf(res->error, sizeof(res->error), "file: %s", err_message(r));
        return ERR_IO;
    }

    if (s->fd < 0 && (r = open_file(s, res)) < 0)
        return r;
    if (s->size > 0 && (int64_t)s->size + (int64_t)s->out.len > s->max_bytes &&
        (r = rotate(s, res)) < 0)
        return r;

    const char *p = s->out.data;
    size_t left = s->out.len;
    while (left) {
        ssize_t w = write(s->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            r = io_error(res, "write", s->path, e);
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(s->fd) != 0) {
        r = io_error(res, "fsync", s->path, errno);
        goto fail;
    }
    s->size += (off_t)s->out.len;
    res->acked = b->n;
    return 0;
fail:
    /* Cut a partial batch off again; the whole batch is sent again later. If that
     * fails too, a reopen and fstat find the true end next time. */
    if (ftruncate(s->fd, s->size) != 0 || fsync(s->fd) != 0) {
        close(s->fd);
        s->fd = -1;
    }
    return r;
}

static int open_(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d)
{
    if (!cfg->scheme || strcmp(cfg->scheme, "file") != 0)
        return err_set(d, ERR_INVAL, "url: the file sink takes file:///ABSOLUTE/PATH");
    const char *p = cfg->path;
    size_t n = p ? strlen(p) : 0;
    if (n < 2 || p[0] != '/' || p[n - 1] == '/')
        return err_set(d, ERR_INVAL, "url: a file URL is file:///ABSOLUTE/PATH");
    if (n + 16 > PATH_MAX)
        return err_set(d, ERR_INVAL, "url: the path is too long");
    if (cfg->max_bytes <= 0)
        return err_set(d, ERR_INVAL, "max_bytes: must be positive");
    struct sink *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    s->fd = -1;
    s->max_bytes = cfg->max_bytes;
    s->max_files = cfg->max_files > 0 ? cfg->max_files : 1;
    s->format = cfg->format;
    buf_init(&s->out, 0);
    const char *slash = strrchr(p, '/');
    s->path = strdup(p);
    s->dir = slash == p ? strdup("/") : strndup(p, (size_t)(slash - p));
    if (!s->path || !s->dir) {
        close_(s);
        return err_set(d, ERR_NOMEM, "out of memory");
    }
    *ret = s;
    return 0;
}

const struct sink_ops sink_file_ops = {"file", open_, send_, close_};
