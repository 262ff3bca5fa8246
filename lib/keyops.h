/*
 * keyops — what a private-key holder is asked to do, and what kinds of
 * keys it holds: shared by the key process and the modules that hold
 * keys (pkcs11, key files), so both sides speak the same numbers.
 */
#ifndef TLSOFFD_KEYOPS_H
#define TLSOFFD_KEYOPS_H

/* in: the digest (20..64 bytes); out: the DER ECDSA signature, as
 * wc_ecc_sign_hash makes it. */
#define KEY_OP_ECDSA      1
/* in: the DER DigestInfo (what wolfSSL's RsaSignCb gets in TLS 1.2,
 * wc_RsaSSL_Sign's input); out: the PKCS#1 v1.5 signature, key-size bytes. */
#define KEY_OP_RSA_PKCS1  2
/* in: the digest; hash: wolfSSL's enum wc_HashType (SHA-256/384/512);
 * mgf: WC_MGF1SHA256/384/512; salt length = digest length (TLS 1.3);
 * out: the RSA-PSS signature, key-size bytes. */
#define KEY_OP_RSA_PSS    3

#define KEY_KIND_EC       1
#define KEY_KIND_RSA      2

#endif
