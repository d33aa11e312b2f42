/* The growable byte buffer both extension modules write their output into. */
#ifndef LEDGERDR_BUFFER_H
#define LEDGERDR_BUFFER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    unsigned char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t extra)
{
    Py_ssize_t need = b->len + extra;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    unsigned char *p;
    if (extra < 0 || need < 0) {
        PyErr_NoMemory();
        return -1;
    }
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = (unsigned char *)PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    return buf_grow(b, extra);
}

#endif
