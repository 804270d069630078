#!/usr/bin/python3
# Figures for docs/stages.md: segmentation overlay on a real OpenCell FOV and a montage of synthetic classes.
# Usage (from the repository root, after building): /usr/bin/python3 docs/img/make_cells_figures.py build/protloc ../shared
import os, subprocess, sys, tempfile
import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage as ndi

protloc, shared = sys.argv[1], sys.argv[2]
out_dir = os.path.dirname(os.path.abspath(__file__))
tmp = tempfile.mkdtemp()
fov = f"{shared}/samples/opencell_hoechst_proj/FOV_00076_RAW.tif"
subprocess.run([protloc, "-q", "segment", "--nucleus", fov, "--mask-out", f"{tmp}/m.tif"], check=True,
               stdout=subprocess.DEVNULL)
img = tifffile.imread(fov).astype(float)[300:620, 300:620]
lab = tifffile.imread(f"{tmp}/m.tif").astype(np.int32)[300:620, 300:620]
lo, hi = np.percentile(img, [0.5, 99.8])
g = np.clip((img - lo) / (hi - lo), 0, 1)
rgb = np.stack([g, g, g], -1)
edge = (ndi.grey_dilation(lab, 3) != ndi.grey_erosion(lab, 3)) & (ndi.grey_dilation(lab, 3) > 0)
rgb[(lab > 0) & ~edge, 2] = np.minimum(1, rgb[(lab > 0) & ~edge, 2] + 0.25)
rgb[edge] = [1, 0.2, 0.2]
Image.fromarray((rgb * 255).astype(np.uint8)).quantize(64).save(f"{out_dir}/segment_overlay.png", optimize=True)

subprocess.run([protloc, "-q", "synth", "--kind", "opencell", "--classes", "17", "--per-class", "1", "--seed", "7",
                "--size", "256", "--out", f"{tmp}/syn"], check=True, stdout=subprocess.DEVNULL)
rows = [l.split("\t") for l in open(f"{tmp}/syn/manifest.tsv") if not l.startswith("#")][1:]
tiles = []
for r in rows[:12]:
    full = tifffile.imread(f"{tmp}/syn/{r[0]}_proj.tif").astype(float)
    # the 160-px window with the most cells (brightest nucleus channel)
    oy, ox = max(((y, x) for y in range(0, 97, 16) for x in range(0, 97, 16)),
                 key=lambda o: full[0, o[0]:o[0] + 160, o[1]:o[1] + 160].mean())
    a = full[:, oy:oy + 160, ox:ox + 160]
    def norm(x):
        lo, hi = np.percentile(x, [1, 99.7])
        return np.clip((x - lo) / (hi - lo + 1e-9), 0, 1)
    tiles.append(np.stack([0.2 * norm(a[1]), norm(a[1]), norm(a[0])], -1))
grid = np.concatenate([np.concatenate(tiles[i:i + 6], 1) for i in range(0, 12, 6)], 0)
Image.fromarray((grid * 255).astype(np.uint8)).resize((grid.shape[1] * 3 // 4, grid.shape[0] * 3 // 4), Image.LANCZOS).quantize(64).save(f"{out_dir}/synth_classes.png", optimize=True)
print("classes (row-major):", ", ".join(r[2] for r in rows[:12]))
