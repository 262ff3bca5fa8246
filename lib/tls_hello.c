#include "tls_hello.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>

#define ALERT_HANDSHAKE_FAILURE 40
#define ALERT_ILLEGAL_PARAMETER 47
#define ALERT_DECODE_ERROR      50
#define GROUP_P256              23

/* RFC 8446 section 4.2.8.2: the point is on the curve (P-256's cofactor
 * is 1, so no order check is needed). Only the uncompressed form of 65
 * bytes is legal. */
static bool p256_share_valid(const struct client_hello *ch)
{
    ecc_key key;
    bool ok = false;
    if (ch->p256_point[0] != 4 || wc_ecc_init(&key) != 0)
        return false;
    if (wc_ecc_import_x963_ex(ch->p256_point, sizeof ch->p256_point, &key,
                              ECC_SECP256R1) == 0)
        ok = wc_ecc_point_is_on_curve(&key.pubkey, wc_ecc_get_curve_idx(ECC_SECP256R1)) == 0;
    wc_ecc_free(&key);
    return ok;
}

/* No group in common (RFC 8446 section 4.1.1, RFC 8422 section 5.1): a
 * TLS 1.3 client is refused; a TLS 1.2 one too unless it also offers a
 * finite-field DHE suite, which needs no curve. A TLS 1.2 hello without
 * supported_groups leaves the curve to the server (RFC 8422 section 4). */
static bool no_common_group(const struct tls_hello_policy *p, const struct client_hello *ch)
{
    if (!ch->groups_sent || (ch->groups & p->groups))
        return false;
    if (p->allow13 && ch->tls13)
        return true;
    return !ch->dhe_suite12;
}

const char *tls_hello_refusal(const struct tls_hello_policy *p, const struct client_hello *ch,
                              uint8_t *alert)
{
    if (!ch->complete)
        return NULL;
    if (ch->reneg_nonempty) {
        *alert = ALERT_HANDSHAKE_FAILURE;
        return "an initial ClientHello with renegotiation_info of a previous connection";
    }
    if (ch->alpn_bad) {
        *alert = ALERT_DECODE_ERROR;
        return "an empty or truncated ALPN protocol name";
    }
    if (ch->ext_bad) {
        *alert = ALERT_DECODE_ERROR;
        return "a supported_groups, key_share or renegotiation_info extension that does not parse";
    }
    if (no_common_group(p, ch)) {
        *alert = ALERT_HANDSHAKE_FAILURE;
        return "no key exchange group in common (tls.groups)";
    }
    if (p->allow13 && ch->tls13 && ch->p256_share && (p->groups & 1u << GROUP_P256) &&
        !p256_share_valid(ch)) {
        *alert = ALERT_ILLEGAL_PARAMETER;
        return "a P-256 key share that is not a point on the curve";
    }
    return NULL;
}
