/* error.c: names and descriptions of phxd's error codes (the PHX_ERRNO_MAP
 * table in phx.h); libuv codes are delegated to libuv. Also the library's
 * version (phx_version.h, generated from the project version). */
#include "phx.h"

#include <uv.h>

const char *phx_err_name(int err)
{
    switch (err) {
#define PHX_ERRNO_NAME(name, code, text)                                                           \
    case code:                                                                                     \
        return "PHX_ERR_" #name;
        PHX_ERRNO_MAP(PHX_ERRNO_NAME)
#undef PHX_ERRNO_NAME
    case 0:
        return "OK";
    default:
        return uv_err_name(err);
    }
}

const char *phx_strerror(int err)
{
    switch (err) {
#define PHX_ERRNO_TEXT(name, code, text)                                                           \
    case code:                                                                                     \
        return text;
        PHX_ERRNO_MAP(PHX_ERRNO_TEXT)
#undef PHX_ERRNO_TEXT
    case 0:
        return "success";
    default:
        return uv_strerror(err);
    }
}

const char *phx_version(void)
{
    return PHX_VERSION_STRING;
}

int phx_version_num(void)
{
    return PHX_VERSION_NUM;
}
