"""One thread per BLAS / OpenMP library in every task: the same bits wherever it runs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from threadpoolctl import threadpool_info, threadpool_limits

from hpcaet.parallel import SerialExecutor, map_tasks, pinned_threads
from hpcaet.parallel.threads import call_pinned


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_pinned_threads_limit_every_blas_to_one_and_restore_it():
    with threadpool_limits(limits=2):
        before = _blas_threads()
        with pinned_threads():
            assert _blas_threads() == {1}
        assert _blas_threads() == before


def test_a_task_runs_with_one_blas_thread_here_as_in_a_worker():
    seen = map_tasks(
        lambda k: _blas_threads(),
        [(k,) for k in range(2)],
        keys=["a", "b"],
        executor=SerialExecutor(),
    )
    assert seen == [{1}, {1}]
    assert call_pinned(lambda x, *, y: x + y, (1,), {"y": 2}) == 3


def test_threaded_ffts_are_the_same_bits():
    # scipy's workers= split a transform into whole 1D transforms: no pin is needed
    x = np.random.default_rng(1).standard_normal((16, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(scipy.fft.fft2(x, workers=1), scipy.fft.fft2(x, workers=2))


def test_bm3d_denoising_is_the_same_bits_every_call():
    pytest.importorskip("bm3d")
    from hpcaet.preprocess.denoise import denoise_image

    image = np.random.default_rng(2).poisson(20.0, (64, 64)).astype(float)
    first = denoise_image(image, method="bm3d")
    # with BM3D's own threads every further call differed in the last bits (measured)
    for _ in range(2):
        np.testing.assert_array_equal(denoise_image(image, method="bm3d"), first)
