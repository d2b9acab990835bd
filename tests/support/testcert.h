/* testcert.h: self-signed certificates made in-process for TLS tests: a
 * directory with one for localhost and 127.0.0.1 and a stranger's
 * (other.example only). */
#ifndef PHX_TEST_TESTCERT_H
#define PHX_TEST_TESTCERT_H

typedef struct phx_test_certs {
    char dir[64];
    char cert[128], key[128];   /* SAN localhost and 127.0.0.1 */
    char other[128], okey[128]; /* a stranger: SAN other.example only */
} phx_test_certs_t;

/* Writes a self-signed P-256 certificate (CA:TRUE, valid for a day) with
 * the subjectAltName `san` ("DNS:localhost,IP:127.0.0.1") and its key. */
void phx_test_write_cert(const char *cert_path, const char *key_path, const char *san);
/* Makes both certificates in a new directory /tmp/<prefix>-XXXXXX. */
void phx_test_certs_make(phx_test_certs_t *c, const char *prefix);
/* Removes the files and the directory. */
void phx_test_certs_remove(phx_test_certs_t *c);

#endif /* PHX_TEST_TESTCERT_H */
