"""Towns, villages, co-ops, units and their pairings (结对共建)."""
