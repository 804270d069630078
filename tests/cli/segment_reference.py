#!/usr/bin/python3
# Independent nucleus count for cross-checking `protloc segment`, by a different method (scipy.ndimage, no watershed):
# Gaussian blur (0.5 µm), Otsu threshold, connected components >= 20 µm² (border objects included: compare with
# `protloc segment --keep-border`); touching nuclei are counted by area: each component counts
# round(area / A1) (at least 1), where A1 = median area of the convex (solidity > 0.92), interior components,
# i.e. of single nuclei.
# Usage: segment_reference.py IMAGE.tif [PIXEL_UM] → prints the estimated count.
import sys
import numpy as np
import tifffile
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

path = sys.argv[1]
px = float(sys.argv[2]) if len(sys.argv) > 2 else 0.206
img = tifffile.imread(path).astype(np.float64)
if img.ndim == 3:
    img = img[0]
sm = ndi.gaussian_filter(img, 0.5 / px)
hi = max(np.percentile(sm, 99.5), sm.min() + 0.25 * (sm.max() - sm.min()))   # ignore a few saturated blobs
hist, edges = np.histogram(np.clip(sm, sm.min(), hi), bins=1024)
centres = 0.5 * (edges[1:] + edges[:-1])
w0 = np.cumsum(hist)
w1 = w0[-1] - w0
m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
thr = edges[1:][np.argmax(w0 * w1 * (m0 - m1) ** 2)]
lab, n = ndi.label(sm > thr, structure=np.ones((3, 3)))
areas = np.bincount(lab.ravel())[1:] * px * px
border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
singles = []
for i, sl in enumerate(ndi.find_objects(lab), start=1):
    if areas[i - 1] < 20 or i in border:
        continue
    ys, xs = np.nonzero(lab[sl] == i)
    pts = np.stack([ys, xs], 1).astype(float)
    hull = ConvexHull(pts).volume + ConvexHull(pts).area / 2 + np.pi / 4   # pixel-centre hull, grown by half a pixel
    if ys.size / hull > 0.92:
        singles.append(areas[i - 1])
keep = [a for a in areas if a >= 20]
if not keep or not singles:
    print(0 if not keep else len(keep))
    sys.exit(0)
single = np.median(singles)
print(int(sum(max(1, round(a / single)) for a in keep)))
