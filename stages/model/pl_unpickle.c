// Restricted pickle virtual machine for torch.save output: data opcodes only, globals kept as inert names.
#include "pl_unpickle.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Vm {
    const unsigned char *p;
    size_t size, pos, op_pos;
    const char *name;
    PlPickle *pk;
    PlPyValue **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nmarks, mcap;
    PlPyValue **memo;
    size_t memo_len;
    size_t items_total;   // container slots filled so far (bomb protection)
} Vm;

#define VM_FAIL(vm, code, ...) vm_fail((vm), (code), __FILE__, __LINE__, __VA_ARGS__)

static PlStatus vm_fail(Vm *vm, PlStatus code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static PlStatus vm_fail(Vm *vm, PlStatus code, const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pl_error_set(code, file, line, "%s: pickle offset %zu: %s", vm->name, vm->op_pos, msg);
}

static PlPyValue *vm_new(Vm *vm, PlPyKind kind) {
    if (vm->pk->nvalues >= PL_PICKLE_MAX_VALUES) {
        VM_FAIL(vm, PL_ERR_LIMIT, "more than %d values: refusing to build more", PL_PICKLE_MAX_VALUES);
        return NULL;
    }
    PlPyValue *v = pl_calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    v->next_alloc = vm->pk->all;
    vm->pk->all = v;
    vm->pk->nvalues++;
    return v;
}

static PlStatus vm_push(Vm *vm, PlPyValue *v) {
    if (!v) return pl_error_code() ? pl_error_code() : PL_ERR_NOMEM;
    if (vm->sp == vm->scap) {
        if (vm->scap >= PL_PICKLE_MAX_VALUES)
            return VM_FAIL(vm, PL_ERR_LIMIT, "pickle stack deeper than %d entries", PL_PICKLE_MAX_VALUES);
        size_t cap = vm->scap ? vm->scap * 2 : 64;
        PlPyValue **s = realloc(vm->stack, cap * sizeof *s);
        if (!s) return PL_FAIL(PL_ERR_NOMEM, "out of memory growing the pickle stack");
        vm->stack = s;
        vm->scap = cap;
    }
    vm->stack[vm->sp++] = v;
    return PL_OK;
}

static PlStatus vm_pop(Vm *vm, PlPyValue **v) {
    if (vm->sp == 0 || (vm->nmarks && vm->sp <= vm->marks[vm->nmarks - 1]))
        return VM_FAIL(vm, PL_ERR_FORMAT, "stack underflow");
    *v = vm->stack[--vm->sp];
    return PL_OK;
}

static PlStatus vm_top(Vm *vm, PlPyValue **v) {
    if (vm->sp == 0 || (vm->nmarks && vm->sp <= vm->marks[vm->nmarks - 1]))
        return VM_FAIL(vm, PL_ERR_FORMAT, "stack underflow");
    *v = vm->stack[vm->sp - 1];
    return PL_OK;
}

// Pop everything above the last MARK; *first indexes the items still in vm->stack (valid until next push).
static PlStatus vm_pop_mark(Vm *vm, size_t *first, size_t *count) {
    if (vm->nmarks == 0) return VM_FAIL(vm, PL_ERR_FORMAT, "no MARK on the stack");
    size_t m = vm->marks[--vm->nmarks];
    *first = m;
    *count = vm->sp - m;
    vm->sp = m;
    return PL_OK;
}

static PlStatus vm_append(Vm *vm, PlPyValue *c, PlPyValue *item) {
    if (++vm->items_total > 8 * (size_t)PL_PICKLE_MAX_VALUES)
        return VM_FAIL(vm, PL_ERR_LIMIT, "more than %d container items: refusing to build more",
                       8 * PL_PICKLE_MAX_VALUES);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        PlPyValue **it = realloc(c->items, cap * sizeof *it);
        if (!it) return PL_FAIL(PL_ERR_NOMEM, "out of memory growing a pickle container");
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = item;
    return PL_OK;
}

static PlStatus vm_need(Vm *vm, size_t n, const unsigned char **out) {
    if (vm->size - vm->pos < n)
        return VM_FAIL(vm, PL_ERR_FORMAT, "truncated pickle (needs %zu more bytes, %zu left)", n, vm->size - vm->pos);
    *out = vm->p + vm->pos;
    vm->pos += n;
    return PL_OK;
}

static uint64_t le(const unsigned char *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static PlPyValue *vm_string(Vm *vm, PlPyKind kind, const unsigned char *b, size_t n) {
    PlPyValue *v = vm_new(vm, kind);
    if (!v) return NULL;
    v->s = pl_malloc(n + 1);
    if (!v->s) return NULL;
    memcpy(v->s, b, n);
    v->s[n] = '\0';
    v->slen = n;
    return v;
}

static PlPyValue *vm_tuple(Vm *vm, PlPyValue **items, size_t n) {
    PlPyValue *t = vm_new(vm, PL_PY_TUPLE);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++)
        if (vm_append(vm, t, items[i]) != PL_OK) return NULL;
    return t;
}

// ---- globals: which names are refused, which are modelled ----

static int global_is_dangerous(const char *module, const char *name) {
    static const char *bad_modules[] = {
        "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "pickle", "_pickle", "cPickle", "socket",
        "runpy", "code", "codeop", "ctypes", "pty", "commands", "webbrowser", "marshal", "types", "operator",
        "_operator", "functools", "_functools", "io", "_io", "timeit", "platform", "multiprocessing", "pdb", "bdb",
        "shelve", "tempfile", "glob", "pathlib", "signal", "threading", "_thread", "asyncio", "popen2",
        "posixpath", "ntpath", "zipimport", "pkgutil", "inspect", "gc", "_posixsubprocess", "http", "urllib",
        "smtplib", "ftplib", "telnetlib", "distutils", "setuptools", "pip", "sysconfig", "site", "imp",
        "pydoc", "cProfile", "profile", "trace", "doctest", "unittest", "idlelib", "tkinter", "venv", "ensurepip",
        "builtins", "__builtin__", "__builtins__", "dill", "cloudpickle", NULL};
    static const char *builtin_ok[] = {"set", "frozenset", "bytearray", "complex", "slice", "range", "bytes",
                                       "dict", "list", "tuple", "int", "float", "str", "bool", "object", NULL};
    static const char *bad_names[] = {"eval", "exec", "execfile", "system", "popen", "Popen", "spawn", "__import__",
                                      "getattr", "setattr", "delattr", "call", "check_call", "check_output", "run",
                                      "compile", "open", "load", "loads", "apply", "input", "breakpoint", NULL};
    for (int i = 0; bad_names[i]; i++)
        if (strcmp(name, bad_names[i]) == 0 || strncmp(name, "spawn", 5) == 0 || strncmp(name, "exec", 4) == 0)
            return 1;
    if (strcmp(module, "builtins") == 0 || strcmp(module, "__builtin__") == 0) {
        for (int i = 0; builtin_ok[i]; i++)
            if (strcmp(name, builtin_ok[i]) == 0) return 0;
        return 1;
    }
    for (int i = 0; bad_modules[i]; i++) {
        size_t n = strlen(bad_modules[i]);
        if (strncmp(module, bad_modules[i], n) == 0 && (module[n] == '\0' || module[n] == '.')) return 1;
    }
    return 0;
}

static PlStatus vm_global(Vm *vm, const char *module, size_t mlen, const char *name, size_t nlen) {
    char mod[256], nm[256];
    if (mlen >= sizeof mod || nlen >= sizeof nm || mlen == 0 || nlen == 0)
        return VM_FAIL(vm, PL_ERR_FORMAT, "malformed global name");
    memcpy(mod, module, mlen);
    mod[mlen] = '\0';
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    if (strlen(mod) != mlen || strlen(nm) != nlen) return VM_FAIL(vm, PL_ERR_FORMAT, "global name contains NUL");
    if (global_is_dangerous(mod, nm))
        return VM_FAIL(vm, PL_ERR_FORMAT,
                       "refusing to load: the pickle references %s.%s, which could execute code "
                       "(the file is malicious or not a plain checkpoint)",
                       mod, nm);
    char full[520];
    int n = snprintf(full, sizeof full, "%s.%s", mod, nm);
    return vm_push(vm, vm_string(vm, PL_PY_GLOBAL, (const unsigned char *)full, (size_t)n));
}

static int is_global(const PlPyValue *v, const char *full) {
    return v && v->kind == PL_PY_GLOBAL && strcmp(v->s, full) == 0;
}

static PlStatus int_tuple(Vm *vm, const PlPyValue *t, const char *what, int64_t *out, int *n) {
    if (!t || t->kind != PL_PY_TUPLE) return VM_FAIL(vm, PL_ERR_FORMAT, "tensor %s is not a tuple", what);
    if (t->n > PL_WEIGHTS_MAX_DIMS)
        return VM_FAIL(vm, PL_ERR_UNSUPPORTED, "tensor has %zu dimensions (at most %d)", t->n, PL_WEIGHTS_MAX_DIMS);
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != PL_PY_INT || t->items[i]->i < 0)
            return VM_FAIL(vm, PL_ERR_FORMAT, "tensor %s holds a non-integer or negative entry", what);
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return PL_OK;
}

// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
static PlStatus rebuild_tensor(Vm *vm, const PlPyValue *args, PlPyValue **out) {
    if (args->kind != PL_PY_TUPLE || args->n < 4)
        return VM_FAIL(vm, PL_ERR_FORMAT, "_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)");
    PlPyValue *storage = args->items[0], *off = args->items[1];
    if (storage->kind != PL_PY_STORAGE)
        return VM_FAIL(vm, PL_ERR_FORMAT, "_rebuild_tensor_v2: first argument is a %s, not a storage",
                       pl_py_kind_name(storage->kind));
    if (off->kind != PL_PY_INT || off->i < 0) return VM_FAIL(vm, PL_ERR_FORMAT, "tensor offset is not an integer >= 0");
    PlPyValue *t = vm_new(vm, PL_PY_TENSOR);
    if (!t) return pl_error_code();
    t->tensor = pl_calloc(1, sizeof *t->tensor);
    if (!t->tensor) return PL_ERR_NOMEM;
    t->tensor->storage = storage;
    t->tensor->offset = off->i;
    int nshape = 0, nstride = 0;
    PL_TRY(int_tuple(vm, args->items[2], "size", t->tensor->shape, &nshape));
    PL_TRY(int_tuple(vm, args->items[3], "stride", t->tensor->stride, &nstride));
    if (nshape != nstride) return VM_FAIL(vm, PL_ERR_FORMAT, "tensor size and stride differ in length");
    t->tensor->ndim = nshape;
    *out = t;
    return PL_OK;
}

// REDUCE: callable(*args). Only a few torch/collections callables are interpreted; everything else
// becomes an inert record.
static PlStatus vm_reduce(Vm *vm, PlPyValue *fn, PlPyValue *args, PlPyValue **out, int depth) {
    if (args->kind != PL_PY_TUPLE) return VM_FAIL(vm, PL_ERR_FORMAT, "REDUCE arguments are not a tuple");
    if (depth > 4) return VM_FAIL(vm, PL_ERR_FORMAT, "_rebuild_from_type_v2 nested too deeply");
    if (is_global(fn, "torch._utils._rebuild_tensor_v2") || is_global(fn, "torch._utils._rebuild_tensor"))
        return rebuild_tensor(vm, args, out);
    if (is_global(fn, "torch._utils._rebuild_parameter") ||
        is_global(fn, "torch._utils._rebuild_parameter_with_state")) {
        if (args->n < 1 || args->items[0]->kind != PL_PY_TENSOR)
            return VM_FAIL(vm, PL_ERR_FORMAT, "_rebuild_parameter without a tensor");
        *out = args->items[0];
        return PL_OK;
    }
    if (is_global(fn, "torch._tensor._rebuild_from_type_v2") && args->n >= 3 && args->items[2]->kind == PL_PY_TUPLE)
        return vm_reduce(vm, args->items[0], args->items[2], out, depth + 1);
    if (is_global(fn, "collections.OrderedDict") || is_global(fn, "builtins.dict")) {
        PlPyValue *d = vm_new(vm, PL_PY_DICT);
        if (!d) return pl_error_code();
        if (args->n >= 1 && (args->items[0]->kind == PL_PY_LIST || args->items[0]->kind == PL_PY_TUPLE)) {
            PlPyValue *pairs = args->items[0];
            for (size_t i = 0; i < pairs->n; i++) {
                PlPyValue *kv = pairs->items[i];
                if ((kv->kind != PL_PY_TUPLE && kv->kind != PL_PY_LIST) || kv->n != 2)
                    return VM_FAIL(vm, PL_ERR_FORMAT, "OrderedDict item is not a pair");
                PL_TRY(vm_append(vm, d, kv->items[0]));
                PL_TRY(vm_append(vm, d, kv->items[1]));
            }
        }
        *out = d;
        return PL_OK;
    }
    if ((is_global(fn, "builtins.set") || is_global(fn, "builtins.frozenset") || is_global(fn, "builtins.list") ||
         is_global(fn, "builtins.tuple")) &&
        args->n == 1 && (args->items[0]->kind == PL_PY_LIST || args->items[0]->kind == PL_PY_TUPLE)) {
        PlPyValue *l = vm_new(vm, is_global(fn, "builtins.tuple") ? PL_PY_TUPLE : PL_PY_LIST);
        if (!l) return pl_error_code();
        for (size_t i = 0; i < args->items[0]->n; i++) PL_TRY(vm_append(vm, l, args->items[0]->items[i]));
        *out = l;
        return PL_OK;
    }
    if (is_global(fn, "_codecs.encode") && args->n >= 1 && args->items[0]->kind == PL_PY_STR) {
        // protocol-2 bytes: _codecs.encode(text, "latin1"); decode the UTF-8 text to code points < 256
        const PlPyValue *s = args->items[0];
        PlPyValue *b = vm_string(vm, PL_PY_BYTES, (const unsigned char *)"", 0);
        if (!b) return pl_error_code();
        free(b->s);
        b->s = pl_malloc(s->slen + 1);
        if (!b->s) return PL_ERR_NOMEM;
        size_t n = 0;
        for (size_t i = 0; i < s->slen; i++) {
            unsigned char c = (unsigned char)s->s[i];
            if (c >= 0xc2 && c <= 0xc3 && i + 1 < s->slen) {
                b->s[n++] = (char)(((c & 0x1f) << 6) | ((unsigned char)s->s[++i] & 0x3f));
            } else {
                b->s[n++] = (char)c;
            }
        }
        b->s[n] = '\0';
        b->slen = n;
        *out = b;
        return PL_OK;
    }
    PlPyValue *r = vm_new(vm, PL_PY_RECORD);
    if (!r) return pl_error_code();
    r->type = fn;
    r->args = args;
    *out = r;
    return PL_OK;
}

// BINPERSID: torch's ('storage', storage_type, key, location, numel)
static PlStatus vm_persistent(Vm *vm, PlPyValue *pid, PlPyValue **out) {
    if (pid->kind != PL_PY_TUPLE || pid->n < 5 || pid->items[0]->kind != PL_PY_STR ||
        strcmp(pid->items[0]->s, "storage") != 0)
        return VM_FAIL(vm, PL_ERR_FORMAT, "persistent id is not a torch ('storage', type, key, location, numel) tuple");
    PlPyValue *type = pid->items[1], *key = pid->items[2], *numel = pid->items[4];
    if (type->kind != PL_PY_GLOBAL || key->kind != PL_PY_STR || numel->kind != PL_PY_INT || numel->i < 0)
        return VM_FAIL(vm, PL_ERR_FORMAT, "malformed torch storage persistent id");
    if (strchr(key->s, '/') || strcmp(key->s, "..") == 0)
        return VM_FAIL(vm, PL_ERR_FORMAT, "storage key \"%s\" is not a plain name", key->s);
    PlPyValue *s = vm_new(vm, PL_PY_STORAGE);
    if (!s) return pl_error_code();
    s->s = pl_strdup(key->s);
    s->storage_type = pl_strdup(type->s);
    if (!s->s || !s->storage_type) return PL_ERR_NOMEM;
    s->slen = strlen(s->s);
    s->i = numel->i;
    static const struct { const char *name; PlDtype t; } storages[] = {
        {"torch.FloatStorage", PL_DTYPE_F32},   {"torch.HalfStorage", PL_DTYPE_F16},
        {"torch.BFloat16Storage", PL_DTYPE_BF16}, {"torch.DoubleStorage", PL_DTYPE_F64},
        {"torch.LongStorage", PL_DTYPE_I64},    {"torch.IntStorage", PL_DTYPE_I32},
        {"torch.ShortStorage", PL_DTYPE_I16},   {"torch.CharStorage", PL_DTYPE_I8},
        {"torch.ByteStorage", PL_DTYPE_U8},     {"torch.BoolStorage", PL_DTYPE_BOOL}};
    s->dtype = PL_DTYPE_UNKNOWN;
    for (size_t i = 0; i < sizeof storages / sizeof storages[0]; i++)
        if (strcmp(type->s, storages[i].name) == 0) s->dtype = storages[i].t;
    *out = s;
    return PL_OK;
}

static PlStatus vm_memo_put(Vm *vm, uint64_t idx) {
    PlPyValue *top = NULL;
    PL_TRY(vm_top(vm, &top));
    if (idx > vm->pk->nvalues + 1024)
        return VM_FAIL(vm, PL_ERR_FORMAT, "memo index %llu is implausibly large", (unsigned long long)idx);
    if (idx >= vm->memo_len) {
        size_t len = (size_t)idx + 1 > vm->memo_len * 2 ? (size_t)idx + 1 : vm->memo_len * 2;
        PlPyValue **m = realloc(vm->memo, len * sizeof *m);
        if (!m) return PL_FAIL(PL_ERR_NOMEM, "out of memory growing the pickle memo");
        memset(m + vm->memo_len, 0, (len - vm->memo_len) * sizeof *m);
        vm->memo = m;
        vm->memo_len = len;
    }
    vm->memo[idx] = top;
    return PL_OK;
}

static PlStatus vm_memo_get(Vm *vm, uint64_t idx) {
    if (idx >= vm->memo_len || !vm->memo[idx])
        return VM_FAIL(vm, PL_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return vm_push(vm, vm->memo[idx]);
}

static size_t memo_next(const Vm *vm) {
    size_t n = vm->memo_len;
    while (n > 0 && !vm->memo[n - 1]) n--;
    return n;
}

static const char *opcode_name(unsigned char op) {
    switch (op) {
    case 'i': return "INST (instantiates a class)";
    case 'o': return "OBJ (instantiates a class)";
    case 0x82: case 0x83: case 0x84: return "EXT (extension registry)";
    case 'P': return "PERSID (text persistent id)";
    case 0x97: case 0x98: return "out-of-band buffer";
    case 'I': case 'L': case 'S': case 'V': case 'F': case 'p': case 'g': return "protocol-0 text opcode";
    default: return "unknown opcode";
    }
}

// Opcodes that push a value read from the stream (constants, numbers, strings) or only describe it. Returns PL_OK with *handled = 0 for an opcode of another group.
static PlStatus vm_op_value(Vm *vm, unsigned char op, int *handled) {
    const unsigned char *b = NULL;
    PlPyValue *v = NULL;
    *handled = 1;
    switch (op) {
    case 0x80:   // PROTO
        PL_TRY(vm_need(vm, 1, &b));
        if (b[0] < 2 || b[0] > 5) return VM_FAIL(vm, PL_ERR_UNSUPPORTED, "pickle protocol %d (need 2-5)", b[0]);
        break;
    case 0x95:   // FRAME (framing is advisory)
        PL_TRY(vm_need(vm, 8, &b));
        break;
    case '}': PL_TRY(vm_push(vm, vm_new(vm, PL_PY_DICT))); break;
    case ']': PL_TRY(vm_push(vm, vm_new(vm, PL_PY_LIST))); break;
    case ')': PL_TRY(vm_push(vm, vm_new(vm, PL_PY_TUPLE))); break;
    case 0x8f: PL_TRY(vm_push(vm, vm_new(vm, PL_PY_LIST))); break;   // EMPTY_SET (kept as a list)
    case 'N': PL_TRY(vm_push(vm, vm_new(vm, PL_PY_NONE))); break;
    case 0x88: case 0x89:   // NEWTRUE / NEWFALSE
        v = vm_new(vm, PL_PY_BOOL);
        if (v) v->i = op == 0x88;
        PL_TRY(vm_push(vm, v));
        break;
    case 'J': case 'K': case 'M': {   // BININT, BININT1, BININT2
        int n = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        PL_TRY(vm_need(vm, (size_t)n, &b));
        v = vm_new(vm, PL_PY_INT);
        if (v) v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)le(b, 4) : (int64_t)le(b, n);
        PL_TRY(vm_push(vm, v));
        break;
    }
    case 0x8a: case 0x8b: {   // LONG1, LONG4: little-endian two's complement
        PL_TRY(vm_need(vm, op == 0x8a ? 1 : 4, &b));
        uint64_t n = le(b, op == 0x8a ? 1 : 4);
        if (n > vm->size - vm->pos) return VM_FAIL(vm, PL_ERR_FORMAT, "truncated long");
        PL_TRY(vm_need(vm, (size_t)n, &b));
        if (n <= 8) {
            v = vm_new(vm, PL_PY_INT);
            if (v && n > 0) {
                uint64_t u = le(b, (int)n);
                if (n < 8 && (b[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
                v->i = (int64_t)u;
            }
        } else {   // beyond int64: keep an approximate float
            v = vm_new(vm, PL_PY_FLOAT);
            if (v) {
                double d = 0;
                for (uint64_t i = n; i-- > 0;) d = d * 256.0 + b[i];
                if (b[n - 1] & 0x80) d -= ldexp(1.0, (int)(8 * (n > 128 ? 128 : n)));
                v->f = d;
            }
        }
        PL_TRY(vm_push(vm, v));
        break;
    }
    case 'G': {   // BINFLOAT: big-endian double
        PL_TRY(vm_need(vm, 8, &b));
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | b[i];
        v = vm_new(vm, PL_PY_FLOAT);
        if (v) memcpy(&v->f, &u, 8);
        PL_TRY(vm_push(vm, v));
        break;
    }
    case 0x8c: case 'X': case 0x8d: case 'U': case 'T': case 'C': case 'B': case 0x8e: case 0x96: {
        // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8, SHORT_BINSTRING, BINSTRING, SHORT_BINBYTES, BINBYTES,
        // BINBYTES8, BYTEARRAY8
        int lenbytes = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
        PL_TRY(vm_need(vm, (size_t)lenbytes, &b));
        uint64_t n = le(b, lenbytes);
        if (n > vm->size - vm->pos) return VM_FAIL(vm, PL_ERR_FORMAT, "string of %llu bytes runs past the end",
                                                    (unsigned long long)n);
        PL_TRY(vm_need(vm, (size_t)n, &b));
        int is_bytes = op == 'C' || op == 'B' || op == 0x8e || op == 0x96;
        PL_TRY(vm_push(vm, vm_string(vm, is_bytes ? PL_PY_BYTES : PL_PY_STR, b, (size_t)n)));
        break;
    }
    default:
        *handled = 0;
    }
    return PL_OK;
}

// Opcodes that build or edit containers, or manage the stack, marks and memo. Returns PL_OK with *handled = 0 for an opcode of another group.
static PlStatus vm_op_container(Vm *vm, unsigned char op, int *handled) {
    const unsigned char *b = NULL;
    PlPyValue *v = NULL, *w = NULL, *x = NULL;
    size_t first = 0, count = 0;
    *handled = 1;
    switch (op) {
    case '(':    // MARK
        if (vm->nmarks == vm->mcap) {
            size_t cap = vm->mcap ? vm->mcap * 2 : 16;
            size_t *m = realloc(vm->marks, cap * sizeof *m);
            if (!m) return PL_FAIL(PL_ERR_NOMEM, "out of memory growing the pickle mark stack");
            vm->marks = m;
            vm->mcap = cap;
        }
        vm->marks[vm->nmarks++] = vm->sp;
        break;
    case 0x85: case 0x86: case 0x87: {   // TUPLE1..3
        size_t n = (size_t)(op - 0x84);
        if (vm->sp < n || (vm->nmarks && vm->sp - n < vm->marks[vm->nmarks - 1]))
            return VM_FAIL(vm, PL_ERR_FORMAT, "stack underflow");
        v = vm_tuple(vm, vm->stack + vm->sp - n, n);
        if (!v) return pl_error_code();
        vm->sp -= n;
        PL_TRY(vm_push(vm, v));
        break;
    }
    case 't': case 'l': {   // TUPLE, LIST
        PL_TRY(vm_pop_mark(vm, &first, &count));
        v = vm_tuple(vm, vm->stack + first, count);
        if (!v) return pl_error_code();
        if (op == 'l') v->kind = PL_PY_LIST;
        PL_TRY(vm_push(vm, v));
        break;
    }
    case 'd': {   // DICT
        PL_TRY(vm_pop_mark(vm, &first, &count));
        if (count % 2) return VM_FAIL(vm, PL_ERR_FORMAT, "DICT with an odd number of items");
        v = vm_tuple(vm, vm->stack + first, count);
        if (!v) return pl_error_code();
        v->kind = PL_PY_DICT;
        PL_TRY(vm_push(vm, v));
        break;
    }
    case 'a':   // APPEND
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_top(vm, &v));
        if (v->kind != PL_PY_LIST) return VM_FAIL(vm, PL_ERR_FORMAT, "APPEND to a %s", pl_py_kind_name(v->kind));
        PL_TRY(vm_append(vm, v, w));
        break;
    case 'e': case 0x90:   // APPENDS, ADDITEMS
        PL_TRY(vm_pop_mark(vm, &first, &count));
        PL_TRY(vm_top(vm, &v));
        if (v->kind != PL_PY_LIST) return VM_FAIL(vm, PL_ERR_FORMAT, "APPENDS to a %s", pl_py_kind_name(v->kind));
        for (size_t i = 0; i < count; i++) PL_TRY(vm_append(vm, v, vm->stack[first + i]));
        break;
    case 0x91:   // FROZENSET
        PL_TRY(vm_pop_mark(vm, &first, &count));
        v = vm_tuple(vm, vm->stack + first, count);
        if (!v) return pl_error_code();
        v->kind = PL_PY_LIST;
        PL_TRY(vm_push(vm, v));
        break;
    case 's':   // SETITEM
        PL_TRY(vm_pop(vm, &x));
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_top(vm, &v));
        if (v->kind != PL_PY_DICT) return VM_FAIL(vm, PL_ERR_FORMAT, "SETITEM on a %s", pl_py_kind_name(v->kind));
        PL_TRY(vm_append(vm, v, w));
        PL_TRY(vm_append(vm, v, x));
        break;
    case 'u':   // SETITEMS
        PL_TRY(vm_pop_mark(vm, &first, &count));
        PL_TRY(vm_top(vm, &v));
        if (v->kind != PL_PY_DICT) return VM_FAIL(vm, PL_ERR_FORMAT, "SETITEMS on a %s", pl_py_kind_name(v->kind));
        if (count % 2) return VM_FAIL(vm, PL_ERR_FORMAT, "SETITEMS with an odd number of items");
        for (size_t i = 0; i < count; i++) PL_TRY(vm_append(vm, v, vm->stack[first + i]));
        break;
    case '0': PL_TRY(vm_pop(vm, &v)); break;   // POP
    case '1': PL_TRY(vm_pop_mark(vm, &first, &count)); break;   // POP_MARK
    case '2': PL_TRY(vm_top(vm, &v)); PL_TRY(vm_push(vm, v)); break;   // DUP
    case 'q': PL_TRY(vm_need(vm, 1, &b)); PL_TRY(vm_memo_put(vm, b[0])); break;          // BINPUT
    case 'r': PL_TRY(vm_need(vm, 4, &b)); PL_TRY(vm_memo_put(vm, le(b, 4))); break;      // LONG_BINPUT
    case 0x94: PL_TRY(vm_memo_put(vm, memo_next(vm))); break;                             // MEMOIZE
    case 'h': PL_TRY(vm_need(vm, 1, &b)); PL_TRY(vm_memo_get(vm, b[0])); break;          // BINGET
    case 'j': PL_TRY(vm_need(vm, 4, &b)); PL_TRY(vm_memo_get(vm, le(b, 4))); break;      // LONG_BINGET
    default:
        *handled = 0;
    }
    return PL_OK;
}

// Opcodes about objects: globals (checked against the allow-list), REDUCE, NEWOBJ, BUILD, persistent ids. Returns PL_OK with *handled = 0 for an opcode of another group.
static PlStatus vm_op_object(Vm *vm, unsigned char op, int *handled) {
    PlPyValue *v = NULL, *w = NULL, *x = NULL;
    *handled = 1;
    switch (op) {
    case 'c': {   // GLOBAL "module\nname\n"
        const unsigned char *start = vm->p + vm->pos, *end = vm->p + vm->size;
        const unsigned char *nl1 = memchr(start, '\n', (size_t)(end - start));
        const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
        if (!nl2) return VM_FAIL(vm, PL_ERR_FORMAT, "truncated GLOBAL");
        vm->pos = (size_t)(nl2 + 1 - vm->p);
        PL_TRY(vm_global(vm, (const char *)start, (size_t)(nl1 - start), (const char *)nl1 + 1,
                         (size_t)(nl2 - nl1 - 1)));
        break;
    }
    case 0x93:   // STACK_GLOBAL
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_pop(vm, &v));
        if (v->kind != PL_PY_STR || w->kind != PL_PY_STR)
            return VM_FAIL(vm, PL_ERR_FORMAT, "STACK_GLOBAL needs two strings");
        PL_TRY(vm_global(vm, v->s, v->slen, w->s, w->slen));
        break;
    case 'R':   // REDUCE
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_pop(vm, &v));
        PL_TRY(vm_reduce(vm, v, w, &x, 0));
        PL_TRY(vm_push(vm, x));
        break;
    case 0x81: case 0x92:   // NEWOBJ, NEWOBJ_EX: cls.__new__(cls, *args) → inert record
        if (op == 0x92) PL_TRY(vm_pop(vm, &x));   // kwargs (ignored)
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_pop(vm, &v));
        x = vm_new(vm, PL_PY_RECORD);
        if (!x) return pl_error_code();
        x->type = v;
        x->args = w;
        PL_TRY(vm_push(vm, x));
        break;
    case 'b':   // BUILD: records keep their state; other objects ignore it (nothing is called)
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_top(vm, &v));
        if (v->kind == PL_PY_RECORD) v->state = w;
        break;
    case 'Q':   // BINPERSID
        PL_TRY(vm_pop(vm, &w));
        PL_TRY(vm_persistent(vm, w, &x));
        PL_TRY(vm_push(vm, x));
        break;
    default:
        *handled = 0;
    }
    return PL_OK;
}

// The unpickler's main loop: one opcode at a time until STOP; every opcode belongs to one group above.
static PlStatus vm_run(Vm *vm) {
    const unsigned char *b = NULL;
    for (;;) {
        vm->op_pos = vm->pos;
        PL_TRY(vm_need(vm, 1, &b));
        unsigned char op = b[0];
        if (op == '.') return vm_pop(vm, &vm->pk->root);   // STOP
        int handled = 0;
        PL_TRY(vm_op_value(vm, op, &handled));
        if (!handled) PL_TRY(vm_op_container(vm, op, &handled));
        if (!handled) PL_TRY(vm_op_object(vm, op, &handled));
        if (!handled)
            return VM_FAIL(vm, PL_ERR_FORMAT, "forbidden or unsupported pickle opcode 0x%02x ('%c', %s)", op,
                           op >= 32 && op < 127 ? op : '?', opcode_name(op));
    }
}

PlStatus pl_unpickle(const unsigned char *data, size_t size, const char *name, PlPickle *out) {
    memset(out, 0, sizeof *out);
    Vm vm;
    memset(&vm, 0, sizeof vm);
    vm.p = data;
    vm.size = size;
    vm.name = name;
    vm.pk = out;
    // the value stack always exists, so "stack + first" is never arithmetic on NULL
    vm.stack = pl_malloc(64 * sizeof *vm.stack);
    if (!vm.stack) return PL_ERR_NOMEM;
    vm.scap = 64;
    PlStatus st = vm_run(&vm);
    if (st == PL_OK && !out->root) st = VM_FAIL(&vm, PL_ERR_FORMAT, "empty pickle");
    free(vm.stack);
    free(vm.marks);
    free(vm.memo);
    if (st != PL_OK) pl_pickle_free(out);
    return st;
}

void pl_pickle_free(PlPickle *p) {
    PlPyValue *v = p->all;
    while (v) {
        PlPyValue *next = v->next_alloc;
        free(v->s);
        free(v->items);
        free(v->storage_type);
        free(v->tensor);
        free(v);
        v = next;
    }
    memset(p, 0, sizeof *p);
}

PlPyValue *pl_py_dict_get(const PlPyValue *dict, const char *key) {
    if (!dict || dict->kind != PL_PY_DICT) return NULL;
    for (size_t i = dict->n / 2; i-- > 0;) {
        const PlPyValue *k = dict->items[2 * i];
        if (k->kind == PL_PY_STR && strcmp(k->s, key) == 0) return dict->items[2 * i + 1];
    }
    return NULL;
}

const char *pl_py_kind_name(PlPyKind k) {
    static const char *names[] = {"None", "bool", "int", "float", "str", "bytes", "list", "tuple", "dict",
                                  "global", "object", "storage", "tensor", "mark"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static void py_format(const PlPyValue *v, char *buf, size_t size, int depth) {
    if (size == 0) return;
    buf[0] = '\0';
    switch (v->kind) {
    case PL_PY_NONE: snprintf(buf, size, "None"); return;
    case PL_PY_BOOL: snprintf(buf, size, "%s", v->i ? "True" : "False"); return;
    case PL_PY_INT: snprintf(buf, size, "%lld", (long long)v->i); return;
    case PL_PY_FLOAT: {   // shortest text that round-trips, like Python's repr
        if (isnan(v->f) || isinf(v->f)) {
            snprintf(buf, size, "%s", isnan(v->f) ? "nan" : v->f > 0 ? "inf" : "-inf");
            return;
        }
        char tmp[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v->f);
            if (strtod(tmp, NULL) == v->f) break;
        }
        if (!strpbrk(tmp, ".e")) strcat(tmp, ".0");
        snprintf(buf, size, "%s", tmp);
        return;
    }
    case PL_PY_STR: snprintf(buf, size, "'%s'", v->s); return;
    case PL_PY_BYTES: snprintf(buf, size, "<%zu bytes>", v->slen); return;
    case PL_PY_GLOBAL: snprintf(buf, size, "%s", v->s); return;
    case PL_PY_RECORD: snprintf(buf, size, "<%s object>", v->type && v->type->kind == PL_PY_GLOBAL ? v->type->s : "?");
        return;
    case PL_PY_STORAGE: snprintf(buf, size, "<%s %s>", v->storage_type, v->s); return;
    case PL_PY_TENSOR: snprintf(buf, size, "<tensor, %d dims>", v->tensor->ndim); return;
    case PL_PY_MARK: snprintf(buf, size, "<mark>"); return;
    case PL_PY_DICT: snprintf(buf, size, "{%zu items}", v->n / 2); return;
    case PL_PY_LIST: case PL_PY_TUPLE: {
        int list = v->kind == PL_PY_LIST;
        size_t used = (size_t)snprintf(buf, size, "%s", list ? "[" : "(");
        for (size_t i = 0; i < v->n && used + 8 < size; i++) {
            if (depth > 2 || i >= 16) {
                used += (size_t)snprintf(buf + used, size - used, "...");
                break;
            }
            char item[256];
            py_format(v->items[i], item, sizeof item, depth + 1);
            used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", item);
        }
        if (used + 2 < size) snprintf(buf + used, size - used, "%s", list ? "]" : ")");
        return;
    }
    }
}

void pl_py_format(const PlPyValue *v, char *buf, size_t size) { py_format(v, buf, size, 0); }
