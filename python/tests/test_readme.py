"""The README's Python example runs as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    grads = namespace["grads"]
    assert grads["w"].shape == (64, 10, 784)
    net = namespace["Net"]()
    assert [n for n, _ in net.named_parameters()] == ["fc.weight", "fc.bias"]
