"""Build a model from a short text spec such as ``mlp:256,128:tanh`` or ``models.py:make_net``.

Symbols
-------
B              batch size
input_shape    shape of one sample; models map (B, *input_shape) to (B, K)
K              ``n_outputs``

The grammar is :data:`SPEC_GRAMMAR` (shown by the command line's ``--help``). Every build
runs inside :func:`deepdx._random.seeded_torch`, so one seed gives identical weights and the
caller's global random state is left as it was.

A ``FILE.py:FUNCTION`` spec runs FILE as Python code, as ``python FILE.py`` would; name only
files you trust.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from deepdx._random import make_generator, seeded_torch
from deepdx.exceptions import InvalidParameterError
from deepdx.nets.convnet import ConvNet
from deepdx.nets.init import _unknown_name
from deepdx.nets.mlp import MLP, _is_size, _sizes_problem

__all__ = [
    "SPEC_GRAMMAR",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "describe_spec",
    "parse_spec",
]

SPEC_GRAMMAR = """\
Model specs:
  mlp                 multilayer perceptron, one hidden layer of 256 ReLU units
  mlp:256,128         ... with these hidden widths
  mlp:256,128:tanh    ... and this activation (relu, leaky_relu, tanh, sigmoid, gelu, elu,
                      softplus, identity)
  linear              no hidden layer: linear / logistic regression on the flattened input
  conv                LeNet-5 style conv net for (C, H, W) images: conv channels 6,16,
                      then hidden layers 120,84
  conv:6,16           ... with these conv channels
  conv:6,16:tanh      ... and this activation
  FILE.py:FUNCTION    your own model: FUNCTION(input_shape=..., n_outputs=...) returns an
                      nn.Module mapping (B, *input_shape) to (B, n_outputs)"""

_BUILTIN_KINDS = ("mlp", "linear", "conv")
_MODULE_NUMBERS = itertools.count()


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes
    ----------
    kind : {"mlp", "linear", "conv", "file"}
        Which builder to use.
    sizes : tuple of int or None
        Hidden widths (mlp) or conv channels (conv); None for the default.
    activation : str or None
        Activation name; None for the default (relu).
    file : Path or None
        The Python file of a ``FILE.py:FUNCTION`` spec.
    function : str or None
        The function's name in ``file``.
    """

    kind: str
    sizes: tuple[int, ...] | None = None
    activation: str | None = None
    file: Path | None = None
    function: str | None = None


def describe_spec() -> str:
    """Return the spec grammar, one form per line, for help texts.

    Returns
    -------
    str
        :data:`SPEC_GRAMMAR`.

    Examples
    --------
    >>> describe_spec().splitlines()[0]
    'Model specs:'
    """
    return SPEC_GRAMMAR


# ---------------------------------------------------------------- parsing


def _parse_sizes(text: str, spec: str) -> tuple[int, ...]:
    """Parse '256,128' into (256, 128), or raise naming the spec."""
    pieces = text.split(",")
    if not all(re.fullmatch(r"\s*\d+\s*", piece) for piece in pieces):
        raise InvalidParameterError(
            f"model spec {spec!r} has sizes {text!r}; expected comma-separated positive ints "
            "such as 256,128."
        )
    sizes = tuple(int(piece) for piece in pieces)
    problem = _sizes_problem("sizes", sizes, allow_empty=False)
    if problem:
        raise InvalidParameterError(f"model spec {spec!r}: {problem}")
    return sizes


def _parse_file_spec(spec: str) -> ModelSpec:
    """Parse 'FILE.py:FUNCTION'."""
    file, _, function = spec.rpartition(":")
    if not function.isidentifier():
        raise InvalidParameterError(
            f"model spec {spec!r} names the function {function!r}, which is not a Python "
            "identifier; expected FILE.py:FUNCTION, e.g. models.py:make_net."
        )
    return ModelSpec("file", file=Path(file).expanduser(), function=function)


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec without building anything.

    Parameters
    ----------
    spec : str
        One of the forms in :data:`SPEC_GRAMMAR`.

    Returns
    -------
    ModelSpec
        The kind and its options; an activation name is checked when the model is built.

    Raises
    ------
    InvalidParameterError
        If the spec does not follow the grammar; the message suggests the closest kind.

    Examples
    --------
    >>> parse_spec("mlp:256,128:tanh")
    ModelSpec(kind='mlp', sizes=(256, 128), activation='tanh', file=None, function=None)
    >>> parse_spec("models.py:make_net").function
    'make_net'
    """
    text = spec.strip()
    if text.rpartition(":")[0].endswith(".py"):
        return _parse_file_spec(text)
    if text.endswith(".py"):
        raise InvalidParameterError(
            f"model spec {spec!r} names a file but no function; expected FILE.py:FUNCTION."
        )
    kind, *options = text.split(":")
    if kind not in _BUILTIN_KINDS:
        raise InvalidParameterError(
            _unknown_name("model kind", kind, (*_BUILTIN_KINDS, "FILE.py:FUNCTION"))
            + "\n"
            + SPEC_GRAMMAR
        )
    if (kind == "linear" and options) or len(options) > 2:
        raise InvalidParameterError(
            f"model spec {spec!r} has too many ':' parts: linear takes no options, mlp and conv "
            f"take sizes and an activation.\n{SPEC_GRAMMAR}"
        )
    sizes = _parse_sizes(options[0], spec) if options else None
    activation = options[1].strip() if len(options) == 2 else None
    return ModelSpec(kind, sizes=sizes, activation=activation)


# ---------------------------------------------------------------- building


def _check_shapes(input_shape: tuple[int, ...], n_outputs: int) -> tuple[int, ...]:
    """Return input_shape as a tuple of ints, or raise naming every bad argument."""
    problems = [_sizes_problem("input_shape", input_shape, allow_empty=False)]
    if not _is_size(n_outputs):
        problems.append(f"n_outputs must be a positive int; got {n_outputs!r}.")
    messages = [problem for problem in problems if problem]
    if messages:
        raise InvalidParameterError("build_model: " + " ".join(messages))
    return tuple(int(size) for size in input_shape)


def _build_builtin(parsed: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """Build an MLP or ConvNet from a parsed built-in spec."""
    activation = "relu" if parsed.activation is None else parsed.activation
    if parsed.kind == "conv":
        return ConvNet(input_shape, n_outputs, parsed.sizes or (6, 16), activation=activation)
    hidden = () if parsed.kind == "linear" else parsed.sizes or (256,)
    return MLP(input_shape, n_outputs, hidden, activation=activation)


def _load_module(file: Path) -> ModuleType:
    """Execute ``file`` as a fresh module registered under a unique name."""
    if not file.is_file():
        raise InvalidParameterError(
            f"model file {str(file)!r} does not exist; expected FILE.py:FUNCTION with FILE "
            "absolute or relative to the working directory."
        )
    stem = re.sub(r"\W", "_", file.stem)
    name = f"_deepdx_user_model_{next(_MODULE_NUMBERS)}_{stem}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise InvalidParameterError(f"model file {str(file)!r} cannot be loaded as Python code.")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _find_function(module: ModuleType, parsed: ModelSpec) -> Callable[..., object]:
    """Return the spec's function from ``module``, or raise listing what the file defines."""
    function = getattr(module, str(parsed.function), None)
    if callable(function):
        return function
    names = sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", None) == module.__name__
    )
    where = f"model file {str(parsed.file)!r}: "
    if not names:
        raise InvalidParameterError(
            f"{where}function {parsed.function!r} is not defined, and the file defines no public "
            "functions or classes; define FUNCTION(input_shape, n_outputs) returning an nn.Module."
        )
    raise InvalidParameterError(where + _unknown_name("function", parsed.function, names))


def _call_function(
    function: Callable[..., object], where: str, input_shape: tuple[int, ...], n_outputs: int
) -> nn.Module:
    """Call the user's function with keyword arguments and check it returned a Module."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: just call them
        signature = None
    if signature is not None:
        try:
            signature.bind(input_shape=input_shape, n_outputs=n_outputs)
        except TypeError:
            raise InvalidParameterError(
                f"{where} must accept the keyword arguments input_shape and n_outputs; its "
                f"signature is {signature}."
            ) from None
    model = function(input_shape=input_shape, n_outputs=n_outputs)
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"{where} must return a torch.nn.Module; got {type(model).__name__}."
        )
    return model


def _probe_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """Return the dtype and device of the model's first floating tensor (float32 on CPU if none)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.float32, torch.device("cpu")


def _check_output(
    model: nn.Module, where: str, input_shape: tuple[int, ...], n_outputs: int
) -> None:
    """Run a batch of two zero samples through ``model`` in eval mode and check the shape."""
    dtype, device = _probe_dtype_device(model)
    x = torch.zeros((2, *input_shape), dtype=dtype, device=device)  # (2, *input_shape)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)  # (2, K) expected
    except Exception as err:
        raise InvalidParameterError(
            f"{where}: a forward pass on a zero batch of shape {tuple(x.shape)} failed with "
            f"{type(err).__name__}: {err}. The model must map (B, *input_shape) to (B, n_outputs)."
        ) from err
    finally:
        for module, mode in modes.items():
            module.training = mode
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, n_outputs):
        raise InvalidParameterError(
            f"{where}: for a batch of shape {tuple(x.shape)} the model returned shape {got}; "
            f"expected (2, {n_outputs}), that is (B, n_outputs). Check the last layer's width "
            "and that the input is flattened where needed."
        )


def _build_from_file(parsed: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """Load FILE.py, call FUNCTION(input_shape=..., n_outputs=...) and check the model."""
    module = _load_module(Path(str(parsed.file)))
    function = _find_function(module, parsed)
    where = f"{parsed.function} in {str(parsed.file)!r}"
    model = _call_function(function, where, input_shape, n_outputs)
    _check_output(model, where, input_shape, n_outputs)
    return model


def build_model(
    spec: str, input_shape: tuple[int, ...], n_outputs: int, *, seed: int | None = 0
) -> nn.Module:
    """Build the model a spec describes, with seeded, reproducible weights.

    Parameters
    ----------
    spec : str
        One of the forms in :data:`SPEC_GRAMMAR`.
    input_shape : tuple of int
        Shape of one sample; the model maps (B, *input_shape) to (B, n_outputs).
    n_outputs : int
        K: classes for classification, target columns for regression.
    seed : int or None, default=0
        Seed for the weights (and anything FILE.py draws). None draws a fresh seed. The
        caller's global torch RNG state is the same after the call as before.

    Returns
    -------
    nn.Module
        An :class:`~deepdx.nets.mlp.MLP`, a :class:`~deepdx.nets.convnet.ConvNet`, or the
        module FUNCTION returned.

    Raises
    ------
    InvalidParameterError
        If the spec is malformed, the file or function is missing, the function does not take
        ``input_shape``/``n_outputs``, returns something other than an ``nn.Module``, or a
        model whose output on a zero batch of two is not (2, n_outputs).

    Notes
    -----
    A ``FILE.py`` is executed as Python code under a fresh module name, once per call.

    Examples
    --------
    >>> net = build_model("mlp:32,16:tanh", (1, 8, 8), 10)
    >>> net(torch.zeros(4, 1, 8, 8)).shape, net.hidden
    (torch.Size([4, 10]), (32, 16))
    >>> a, b = build_model("conv", (1, 8, 8), 10), build_model("conv", (1, 8, 8), 10)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    True
    """
    parsed = parse_spec(spec)
    shape = _check_shapes(input_shape, n_outputs)
    if seed is None:
        seed = make_generator(None).initial_seed()
    with seeded_torch(seed):
        if parsed.kind == "file":
            return _build_from_file(parsed, shape, n_outputs)
        return _build_builtin(parsed, shape, n_outputs)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Return the number of scalar parameters in ``model``; shared tensors count once.

    Parameters
    ----------
    model : nn.Module
        Any module.
    trainable_only : bool, default=False
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
        Σ numel over ``model.parameters()``.

    Examples
    --------
    >>> count_parameters(build_model("linear", (1, 8, 8), 10))  # 64 * 10 weights + 10 biases
    650
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
