// The table of protloc commands: one row each, in the order `protloc --help` lists them.
#include "pl_cli.h"

#include "pl_cmds.h"

const PlCommand pl_commands[] = {
    // name, summary, flags (PL_CMD_*), run, usage
    {"version", "print version, git revision and dependency versions", 0, cmd_version_run, cmd_version_usage},
    {"manifest check", "validate a manifest TSV (errors as file:line:column)", 0, cmd_manifest_check_run, cmd_manifest_check_usage},
    {"run", "embed a manifest with a model card into an HDF5 store (MPI, resumable, incremental)", PL_CMD_MPI | PL_CMD_STOPPABLE, cmd_run_run, cmd_run_usage},
    {"manifest scan", "write a manifest for a folder of OpenCell or HPA images", 0, cmd_manifest_scan_run, cmd_manifest_scan_usage},
    {"manifest diff", "list item ids added, changed and removed between two manifests", 0, cmd_manifest_diff_run, cmd_manifest_diff_usage},
    {"export", "write a store level as AnnData .h5ad, .npy + metadata, or TSV", 0, cmd_export_run, cmd_export_usage},
    {"embed", "DINO ViT embeddings of a float32 (N, C, H, W) .npy into an (N, D) .npy", 0, cmd_embed_run, cmd_embed_usage},
    {"model init", "write deterministic random DINO ViT weights (safetensors)", 0, cmd_model_init_run, cmd_model_init_usage},
    {"model inspect", "print a checkpoint's format, ViT architecture, stored args and tensors", 0, cmd_model_inspect_run, cmd_model_inspect_usage},
    {"segment", "segment nuclei in a nucleus channel: count, 16-bit label TIFF, JSON", 0, cmd_segment_run, cmd_segment_usage},
    {"synth", "write a synthetic OpenCell/HPA dataset (images, masks, manifest.tsv)", 0, cmd_synth_run, cmd_synth_usage},
    {"knn", "exact kNN evaluation (macro F1 for every k; MPI-distributed) with reports and plots", PL_CMD_MPI | PL_CMD_MPI_LAUNCHED, cmd_knn_run, cmd_knn_usage},
    {"finetune", "fine-tune a DINO ViT backbone + linear head end to end (MPI data-parallel, bit-identical, resumable)", PL_CMD_MPI | PL_CMD_STOPPABLE, cmd_finetune_run, cmd_finetune_usage},
    {"pretrain", "DINO self-supervised pretraining of a ViT (MPI data-parallel, bit-identical, resumable)", PL_CMD_MPI | PL_CMD_STOPPABLE, cmd_pretrain_run, cmd_pretrain_usage},
    {"cache build", "prepare a manifest's training items into a training cache (MPI, incremental, resumable)", PL_CMD_MPI, cmd_cache_build_run, cmd_cache_build_usage},
    {"probe", "logistic-regression / MLP heads on frozen embeddings, macro F1 per data fraction", 0, cmd_probe_run, cmd_probe_usage},
    {"image info", "decode TIFF/PNG files and print format, size, depth and value range (TSV)", 0, cmd_image_info_run, cmd_image_info_usage},
    {"image prep", "preprocess one item (rescale, normalise, align channels, tiles) into a model-input .npy", 0, cmd_image_prep_run, cmd_image_prep_usage},
};
const int pl_command_count = (int)(sizeof pl_commands / sizeof pl_commands[0]);
