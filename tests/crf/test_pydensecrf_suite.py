"""pydensecrf's own tests run against `crf`: the rewritten copies in pydensecrf_suite/ run in a pytest subprocess
whose `pydensecrf` is a shim re-exporting crf (first on sys.path, so it shadows the installed pydensecrf); and
pydensecrf's README example gives the installed pydensecrf's labels."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crf
from crf import utils

SUITE = Path(__file__).resolve().parent / "pydensecrf_suite"
# Each shim module re-exports the public names of crf's module of the same name.
SHIM = {"__init__.py": ""} | {
    f"{name}.py": f"import crf.{name} as _m\n\nglobals().update({{k: v for k, v in vars(_m).items() if k[0] != '_'}})\n"
    for name in ("densecrf", "eigen", "utils")
}
SHADOWS = """
import crf
import pydensecrf.densecrf
import pydensecrf.eigen
import pydensecrf.utils


def test_pydensecrf_is_crf():
    assert pydensecrf.densecrf.DenseCRF2D is crf.DenseCRF2D
    assert pydensecrf.eigen.matrixXf is crf.eigen.matrixXf
    assert pydensecrf.utils.compute_unary is crf.utils.compute_unary
"""


def test_pydensecrf_tests_pass_on_crf(tmp_path):
    shim = tmp_path / "shim" / "pydensecrf"
    shim.mkdir(parents=True)
    for name, text in SHIM.items():
        (shim / name).write_text(text)
    tests = tmp_path / "tests"
    tests.mkdir()
    for suite in sorted(SUITE.glob("*_suite.py")):
        shutil.copy(suite, tests / f"test_{suite.name.removesuffix('_suite.py')}.py")
    (tests / "test_shim.py").write_text(SHADOWS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(shim.parent), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "11 passed" in run.stdout, run.stdout


def test_crf_has_pydensecrf_names(pydensecrf):
    theirs = [importlib.import_module(f"pydensecrf.{name}") for name in ("eigen", "utils")]
    for module, ours in zip([pydensecrf, *theirs], (crf.densecrf, crf.eigen, crf.utils)):
        public = {n for n in dir(module) if not n.startswith("_") and n not in ("Number", "np", "warning", "eigen")}
        public -= {"VectorXf", "MatrixXf"}  # pydensecrf's wrapper types: vectorXf/matrixXf return numpy arrays here
        assert public <= set(dir(ours)), public - set(dir(ours))
    assert list(crf.KernelType) == [crf.CONST_KERNEL, crf.DIAG_KERNEL, crf.FULL_KERNEL] == [0, 1, 2]
    assert [int(v) for v in pydensecrf.NormalizationType] == [int(v) for v in crf.NormalizationType] == [0, 1, 2, 3]


def test_readme_example_gives_pydensecrf_labels(pydensecrf, load_photo):
    """pydensecrf's README: DenseCRF2D(640, 480, 5), setUnary(ConstUnary(U)), the default-argument kernels."""
    im = load_photo("messi5.jpg", (640, 480))
    U = utils.unary_from_softmax(utils.synthetic_probabilities(480, 640, 5, seed=4))
    maps = []
    for mod in (pydensecrf, crf):
        d = mod.DenseCRF2D(640, 480, 5)
        d.setUnary(mod.ConstUnary(U))
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=im, compat=10)
        maps.append(np.argmax(d.inference(5), axis=0).reshape((480, 640)))
    np.testing.assert_array_equal(maps[1], maps[0])


def test_logistic_unary_and_deprecated_softmax_alias_match_pydensecrf(pydensecrf):
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(3, 4)).astype(np.float32)
    feats = rng.normal(size=(4, 30)).astype(np.float32)
    qs = []
    for mod in (pydensecrf, crf):
        d = mod.DenseCRF(30, 3)
        d.setUnary(mod.LogisticUnary(weights, feats))
        qs.append(np.array(d.inference(0)))
    np.testing.assert_allclose(qs[1], qs[0], atol=1e-6)
    probs = utils.synthetic_probabilities(6, 7, 3, seed=1)
    for gt_prob in (1, 0.8):
        with pytest.warns(DeprecationWarning, match="unary_from_softmax"):
            ours = utils.softmax_to_unary(probs, gt_prob)
        np.testing.assert_allclose(ours,
                                   importlib.import_module("pydensecrf.utils").softmax_to_unary(probs, gt_prob),
                                   rtol=1e-6)
