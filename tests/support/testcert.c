/* testcert.c: see testcert.h. */
#include "testcert.h"

#include <stdio.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "runner.h"

void phx_test_write_cert(const char *cert_path, const char *key_path, const char *san)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    ASSERT(key != NULL);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"phxd test", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    ASSERT(ext != NULL);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASSERT(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    ASSERT(f != NULL);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    ASSERT(f != NULL);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

void phx_test_certs_make(phx_test_certs_t *c, const char *prefix)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/%s-XXXXXX", prefix);
    ASSERT(mkdtemp(c->dir) != NULL);
    snprintf(c->cert, sizeof(c->cert), "%s/cert.pem", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/key.pem", c->dir);
    snprintf(c->other, sizeof(c->other), "%s/other.pem", c->dir);
    snprintf(c->okey, sizeof(c->okey), "%s/okey.pem", c->dir);
    phx_test_write_cert(c->cert, c->key, "DNS:localhost,IP:127.0.0.1");
    phx_test_write_cert(c->other, c->okey, "DNS:other.example");
}

void phx_test_certs_remove(phx_test_certs_t *c)
{
    unlink(c->cert);
    unlink(c->key);
    unlink(c->other);
    unlink(c->okey);
    rmdir(c->dir);
}
