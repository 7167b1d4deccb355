"""Full-batch optimizers with the ``torch.optim.Optimizer`` interface, and line searches.

Every optimizer takes a closure in :meth:`step`, exactly as ``torch.optim.LBFGS`` does,
accepts several parameter groups (moved together as one flat vector; only ``lr`` may
differ between groups), and keeps its algorithm state in ``state_dict()``.

==============================  ===========================================================
``GradientDescent``             steepest descent with an Armijo or strong-Wolfe line search
``NonlinearCG``                 nonlinear conjugate gradients (PR+, FR, HS) with restarts
``LBFGS``                       limited-memory BFGS, two-loop recursion
``Newton``                      exact Hessian, Levenberg-Marquardt damping (small models)
``HessianFree``                 truncated Newton with Gauss-Newton products and CG (Martens 2010)
``empirical_fisher_diagonal``   diag of the empirical Fisher (HF's preconditioner), vmapped
``cg_solve``                    linear CG with Martens' relative-progress stopping rule
``armijo_backtracking``         backtracking line search (N&W Alg. 3.1)
``strong_wolfe``                strong-Wolfe line search with zoom (N&W Alg. 3.5, 3.6)
``two_loop``                    the L-BFGS product ``H g`` (N&W Alg. 7.4)
``LineSearch``                  the signature every line search shares
==============================  ===========================================================
"""

from __future__ import annotations

from deepdx.optim._cg import CGResult, cg_solve
from deepdx.optim.gradient_descent import GradientDescent
from deepdx.optim.hessian_free import HessianFree, empirical_fisher_diagonal
from deepdx.optim.lbfgs import LBFGS, two_loop
from deepdx.optim.line_search import LineSearch, armijo_backtracking, strong_wolfe
from deepdx.optim.newton import Newton
from deepdx.optim.nonlinear_cg import NonlinearCG

__all__ = [
    "LBFGS",
    "CGResult",
    "GradientDescent",
    "HessianFree",
    "Newton",
    "LineSearch",
    "NonlinearCG",
    "armijo_backtracking",
    "cg_solve",
    "empirical_fisher_diagonal",
    "strong_wolfe",
    "two_loop",
]
