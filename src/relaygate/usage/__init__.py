"""Usage accounting: token counts, cost, and the durable usage ledger."""
