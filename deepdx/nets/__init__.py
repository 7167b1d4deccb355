"""Feed-forward networks: MLP, LeNet-style conv net, weight init, and model specs.

==================  ==========================================================
name                what it is
==================  ==========================================================
MLP                 flatten, hidden Linear layers, linear output
ConvNet             LeNet-5 style conv layers, then an MLP head
DeepAutoencoder     encoder MLP to a code layer, mirrored decoder (Hinton & Salakhutdinov 2006)
ElmanRNN            Elman recurrent net, tanh, last or all outputs; hidden states for HF
HiddenLayer         (index, name, layer, activation) of a hidden layer, for hooks
ACTIVATIONS         activation name -> module constructor
INIT_SCHEMES        weight-init scheme names (kaiming, xavier, lecun, normal, sparse, auto)
build_model         build a model from a spec such as ``mlp:256,128:tanh``
parse_spec          parse a spec without building it
describe_spec       the spec grammar, for help texts
count_parameters    number of scalar parameters of any module
==================  ==========================================================
"""

from __future__ import annotations

from deepdx.nets.autoencoder import DeepAutoencoder
from deepdx.nets.convnet import POOLS, ConvNet, conv_plan
from deepdx.nets.init import INIT_SCHEMES, gain, init_weight_, reset_layer_, resolve_init
from deepdx.nets.mlp import ACTIVATIONS, MLP, HiddenLayer, make_activation
from deepdx.nets.rnn import RNN_INITS, RNN_OUTPUTS, ElmanRNN
from deepdx.nets.spec import (
    SPEC_GRAMMAR,
    ModelSpec,
    build_model,
    count_parameters,
    describe_spec,
    parse_spec,
)

__all__ = [
    "ACTIVATIONS",
    "INIT_SCHEMES",
    "MLP",
    "POOLS",
    "RNN_INITS",
    "RNN_OUTPUTS",
    "SPEC_GRAMMAR",
    "ConvNet",
    "DeepAutoencoder",
    "ElmanRNN",
    "HiddenLayer",
    "ModelSpec",
    "build_model",
    "conv_plan",
    "count_parameters",
    "describe_spec",
    "gain",
    "init_weight_",
    "make_activation",
    "parse_spec",
    "reset_layer_",
    "resolve_init",
]
