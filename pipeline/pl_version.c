// Version reporting: protloc's own version and git revision plus the versions of every linked library and of every
// registered kernel backend (from the registry, pl_kernels.h).
#include <cairo.h>
#include <hdf5.h>
#include <jansson.h>
#include <mpi.h>
#include <openssl/crypto.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>
#include <zstd.h>

#include "pl_build_info.h"
#include "pl_cli.h"
#include "pl_kernels.h"

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
    fprintf(out, "  libtiff   %s\n", tiff_line);
    fprintf(out, "  libpng    %s\n", png_get_libpng_ver(NULL));
    fprintf(out, "  zstd      %s\n", ZSTD_versionString());
    fprintf(out, "  jansson   %s\n", JANSSON_VERSION);
    fprintf(out, "  OpenSSL   %s\n", OpenSSL_version(OPENSSL_VERSION));
    fprintf(out, "  cairo     %s\n", cairo_version_string());
    fprintf(out, "kernel backends (--kernels NAME; auto picks one per CPU and precision):\n");
    for (int i = 0; i < pl_kernels_backend_count(); i++) {
        const PlKernelsBackend *b = pl_kernels_backend(i);
        char version[256];
        b->version(version, sizeof version);
        fprintf(out, "  %-10s %s\n  %-10s %s\n", b->name, version, "", b->description);
        if (b->options) fprintf(out, "  %-10s options: %s\n", "", b->options);
    }
}
