"""Full-batch optimizers with the ``torch.optim.Optimizer`` interface, and line searches.

Every optimizer takes a closure in :meth:`step`, exactly as ``torch.optim.LBFGS`` does,
accepts several parameter groups (moved together as one flat vector; only ``lr`` may
differ between groups), and keeps its algorithm state in ``state_dict()``.

==========================  ===========================================================
``GradientDescent``         steepest descent with an Armijo or strong-Wolfe line search
``NonlinearCG``             nonlinear conjugate gradients (PR+, FR, HS) with restarts
``LBFGS``                   limited-memory BFGS, two-loop recursion
``armijo_backtracking``     backtracking line search (N&W Alg. 3.1)
``strong_wolfe``            strong-Wolfe line search with zoom (N&W Alg. 3.5, 3.6)
``two_loop``                the L-BFGS product ``H g`` (N&W Alg. 7.4)
``LineSearch``              the signature every line search shares
==========================  ===========================================================
"""

from __future__ import annotations

from deepdx.optim.gradient_descent import GradientDescent
from deepdx.optim.lbfgs import LBFGS, two_loop
from deepdx.optim.line_search import LineSearch, armijo_backtracking, strong_wolfe
from deepdx.optim.nonlinear_cg import NonlinearCG

__all__ = [
    "LBFGS",
    "GradientDescent",
    "LineSearch",
    "NonlinearCG",
    "armijo_backtracking",
    "strong_wolfe",
    "two_loop",
]
