"""Writes the example tables of the declared-data-set tests from slices of the real data (run from the repo root:
`FINMM_DATA_DIR=/work/shared/data .venv/bin/python tests/actors/sources/data/make_own_data.py`).

- `own_loans/loans.csv`: every 170th Lending Club loan, some application-time columns renamed, an
  `application_id` made of the source line (`LC<line>`: the file's own id column is empty), `loan_status` raw
  (so the "Does not meet the credit policy" loans fall outside a two-value mapping), semicolon-separated as a
  European export would be.
- `own_intents/queries.jsonl`: the first 24 train and 8 test queries of ten Banking77 intents, the split in a
  `part` column.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from actors.data_root import resolve_data_root

HERE = Path(__file__).parent
LOAN_COLUMNS = {"loan_amnt": "amount", "term": "term_months", "int_rate": "interest_rate", "annual_inc": "income",
                "dti": "debt_to_income", "grade": "grade", "home_ownership": "home", "purpose": "purpose",
                "addr_state": "state", "issue_d": "issued", "loan_status": "status", "title": "loan_title",
                "desc": "notes"}
INTENTS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed", "balance_not_updated_after_"
           "bank_transfer", "cash_withdrawal_charge", "pin_blocked", "declined_transfer", "request_refund",
           "change_pin"]


def main() -> None:
    root = resolve_data_root(None)
    loans = pd.read_csv(root / "lending_club" / "lending_club_2007_2011.csv", dtype=str, keep_default_na=False,
                        na_values=[""], low_memory=False)
    loans.insert(0, "application_id", [f"LC{line:05d}" for line in range(2, len(loans) + 2)])  # the file has no ids
    loans = loans.iloc[::170][["application_id", *LOAN_COLUMNS]].rename(columns=LOAN_COLUMNS)
    (HERE / "own_loans").mkdir(exist_ok=True)
    loans.to_csv(HERE / "own_loans" / "loans.csv", sep=";", index=False)

    lines = []
    for part in ("train", "test"):
        df = pd.read_csv(root / "banking77" / f"{part}.csv", dtype=str)
        for intent in INTENTS:
            for text in df.loc[df["category"] == intent, "text"].head(24 if part == "train" else 8):
                lines.append(json.dumps({"query": text, "intent": intent, "part": part}))
    (HERE / "own_intents").mkdir(exist_ok=True)
    (HERE / "own_intents" / "queries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
