"""Money: prepayment, provider callbacks, refunds (X2), insurance split and bills (M1–M3), the ledger."""
