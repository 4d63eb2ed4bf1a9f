"""The reports' reason codes are computed with the server's settings: one home, `serve.explain_method`,
`serve.explain_steps`, `serve.reason_codes` (issue 16 item 8). Real rows: the Lending Club test shards of the
session's tiny served bundle."""

from __future__ import annotations

import pytest

from evaluation.finmm_eval import batches, bundle_layout, read_split, reason_code_examples
from finmm.config import FinMMSettings
from finmm.evaluate_command import explain_settings
from model.bundle import load_bundle
from model.explain import explain, reason_codes


@pytest.mark.parametrize("method,steps,k", [("grad_x_input", 1, 2), ("integrated_gradients", 3, 1)])
def test_reports_explain_with_the_serve_settings(served_bundle, method, steps, k):
    settings = FinMMSettings(serve={"explain_method": method, "explain_steps": steps, "reason_codes": k})
    chosen = explain_settings(settings)
    assert chosen == {"method": method, "steps": steps, "reason_codes": k}
    bundle = load_bundle(served_bundle)
    layout = bundle_layout(bundle)
    table = read_split(served_bundle.parent / "data", "lending_club", "test", max_rows=3)
    got = reason_code_examples(bundle.model, table, layout, "lending_club", n=3, explain_settings=chosen)
    _, batch = next(batches(table, layout, "lending_club", batch_size=3))
    want = reason_codes(explain(bundle.model, batch, "credit_risk", method=method, steps=steps), k=k,
                        dataset="lending_club")
    assert [r["reason_codes"] for r in got] == want
    assert all(len(r["reason_codes"]) <= k for r in got)
