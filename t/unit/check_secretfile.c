#include "unit.h"

#include <sys/stat.h>

#include "secretfile.h"

static char err[512];

/* A fresh file of mode mode; the caller unlinks and frees it. */
static char *file_with_mode(mode_t mode)
{
    char *path = unit_tempfile("secret");
    ck_assert_int_eq(chmod(path, mode), 0);
    return path;
}

static int try_open(const char *path)
{
    err[0] = '\0';
    int fd = secretfile_open(path, err, sizeof err);
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? 0 : -1;
}

START_TEST(owner_only_modes_pass)
{
    static const mode_t good[] = { 0600, 0400, 0700, 0611 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *path = file_with_mode(good[i]);
        ck_assert_msg(try_open(path) == 0, "mode %04o refused: %s", good[i], err);
        unlink(path);
        free(path);
    }
}
END_TEST

START_TEST(group_or_other_access_refused)
{
    static const struct { mode_t mode; const char *who; } bad[] = {
        { 0640, "its group" }, { 0620, "its group" }, { 0604, "anyone" },
        { 0602, "anyone" }, { 0644, "anyone" }, { 0666, "anyone" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = file_with_mode(bad[i].mode), want[256];
        ck_assert_msg(try_open(path) == -1, "mode %04o accepted", bad[i].mode);
        snprintf(want, sizeof want, "'%s' may be read or written by %s (mode %04o): chmod go-rw "
                 "it", path, bad[i].who, bad[i].mode);
        ck_assert_str_eq(err, want);
        unlink(path);
        free(path);
    }
}
END_TEST

START_TEST(other_owner_refused)
{
    if (geteuid() != 0)
        return;     /* giving a file away needs root */
    char *path = file_with_mode(0600), want[256];
    ck_assert_int_eq(chown(path, 65534, 65534), 0);
    ck_assert_int_eq(try_open(path), -1);
    snprintf(want, sizeof want, "'%s' belongs to user ID 65534, not to root: chown root it", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(not_a_file)
{
    char dir[] = "/tmp/tlsoffd-unit-XXXXXX", fifo[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0700), 0);
    ck_assert_int_eq(try_open(dir), -1);
    ck_assert_ptr_nonnull(strstr(err, "is not a regular file"));
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(try_open(fifo), -1);               /* at once: no writer needed */
    ck_assert_ptr_nonnull(strstr(err, "is not a regular file"));
    ck_assert_int_eq(try_open("/nonexistent/key"), -1);
    ck_assert_str_eq(err, "'/nonexistent/key': No such file or directory");
    unlink(fifo);
    rmdir(dir);
}
END_TEST

START_TEST(check_an_open_fd)
{
    char *path = file_with_mode(0600);
    int fd = open(path, O_RDONLY);
    ck_assert_int_eq(secretfile_check(fd, "the key", err, sizeof err), 0);
    ck_assert_int_eq(fchmod(fd, 0660), 0);
    ck_assert_int_eq(secretfile_check(fd, "the key", err, sizeof err), -1);
    ck_assert_str_eq(err, "'the key' may be read or written by its group (mode 0660): chmod "
                     "go-rw it");
    close(fd);
    unlink(path);
    free(path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("secretfile");
    TCase *tc = tcase_create("secretfile");
    tcase_add_test(tc, owner_only_modes_pass);
    tcase_add_test(tc, group_or_other_access_refused);
    tcase_add_test(tc, other_owner_refused);
    tcase_add_test(tc, not_a_file);
    tcase_add_test(tc, check_an_open_fd);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
