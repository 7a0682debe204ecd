"""Regenerate the real data sets shipped in ``src/stflow/data/`` from scikit-learn.

scikit-learn bundles all three data sets (no download). Run once, from the repository root::

    python scripts/make_datasets.py

Each ``.npz`` holds ``X`` (n, p) float64, ``y`` (n,) float64, ``feature_names`` and
``target_name`` (unicode arrays, no pickle) and ``description`` (one line). ``digits`` also
holds ``feature_scale`` (16.0, the largest pixel intensity), which
:func:`stflow.datasets.split_table` divides by instead of z-scoring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "stflow" / "data"


def main() -> None:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

    OUT.mkdir(parents=True, exist_ok=True)
    bc = load_breast_cancer()
    np.savez_compressed(
        OUT / "breast_cancer.npz",
        X=np.asarray(bc.data, dtype=np.float64),
        y=np.asarray(bc.target, dtype=np.float64),  # 0 = malignant, 1 = benign
        feature_names=np.array([str(s) for s in bc.feature_names]),
        target_name=np.array("benign"),
        description=np.array("Wisconsin diagnostic breast cancer (UCI), via scikit-learn"),
    )
    db = load_diabetes(scaled=False)
    np.savez_compressed(
        OUT / "diabetes.npz",
        X=np.asarray(db.data, dtype=np.float64),
        y=np.asarray(db.target, dtype=np.float64),
        feature_names=np.array([str(s) for s in db.feature_names]),
        target_name=np.array("progression"),
        description=np.array("Diabetes progression one year after baseline (Efron et al. 2004), "
                             "via scikit-learn"),
    )
    dg = load_digits()
    np.savez_compressed(
        OUT / "digits.npz",
        X=np.asarray(dg.data, dtype=np.float64),  # 8x8 images, intensities 0..16, row-major
        y=np.asarray(dg.target, dtype=np.float64),  # the digit 0..9
        feature_names=np.array([f"pixel_{r}_{c}" for r in range(8) for c in range(8)]),
        target_name=np.array("digit"),
        feature_scale=np.array(16.0),
        description=np.array("Optical recognition of handwritten digits (UCI), 8x8 images, "
                             "via scikit-learn"),
    )
    for path in sorted(OUT.glob("*.npz")):
        with np.load(path) as z:
            print(f"{path.name}: X {z['X'].shape}, y {z['y'].shape}")


if __name__ == "__main__":
    main()
