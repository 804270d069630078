// Declarations of every command's run/usage functions (implemented in pipeline/cmd_*.c).
#ifndef PL_CMDS_H
#define PL_CMDS_H

#include <stdio.h>

int cmd_version_run(int argc, char **argv);
void cmd_version_usage(FILE *out);
int cmd_manifest_check_run(int argc, char **argv);
void cmd_manifest_check_usage(FILE *out);
int cmd_run_run(int argc, char **argv);
void cmd_run_usage(FILE *out);
int cmd_manifest_scan_run(int argc, char **argv);
void cmd_manifest_scan_usage(FILE *out);
int cmd_manifest_diff_run(int argc, char **argv);
void cmd_manifest_diff_usage(FILE *out);
int cmd_export_run(int argc, char **argv);
void cmd_export_usage(FILE *out);
int cmd_embed_run(int argc, char **argv);
void cmd_embed_usage(FILE *out);
int cmd_segment_run(int argc, char **argv);
void cmd_segment_usage(FILE *out);
int cmd_synth_run(int argc, char **argv);
void cmd_synth_usage(FILE *out);
int cmd_knn_run(int argc, char **argv);
void cmd_knn_usage(FILE *out);
int cmd_finetune_run(int argc, char **argv);
void cmd_finetune_usage(FILE *out);
int cmd_pretrain_run(int argc, char **argv);
void cmd_pretrain_usage(FILE *out);
int cmd_cache_build_run(int argc, char **argv);
void cmd_cache_build_usage(FILE *out);
int cmd_probe_run(int argc, char **argv);
void cmd_probe_usage(FILE *out);

int cmd_model_init_run(int argc, char **argv);
void cmd_model_init_usage(FILE *out);
int cmd_model_inspect_run(int argc, char **argv);
void cmd_model_inspect_usage(FILE *out);
int cmd_image_info_run(int argc, char **argv);
void cmd_image_info_usage(FILE *out);
int cmd_image_prep_run(int argc, char **argv);
void cmd_image_prep_usage(FILE *out);
#endif
