// Restricted unpickler for torch.save's data.pkl: builds inert Python values (dicts, lists, tuples, scalars,
// strings, tensor/storage references, records for other classes). It never imports or calls anything;
// globals that could execute code (os.system, builtins.eval, ...) and unsupported opcodes are refused.
// Ownership: a PlPickle owns every value it built (freed together by pl_pickle_free); values may be shared
// and may form cycles, so never free or walk them recursively without a depth limit.
#ifndef PL_UNPICKLE_H
#define PL_UNPICKLE_H

#include <stddef.h>
#include <stdint.h>
#include "pl_dtype.h"
#include "pl_error.h"
#include "pl_weights.h"

#define PL_PICKLE_MAX_VALUES 4000000

typedef enum PlPyKind {
    PL_PY_NONE, PL_PY_BOOL, PL_PY_INT, PL_PY_FLOAT, PL_PY_STR, PL_PY_BYTES,
    PL_PY_LIST, PL_PY_TUPLE, PL_PY_DICT,
    PL_PY_GLOBAL,   // a class or function reference "module.name" (never resolved)
    PL_PY_RECORD,   // an instance of a class we do not model: type + constructor args + BUILD state
    PL_PY_STORAGE,  // a torch storage: persistent id ('storage', type, key, location, numel)
    PL_PY_TENSOR,   // a view into a storage (torch._utils._rebuild_tensor_v2)
    PL_PY_MARK      // internal
} PlPyKind;

typedef struct PlPyTensor {
    struct PlPyValue *storage;
    int64_t offset;                      // in elements
    int ndim;
    int64_t shape[PL_WEIGHTS_MAX_DIMS];
    int64_t stride[PL_WEIGHTS_MAX_DIMS]; // in elements
} PlPyTensor;

typedef struct PlPyValue {
    PlPyKind kind;
    int64_t i;                   // BOOL, INT; STORAGE: numel from the persistent id
    double f;                    // FLOAT
    char *s;                     // STR/BYTES (NUL-terminated too), GLOBAL "module.name", STORAGE key
    size_t slen;
    struct PlPyValue **items;    // LIST/TUPLE items; DICT: key0, value0, key1, value1, ...
    size_t n, cap;
    struct PlPyValue *type, *args, *state;   // RECORD
    PlDtype dtype;               // STORAGE element type (PL_DTYPE_UNKNOWN for storages we cannot convert)
    char *storage_type;          // STORAGE: "torch.FloatStorage", ...
    PlPyTensor *tensor;          // TENSOR
    struct PlPyValue *next_alloc;
} PlPyValue;

typedef struct PlPickle {
    PlPyValue *root;
    PlPyValue *all;              // allocation chain
    size_t nvalues;
} PlPickle;

// Unpickle `data` (protocols 2-5). `name` labels error messages ("model.pth: data.pkl").
PlStatus pl_unpickle(const unsigned char *data, size_t size, const char *name, PlPickle *out);
void pl_pickle_free(PlPickle *p);

// Dict lookup by string key (the last assignment wins); NULL when absent or `dict` is not a dict.
PlPyValue *pl_py_dict_get(const PlPyValue *dict, const char *key);
// Short human-readable rendering of a value (strings quoted, containers abbreviated) into buf.
void pl_py_format(const PlPyValue *v, char *buf, size_t size);
const char *pl_py_kind_name(PlPyKind k);

#endif
