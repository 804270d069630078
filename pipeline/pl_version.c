// Version reporting: protloc's own version and git revision plus the versions of every linked library.
#include <cairo.h>
#include <hdf5.h>
#include <jansson.h>
#include <mpi.h>
#include <oneapi/dnnl/dnnl.h>
#include <openssl/crypto.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>
#include <zstd.h>

#include "pl_build_info.h"
#include "pl_cli.h"

char *openblas_get_config(void);

const char *pl_version_string(void) { return "protloc " PROTLOC_VERSION " (git " PROTLOC_GIT_REV ")"; }

void pl_print_versions(FILE *out) {
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "unknown");
    char *nl = strchr(mpi, '\n');
    if (nl) *nl = '\0';
    char *comma = strchr(mpi, ',');
    if (comma) *comma = '\0';
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    const char *tiff = TIFFGetVersion();
    char tiff_line[128];
    snprintf(tiff_line, sizeof tiff_line, "%s", tiff ? tiff : "unknown");
    nl = strchr(tiff_line, '\n');
    if (nl) *nl = '\0';
    fprintf(out, "%s\n", pl_version_string());
    fprintf(out, "  MPI       %s\n", mpi);
    fprintf(out, "  HDF5      %u.%u.%u (parallel)\n", maj, min, rel);
    fprintf(out, "  OpenBLAS  %s\n", openblas_get_config());
    const dnnl_version_t *dnnl = dnnl_version();   // the library linked, not the header compiled against
    const char *dnnl_rt = dnnl->cpu_runtime == DNNL_RUNTIME_OMP   ? "OpenMP"
                          : dnnl->cpu_runtime == DNNL_RUNTIME_SEQ ? "sequential"
                          : dnnl->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB"
                                                                  : "other";
    int dnnl_hash = dnnl->hash && dnnl->hash[0] && strcmp(dnnl->hash, "N/A") != 0;   // Debian's build has none
    fprintf(out, "  oneDNN    %d.%d.%d (CPU runtime %s%s%s)\n", dnnl->major, dnnl->minor, dnnl->patch, dnnl_rt,
            dnnl_hash ? ", git " : "", dnnl_hash ? dnnl->hash : "");
    fprintf(out, "  libtiff   %s\n", tiff_line);
    fprintf(out, "  libpng    %s\n", png_get_libpng_ver(NULL));
    fprintf(out, "  zstd      %s\n", ZSTD_versionString());
    fprintf(out, "  jansson   %s\n", JANSSON_VERSION);
    fprintf(out, "  OpenSSL   %s\n", OpenSSL_version(OPENSSL_VERSION));
    fprintf(out, "  cairo     %s\n", cairo_version_string());
}
