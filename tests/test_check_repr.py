"""How a CheckResult shows in a notebook: a one-line repr and an HTML report with everything escaped."""

from numeric.check import Bound, CheckResult
from numeric.stats import Estimate, compare


def passing() -> CheckResult:
    r = CheckResult("Var(q·k) = d_k", device="cpu", samples=10_000, seed=0)
    r.claims.append(compare(Estimate(16.02, 0.2, 10_000), 16.0, "Var(q·k) at d_k = 16"))
    r.claims.append(Bound.of("softmax row sums to 1", 1.0, 1.0, 1e-9))
    r.controls.append(Bound.of("Var = d_k^2 (wrong)", 16.0, 256.0, 1.0))
    r.table.append({"d_k": 16, "var": 16.02, "note": "a < b"})
    r.notes.append("scores grow like <sqrt(d_k)> & so on")
    return r


def failing() -> CheckResult:
    r = CheckResult("x < y & z", device="cuda", samples=None, seed=3)
    r.claims.append(Bound.of("x < 1", 2.0, 1.0, 0.5))
    r.controls.append(Bound.of("a wrong claim <b>", 2.0, 2.0, 0.5))
    return r


def test_repr_is_one_line_with_the_essentials():
    for r in (passing(), failing()):
        text = repr(r)
        assert "\n" not in text
        assert r.name in text and r.device in text and r.verdict in text
    assert repr(passing()) == "<CheckResult 'Var(q·k) = d_k' on cpu, N = 10,000: PASS (2 claims, 1 control)>"
    assert repr(failing()) == "<CheckResult 'x < y & z' on cuda, nothing drawn at random: FAIL (1 claim, 1 control)>"


def test_html_shows_verdict_table_claims_controls_and_notes():
    r = passing()
    page = r._repr_html_()
    assert "PASS" in page
    assert "Var(q·k) at d_k = 16" in page and "softmax row sums to 1" in page
    assert "Var = d_k^2 (wrong)" in page and "rejected" in page
    assert "<th>d_k</th>" in page and "<td>16.02</td>" in page
    assert "a &lt; b" in page and "&lt;sqrt(d_k)&gt; &amp; so on" in page
    assert "<sqrt" not in page and "a < b" not in page


def test_html_of_a_failing_check_escapes_and_flags_what_failed():
    r = failing()
    page = r._repr_html_()
    assert "FAIL" in page
    assert "x &lt; y &amp; z" in page and "x &lt; 1" in page and "REJECTED" in page
    assert "a wrong claim &lt;b&gt;" in page and "AGREES" in page  # a control that agrees is flagged
    assert "<b>a wrong" not in page and "x < " not in page
