"""NumPy and DLPack interop: zero-copy both ways, dtypes, and clear errors."""
import numpy as np
import pytest

import tessera as ts
from conftest import requires_torch, torch

DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32,
          np.float64, np.complex64]


@pytest.mark.parametrize("np_dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_numpy_round_trip_keeps_dtype_and_values(np_dtype, rng):
    a = (rng.standard_normal((3, 4)) * 10).astype(np_dtype)
    t = ts.from_numpy(a)
    assert t.dtype.name == np.dtype(np_dtype).name
    back = t.numpy()
    assert back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)
    np.testing.assert_array_equal(np.asarray(t), a)


def test_from_numpy_shares_memory_both_ways():
    a = np.zeros((2, 3), dtype=np.float32)
    t = ts.from_numpy(a)
    t[0, 1] = 5.0  # a write through the tensor is seen by the array
    assert a[0, 1] == 5.0
    a[1, 2] = -1.0  # and the reverse
    assert t[1, 2].item() == -1.0
    n = t.numpy()
    assert np.shares_memory(n, a)


def test_strided_numpy_views_are_shared_and_negative_strides_refused():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    view = a[::2, 1::2]  # non-contiguous
    t = ts.from_numpy(view)
    assert t.shape == (2, 3) and not t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), view)
    t[0, 0] = 100.0
    assert a[0, 1] == 100.0
    with pytest.raises(ValueError, match="negative strides"):
        ts.from_numpy(a[::-1])
    np.testing.assert_array_equal(ts.tensor(a[::-1]).numpy(), a[::-1])  # tensor() copies


def test_tensor_views_export_with_their_strides():
    t = ts.tensor(np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(t.T.numpy(), np.arange(12.0).reshape(3, 4).T)
    np.testing.assert_array_equal(t[:, 1::2].numpy(), np.arange(12.0).reshape(3, 4)[:, 1::2])


def test_the_array_outlives_the_tensor_and_the_tensor_the_array():
    t = ts.tensor([1.0, 2.0, 3.0])
    n = t.numpy()
    del t
    np.testing.assert_array_equal(n, [1, 2, 3])  # the array holds the storage
    a = np.array([4.0, 5.0])
    t2 = ts.from_numpy(a)
    del a
    assert t2.tolist() == [4.0, 5.0]  # the tensor holds the array


def test_unsupported_and_grad_cases_have_clear_errors():
    with pytest.raises(TypeError, match="uint16"):
        ts.from_numpy(np.zeros(3, dtype=np.uint16))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ts.from_numpy([1, 2])
    with pytest.raises(ValueError, match="requires grad"):
        ts.tensor([1.0], requires_grad=True).numpy()
    with pytest.raises(TypeError, match="bfloat16"):
        ts.tensor([1.0], dtype=ts.bfloat16).numpy()
    assert ts.tensor([1.0], requires_grad=True).numpy(force=True).tolist() == [1.0]


def test_dlpack_with_numpy_shares_memory():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = ts.from_dlpack(a)
    t[1, 1] = 40
    assert a[1, 1] == 40
    assert t.__dlpack_device__() == (1, 0)
    b = np.from_dlpack(t)
    b[0, 0] = 7
    assert t[0, 0].item() == 7


@requires_torch
def test_dlpack_with_pytorch_both_ways():
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = ts.from_dlpack(x)
    t[0, 2] = 9.0  # written through tessera, read through torch
    assert x[0, 2].item() == 9.0
    y = torch.from_dlpack(t)
    y[1, 0] = -3.0
    assert t[1, 0].item() == -3.0
    # bfloat16 travels through DLPack (NumPy has no bfloat16).
    xb = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    tb = ts.from_dlpack(xb)
    assert tb.dtype == ts.bfloat16 and tb.float().tolist() == [1.5, -2.0]
    assert torch.from_dlpack(tb).dtype == torch.bfloat16
    # a transposed torch view keeps its strides
    xt = torch.arange(12.0).reshape(3, 4).t()
    np.testing.assert_array_equal(ts.from_dlpack(xt).numpy(), xt.numpy())


def test_asarray_shares_when_it_can():
    a = np.ones(3, dtype=np.float32)
    t = ts.asarray(a)
    t[0] = 2.0
    assert a[0] == 2.0
    assert ts.asarray([1, 2]).dtype == ts.int64
    assert ts.asarray(a, dtype=ts.float64).dtype == ts.float64


gpu = pytest.mark.skipif(not ts.cuda.is_available() or torch is None or
                         not torch.cuda.is_available(), reason="needs a CUDA device and PyTorch")


@gpu
def test_dlpack_with_pytorch_on_cuda_shares_device_memory():
    x = torch.arange(6, dtype=torch.float32, device="cuda").reshape(2, 3)
    t = ts.from_dlpack(x)
    assert t.device == ts.device("cuda:0") and t.cpu().tolist() == x.cpu().tolist()
    y = torch.from_dlpack(t)
    y[0, 0] = 42.0
    torch.cuda.synchronize()
    assert t.cpu()[0, 0].item() == 42.0


def test_non_cpu_tensors_do_not_become_numpy_arrays():
    if not ts.cuda.is_available():
        pytest.skip("needs a CUDA device")
    with pytest.raises(ts.DeviceError, match="copy it to the CPU"):
        ts.tensor([1.0]).to("cuda").numpy()
