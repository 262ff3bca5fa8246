#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>

#include "log.h"

static char err[256];

static char *slurp(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    return buf;
}

START_TEST(names)
{
    ck_assert_int_eq(log_level_parse("error"), LOG_LVL_ERROR);
    ck_assert_int_eq(log_level_parse("debug"), LOG_LVL_DEBUG);
    ck_assert_int_eq(log_level_parse("verbose"), -1);
    ck_assert_str_eq(log_level_name(LOG_LVL_NOTICE), "notice");
    ck_assert_int_eq(log_facility_parse("local7"), LOG_LOCAL7);
    ck_assert_int_eq(log_facility_parse("daemon"), LOG_DAEMON);
    ck_assert_int_eq(log_facility_parse("kernel"), -1);
}
END_TEST

START_TEST(file_and_level)
{
    char *path = unit_tempfile("");
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_NOTICE, NULL, err, sizeof err), 0);
    log_set_role("worker 3");
    log_info("hidden %d", 1);
    log_notice("shown %d", 2);
    log_error("bad %s", "thing");
    char *text = slurp(path);
    ck_assert_ptr_null(strstr(text, "hidden"));
    ck_assert_ptr_nonnull(strstr(text, "worker 3 notice: shown 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "worker 3 error: bad thing\n"));
    ck_assert_ptr_nonnull(strstr(text, "tlsoffd["));
    ck_assert(log_enabled(LOG_LVL_WARNING));
    ck_assert(!log_enabled(LOG_LVL_DEBUG));
    log_close();
    unlink(path);
    free(path);
}
END_TEST

START_TEST(access_destinations)
{
    char *main_log = unit_tempfile(""), *acc = unit_tempfile("");
    /* A separate access log. */
    ck_assert_int_eq(log_open(main_log, LOG_DAEMON, LOG_LVL_INFO, acc, err, sizeof err), 0);
    log_access(false, "client=%s outcome=ok", "a");
    ck_assert_ptr_nonnull(strstr(slurp(acc), "Z client=a outcome=ok\n"));
    ck_assert_ptr_null(strstr(slurp(main_log), "client=a"));
    /* Off: only failures reach the main log. */
    ck_assert_int_eq(log_open(main_log, LOG_DAEMON, LOG_LVL_INFO, "", err, sizeof err), 0);
    log_access(false, "client=b outcome=ok");
    log_access(true, "client=c outcome=handshake-failed");
    ck_assert_ptr_null(strstr(slurp(main_log), "client=b"));
    ck_assert_ptr_nonnull(strstr(slurp(main_log), "notice: client=c outcome=handshake-failed"));
    /* Unset: everything to the main log. */
    ck_assert_int_eq(log_open(main_log, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), 0);
    log_access(false, "client=d outcome=ok");
    ck_assert_ptr_nonnull(strstr(slurp(main_log), "info: client=d outcome=ok"));
    log_close();
    unlink(main_log);
    unlink(acc);
    free(main_log);
    free(acc);
}
END_TEST

START_TEST(reopen_after_rotation)
{
    char *path = unit_tempfile(""), rotated[600];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), 0);
    log_notice("before");
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_int_eq(log_reopen(err, sizeof err), 0);
    log_notice("after");
    ck_assert_ptr_nonnull(strstr(slurp(rotated), "before"));
    ck_assert_ptr_null(strstr(slurp(rotated), "after"));
    ck_assert_ptr_nonnull(strstr(slurp(path), "after"));
    log_close();
    unlink(path);
    unlink(rotated);
    free(path);
}
END_TEST

START_TEST(open_errors)
{
    ck_assert_int_eq(log_open("/nonexistent/dir/x.log", LOG_DAEMON, LOG_LVL_INFO, NULL, err,
                              sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open log file '/nonexistent/dir/x.log'"));
    ck_assert_int_eq(log_open("stderr", LOG_DAEMON, LOG_LVL_INFO, "/nonexistent/a.log", err,
                              sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/a.log"));
}
END_TEST

/* A fresh directory with a log file name in it: path = dir/name. */
static void temp_dir(char *dir, size_t dlen, char *path, size_t plen, const char *name)
{
    snprintf(dir, dlen, "/tmp/tlsoffd-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, plen, "%s/%s", dir, name);
}

START_TEST(refuses_a_symbolic_link)
{
    char dir[64], path[128], *target = unit_tempfile("secret\n");
    struct stat before, after;
    temp_dir(dir, sizeof dir, path, sizeof path, "x.log");
    ck_assert_int_eq(chmod(target, 0600), 0);
    ck_assert_int_eq(stat(target, &before), 0);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "is a symbolic link: refusing to follow it"));
    ck_assert_ptr_nonnull(strstr(err, path));
    /* As the access log too, and through a reopen after a rotation. */
    ck_assert_int_eq(log_open("stderr", LOG_DAEMON, LOG_LVL_INFO, path, err, sizeof err), -1);
    char rotated[160];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), 0);
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_int_eq(log_reopen(err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "is a symbolic link"));
    log_notice("still to the old file");
    log_chown(65534, 65534);
    ck_assert_int_eq(stat(target, &after), 0);
    ck_assert_int_eq(after.st_uid, before.st_uid);
    ck_assert_int_eq(after.st_mode, before.st_mode);
    ck_assert_int_eq(after.st_size, before.st_size);
    ck_assert_str_eq(slurp(target), "secret\n");
    ck_assert_ptr_nonnull(strstr(slurp(rotated), "still to the old file"));
    log_close();
    unlink(rotated);
    unlink(path);
    unlink(target);
    rmdir(dir);
    free(target);
}
END_TEST

START_TEST(refuses_what_is_not_a_plain_file)
{
    char dir[64], path[128], other[160];
    temp_dir(dir, sizeof dir, path, sizeof path, "fifo.log");
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    /* Without a reader: an error at once, not a start that hangs. */
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "is not a regular file: refusing it"));
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(rd, 0);
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "is not a regular file: refusing it"));
    close(rd);
    unlink(path);
    ck_assert_int_eq(log_open(dir, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), -1);
    /* A second name of another file. */
    snprintf(other, sizeof other, "%s/other", dir);
    close(open(other, O_WRONLY | O_CREAT, 0600));
    ck_assert_int_eq(link(other, path), 0);
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "has 2 hard links: refusing it"));
    ck_assert_str_eq(slurp(other), "");
    unlink(path);
    unlink(other);
    rmdir(dir);
}
END_TEST

static uid_t owner(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_uid;
}

/* Only a file this process just created is given away. */
START_TEST(chown_only_what_it_created)
{
    if (geteuid() != 0)
        return;     /* fchown to another user needs root */
    char dir[64], path[128], acc[128], rotated[160];
    temp_dir(dir, sizeof dir, path, sizeof path, "main.log");
    snprintf(acc, sizeof acc, "%s/access.log", dir);
    close(open(acc, O_WRONLY | O_CREAT, 0600));         /* exists, root's */
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, acc, err, sizeof err), 0);
    log_chown(65534, 65534);
    ck_assert_int_eq(owner(path), 65534);
    ck_assert_int_eq(owner(acc), 0);
    /* Rotation: the new main log is made, so given; the access log stays. */
    snprintf(rotated, sizeof rotated, "%s.1", path);
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_int_eq(chown(rotated, 0, 0), 0);
    ck_assert_int_eq(log_reopen(err, sizeof err), 0);
    log_chown(65534, 65534);
    ck_assert_int_eq(owner(path), 65534);
    ck_assert_int_eq(owner(rotated), 0);
    ck_assert_int_eq(owner(acc), 0);
    /* A reopen that made nothing gives nothing. */
    ck_assert_int_eq(chown(path, 0, 0), 0);
    ck_assert_int_eq(log_reopen(err, sizeof err), 0);
    log_chown(65534, 65534);
    ck_assert_int_eq(owner(path), 0);
    log_close();
    unlink(path);
    unlink(rotated);
    unlink(acc);
    rmdir(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, names);
    tcase_add_test(tc, file_and_level);
    tcase_add_test(tc, access_destinations);
    tcase_add_test(tc, reopen_after_rotation);
    tcase_add_test(tc, open_errors);
    tcase_add_test(tc, refuses_a_symbolic_link);
    tcase_add_test(tc, refuses_what_is_not_a_plain_file);
    tcase_add_test(tc, chown_only_what_it_created);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
