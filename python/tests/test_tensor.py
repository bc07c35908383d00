"""tessera.Tensor: construction, metadata, conversions, operators and indexing against NumPy."""
import operator

import numpy as np
import pytest

import tessera as ts


def test_tensor_from_python_data_infers_dtype_like_pytorch():
    assert ts.tensor([True, False]).dtype == ts.bool
    assert ts.tensor([1, 2]).dtype == ts.int64
    assert ts.tensor([1, 2.5]).dtype == ts.float32
    assert ts.tensor([1, 2j]).dtype == ts.complex64
    assert ts.tensor(3.0).shape == ()
    t = ts.tensor([[1, 2, 3], [4, 5, 6]], dtype=ts.float64)
    assert t.shape == (2, 3) and t.dtype == ts.float64 and t.ndim == 2
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_tensor_rejects_ragged_and_non_numeric_data():
    with pytest.raises(ValueError, match="length"):
        ts.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="str"):
        ts.tensor(["a"])


def test_metadata_and_conversions():
    t = ts.tensor([[1.5, -2.0]])
    assert t.size() == (1, 2) and t.size(1) == 2 and t.stride() == (2, 1)
    assert t.numel() == 2 and t.dim() == 2 and t.is_contiguous()
    assert t.T.shape == (2, 1)
    assert not ts.tensor([[1, 2], [3, 4]]).T.is_contiguous()
    assert t.device == ts.device("cpu") and t.device == "cpu"
    assert t.double().dtype == ts.float64 and t.long().tolist() == [[1, -2]]
    assert float(t[0, 0]) == 1.5 and int(t[0, 1]) == -2
    assert ts.tensor(7).item() == 7 and isinstance(ts.tensor(7).item(), int)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    with pytest.raises(TypeError):
        len(ts.tensor(1.0))


def test_repr_shows_values_and_non_default_dtype():
    assert repr(ts.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert "dtype=float64" in repr(ts.tensor([1.0], dtype=ts.float64))
    assert "requires_grad=True" in repr(ts.tensor([1.0], requires_grad=True))
    assert repr(ts.float32) == "tessera.float32"


BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
          operator.mod, operator.pow, operator.lt, operator.le, operator.gt, operator.ge,
          operator.eq, operator.ne]


@pytest.mark.parametrize("op", BINARY, ids=lambda f: f.__name__)
def test_binary_operators_broadcast_like_numpy(op, rng):
    a = rng.uniform(0.5, 2.0, size=(3, 1, 4))
    b = rng.uniform(0.5, 2.0, size=(5, 1))
    got = op(ts.tensor(a), ts.tensor(b)).numpy()
    np.testing.assert_allclose(got, op(a, b), rtol=1e-5)


@pytest.mark.parametrize("op", BINARY, ids=lambda f: f.__name__)
def test_scalar_operands_both_sides(op, rng):
    a = rng.uniform(0.5, 2.0, size=(4,))
    np.testing.assert_allclose(op(ts.tensor(a), 1.5).numpy(), op(a, 1.5), rtol=1e-5)
    np.testing.assert_allclose(op(1.5, ts.tensor(a)).numpy(), op(1.5, a), rtol=1e-5)


def test_integer_and_bitwise_operators():
    a, b = np.array([5, -7, 9]), np.array([3, 2, -4])
    ta, tb = ts.tensor(a), ts.tensor(b)
    assert (ta // tb).tolist() == (a // b).tolist()
    assert (ta % tb).tolist() == (a % b).tolist()
    assert (ta & tb).tolist() == (a & b).tolist()
    assert (ta | 1).tolist() == (a | 1).tolist()
    assert (~ta).tolist() == (~a).tolist()
    assert (ta + 2).dtype == ts.int64 and (ta + 2.5).dtype == ts.float32
    assert (-ta).tolist() == (-a).tolist() and abs(ta).tolist() == abs(a).tolist()
    tc = ts.tensor(a)
    tc &= 6
    tc |= 1
    tc ^= tb
    assert tc.tolist() == (((a & 6) | 1) ^ b).tolist()


def test_inplace_operators_keep_the_object_and_share_storage():
    t = ts.tensor([1.0, 2.0, 3.0])
    view = t[1:]
    alias = t
    t += 1
    t *= ts.tensor([2.0])
    t -= 1
    t /= 2
    t **= 2
    assert t is alias
    np.testing.assert_allclose(t.numpy(), ((np.array([1, 2, 3.0]) + 1) * 2 - 1) ** 2 / 4)
    np.testing.assert_allclose(view.numpy(), t.numpy()[1:])


def test_matmul_operator(rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    np.testing.assert_allclose((ts.tensor(a) @ ts.tensor(b)).numpy(), a @ b, rtol=1e-5, atol=1e-6)


INDICES = [
    (1,), (-1,), (slice(None),), (slice(1, None, 2),), (slice(0, 2),),
    (None,), (Ellipsis,), (1, 2), (slice(None), 0), (Ellipsis, 1), (None, Ellipsis, None),
    (0, slice(None), None), ([0, 2],), (slice(None), [1, 0, 1]), ([0, 1], [2, 3]),
    (np.array([2, 0]),),
]


@pytest.mark.parametrize("key", INDICES, ids=repr)
def test_getitem_matches_numpy(key, rng):
    a = rng.standard_normal((3, 4, 5))
    k = key if len(key) > 1 else key[0]
    np.testing.assert_allclose(ts.tensor(a)[k].numpy(), a[k], rtol=1e-6)


def test_boolean_and_tensor_indices(rng):
    a = rng.standard_normal((4, 3))
    t = ts.tensor(a)
    mask = a[:, 0] > 0
    np.testing.assert_allclose(t[ts.tensor(mask)].numpy(), a[mask], rtol=1e-6)
    np.testing.assert_allclose(t[t > 0].numpy(), a[a > 0], rtol=1e-6)
    np.testing.assert_allclose(t[ts.tensor([3, 1])].numpy(), a[[3, 1]], rtol=1e-6)


def test_setitem_with_scalars_tensors_and_lists(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    t = ts.tensor(a)
    a[0] = 1.0
    t[0] = 1.0
    a[:, 1] = [5, 6, 7]
    t[:, 1] = [5, 6, 7]
    a[1:, 2:] = np.ones((2, 2))
    t[1:, 2:] = ts.ones(2, 2) if hasattr(ts, "ones") else ts.tensor(np.ones((2, 2)))
    a[a < 0] = 0
    t[t < 0] = 0
    np.testing.assert_allclose(t.numpy(), a)


def test_bad_indices_raise_index_and_type_errors():
    t = ts.tensor([[1, 2], [3, 4]])
    with pytest.raises(IndexError, match="out of"):
        t[2]
    with pytest.raises(IndexError):
        t[0, 0, 0]
    with pytest.raises(TypeError, match="valid indices"):
        t["a"]


def test_iteration_walks_the_first_dim():
    rows = [r.tolist() for r in ts.tensor([[1, 2], [3, 4]])]
    assert rows == [[1, 2], [3, 4]]


def test_errors_keep_the_cpp_message_and_class():
    with pytest.raises(ts.ShapeError, match=r"\[matmul\] inner dimensions differ"):
        ts.tensor([[1.0, 2.0]]) @ ts.tensor([[1.0, 2.0]])
    assert issubclass(ts.ShapeError, ValueError) and issubclass(ts.ShapeError, ts.Error)
    assert issubclass(ts.IndexError, IndexError)
    assert issubclass(ts.DTypeError, TypeError)
    assert issubclass(ts.NotBuiltError, NotImplementedError)
