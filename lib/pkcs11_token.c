/*
 * pkcs11_token — the PKCS#11 modules and tokens open in this process,
 * shared by the keys on them: a module is loaded and initialised once
 * (per file, after realpath), a token gets one session, logged in once,
 * that wolfSSL uses for every operation (Pkcs11Token.handle), one crypto
 * callback device (devId: wolfSSL's PKCS#11 callback, but for RSA private
 * keys, see crypto_cb) and one RNG seeded from the token.
 *
 * The token is found here, not by wc_Pkcs11Token_InitName: wolfSSL 5.5.4
 * looks labels up as slot numbers 0..n-1 (SoftHSM's slot ids are large
 * numbers) and compares only a prefix ("tlsoffd" would match
 * "tlsoffd-test"). The login is ours too, for the CK_RV in messages.
 */
#include "pkcs11_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "alloc.h"

/* wolfSSL's pkcs11.h has only the values its own code uses. */
#define P11_CKF_LOGIN_REQUIRED     0x00000004UL
#define P11_CKF_TOKEN_INITIALIZED  0x00000400UL
#define P11_CKR_PIN_INCORRECT      0x000000A0UL
#define P11_CKR_PIN_LOCKED         0x000000A4UL
#define P11_CKR_USER_ALREADY_LOGGED_IN 0x00000100UL

#define P11_DEV_ID_BASE  0x70313100     /* our crypto callback devIds count up from here */

static struct p11_module *modules;
static struct p11_token *tokens;
static int next_dev_id = P11_DEV_ID_BASE;

const char *p11_rv_name(CK_RV rv, char *buf, size_t len)
{
    static const struct { CK_RV rv; const char *name; } names[] = {
        { 0x000, "CKR_OK" }, { 0x002, "CKR_HOST_MEMORY" }, { 0x003, "CKR_SLOT_ID_INVALID" },
        { 0x005, "CKR_GENERAL_ERROR" }, { 0x006, "CKR_FUNCTION_FAILED" },
        { 0x007, "CKR_ARGUMENTS_BAD" }, { 0x012, "CKR_ATTRIBUTE_TYPE_INVALID" },
        { 0x030, "CKR_DEVICE_ERROR" }, { 0x032, "CKR_DEVICE_REMOVED" },
        { 0x060, "CKR_KEY_HANDLE_INVALID" }, { 0x068, "CKR_KEY_FUNCTION_NOT_PERMITTED" },
        { 0x070, "CKR_MECHANISM_INVALID" }, { 0x082, "CKR_OBJECT_HANDLE_INVALID" },
        { 0x090, "CKR_OPERATION_ACTIVE" }, { 0x0A0, "CKR_PIN_INCORRECT" },
        { 0x0A1, "CKR_PIN_INVALID" }, { 0x0A2, "CKR_PIN_LEN_RANGE" },
        { 0x0A3, "CKR_PIN_EXPIRED" }, { 0x0A4, "CKR_PIN_LOCKED" },
        { 0x0B0, "CKR_SESSION_CLOSED" }, { 0x0B1, "CKR_SESSION_COUNT" },
        { 0x0B3, "CKR_SESSION_HANDLE_INVALID" }, { 0x0E0, "CKR_TOKEN_NOT_PRESENT" },
        { 0x0E1, "CKR_TOKEN_NOT_RECOGNIZED" }, { 0x100, "CKR_USER_ALREADY_LOGGED_IN" },
        { 0x101, "CKR_USER_NOT_LOGGED_IN" }, { 0x102, "CKR_USER_PIN_NOT_INITIALIZED" },
        { 0x150, "CKR_BUFFER_TOO_SMALL" }, { 0x190, "CKR_CRYPTOKI_NOT_INITIALIZED" },
        { 0x191, "CKR_CRYPTOKI_ALREADY_INITIALIZED" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].rv == rv)
            return names[i].name;
    snprintf(buf, len, "CKR_0x%lX", (unsigned long)rv);
    return buf;
}

const char *pkcs11_default_module(void)
{
    static const char *const paths[] = {
#if defined(__x86_64__)
        "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
#elif defined(__aarch64__)
        "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
#endif
        "/usr/lib/softhsm/libsofthsm2.so",
    };
    size_t n = sizeof paths / sizeof paths[0];
    for (size_t i = 0; i + 1 < n; i++)
        if (access(paths[i], F_OK) == 0)
            return paths[i];
    return paths[n - 1];
}

/* Where SoftHSM 2 keeps its tokens, for messages about a module of its. */
static const char *softhsm_hint(const char *path)
{
    return strstr(path, "softhsm") ? "; SoftHSM 2 reads the directories.tokendir of the file "
                                     "SOFTHSM2_CONF names, else of /etc/softhsm/softhsm2.conf"
                                   : "";
}

static void module_error(const char *path, int ret, CK_RV rv, char *err, size_t errlen)
{
    char buf[32];
    const char *why = dlerror();
    if (ret == BAD_PATH_ERROR)
        snprintf(err, errlen, "PKCS#11 module '%s': cannot load it: %s", path,
                 why ? why : "dlopen failed");
    else if (ret == WC_INIT_E)
        snprintf(err, errlen, "PKCS#11 module '%s': C_Initialize: %s%s", path,
                 p11_rv_name(rv, buf, sizeof buf),
                 rv == 0x005 /* CKR_GENERAL_ERROR */ ? softhsm_hint(path) : "");
    else
        snprintf(err, errlen, "PKCS#11 module '%s': not a PKCS#11 module (no "
                 "C_GetFunctionList, or it failed: %s)", path, p11_rv_name(rv, buf, sizeof buf));
}

static struct p11_module *module_get(const char *path, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        snprintf(err, errlen, "PKCS#11 module '%s': %s", path, strerror(errno));
        return NULL;
    }
    for (struct p11_module *m = modules; m; m = m->next)
        if (strcmp(m->path, real) == 0) {
            m->refs++;
            return m;
        }
    struct p11_module *m = xcalloc(1, sizeof *m);
    CK_RV rv = CKR_OK;
    int ret = wolfCrypt_Init();
    if (ret != 0) {
        snprintf(err, errlen, "PKCS#11 module '%s': wolfCrypt_Init: %s", path,
                 wc_GetErrorString(ret));
        free(m);
        return NULL;
    }
    dlerror();
    ret = wc_Pkcs11_Initialize_ex(&m->dev, real, NULL, &rv);
    if (ret != 0) {
        module_error(path, ret, rv, err, errlen);
        wolfCrypt_Cleanup();
        free(m);
        return NULL;
    }
    m->path = xstrdup(real);
    m->refs = 1;
    m->next = modules;
    modules = m;
    return m;
}

static void module_put(struct p11_module *m)
{
    if (--m->refs > 0)
        return;
    for (struct p11_module **p = &modules; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    wc_Pkcs11_Finalize(&m->dev);
    wolfCrypt_Cleanup();
    free(m->path);
    free(m);
}

/* A space-padded CK_TOKEN_INFO field holds exactly want ("": anything). */
static bool field_is(const CK_UTF8CHAR *f, size_t cap, const char *want)
{
    size_t n = cap;
    if (!*want)
        return true;
    while (n > 0 && f[n - 1] == ' ')
        n--;
    return strlen(want) == n && memcmp(f, want, n) == 0;
}

static bool token_matches(const struct pkcs11_uri *u, CK_SLOT_ID slot, const CK_TOKEN_INFO *ti)
{
    return (!u->has_slot || u->slot_id == slot) &&
           field_is(ti->label, sizeof ti->label, u->token) &&
           field_is(ti->manufacturerID, sizeof ti->manufacturerID, u->manufacturer) &&
           field_is(ti->model, sizeof ti->model, u->model) &&
           field_is(ti->serialNumber, sizeof ti->serialNumber, u->serial);
}

/* What the URI asks of a token, for messages: "token 'x' serial 'y'". */
static const char *token_wanted(const struct pkcs11_uri *u, char *buf, size_t len)
{
    const struct { const char *name, *v; } f[] = {
        { "token", u->token }, { "manufacturer", u->manufacturer }, { "model", u->model },
        { "serial", u->serial },
    };
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < 4; i++)
        if (f[i].v[0] && at < len)
            at += (size_t)snprintf(buf + at, len - at, "%s%s '%s'", at ? " " : "", f[i].name,
                                   f[i].v);
    if (u->has_slot && at < len)
        at += (size_t)snprintf(buf + at, len - at, "%sslot-id %lu", at ? " " : "", u->slot_id);
    if (!at)
        snprintf(buf, len, "any token");
    return buf;
}

/* Labels of the initialised tokens, for a message: "'a', 'b'". */
static void add_label(char *seen, size_t cap, const CK_TOKEN_INFO *ti)
{
    size_t n = sizeof ti->label, at = strlen(seen);
    while (n > 0 && ti->label[n - 1] == ' ')
        n--;
    if (at < cap)
        snprintf(seen + at, cap - at, "%s'%.*s'", at ? ", " : "", (int)n,
                 (const char *)ti->label);
}

/* The slot of the one initialised token u names, and its label. */
static int find_slot(struct p11_module *m, const struct pkcs11_uri *u, const char *path,
                     CK_SLOT_ID *slot, char label[P11_TOKEN_LABEL_MAX + 1], char *err,
                     size_t errlen)
{
    CK_FUNCTION_LIST *f = m->dev.func;
    CK_ULONG n = 0;
    char rvb[32], want[160], seen[200] = "";
    CK_RV rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
    CK_SLOT_ID *slots = xcalloc(n ? n : 1, sizeof *slots);
    if (rv == CKR_OK)
        rv = f->C_GetSlotList(CK_TRUE, slots, &n);
    int found = 0;
    for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
            !(ti.flags & P11_CKF_TOKEN_INITIALIZED))
            continue;
        add_label(seen, sizeof seen, &ti);
        if (token_matches(u, slots[i], &ti) && found++ == 0) {
            *slot = slots[i];
            snprintf(label, P11_TOKEN_LABEL_MAX + 1, "%.*s", (int)sizeof ti.label,
                     (const char *)ti.label);
            for (size_t k = strlen(label); k > 0 && label[k - 1] == ' '; k--)
                label[k - 1] = '\0';
        }
    }
    free(slots);
    if (rv != CKR_OK)
        snprintf(err, errlen, "PKCS#11 module '%s': C_GetSlotList: %s", path,
                 p11_rv_name(rv, rvb, sizeof rvb));
    else if (found == 0)
        snprintf(err, errlen, "PKCS#11 module '%s': no token matches %s (its tokens: %s%s)",
                 path, token_wanted(u, want, sizeof want), seen[0] ? seen : "none",
                 softhsm_hint(path));
    else if (found > 1)
        snprintf(err, errlen, "PKCS#11 module '%s': %d tokens match %s: name one (token, "
                 "serial or slot-id)", path, found, token_wanted(u, want, sizeof want));
    return rv == CKR_OK && found == 1 ? 0 : -1;
}

/* A PIN file's content, one trailing newline (LF or CRLF) dropped, into
 * buf[cap]: its length, or -1 with why. */
static long read_pin_file(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    size_t n = 0;
    ssize_t r = 0;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "PIN file '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode))
        errno = EINVAL;
    else
        while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
            n += (size_t)r;
    int saved = errno;
    close(fd);
    if (!S_ISREG(st.st_mode) || r < 0) {
        snprintf(err, errlen, "PIN file '%s': %s", path,
                 S_ISREG(st.st_mode) ? strerror(saved) : "not a regular file");
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0 || n > P11_PIN_MAX) {
        snprintf(err, errlen, "PIN file '%s': %s", path,
                 n ? "longer than " P11_PIN_MAX_TEXT " bytes" : "empty");
        return -1;
    }
    return (long)n;
}

/* The PIN: the caller's, the URI's pin-value, or what pin-source's file
 * holds. Into buf (P11_PIN_MAX + 2 bytes); its length, 0 for none, -1. */
static long get_pin(const struct pkcs11_uri *u, const char *pin, char *buf, char *err,
                    size_t errlen)
{
    const char *src = pin ? pin : u->has_pin_value ? u->pin_value : NULL;
    if (src) {
        size_t n = strlen(src);
        if (n == 0 || n > P11_PIN_MAX) {
            snprintf(err, errlen, "the PIN given is %s", n ? "too long" : "empty");
            return -1;
        }
        memcpy(buf, src, n);
        return (long)n;
    }
    if (u->pin_source)
        return read_pin_file(u->pin_source, buf, P11_PIN_MAX + 2, err, errlen);
    return 0;
}

/* Opens our session on t's token and logs in with pin (NULL: none). */
static int login(struct p11_token *t, const char *pin, size_t pinlen, char *err, size_t errlen)
{
    CK_FUNCTION_LIST *f = t->mod->dev.func;
    CK_SESSION_HANDLE h;
    CK_TOKEN_INFO ti;
    char rvb[32];
    CK_RV rv = f->C_GetTokenInfo(t->slot, &ti);
    if (rv == CKR_OK && !pin && (ti.flags & P11_CKF_LOGIN_REQUIRED)) {
        snprintf(err, errlen, "token '%s' needs a login: no PIN given (pin-source in the URI)",
                 t->label);
        return -1;
    }
    if (rv == CKR_OK)
        rv = f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv != CKR_OK) {
        snprintf(err, errlen, "token '%s': C_OpenSession: %s", t->label,
                 p11_rv_name(rv, rvb, sizeof rvb));
        return -1;
    }
    rv = pin ? f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)pinlen) : CKR_OK;
    if (rv != CKR_OK && rv != P11_CKR_USER_ALREADY_LOGGED_IN) {
        snprintf(err, errlen, "token '%s': login failed: %s%s", t->label,
                 p11_rv_name(rv, rvb, sizeof rvb),
                 rv == P11_CKR_PIN_INCORRECT ? " (wrong PIN)" :
                 rv == P11_CKR_PIN_LOCKED ? " (the PIN is locked: too many wrong tries)" : "");
        f->C_CloseSession(h);
        return -1;
    }
    t->tok.handle = h;
    return 0;
}

/*
 * The token's crypto callback: wolfSSL's (wc_Pkcs11_CryptoDevCb), but for
 * RSA private-key operations. For those, wolfSSL 5.5.4 finds the key and
 * decodes its public part again at every operation, and the decoding
 * (wc_RsaPublicKeyDecodeRaw on a key that has n: mp_init drops
 * n.raw and e.raw, HAVE_WOLF_BIGINT) leaks modulus + exponent bytes each
 * time: 259 bytes a signature with RSA-2048.
 */
static int crypto_cb(int dev_id, wc_CryptoInfo *info, void *ctx)
{
    struct p11_token *t = ctx;
    if (info->algo_type == WC_ALGO_TYPE_PK && info->pk.type == WC_PK_TYPE_RSA &&
        (info->pk.rsa.type == RSA_PRIVATE_ENCRYPT || info->pk.rsa.type == RSA_PRIVATE_DECRYPT))
        return p11_rsa_private(t, info);
    return wc_Pkcs11_CryptoDevCb(dev_id, info, &t->tok);
}

/* Gives t a crypto callback device and an RNG that device seeds. */
static int attach(struct p11_token *t, char *err, size_t errlen)
{
    int id = next_dev_id++;
    int ret = wc_CryptoCb_RegisterDevice(id, crypto_cb, t);
    if (ret != 0) {
        snprintf(err, errlen, "token '%s': wolfSSL's table of crypto devices is full (too many "
                 "tokens open): %s", t->label, wc_GetErrorString(ret));
        return -1;
    }
    t->dev_id = id;
    ret = wc_InitRng_ex(&t->rng, NULL, id);
    if (ret != 0) {
        snprintf(err, errlen, "token '%s': an RNG seeded by the token: %s", t->label,
                 wc_GetErrorString(ret));
        wc_CryptoCb_UnRegisterDevice(id);
        t->dev_id = 0;
        return -1;
    }
    return 0;
}

static void token_close(struct p11_token *t)
{
    if (t->dev_id) {
        wc_FreeRng(&t->rng);
        wc_CryptoCb_UnRegisterDevice(t->dev_id);
    }
    if (t->tok.handle != CK_INVALID_HANDLE)
        t->mod->dev.func->C_CloseSession(t->tok.handle);
    t->tok.handle = CK_INVALID_HANDLE;
    if (t->tok.func)
        wc_Pkcs11Token_Final(&t->tok);
    free(t);
}

static struct p11_token *token_open(struct p11_module *m, CK_SLOT_ID slot, const char *label,
                                    const struct pkcs11_uri *u, const char *pin, char *err,
                                    size_t errlen)
{
    struct p11_token *t = xcalloc(1, sizeof *t);
    char pinbuf[P11_PIN_MAX + 2];
    t->mod = m;
    t->slot = slot;
    snprintf(t->label, sizeof t->label, "%s", label);
    int ret = -1;
    if (slot > INT_MAX)
        snprintf(err, errlen, "token '%s': slot %lu is beyond the slot numbers wolfSSL takes",
                 label, (unsigned long)slot);
    else if ((ret = wc_Pkcs11Token_Init_NoLogin(&t->tok, &m->dev, (int)slot, NULL)) != 0)
        snprintf(err, errlen, "token '%s': wolfSSL: %s", label, wc_GetErrorString(ret));
    if (ret == 0) {
        long n = get_pin(u, pin, pinbuf, err, errlen);
        ret = n < 0 ? -1 : login(t, n ? pinbuf : NULL, (size_t)n, err, errlen);
        explicit_bzero(pinbuf, sizeof pinbuf);
    }
    if (ret == 0)
        ret = attach(t, err, errlen);
    if (ret == 0)
        return t;
    token_close(t);
    return NULL;
}

struct p11_token *p11_token_get(const struct pkcs11_uri *u, const char *pin,
                                const char *default_module, char *err, size_t errlen)
{
    const char *path = u->module_path ? u->module_path
                       : default_module ? default_module : pkcs11_default_module();
    struct p11_module *m = module_get(path, err, errlen);
    CK_SLOT_ID slot;
    char label[P11_TOKEN_LABEL_MAX + 1];
    if (!m)
        return NULL;
    if (find_slot(m, u, path, &slot, label, err, errlen) < 0) {
        module_put(m);
        return NULL;
    }
    for (struct p11_token *t = tokens; t; t = t->next)
        if (t->mod == m && t->slot == slot) {
            t->refs++;
            module_put(m);
            return t;
        }
    struct p11_token *t = token_open(m, slot, label, u, pin, err, errlen);
    if (!t) {
        module_put(m);
        return NULL;
    }
    t->refs = 1;
    t->next = tokens;
    tokens = t;
    return t;
}

void p11_token_put(struct p11_token *t)
{
    if (!t || --t->refs > 0)
        return;
    for (struct p11_token **p = &tokens; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    struct p11_module *m = t->mod;
    token_close(t);
    module_put(m);
}

int p11_open_modules(void)
{
    int n = 0;
    for (struct p11_module *m = modules; m; m = m->next)
        n++;
    return n;
}

int p11_open_tokens(void)
{
    int n = 0;
    for (struct p11_token *t = tokens; t; t = t->next)
        n++;
    return n;
}
