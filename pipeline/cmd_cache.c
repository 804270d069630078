// `protloc cache build`: prepare a manifest's training items into a training cache (pipeline/pl_train_cache.h), as
// `finetune --cache` would before training: a Slurm step of its own, shared by the training jobs that follow.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_finetune_data.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_prep.h"
#include "pl_process.h"
#include "pl_train_cache.h"

void cmd_cache_build_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc cache build --manifest M.tsv --model CARD.json --cache DIR [options]\n"
            "       mpirun -np R protloc cache build ...   (the ranks share the items)\n"
            "\n"
            "Prepare the labelled train / val / test items of a manifest exactly as `protloc finetune --manifest\n"
            "--cache DIR` does (decode, rescale to the card's pixel size, normalise, align channels, the level's\n"
            "samples, each resized to a --size canvas) and keep them in the training cache DIR (DIR/cache.json and\n"
            "DIR/shards/*.plc; docs/formats.md). Run again after the manifest changed: only new and changed items\n"
            "(input size + mtime, or content with --verify) are prepared; shards no longer needed are removed. A\n"
            "killed build resumes: finished shards are kept. The previous cache stays valid until the new index is\n"
            "written. finetune --cache DIR then reads it (the same options must match, or it is rebuilt).\n"
            "\n"
            "Options:\n"
            "  --manifest M.tsv       the items (labelled, split train / val / test)\n"
            "  --model FILE           model card .json, or a checkpoint with --card CARD.json (channels, patch and\n"
            "                         native size come from the weights, the preparation from the card)\n"
            "  --card CARD.json       with --model CHECKPOINT: the card that says how to feed it\n"
            "  --heads H              attention heads (default: card / checkpoint metadata)\n"
            "  --cache DIR            the cache folder (created)\n"
            "  --level fov|tiles|cells  as finetune (default fov); --tile N (default " PL_PREP_TILE_DEFAULT_TEXT "), --crop N (default " PL_PREP_CROP_DEFAULT_TEXT ")\n"
            "  --size S               canvas side (default: the model's native size)\n"
            "  --verify               decide \"changed\" by content SHA-256 instead of size + mtime\n"
            "  --check                decompress and check every sample kept from the previous build; the items of\n"
            "                         a damaged shard are prepared again (after a corrupt-sample error in training)\n"
            "  --threads T            worker threads per rank (default: the cores this process may use)\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit status: 0 done; 1 failed (the previous cache is kept); 2 bad command line; 3 done, but some items\n"
            "failed to prepare (recorded in the cache; finetune lists them in its failures.tsv); 6 another build holds\n"
            "DIR/lock.\n");
}

typedef struct CacheArgs {
    const char *manifest, *model, *card, *cache;
    int heads, level, tile, crop, size, verify, check, threads;
} CacheArgs;

static PlStatus cache_build(const CacheArgs *a, int *failed) {
    int rank = 0, ranks = 1;
    if (pl_mpi_active()) {
        PL_TRY(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
        PL_TRY(PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &ranks)));
    }
    PlWeights w = {0};
    PlModelCard card;
    memset(&card, 0, sizeof card);
    int have_card = 0, heads = a->heads;
    const char *key = NULL, *weights = NULL;
    PlVitConfig cfg;
    PlThreadPool *pool = NULL;
    PlStatus st = ft_backbone_load(a->model, a->card, &heads, &key, &w, &card, &have_card, &cfg, &weights);
    if (st == PL_OK && !have_card)
        st = PL_FAIL(PL_ERR_ARG, "--model %s is a checkpoint: give --model CARD.json, or --card CARD.json with it (the "
                                 "card says how to prepare the images)", a->model);
    if (st == PL_OK && card.n_slots != cfg.in_chans)
        st = PL_FAIL(PL_ERR_ARG, "model card %s names %d input slots, the weights take %d channels", card.path,
                     card.n_slots, cfg.in_chans);
    pl_weights_free(&w);   // only the architecture is needed
    if (st == PL_OK) st = pl_process_start_pool(a->threads, &pool);
    FtPlan p;
    memset(&p, 0, sizeof p);
    if (st == PL_OK) {
        FtDataOptions level = {.size = a->size, .level = (PlStoreLevel)a->level, .tile = a->tile, .crop = a->crop}, fo;
        ft_data_options(&cfg, &level, &fo);
        st = ft_plan_load(a->manifest, &card, &fo, &p);
    }
    st = pl_mpi_agree(st, "reading the model and the manifest");
    char (*digests)[PL_DIGEST_LEN] = NULL;
    if (st == PL_OK && !(digests = pl_calloc((size_t)p.n + 1, sizeof *digests))) st = PL_ERR_NOMEM;
    st = pl_mpi_agree(st, "reading the model and the manifest");
    PlTrainCacheBuild b = {0};
    PlTrainCacheOptions co = {.dir = a->cache, .verify = a->verify, .check = a->check};
    if (st == PL_OK) st = pl_train_cache_build(&p, &co, pool, rank, ranks, digests, &b);
    // every item's state, reused ones included: open the cache as training would
    if (st == PL_OK) {
        PlTrainCache c;
        FtDataset ds;
        st = pl_train_cache_open(&c, &p, a->cache, digests, 1, NULL, &ds);
        if (st == PL_OK) {
            *failed = ds.n_failed > 0;
            if (rank == 0)
                pl_log_info("training cache %s: %lld samples of %lld items (%lld train, %lld val, %lld test); %lld "
                            "item(s) failed to prepare", a->cache, (long long)ds.n, (long long)p.n,
                            (long long)ds.n_train, (long long)ds.n_val, (long long)ds.n_test, (long long)ds.n_failed);
            pl_train_cache_close(&c);
            ft_dataset_free(&ds);
        }
        st = pl_mpi_agree(st, "checking the training cache");
    }
    free(digests);
    ft_plan_free(&p);
    if (have_card) pl_modelcard_free(&card);
    return st;
}

int cmd_cache_build_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_cache_build_usage(stdout);
        return PL_EXIT_OK;
    }
    CacheArgs a = {.tile = PL_PREP_TILE_DEFAULT, .crop = PL_PREP_CROP_DEFAULT};
    enum { O_MANIFEST = 256, O_MODEL, O_CARD, O_HEADS, O_CACHE, O_LEVEL, O_TILE, O_CROP, O_SIZE, O_VERIFY, O_CHECK, O_THREADS };
    static const struct option longopts[] = {
        {"manifest", required_argument, 0, O_MANIFEST}, {"model", required_argument, 0, O_MODEL},
        {"card", required_argument, 0, O_CARD}, {"heads", required_argument, 0, O_HEADS},
        {"cache", required_argument, 0, O_CACHE}, {"level", required_argument, 0, O_LEVEL},
        {"tile", required_argument, 0, O_TILE}, {"crop", required_argument, 0, O_CROP},
        {"size", required_argument, 0, O_SIZE}, {"verify", no_argument, 0, O_VERIFY},
        {"check", no_argument, 0, O_CHECK},
        {"threads", required_argument, 0, O_THREADS}, {0, 0, 0, 0}};
    static const char *const levels[] = {"fov", "tiles", "cells"};
    const char *cmd = "cache build";
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_MANIFEST: a.manifest = optarg; break;
        case O_MODEL: a.model = optarg; break;
        case O_CARD: a.card = optarg; break;
        case O_CACHE: a.cache = optarg; break;
        case O_HEADS: if ((rc = pl_cli_option_int(cmd, "--heads", optarg, 1, 4096, &a.heads))) return rc; break;
        case O_LEVEL: if ((rc = pl_cli_option_choice(cmd, "--level", optarg, levels, 3, &a.level))) return rc; break;
        case O_TILE: if ((rc = pl_cli_option_int(cmd, "--tile", optarg, 8, 65536, &a.tile))) return rc; break;
        case O_CROP: if ((rc = pl_cli_option_int(cmd, "--crop", optarg, 8, 65536, &a.crop))) return rc; break;
        case O_SIZE: if ((rc = pl_cli_option_int(cmd, "--size", optarg, 8, 8192, &a.size))) return rc; break;
        case O_VERIFY: a.verify = 1; break;
        case O_CHECK: a.check = 1; break;
        case O_THREADS: if ((rc = pl_cli_option_int(cmd, "--threads", optarg, 1, 1024, &a.threads))) return rc; break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a.manifest || !a.model || !a.cache) return pl_cli_usage_error(cmd, "--manifest, --model and --cache are required");
    int failed = 0;
    PlStatus st = cache_build(&a, &failed);
    return pl_cli_exit_status(st, failed);
}
