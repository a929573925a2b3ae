/* File access: mappings for large read-only inputs, atomic replacement for outputs. */
#include "agentlora/file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentlora/error.h"

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "not a plain file";
}

/* Inputs are read whole or mapped, so only regular files make sense. The check comes
 * before open(): opening a FIFO for reading blocks until a writer appears, forever. */
static int check_regular_file(const char *path)
{
    struct stat info;
    if (stat(path, &info) != 0)
        return al_fail_errno("%s: cannot open", path);
    if (!S_ISREG(info.st_mode))
        return al_fail("%s: not a regular file (%s)", path, file_kind(info.st_mode));
    return 0;
}

int al_file_map(struct al_mapped_file *file, const char *path)
{
    memset(file, 0, sizeof *file);
    if (check_regular_file(path) != 0)
        return -1;
    /* O_NONBLOCK: should the path become a FIFO after the check, open still returns. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return al_fail_errno("%s: cannot open", path);
    struct stat info;
    if (fstat(fd, &info) != 0) {
        close(fd);
        return al_fail_errno("%s: cannot stat", path);
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return al_fail("%s: not a regular file (%s)", path, file_kind(info.st_mode));
    }
    file->size = (size_t)info.st_size;
    if (file->size > 0) {
        void *data = mmap(NULL, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            close(fd);
            return al_fail_errno("%s: cannot map", path);
        }
        file->data = data;
    }
    close(fd);
    file->path = strdup(path);
    if (!file->path) {
        al_file_unmap(file);
        return al_fail("out of memory");
    }
    return 0;
}

void al_file_unmap(struct al_mapped_file *file)
{
    if (file->data)
        munmap((void *)file->data, file->size);
    free(file->path);
    memset(file, 0, sizeof *file);
}

char *al_file_read_all(const char *path, size_t *length)
{
    if (check_regular_file(path) != 0)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return (al_fail_errno("%s: cannot open", path), NULL);
    size_t capacity = 1 << 16, used = 0;
    char *buffer = malloc(capacity);
    while (buffer) {
        size_t got = fread(buffer + used, 1, capacity - used - 1, f);
        used += got;
        if (used + 1 < capacity)
            break;
        char *grown = realloc(buffer, capacity * 2);
        if (!grown) {
            free(buffer);
            buffer = NULL;
            break;
        }
        buffer = grown;
        capacity *= 2;
    }
    int read_failed = ferror(f);
    fclose(f);
    if (!buffer)
        return al_fail_null("%s: out of memory reading file", path);
    if (read_failed) {
        free(buffer);
        return al_fail_null("%s: read error", path);
    }
    buffer[used] = '\0';
    if (length)
        *length = used;
    return buffer;
}

static int write_fully(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t written = write(fd, p, size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += written;
        size -= (size_t)written;
    }
    return 0;
}

/* Records a failed write from errno, naming the file size limit when that is the cause. */
static int write_failed(const char *path)
{
    if (errno == EFBIG)
        return al_fail("%s: write failed: %s (the file size limit, ulimit -f, was reached)", path, strerror(EFBIG));
    return al_fail_errno("%s: write failed", path);
}

static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int al_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_fail_errno("%s: cannot open directory", dir);
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : al_fail_errno("%s: fsync failed", dir);
}

int al_file_write_atomic(const char *path, const void *data, size_t size)
{
    char *temp = al_strdup_printf("%s.tmp.%ld", path, (long)getpid());
    if (!temp)
        return al_fail("out of memory");
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        al_fail_errno("%s: cannot create", temp);
        free(temp);
        return -1;
    }
    if (write_fully(fd, data, size) != 0 || fsync(fd) != 0) {
        write_failed(temp);
        close(fd);
        unlink(temp);
        free(temp);
        return -1;
    }
    close(fd);
    if (rename(temp, path) != 0) {
        al_fail_errno("%s: cannot rename to %s", temp, path);
        unlink(temp);
        free(temp);
        return -1;
    }
    free(temp);
    char *dir = parent_dir(path);
    int rc = dir ? al_fsync_dir(dir) : al_fail("out of memory");
    free(dir);
    return rc;
}

int al_file_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

int al_dir_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

int al_mkdirs(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return al_fail("out of memory");
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
            al_fail_errno("%s: cannot create directory", copy);
            free(copy);
            return -1;
        }
        *p = '/';
    }
    int rc = 0;
    if (mkdir(copy, 0755) != 0 && errno != EEXIST)
        rc = al_fail_errno("%s: cannot create directory", copy);
    else if (!al_dir_exists(copy))
        rc = al_fail("%s: exists and is not a directory", copy);
    free(copy);
    return rc;
}

/* Line and column of a byte offset, for JSON error messages. */
static void locate(const char *text, size_t offset, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

cJSON *al_json_load_file(const char *path)
{
    size_t length = 0;
    char *text = al_file_read_all(path, &length);
    if (!text)
        return NULL;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, length, &end, 0);
    if (!json) {
        int line, column;
        size_t offset = end && end >= text ? (size_t)(end - text) : 0;
        locate(text, offset, &line, &column);
        al_fail("%s: invalid JSON at line %d, column %d", path, line, column);
    }
    free(text);
    return json;
}

char *al_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return al_strdup_printf("%.*s/%s", (int)n, dir, name);
}

char *al_strdup_printf(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int needed = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (needed < 0)
        return NULL;
    char *out = malloc((size_t)needed + 1);
    if (!out)
        return NULL;
    va_start(args, fmt);
    vsnprintf(out, (size_t)needed + 1, fmt, args);
    va_end(args);
    return out;
}
