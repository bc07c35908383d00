"""The public API is documented: every public function, class and method in the tessera
namespaces has a docstring beyond the signature nanobind generates, and the stubs exist."""
import ast
import inspect
import pathlib
import re

import pytest

import tessera as ts

NAMESPACES = ["tessera", "tessera.nn", "tessera.nn.functional", "tessera.nn.init",
              "tessera.optim", "tessera.optim.lr_scheduler", "tessera.data", "tessera.io",
              "tessera.func", "tessera.autograd", "tessera.profiler", "tessera.scheduler",
              "tessera.cuda"]

# A nanobind signature line: "name(arg: T, ...) -> R" (one per overload).
SIGNATURE = re.compile(r"^\s*[\w.]+\(.*\)( -> .*)?$")


def resolve(path):
    obj = ts
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def described(obj):
    doc = inspect.getdoc(obj) or ""
    text = [line for line in doc.splitlines() if line.strip() and not SIGNATURE.match(line)]
    return bool(text)


def public_members(ns):
    for name in dir(ns):
        if name.startswith("_"):
            continue
        obj = getattr(ns, name)
        if inspect.ismodule(obj) or not callable(obj):
            continue
        if isinstance(obj, ts.dtype) or name in {"Error"} or (
                inspect.isclass(obj) and issubclass(obj, BaseException)):
            continue
        yield name, obj


def undocumented():
    missing, seen = set(), set()
    for path in NAMESPACES:
        ns = resolve(path)
        for name, obj in public_members(ns):
            if id(obj) in seen:  # re-exported (tessera.func.Tensor is tessera.Tensor)
                continue
            seen.add(id(obj))
            if not described(obj):
                missing.add(f"{path}.{name}")
            if inspect.isclass(obj):
                for mname, member in vars(obj).items():
                    if mname.startswith("_") or not callable(member):
                        continue
                    if not described(member):
                        missing.add(f"{path}.{name}.{mname}")
    return sorted(missing)


def test_every_public_callable_has_a_docstring():
    missing = undocumented()
    assert not missing, f"{len(missing)} undocumented: {missing[:40]}"


def test_type_stubs_are_generated_and_valid():
    stubs = pathlib.Path(ts._C.__file__).with_name("_C")
    top = (stubs / "__init__.pyi").read_text()
    assert "class Tensor" in top and "def tensor(" in top
    assert "class Linear" in (stubs / "_nn" / "__init__.pyi").read_text()
    assert "class AdamW" in (stubs / "_optim" / "__init__.pyi").read_text()
    for stub in stubs.rglob("*.pyi"):
        ast.parse(stub.read_text(), filename=str(stub))  # a stub editors cannot parse is useless
    assert (stubs.parent / "py.typed").exists()


def test_wrong_argument_types_list_the_signature():
    with pytest.raises(TypeError, match="incompatible function arguments"):
        ts.tensor([1.0]).transpose("a", 1)
