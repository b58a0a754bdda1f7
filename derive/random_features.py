r"""Positive random features (FAVOR+, Choromanski et al. 2021): why $\phi(x)\cdot\phi(y)$ estimates $e^{x\cdot y}$.

The coordinates of a Gaussian row $w$ are independent, so one coordinate shows it. For $w \sim N(0, 1)$,
completing the square, $wz - w^2/2 = z^2/2 - (w - z)^2/2$, gives the moment generating function
$E[e^{wz}] = e^{z^2/2}$. One positive feature $\phi(x) = e^{wx - x^2/2}$ then gives a product
$\phi(x)\phi(y) = e^{w(x + y) - (x^2 + y^2)/2}$ with mean $e^{xy}$ (unbiased, and never negative) and
second moment $e^{2xy} e^{(x + y)^2}$, so a mean of $r$ independent features has relative standard
error $\sqrt{(e^{|x + y|^2} - 1)/r}$, which falls like $r^{-1/2}$. No torch here: sympy only.

>>> x, y = sp.symbols("x y", real=True)
>>> mean, second = feature_moments(x, y)
>>> sp.simplify(mean), sp.simplify(second / mean**2 - sp.exp((x + y) ** 2))
(exp(x*y), 0)
"""

from __future__ import annotations

import sympy as sp

from derive.attention_cost import loglog_slope
from derive.engine import Derivation

_w, _z = sp.symbols("w z", real=True)


def gaussian_mgf(z=_z) -> sp.Expr:
    """E[exp(w z)] for w ~ N(0, 1), computed by completing the square: exp(z^2/2) times the integral of
    the N(z, 1) density (which sympy evaluates to 1).

    >>> sp.simplify(gaussian_mgf())
    exp(z**2/2)
    """
    return sp.exp(z**2 / 2) * sp.integrate(sp.exp(-((_w - z) ** 2) / 2), (_w, -sp.oo, sp.oo)) / sp.sqrt(2 * sp.pi)


def feature_moments(x, y) -> tuple[sp.Expr, sp.Expr]:
    """(E[phi(x) phi(y)], E[(phi(x) phi(y))^2]) for one positive feature phi(x) = exp(w x - x^2/2), w ~ N(0, 1),
    from :func:`gaussian_mgf` at z = x + y and z = 2 (x + y).

    >>> x, y = sp.symbols("x y", real=True)
    >>> sp.simplify(feature_moments(x, y)[1] / sp.exp(2 * x * y) - sp.exp((x + y) ** 2))
    0
    """
    mgf = gaussian_mgf()
    return mgf.subs(_z, x + y) * sp.exp(-(x**2 + y**2) / 2), mgf.subs(_z, 2 * (x + y)) * sp.exp(-(x**2 + y**2))


def random_feature_steps(dx: Derivation, d, r) -> None:
    """Add to ``dx`` the steps showing that positive features estimate exp(x y) without bias, that the
    error of a mean of ``r`` features falls like r^(-1/2), and that inputs scaled by d^(-1/4) (head
    dimension ``d``) make them estimate the softmax kernel exp(q k / sqrt(d)).

    >>> dx = Derivation("features")
    >>> random_feature_steps(dx, *sp.symbols("d r", positive=True))
    >>> len(dx.steps), dx.status
    (5, 'proved')
    """
    x, y, q, k = sp.symbols("x y q k", real=True)
    E = sp.Function("E")
    mean, second = feature_moments(x, y)
    dx.eq(
        sp.Integral(sp.exp(_w * _z - _w**2 / 2) / sp.sqrt(2 * sp.pi), (_w, -sp.oo, sp.oo)),
        sp.exp(_z**2 / 2),
        r"$E[\exp(w z)]$ for $w \sim N(0, 1)$: complete the square, $w z - w^2/2 = z^2/2 - (w - z)^2/2$",
        strategy="simplify",
        computed=gaussian_mgf(),
    )
    dx.eq(
        E(sp.Symbol("phi(x)·phi(y)")),
        sp.exp(x * y),
        r"$E[\exp(w(x + y))] \exp(-(x^2 + y^2)/2) = \exp(x y)$: unbiased, every term positive",
        strategy="simplify",
        computed=mean,
    )
    dx.eq(
        E(sp.Symbol("(phi(x)·phi(y))^2")) / sp.exp(2 * x * y),
        sp.exp((x + y) ** 2),
        r"second moment over the squared mean, so one feature's relative variance is $\exp(|x + y|^2) - 1$",
        strategy="simplify",
        computed=second / sp.exp(2 * x * y),
    )
    s2 = sp.Symbol("s", positive=True)  # |x + y|^2
    dx.eq(
        sp.Symbol("slope_err"),
        sp.Rational(-1, 2),
        r"a mean of $r$ independent features has standard error $\sqrt{(\exp(s) - 1)/r}$: log-log slope $-1/2$ in $r$",
        strategy="cancel",
        computed=loglog_slope(sp.sqrt((sp.exp(s2) - 1) / r), r),
    )
    dx.eq(
        (q * d ** sp.Rational(-1, 4)) * (k * d ** sp.Rational(-1, 4)),
        q * k / sp.sqrt(d),
        r"inputs scaled by $d^{-1/4}$ make $\phi(q) \phi(k)$ estimate $\exp(q k / \sqrt{d})$",
        strategy="simplify",
    )
